"""Claim 5's side sets and statistic on known answers: a planted left channel, hand-worked
drops."""
import math

import pytest
import torch
import torch.nn as nn

from posinfo.attack import region_confusions
from posinfo.sides import (SideRanking, blank_half, class_matched, class_scores, half_means,
                           half_score, rank_side_channels, side_drops, side_experiment,
                           side_ranking, side_scores, side_specificity, side_statistic,
                           stray_pixel_swing)
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
    # by hand: channel 0's pooled value loses the left half's mean brightness minus the
    # fill, which is the left half's own mean colour over the scenes
    x = scenes()
    fill = x[..., :4].mean(dim=(0, 2, 3)).mean()
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


def test_region_confusions_score_each_half_separately():
    labels = torch.zeros(1, 2, 4, dtype=torch.long)
    labels[..., 2:] = 1
    pred = torch.ones(1, 2, 4, dtype=torch.long)  # class 1 everywhere: left all wrong
    conf = region_confusions(pred, labels, 2)
    assert conf["left"].tolist() == [[0, 4], [0, 0]]
    assert conf["right"].tolist() == [[0, 0], [0, 4]]
    assert half_score(conf["left"], "pixel accuracy") == 0.0
    assert half_score(conf["right"], "truth-class mIoU") == 1.0
    # class 0 is absent from the right half's truth: no part of its score
    assert math.isnan(class_scores(conf["right"], "pixel accuracy")[0].item())


class HalfSegmenter(HalfChannels):
    """HalfChannels under a head that reads class 1 where the left-half channel is bright
    and class 0 elsewhere: zeroing channel 0 (the left attack's first pick) erases every
    class-1 prediction, which only the left half ever had."""

    def decode(self, f, size):
        return torch.stack([torch.full_like(f[:, 0], 0.5), f[:, 0]], 1)

    def forward(self, x):
        return self.decode(self.features(x), x.shape[-2:])


def _two_tone_scenes():
    """4 scenes, left half 1.0 or 0.6, right half 0.3 or 0.5 (alternating): blanking a half
    with its own mean colour changes every scene's pooled value of that half's channel."""
    x = torch.empty(4, 3, 4, 8)
    x[..., :4] = torch.tensor([1.0, 0.6, 1.0, 0.6]).reshape(4, 1, 1, 1)
    x[..., 4:] = torch.tensor([0.3, 0.5, 0.3, 0.5]).reshape(4, 1, 1, 1)
    return x


def test_side_statistics_rerun_the_attacks_on_each_seeds_stored_segmenter():
    from types import SimpleNamespace

    from posinfo.sides import side_statistics
    x = _two_tone_scenes()
    labels = torch.zeros(4, 4, 8, dtype=torch.long)
    labels[..., :4] = 1  # the left half is class 1, as the clean model predicts
    setup = SimpleNamespace(model=HalfSegmenter(), images=x, labels=labels, num_classes=2)
    result = side_experiment(setup, "blank", 1, "truth-class mIoU")
    # by hand: the left attack zeroes channel 0, so the left half (all class 1) is now
    # wrong everywhere (left score 1 -> 0) and the right half stays right (right score 1)
    assert result["scores"]["clean"]["left"] == 1.0
    assert result["scores"]["left attack"]["left"] == 0.0
    assert result["scores"]["left attack"]["right"] == 1.0
    runs = {(7, 3): {"setup": setup}, (8, 3): {"setup": setup}}
    stats = side_statistics(runs, [7, 8], 3, "blank", 1, "truth-class mIoU")
    assert stats == {7: side_statistic(result["scores"]), 8: side_statistic(result["scores"])}
    with pytest.raises(ValueError, match="N must be an integer in"):
        side_statistics(runs, [7], 3, "blank", 5, "truth-class mIoU")  # only 4 channels


def test_each_half_is_blanked_with_its_own_mean_colour():
    x = _two_tone_scenes()
    fill = half_means(x)
    assert torch.allclose(fill["left"], torch.full((3,), 0.8))
    assert torch.allclose(fill["right"], torch.full((3,), 0.4))


def test_side_scores_by_hand():
    z = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    z_left = torch.tensor([[0.0, 2.0], [1.0, 2.0]])  # channel 0 loses 1 and 2
    z_right = torch.tensor([[1.0, 1.0], [3.0, 5.0]])  # channel 1 changes by 1 and 3
    assert side_scores(z, z_left, z_right).tolist() == [1.5, -2.0]


class PlantedSegmenter(nn.Module):
    """Three channels on (N, 3, H, W) scenes whose colour 0 is a texture and colour 2 holds
    a bright blob (a "car") on one side: channel 0 follows the left half's texture (a left
    channel: |x0 - 0.5| on the left half, weight 1/4), channel 1 detects the blob wherever
    it is (a class channel: relu(x2 - 1/2)), channel 2 follows the right half's texture.
    The head labels a pixel 1 where channel 0 is on."""
    channels = 3

    def __init__(self):
        super().__init__()
        self.backbone = nn.Identity()
        self.w = nn.Parameter(torch.zeros(1))

    def features(self, x):
        half = x.shape[-1] // 2
        texture = (x[:, :1] - 0.5).abs() / 4
        left, right = texture.clone(), texture.clone()
        left[..., half:] = 0
        right[..., :half] = 0
        return torch.cat([left, (x[:, 2:] - 0.5).relu(), right], 1)

    def decode(self, f, size):
        return torch.stack([torch.full_like(f[:, 0], 0.01), f[:, 0]], 1)

    def forward(self, x):
        return self.decode(self.features(x), x.shape[-2:])


def _blob_scenes(sides, seed):
    x = torch.zeros(len(sides), 3, 4, 8)
    x[:, 0] = torch.rand(len(sides), 4, 8, generator=torch.Generator().manual_seed(seed))
    for i, side in enumerate(sides):
        x[i, 2, 1:3, 1:3] = 1.0 if side == "left" else 0.0
        x[i, 2, 1:3, 5:7] = 1.0 if side == "right" else 0.0
    return x


def test_ranking_on_the_scored_scenes_picks_a_class_channel_held_out_ranking_does_not():
    """The scored sample holds its cars on the left only (an imbalance of the sample): ranked
    on it, the car channel outranks the true left channel. The segmenter's own training
    scenes hold cars on both sides, and ranking there finds the left channel."""
    from types import SimpleNamespace

    scored = _blob_scenes(["left"] * 4, seed=1)
    training = _blob_scenes(["left", "right"] * 2, seed=2)
    model = PlantedSegmenter()
    assert rank_side_channels(model, scored, device="cpu").left[0] == 1  # the car channel
    labels = torch.zeros(4, 4, 8, dtype=torch.long)
    trained = SimpleNamespace(task=SimpleNamespace(train=SimpleNamespace(images=training)))
    setup = SimpleNamespace(model=model, images=scored, labels=labels, num_classes=2,
                            trained=trained)
    result = side_experiment(setup, "blank", 1, "pixel accuracy")
    assert result["ranking"].left[0] == 0 and result["ranking"].right[0] == 2
    # a checkpoint (no training scenes) ranks on the even scored scenes, scores the odd
    ranked = side_experiment(SimpleNamespace(model=model, images=scored, labels=labels,
                                             num_classes=2), "blank", 1, "pixel accuracy")
    assert sum(c.sum() for c in ranked["confusions"]["clean"]["whole"]) == 2 * 4 * 8


def test_a_stray_pixel_swings_mIoU_but_not_the_per_half_scores():
    # a half of 13 classes in columns of 100 pixels, all labelled right; then one pixel of
    # class 0 labelled as class 13, absent from the half
    labels = torch.arange(13).reshape(1, 1, 13).expand(1, 100, 13)
    labels = torch.cat([labels, torch.zeros(1, 100, 13, dtype=torch.long)], -1)  # + right
    pred = labels.clone()
    conf = region_confusions(pred, labels, 14)["left"]
    pred[0, 0, 0] = 13
    stray = region_confusions(pred, labels, 14)["left"]
    assert mean_iou(conf) - mean_iou(stray) == pytest.approx(1 - (12 + 0.99) / 14, abs=1e-9)
    assert mean_iou(conf) - mean_iou(stray) > 0.07
    for kind in ("pixel accuracy", "truth-class mIoU"):
        assert abs(half_score(conf, kind) - half_score(stray, kind)) < 0.001
        # the worst pixel of all (relabelled as another class of the half) moves two
        # classes of 100 pixels: about (1/100 + 1/101) / 13 of truth-class mIoU
        assert stray_pixel_swing(conf, kind) < 0.002
    assert stray_pixel_swing(conf, "mIoU") > 0.07  # the worst stray pixel, found


def _confusion(rows):
    return torch.tensor(rows)


def test_the_class_matched_control_by_hand():
    """Two classes on both halves, a third on the left only; scores are pixel accuracy per
    class (the share of its pixels labelled right). Rows truth, columns prediction."""
    perfect_left = _confusion([[100, 0, 0], [0, 100, 0], [0, 0, 100]])
    perfect_right = _confusion([[100, 0, 0], [0, 100, 0], [0, 0, 0]])
    confusions = {
        "clean": {"left": perfect_left, "right": perfect_right},
        # left attack: class 0 loses 0.5 on the left, 0.1 on the right; class 2 (left
        # only, not matched) is wiped out
        "left attack": {"left": _confusion([[50, 50, 0], [0, 100, 0], [0, 100, 0]]),
                        "right": _confusion([[90, 10, 0], [0, 100, 0], [0, 0, 0]])},
        # right attack: class 1 loses 0.2 on the right, class 0 0.3 on the left
        "right attack": {"left": _confusion([[70, 30, 0], [0, 100, 0], [0, 0, 100]]),
                         "right": _confusion([[100, 0, 0], [20, 80, 0], [0, 0, 0]])}}
    # left attack: class 0: 0.5 - |0.1| = 0.4, class 1: 0; mean 0.2
    # right attack: class 0: 0 - |0.3| = -0.3, class 1: 0.2 - 0 = 0.2; mean -0.05
    assert class_matched(confusions, "pixel accuracy") == pytest.approx((0.2 - 0.05) / 2)
    # a class on one half only is never matched
    only_left = {run: {"left": c["left"], "right": c["left"][:, :] * 0} for run, c in
                 confusions.items()}
    assert math.isnan(class_matched(only_left, "pixel accuracy"))
