import numpy as np
import pytest

from posinfo.tables import compared, format_table, glue_values
from posinfo.interval import t_interval


def test_glue_values_glues_each_value_as_a_table_prints_it(monkeypatch):
    import myst_nb

    glued = {}
    monkeypatch.setattr(myst_nb, "glue",
                        lambda name, value, display: glued.update({name: (value, display)}))
    estimate = t_interval(np.array([0.5, 0.6, 0.7]), 0.95)
    glue_values(ch9_accuracy=np.float32(0.8125), ch9_n=np.int64(64), ch9_gap=estimate,
                ch9_share="85%")
    assert glued == {"ch9_accuracy": ("0.812", False), "ch9_n": ("64", False),
                     "ch9_gap": (estimate.text(), False), "ch9_share": ("85%", False)}
    # the prose reads what the chapter's tables print
    assert glued["ch9_accuracy"][0] in format_table({"row": {"accuracy": np.float32(0.8125)}})


def test_an_empty_table_is_refused():
    with pytest.raises(ValueError, match="at least one row"):
        format_table({})


def test_compared_words_follow_the_numbers_as_printed():
    assert compared(0.5004, 0.5001) == "did not move"  # both print 0.500
    assert compared(0.51, 0.5) == "rose" and compared(0.49, 0.5) == "fell"
    assert compared(0.345, 0.3, ("more than", "less than", "as much as"), 1) == "as much as"
