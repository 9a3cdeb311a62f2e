"""Claim 5's side sets and statistic on known answers: a planted left channel, hand-worked
drops."""
import math

import pytest
import torch
import torch.nn as nn

from posinfo.sides import (SideRanking, blank_half, rank_side_channels, region_class_iou,
                            side_drops, side_ranking, side_specificity, side_statistic)
from posinfo.segment import class_iou, mean_iou


class HalfChannels(nn.Module):
    """Features of 4 channels: 0 = the left half's pixels, 1 = the right half's, 2 = the whole
    image, 3 = a constant. Blanking the left half moves only channels 0 and 2."""
    channels = 4

    def __init__(self):
        super().__init__()
        self.backbone = nn.Identity()
        self.w = nn.Parameter(torch.zeros(1))  # a device for pick_device / prepare_model

    def features(self, x):
        g = x.mean(1, keepdim=True)
        half = x.shape[-1] // 2
        left, right = g.clone(), g.clone()
        left[..., half:] = 0
        right[..., :half] = 0
        return torch.cat([left, right, g, torch.ones_like(g)], 1)


def scenes(n=6, h=4, w=8, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_blank_half_sets_only_that_half_to_the_fill():
    x = scenes(2, 3, 5)
    fill = torch.tensor([0.1, 0.2, 0.3])
    left = blank_half(x, "left", fill)
    assert torch.equal(left[..., 2:], x[..., 2:])  # middle column of an odd width kept
    assert torch.allclose(left[:, :, :, :2], fill.reshape(1, 3, 1, 1).expand(2, 3, 3, 2))
    right = blank_half(x, "right", fill)
    assert torch.equal(right[..., :3], x[..., :3])
    assert torch.allclose(right[..., 3:], fill.reshape(1, 3, 1, 1).expand(2, 3, 3, 2))


def test_a_planted_left_channel_ranks_first_left_and_last_right():
    ranking = rank_side_channels(HalfChannels(), scenes(), device="cpu")
    assert ranking.left[0] == 0 and ranking.right[0] == 1
    assert ranking.score[0] > 0 > ranking.score[1]
    assert ranking.score[3] == 0.0  # the constant channel responds to neither half
    # by hand: channel 0's pooled value loses the left half's mean brightness minus the fill
    x = scenes()
    fill = x.mean(dim=(0, 2, 3)).mean()
    g = x.mean(1)
    expected = ((g[..., :4] - fill).sum(dim=(1, 2)) / g[0].numel()).abs().mean()
    assert float(ranking.score[0]) == pytest.approx(float(expected), rel=1e-5)


def test_side_ranking_refuses_an_unknown_kind_naming_the_choices():
    with pytest.raises(ValueError, match=r"region_ranking must be one of \('blank', 'flip'\)"):
        side_ranking("mirror", HalfChannels(), scenes())


def test_side_ranking_top_checks_side_and_width():
    r = SideRanking(left=torch.arange(4), right=torch.arange(4).flip(0), score=torch.zeros(4),
                    channels=4)
    assert r.top("right", 2).tolist() == [3, 2]
    with pytest.raises(ValueError, match="side must be one of"):
        r.top("overall", 2)


SCORES = {"clean": {"left": 0.8, "right": 0.7},
          "left attack": {"left": 0.5, "right": 0.6},    # drops 0.3 left, 0.1 right
          "right attack": {"left": 0.85, "right": 0.7}}  # right unchanged, left *better* by 0.05


def test_side_drops_are_own_and_other_each_on_its_own():
    d = side_drops(SCORES)
    assert d["left attack"] == pytest.approx({"own": 0.3, "other": 0.1})
    assert d["right attack"] == pytest.approx({"own": 0.0, "other": -0.05})


def test_the_other_side_getting_better_counts_against_the_attack():
    spec = side_specificity(SCORES)
    assert spec["left attack"] == pytest.approx(0.3 - 0.1)
    # own - other would reward the improvement with +0.05; own - |other| gives -0.05
    assert spec["right attack"] == pytest.approx(0.0 - 0.05)
    assert side_statistic(SCORES) == pytest.approx((0.2 - 0.05) / 2)


def test_class_iou_by_hand_and_mean_iou_is_its_mean_over_present_classes():
    # rows truth, columns prediction; class 2 absent from both
    confusion = torch.tensor([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    iou = class_iou(confusion)
    assert iou[0].item() == pytest.approx(3 / (3 + 2 + 1))
    assert iou[1].item() == pytest.approx(4 / (4 + 1 + 2))
    assert math.isnan(iou[2].item())
    assert mean_iou(confusion) == pytest.approx((3 / 6 + 4 / 7) / 2)


def test_region_class_iou_scores_each_half_separately():
    class Copy(nn.Module):
        channels = 2

        def __init__(self):
            super().__init__()
            self.backbone = nn.Identity()

        def features(self, x):
            return x

        def decode(self, f, size):
            return f

        def forward(self, x):
            return x

    labels = torch.zeros(1, 2, 4, dtype=torch.long)
    labels[..., 2:] = 1
    # logits: predict class 1 everywhere: left half all wrong, right half all right
    logits = torch.zeros(1, 2, 2, 4)
    logits[:, 1] = 1.0
    iou = region_class_iou(Copy(), logits, labels, 2, features=logits)
    assert iou["left"][0].item() == 0.0 and iou["left"][1].item() == 0.0
    assert iou["right"][1].item() == 1.0 and math.isnan(iou["right"][0].item())


class HalfSegmenter(HalfChannels):
    """HalfChannels under a head that reads class 1 where the left-half channel is bright
    and class 0 elsewhere: zeroing channel 0 (the left attack's first pick) erases every
    class-1 prediction, which only the left half ever had."""

    def decode(self, f, size):
        return torch.stack([torch.full_like(f[:, 0], 0.5), f[:, 0]], 1)

    def forward(self, x):
        return self.decode(self.features(x), x.shape[-2:])


def test_side_statistics_rerun_the_attacks_on_each_seeds_stored_segmenter():
    from types import SimpleNamespace

    from posinfo.sides import side_experiment, side_statistics
    x = torch.ones(4, 3, 4, 8)
    labels = torch.zeros(4, 4, 8, dtype=torch.long)
    labels[..., :4] = 1  # the left half is class 1, as the clean model predicts
    setup = SimpleNamespace(model=HalfSegmenter(), images=x, labels=labels, num_classes=2)
    result = side_experiment(setup, "blank", 1)
    # by hand: the left attack zeroes channel 0, so the left half (all class 1) is now
    # wrong everywhere (left mIoU 1 -> 0) and the right half stays right (right mIoU 1)
    assert result["scores"]["clean"]["left"] == 1.0
    assert result["scores"]["left attack"]["left"] == 0.0
    assert result["scores"]["left attack"]["right"] == 1.0
    runs = {(7, 3): {"setup": setup}, (8, 3): {"setup": setup}}
    stats = side_statistics(runs, [7, 8], 3, "blank", 1)
    assert stats == [side_statistic(result["scores"])] * 2
    with pytest.raises(ValueError, match="N must be an integer in"):
        side_statistics(runs, [7], 3, "blank", 5)  # more than the 4 channels
