"""Chapter 5's pilot on stand-in segmenters: the per-half score is chosen by the clean
segmenters alone (one stray pixel's reach), and the seeds by the power rule."""
import pytest
import torch

from posinfo import pilots, power, segment, sides

SEEDS = tuple(range(8))


def _confusions(seed: int, few: int) -> dict:
    """Two classes on both halves (1,000 pixels each), a third with ``few`` pixels on the
    left; the left attack costs the left half's class 0 (10 + seed) pixels."""
    def half(extra):
        return torch.tensor([[1000, 0, 0], [0, 1000, 0], [0, 0, extra]])

    hit = half(few)
    hit[0, 0] -= 10 + seed
    hit[0, 1] += 10 + seed
    return {"clean": {"left": half(few), "right": half(0)},
            "left attack": {"left": hit, "right": half(0)},
            "right attack": {"left": half(few), "right": half(0)}}


@pytest.fixture
def stand_ins(monkeypatch):
    few = {"pixels": 1000}
    monkeypatch.setattr(segment, "segmentation_budgets",
                        lambda s, seed, budgets: {max(budgets): seed})
    monkeypatch.setattr(sides, "side_experiment",
                        lambda setup, kind, n, score: {
                            "confusions": {run: {**c, "whole": c["left"] + c["right"]}
                                           for run, c in _confusions(setup,
                                                                     few["pixels"]).items()}})
    return few


def test_the_pilot_keeps_truth_class_miou_when_no_stray_pixel_can_swing_it(stand_ins):
    record = pilots.region_attack_pilot("default", seeds=SEEDS)
    assert record["half_score"] == "truth-class mIoU"
    assert record["stray_pixel_swing"]["truth-class mIoU"] <= pilots.MAX_STRAY_SWING
    # the left attack's own drop, by hand: class 0's IoU falls from 1 to (990 - seed) /
    # 1000 and class 1's to 1000 / (1010 + seed), two of the half's three classes; the
    # right half and the right attack change nothing
    for seed, value in zip(SEEDS, record["sample_size"]["values"]):
        own = (2 - (990 - seed) / 1000 - 1000 / (1010 + seed)) / 3
        assert value == pytest.approx(own / 2)
    size = record["sample_size"]
    assert size["n"] >= power.MIN_SEEDS and size["expected"] in ("holds", "does not hold")


def test_a_class_of_a_few_pixels_makes_the_pilot_choose_pixel_accuracy(stand_ins):
    stand_ins["pixels"] = 20  # one pixel moves this class's IoU by 1/20, the mean by 1/60
    record = pilots.region_attack_pilot("default", seeds=SEEDS)
    assert record["stray_pixel_swing"]["truth-class mIoU"] > pilots.MAX_STRAY_SWING
    assert record["half_score"] == "pixel accuracy"


def test_a_pilot_of_fewer_than_eight_seeds_is_refused(stand_ins):
    with pytest.raises(ValueError, match="at least 8 seeds"):
        pilots.region_attack_pilot("default", seeds=SEEDS[:5])
