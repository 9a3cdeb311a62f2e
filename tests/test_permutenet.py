"""Chapter 2's experiment and statistic on hand-made accuracies: shares kept, paired by seed."""
from types import SimpleNamespace

import numpy as np
import pytest

from posinfo.permutenet import (PlacementRuns, asymmetry, kept, placement_arms,
                                placement_table, verdict_rows)
from posinfo.settings import chapter_settings


def test_the_arms_are_the_baseline_each_stage_and_after_gap():
    s = chapter_settings("channel_order", "default")
    assert placement_arms(s) == {"baseline": 0, "stage 1": 1, "stage 2": 2, "stage 3": 3,
                                 "stage 4": 4, "after GAP": 5}
    smoke = chapter_settings("channel_order", "smoke")  # placements (1, 5)
    assert list(placement_arms(smoke)) == ["baseline", "stage 1", "after GAP"]


def _by_hand():
    # location: chance 1/9; class: chance 1/10. Seed 7: location falls to chance (kept 0),
    # class keeps (0.55 - 0.1) / (1.0 - 0.1) = 0.5. Seed 8: location keeps half of its
    # above-chance accuracy, class all of it.
    nine = 1 / 9
    by_budget = {("location", "after GAP", 4): {7: nine, 8: (1 + nine) / 2},
                 ("location", "baseline", 4): {7: 1.0, 8: 1.0},
                 ("class", "after GAP", 4): {8: 0.9, 7: 0.55},  # stored out of seed order
                 ("class", "baseline", 4): {7: 1.0, 8: 0.9}}
    return PlacementRuns({}, {}, by_budget, {"location": nine, "class": 0.1})


def test_asymmetry_by_hand():
    a = asymmetry(_by_hand(), 4)
    assert a["location kept"] == pytest.approx({7: 0.0, 8: 0.5})
    assert a["class kept"] == pytest.approx({7: 0.5, 8: 1.0})
    assert a["class kept - location kept"] == pytest.approx({7: 0.5, 8: 0.5})


def test_arms_run_at_other_seeds_are_refused():
    with pytest.raises(ValueError, match=r"share their seeds.*\[1, 2\].*\[2, 3\]"):
        kept({1: 0.5, 2: 0.5}, {2: 1.0, 3: 1.0}, 0.1)
    assert np.isclose(kept({3: 0.55}, {3: 1.0}, 0.1)[3], 0.5)


def test_the_placement_table_gives_each_arms_mean_and_sd_per_task_and_chance():
    accuracy = {"location": {"baseline": np.array([0.8, 1.0]), "after GAP": np.array([0.1])},
                "class": {"baseline": np.array([0.5, 0.7]), "after GAP": np.array([0.3])}}
    runs = PlacementRuns({"baseline": 0, "after GAP": 5}, accuracy, {},
                         {"location": 1 / 9, "class": 0.1})
    rows = placement_table(runs)
    assert list(rows) == ["baseline", "after GAP", "chance"]
    assert rows["baseline"] == pytest.approx({"location mean": 0.9, "location sd": 0.1,
                                              "class mean": 0.6, "class sd": 0.1})
    assert rows["after GAP"]["class sd"] == 0
    assert rows["chance"] == pytest.approx({"location mean": 1 / 9, "class mean": 0.1})


def test_the_verdict_rows_hold_each_share_and_the_papers_rule_by_hand():
    settings = SimpleNamespace(confidence=0.95, epochs=4, min_effect=0.5,
                               chance_tolerance=0.05, class_fraction=0.8)
    rows = verdict_rows(_by_hand(), settings, "primary estimate")
    assert rows["class kept - location kept (primary)"] == {
        "estimate [CI]": "primary estimate", "needs": "> 0.500"}
    assert rows["location kept"]["estimate [CI]"].value == pytest.approx(0.25)
    assert rows["class kept"]["estimate [CI]"].value == pytest.approx(0.75)
    # location - chance: 0 (seed 7) and (1 + 1/9) / 2 - 1/9 = 4/9 (seed 8)
    assert rows["paper: location - chance"]["estimate [CI]"].value == pytest.approx(2 / 9)
    assert rows["paper: location - chance"]["needs"] == "< 0.050"
    # class / baseline: 0.55 (seed 7) and 1.0 (seed 8)
    assert rows["paper: class / baseline class"]["estimate [CI]"].value == pytest.approx(0.775)
