"""Chapter 2's experiment and statistic on hand-made accuracies: shares kept, paired by seed."""
import numpy as np
import pytest

from posinfo.permutenet import (PlacementRuns, asymmetry, kept, placement_arms,
                                placement_table)
from posinfo.settings import chapter_settings


def test_the_arms_are_the_baseline_each_stage_and_after_gap():
    s = chapter_settings("channel_order", "default")
    assert placement_arms(s) == {"baseline": 0, "stage 1": 1, "stage 2": 2, "stage 3": 3,
                                 "stage 4": 4, "after GAP": 5}
    smoke = chapter_settings("channel_order", "smoke")  # placements (1, 5)
    assert list(placement_arms(smoke)) == ["baseline", "stage 1", "after GAP"]


def test_asymmetry_by_hand():
    # location: chance 1/9; class: chance 1/10. Seed 7: location falls to chance (kept 0),
    # class keeps (0.55 - 0.1) / (1.0 - 0.1) = 0.5. Seed 8: location keeps half of its
    # above-chance accuracy, class all of it.
    nine = 1 / 9
    by_budget = {("location", "after GAP", 4): {7: nine, 8: (1 + nine) / 2},
                 ("location", "baseline", 4): {7: 1.0, 8: 1.0},
                 ("class", "after GAP", 4): {8: 0.9, 7: 0.55},  # stored out of seed order
                 ("class", "baseline", 4): {7: 1.0, 8: 0.9}}
    runs = PlacementRuns({}, {}, by_budget, {"location": nine, "class": 0.1})
    a = asymmetry(runs, 4)
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
