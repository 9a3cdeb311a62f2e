"""AugShift: shift views, the loss, BlurPool, the invariance metrics, and bad input."""
import math
from pathlib import Path

import pytest
import torch

import posinfo
from posinfo.augshift import AugShiftLoss, augshift_terms
from posinfo.datasets import ImageSet
from posinfo.geometry import feature_size
from posinfo.invariance import accuracy_vs_shift, consistency, latent_distance, position_bins
from posinfo.models import BlurPool, build_backbone, build_classifier
from posinfo.shifts import ShiftTask, centred_canvases, shift_views
from posinfo.interval import paired_difference


def _task(n=12, size=6, margin=3, protocol="crop", background="zeros"):
    g = torch.Generator().manual_seed(0)
    images = ImageSet(torch.rand(n, 1, size, size, generator=g), torch.arange(n) % 3, 3)
    return ShiftTask(images, images, margin=margin, max_shift=margin, protocol=protocol,
                     background=background)


@pytest.mark.parametrize("protocol", ["crop", "roll"])
def test_two_views_hold_the_same_pixels_at_the_stated_offsets(protocol):
    task = _task(protocol=protocol, background="noise")
    both, labels, offsets = next(task.train_batches(5, torch.Generator().manual_seed(1)))
    view1, view2 = both.chunk(2)
    side = task.canvas_size
    for i, (dy1, dx1, dy2, dx2) in enumerate(offsets.tolist()):
        # Pixel (r, c) of view 1 is pixel (r - dy1 + dy2, c - dx1 + dx2) of view 2, wherever both
        # come from inside the canvas: the image itself always does (|shift| <= margin).
        for r in range(side):
            for c in range(side):
                r0, c0 = r - dy1, c - dx1  # source pixel on the unshifted canvas
                r2, c2 = r0 + dy2, c0 + dx2
                if protocol == "roll":
                    r0, c0, r2, c2 = r0 % side, c0 % side, r2 % side, c2 % side
                if 0 <= r0 < side and 0 <= c0 < side and 0 <= r2 < side and 0 <= c2 < side:
                    assert torch.equal(view1[i, :, r, c], view2[i, :, r2, c2])
    assert len(labels) == len(view1) == 5


def test_crop_view_is_the_image_at_its_offset_and_roll_matches_torch_roll():
    images = torch.rand(3, 2, 4, 4)
    canvas = centred_canvases(images, margin=3)
    dy, dx = torch.tensor([3, -3, 0]), torch.tensor([-2, 1, 3])
    crop = shift_views(canvas, dy, dx, "crop")
    rolled = shift_views(canvas, dy, dx, "roll")
    for i in range(3):
        top, left = 3 + int(dy[i]), 3 + int(dx[i])
        assert torch.equal(crop[i, :, top:top + 4, left:left + 4], images[i])
        assert crop[i].sum() == pytest.approx(float(images[i].sum()), rel=1e-5)  # nothing lost
        assert torch.equal(rolled[i],
                           torch.roll(canvas[i], (int(dy[i]), int(dx[i])), dims=(-2, -1)))
    # On a blank canvas with |shift| <= margin, the two protocols give identical pixels.
    assert torch.equal(crop, rolled)


def test_crop_brings_in_zeros_where_roll_wraps_the_background():
    canvas = torch.ones(1, 1, 5, 5)
    one = torch.tensor([2])
    assert shift_views(canvas, one, one * 0, "crop")[0, 0, :2].eq(0).all()
    assert shift_views(canvas, one, one * 0, "roll").eq(1).all()


def test_the_consistency_term_is_zero_for_identical_views_and_positive_otherwise():
    torch.manual_seed(0)
    model = build_classifier(1, 3, width=4, blocks=(1, 1), head="gap_linear").eval()
    x, y = torch.rand(4, 1, 16, 16), torch.tensor([0, 1, 2, 0])
    ce1, ce2, mse = augshift_terms(model, x, x, y)
    assert mse.item() == 0 and torch.isclose(ce1, ce2)
    assert augshift_terms(model, x, torch.roll(x, 3, dims=-1), y)[2] > 0
    assert torch.isclose(AugShiftLoss(0.0)(model, torch.cat([x, x]), y), ce1 + ce2)


def test_blur_pool_preserves_a_constant_image_and_halves_resolution():
    for size in (3, 5):
        for side in (8, 9):
            out = BlurPool(size)(torch.full((2, 3, side, side), 0.7))
            assert out.shape == (2, 3, (side + 1) // 2, (side + 1) // 2)
            assert torch.allclose(out, torch.full_like(out, 0.7))


@pytest.mark.parametrize("padding", ["zeros", "circular", "none"])
def test_blur_pool_backbone_has_the_same_output_size(padding):
    for blur in (None, 3, 4):
        out = build_backbone(1, width=4, blocks=(1, 1, 1), padding=padding, blur_size=blur)(
            torch.rand(1, 1, 72, 72))
        assert out.shape[-1] == feature_size(72, (1, 1, 1), padding)


def test_blur_pool_off_leaves_the_backbone_unchanged():
    plain = build_backbone(1, width=4, blocks=(1, 1, 1))
    assert not any(isinstance(m, BlurPool) for m in plain.modules())
    assert sum(isinstance(m, BlurPool) for m in
               build_backbone(1, width=4, blocks=(1, 1, 1), blur_size=3).modules()) == 5


class IgnoresInput(torch.nn.Module):
    def forward(self, x):
        return torch.tensor([0.1, 0.9, 0.0]).expand(len(x), 3)


def test_consistency_is_one_for_a_model_that_ignores_its_input():
    assert consistency(IgnoresInput(), _task(), n_pairs=3) == 1.0
    shifts, accuracies = accuracy_vs_shift(IgnoresInput(), _task())
    assert shifts == [0, 1, 2, 3] and all(a == pytest.approx(4 / 12) for a in accuracies)


def test_latent_distance_is_zero_for_a_shift_invariant_latent():
    # A 1x1 convolution then GAP is exactly invariant to any circular shift.
    class SumNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Conv2d(1, 2, 1)
            self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                            torch.nn.Linear(2, 3))
    assert latent_distance(SumNet(), _task(protocol="roll"),
                           n_pairs=2) == pytest.approx(0, abs=1e-4)


def test_position_regions_cover_the_shift_range():
    d = torch.arange(-4, 5)
    regions = position_bins(d, torch.zeros_like(d), max_shift=4, bins=3)
    assert regions.tolist() == [1, 1, 1, 4, 4, 4, 7, 7, 7]


@pytest.mark.parametrize("name,value,message", [
    ("augshift_lambda", -0.5, r"augshift_lambda must be a finite number > 0, got -0.5"),
    ("lambdas", (0.1, -1), r"lambdas\[1\] must be a finite number >= 0, got -1"),
    ("max_shift", 9, r"max_shift must be an integer in \[0, 8\] \(margin \+ image_size // 2 "
                     r"with margin=4, image_size=8: at most half the image may leave the "
                     r"view\), got 9"),
    ("blur_size", 9, r"blur_size must be one of \(1, 2, 3, 4, 5, 6, 7\), got 9"),
    ("shift_protocol", "wrap", r"shift_protocol must be one of \('crop', 'roll'\), got 'wrap'"),
])
def test_bad_parameters_are_refused_before_any_training(name, value, message):
    with pytest.raises(ValueError, match=message):
        posinfo.chapter_settings("augshift", "default", **{name: value})


def test_library_level_checks_name_the_parameter():
    with pytest.raises(ValueError,
                       match=r"augshift_lambda must be a finite number >= 0 .*got -1"):
        AugShiftLoss(-1)
    with pytest.raises(ValueError,
                       match=r"blur_size must be None \(off\) or a filter size in .*got 8"):
        build_backbone(1, blur_size=8)
    # 6 px images with a 3 px margin: at most 3 + 6 // 2 = 6
    with pytest.raises(ValueError, match=r"max_shift must be an integer in \[0, 6\]"):
        _task(margin=3).__class__(_task().train, _task().test, margin=3, max_shift=7)


class _GapLogits(torch.nn.Module):
    """backbone = identity, head = GAP: the logits are the GAP latent itself."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Identity()
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def test_augshift_loss_is_ce_plus_lambda_times_the_latent_mse_by_hand():
    # Two images, two channels, 1x2 maps. GAP latents: view 1 (2, 0), (0, 2); view 2 (1, 0),
    # (1, 3). Differences (1, 0), (-1, -1): MSE over images and channels = (1 + 0 + 1 + 1) / 4.
    view1 = torch.tensor([[[[1., 3.]], [[0., 0.]]], [[[0., 0.]], [[2., 2.]]]])
    view2 = torch.tensor([[[[1., 1.]], [[1., -1.]]], [[[0., 2.]], [[4., 2.]]]])
    y = torch.tensor([0, 1])
    e = torch.tensor(1.0).exp()
    # CE of logits (a, b) for the true class a: log(1 + e^(b - a)).
    ce1 = (torch.log(1 + e ** -2) + torch.log(1 + e ** -2)) / 2  # (2, 0) y=0; (0, 2) y=1
    ce2 = (torch.log(1 + e ** -1) + torch.log(1 + e ** -2)) / 2  # (1, 0) y=0; (1, 3) y=1
    got1, got2, mse = augshift_terms(_GapLogits(), view1, view2, y)
    assert torch.isclose(got1, ce1) and torch.isclose(got2, ce2)
    assert mse.item() == pytest.approx(0.75)
    for augshift_lambda in (0.5, 2.5, 10.0):
        loss = AugShiftLoss(augshift_lambda)(_GapLogits(), torch.cat([view1, view2]), y)
        assert loss.item() == pytest.approx(float(ce1 + ce2) + augshift_lambda * 0.75,
                                            rel=1e-6)


class _Offsets(torch.nn.Module):
    """Feature maps x * (row - centre) and x * (column - centre): on a blank canvas holding an
    all-ones image of side s, their GAP is s^2 / side^2 times the image's offset (dy, dx)."""

    def forward(self, x):
        h, w = x.shape[-2:]
        rows = torch.arange(h, dtype=x.dtype) - (h - 1) / 2
        cols = torch.arange(w, dtype=x.dtype) - (w - 1) / 2
        return torch.cat([x * rows[:, None], x * cols[None, :]], 1)


class _SideOfCentre(torch.nn.Module):
    """Logits from the GAP of _Offsets: class 0 left of centre, 1 centred, 2 right."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale  # s^2 / side^2, so that dx = GAP / scale exactly

    def forward(self, features):
        dx = features.mean(dim=(-2, -1))[:, 1] / self.scale
        return torch.stack([-dx, torch.full_like(dx, 0.5), dx], 1)


def _position_model(task, side=6):
    model = torch.nn.Module()
    model.backbone, model.head = _Offsets(), _SideOfCentre(side ** 2 / task.canvas_size ** 2)
    return model


def _blank_task(n=40, side=6, margin=3):
    images = ImageSet(torch.ones(n, 1, side, side), torch.arange(n) % 3, 3)
    return ShiftTask(images, images, margin=margin, max_shift=margin, protocol="crop",
                     background="zeros")


@pytest.mark.parametrize("n_pairs", [1, 3])
def test_consistency_of_a_model_that_reads_the_side_equals_the_offsets_agreement(n_pairs):
    from posinfo.invariance import EVAL_SEED, _pairs
    task = _blank_task()
    _, _, (dy1, dx1, dy2, dx2) = _pairs(task, task.test.images, n_pairs, EVAL_SEED)
    # The prediction is the sign of the horizontal offset: two views agree when their
    # offsets have the same sign (probability 19/49 for offsets uniform on -3..3).
    expected = float((dx1.sign() == dx2.sign()).float().mean())
    got = consistency(_position_model(task), task, n_pairs=n_pairs)
    assert got == pytest.approx(expected, abs=1e-9)
    assert 0.15 < got < 0.65  # neither 0 nor 1: the test can tell a wrong pairing apart


def test_latent_distance_of_a_position_latent_is_the_offset_distance_ratio():
    from posinfo.invariance import EVAL_SEED, _pairs
    task = _blank_task()
    _, _, (dy1, dx1, dy2, dx2) = _pairs(task, task.test.images, 2, EVAL_SEED)
    # The latent is (dy, dx) times a constant that cancels: numerator, the distance between the
    # two offsets of each image; denominator, between an image's first offset and the next
    # image's second one (the metric's "different image").
    p1, p2 = torch.stack([dy1, dx1], 1).float(), torch.stack([dy2, dx2], 1).float()
    other = torch.roll(torch.arange(len(p2)), 1)
    expected = float((p1 - p2).norm(dim=1).mean() / (p1 - p2[other]).norm(dim=1).mean())
    got = latent_distance(_position_model(task), task, n_pairs=2)
    assert got == pytest.approx(expected, rel=1e-5)
    assert 0.5 < got < 1.5  # an identity-free latent: a shift moves it as far as another image


def test_per_seed_lines_arms_up_by_seed_for_pairing():
    from posinfo.augshift import per_seed

    # stored out of order: pairing must follow the seed, not the list position
    results = [_result("baseline", 101, 0.8), _result("AugShift", 100, 0.95),
               _result("baseline", 100, 0.9), _result("AugShift", 101, 0.82)]
    assert per_seed(results, "baseline", "consistency") == {100: 0.9, 101: 0.8}
    assert per_seed(results, "AugShift", "consistency") == {100: 0.95, 101: 0.82}
    with pytest.raises(ValueError, match="arm must be one of"):
        per_seed(results, "BlurPool", "consistency")
    gain = paired_difference(per_seed(results, "AugShift", "consistency"),
                             per_seed(results, "baseline", "consistency"))
    assert gain.value == pytest.approx((0.05 + 0.02) / 2)
    # an ablation arm run at fewer seeds cannot be paired with the baseline by position
    short = results + [_result("BlurPool", 101, 0.9)]
    with pytest.raises(ValueError, match=r"share their seeds.*\[101\].*\[100, 101\]"):
        paired_difference(per_seed(short, "BlurPool", "consistency"),
                          per_seed(short, "baseline", "consistency"))


def test_inconsistency_removed_is_the_share_of_the_baselines_room():
    from posinfo.augshift import inconsistency_removed
    assert inconsistency_removed(0.05, 0.9) == pytest.approx(0.5)
    assert inconsistency_removed(-0.02, 0.8) == pytest.approx(-0.1)
    assert math.isnan(inconsistency_removed(0.0, 1.0))  # no room: undefined, not infinite


def test_recalibrated_batchnorm_statistics_are_the_average_over_one_pass():
    """A lone BatchNorm: after recalibration its running mean is the mean over every
    training view of the pass, weighted equally (not the momentum-0.1 running average),
    and the momentum and eval mode are restored."""
    from posinfo.train import recalibrate_batchnorm
    task = _task(n=12)
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(1))
    model[0].running_mean.fill_(5.0)
    recalibrate_batchnorm(model, task, batch_size=4, seed=0, device="cpu")
    views = torch.cat([x for x, _, _ in task.train_batches(4, torch.Generator().manual_seed(0))])
    batches = [x.mean() for x, _, _ in task.train_batches(4, torch.Generator().manual_seed(0))]
    # equal batches (8 views each): the average of batch means is the mean of all views
    assert model[0].running_mean.item() == pytest.approx(views.mean().item(), rel=1e-5)
    assert model[0].running_mean.item() == pytest.approx(torch.stack(batches).mean().item(),
                                                        rel=1e-5)
    assert model[0].momentum == 0.1 and not model.training


def test_recalibration_forgets_the_statistics_a_batchnorm_had_before():
    """A BatchNorm that has tracked 1000 batches of another population (mean 5, variance 9):
    recalibration starts afresh, so its statistics are the pass's alone, the mean of the batch
    means and of the batch (unbiased) variances; kept, the old ones would dominate."""
    from posinfo.train import recalibrate_batchnorm
    task = _task(n=12)
    norm = torch.nn.BatchNorm2d(1)
    norm.running_mean.fill_(5.0)
    norm.running_var.fill_(9.0)
    norm.num_batches_tracked.fill_(1000)
    recalibrate_batchnorm(torch.nn.Sequential(norm), task, batch_size=4, seed=0, device="cpu")
    batches = [x for x, _, _ in task.train_batches(4, torch.Generator().manual_seed(0))]
    assert norm.running_mean.item() == pytest.approx(
        torch.stack([x.mean() for x in batches]).mean().item(), rel=1e-5)
    assert norm.running_var.item() == pytest.approx(
        torch.stack([x.var() for x in batches]).mean().item(), rel=1e-5)


class _GapThenLinear(torch.nn.Module):
    """backbone = identity, head = GAP then a linear map: logits differ from the latent."""

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Identity()
        linear = torch.nn.Linear(2, 2)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 3.0]]))
            linear.bias.copy_(torch.tensor([0.5, -1.0]))
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                        linear)


def test_the_penalty_compares_gap_latents_not_logits():
    """The views of the hand test above through a head whose logits are a linear map of
    the latent: the penalty is still the latents' MSE, 0.75. On the logits it would be the
    MSE of the differences mapped by the head, (1, 0) -> (1, 0) and (-1, -1) -> (-3, -3):
    (1 + 0 + 9 + 9) / 4 = 4.75."""
    view1 = torch.tensor([[[[1., 3.]], [[0., 0.]]], [[[0., 0.]], [[2., 2.]]]])
    view2 = torch.tensor([[[[1., 1.]], [[1., -1.]]], [[[0., 2.]], [[4., 2.]]]])
    *_, mse = augshift_terms(_GapThenLinear(), view1, view2, torch.tensor([0, 1]))
    assert mse.item() == pytest.approx(0.75)


def test_a_shift_beyond_the_margin_cuts_the_image_at_the_edge():
    """margin 1, shift 3: the image's last two columns leave a crop view; roll wraps them."""
    task = ShiftTask(*(2 * [ImageSet(torch.ones(1, 1, 4, 4), torch.zeros(1, dtype=torch.long),
                                     1)]), margin=1, max_shift=3)
    canvas = task.canvases(task.train.images, torch.Generator().manual_seed(0))
    three, zero = torch.tensor([3]), torch.tensor([0])
    crop = shift_views(canvas, zero, three, "crop")
    assert crop.sum() == 4 * 2  # 2 of the 4 image columns stay in view
    assert crop[0, 0, 1:5, 4:6].eq(1).all()
    assert shift_views(canvas, zero, three, "roll").sum() == 16  # nothing is lost when wrapping


def test_variant_runs_train_the_named_arms_with_the_changed_settings(monkeypatch):
    """The exercises' variants: the settings change reaches every trained config, the
    verdict's arms are the default, and a bad change is refused before any training."""
    from posinfo import augshift
    seen = []

    def fake_measure(name, config, n_pairs, budgets=()):
        seen.append((name, config["padding"], config["augshift_lambda"],
                     config["blur_size"], config["seed"]))
        return name

    monkeypatch.setattr(augshift, "measure", fake_measure)
    s = posinfo.chapter_settings("augshift", "smoke")
    out = augshift.variant_runs(s, [7, 8], padding="circular")
    assert out == {"baseline": ["baseline"] * 2, "AugShift λ=1": ["AugShift λ=1"] * 2}
    assert seen == [("baseline", "circular", 0.0, None, 7), ("baseline", "circular", 0.0, None, 8),
                    ("AugShift λ=1", "circular", 1.0, None, 7),
                    ("AugShift λ=1", "circular", 1.0, None, 8)]
    seen.clear()
    augshift.variant_runs(s, [7], ["BlurPool"], blur_size=5)
    assert seen == [("BlurPool", "zeros", 0.0, 5, 7)]
    with pytest.raises(ValueError, match="padding must be one of"):
        augshift.variant_runs(s, [7], padding="bogus")
    assert seen == [("BlurPool", "zeros", 0.0, 5, 7)]  # nothing trained for the bad one


# ---- third edition: whole-digit views, cut pairs, the per-seed statistic ----------------------
class _SeesACut(torch.nn.Module):
    """Predicts 1 when part of the (all-ones) image left the view, else 0: it answers
    alike for two views exactly when both are whole or both are cut."""

    def __init__(self, pixels):
        super().__init__()
        self.pixels = pixels

    def forward(self, x):
        cut = (x.sum(dim=(1, 2, 3)) < self.pixels - 0.5).float()
        return torch.stack([1 - cut, cut], 1)


def test_every_metric_view_holds_the_whole_digit_even_when_training_views_cut():
    from posinfo.invariance import EVAL_SEED, _pairs, whole_digit_reach
    images = ImageSet(torch.ones(30, 1, 6, 6), torch.zeros(30, dtype=torch.long), 2)
    task = ShiftTask(images, images, margin=2, max_shift=5)  # training views may cut 3 px
    assert whole_digit_reach(task) == 2
    view1, view2, offsets = _pairs(task, task.test.images, 3, EVAL_SEED)
    assert torch.stack(offsets).abs().max() <= 2
    assert (view1.sum(dim=(1, 2, 3)) == 36).all() and (view2.sum(dim=(1, 2, 3)) == 36).all()
    assert consistency(_SeesACut(36), task, n_pairs=3) == 1.0  # no whole-digit pair differs


def test_cut_consistency_counts_only_pairs_where_a_view_cuts():
    from posinfo.invariance import EVAL_SEED, _pairs, cut_consistency, cut_reach
    images = ImageSet(torch.ones(40, 1, 8, 8), torch.zeros(40, dtype=torch.long), 2)
    task = ShiftTask(images, images, margin=2, max_shift=2)
    assert cut_reach(task) == 4  # a quarter of the 8 px image beyond the margin
    _, _, offsets = _pairs(task, task.test.images, 2, EVAL_SEED, cut_reach(task))
    cut1 = torch.stack(offsets[:2]).abs().amax(0) > 2
    cut2 = torch.stack(offsets[2:]).abs().amax(0) > 2
    kept = cut1 | cut2
    # the model agrees on a kept pair only when both views cut
    expected = float((cut1 & cut2)[kept].float().mean())
    got = cut_consistency(_SeesACut(64), task, n_pairs=2)
    assert got == pytest.approx(expected) and 0.2 < got < 0.9


def test_shifted_accuracy_is_over_both_views_of_every_pair():
    from posinfo.invariance import consistency_and_accuracy
    images = ImageSet(torch.ones(10, 1, 4, 4), torch.tensor([0, 1] * 5), 2)
    task = ShiftTask(images, images, margin=2, max_shift=2)
    always_zero = _SeesACut(10 ** 6)  # every view "cut": always class 1
    agree, accuracy = consistency_and_accuracy(always_zero, task, n_pairs=2)
    assert agree == 1.0 and accuracy == pytest.approx(0.5)


def test_the_penalty_is_the_mse_of_the_two_views_gap_latents_by_hand():
    from posinfo.augshift import augshift_penalty
    f1 = torch.zeros(2, 2, 2, 2)
    f2 = torch.zeros(2, 2, 2, 2)
    f2[0, 0] = torch.tensor([[4.0, 0.0], [0.0, 0.0]])  # channel mean 1, elsewhere 0
    f2[1, 1, 1, 1] = -8.0  # channel mean -2
    # latents differ by 1 and -2 in two of four (image, channel) entries: (1 + 4) / 4
    assert augshift_penalty(f1, f2).item() == pytest.approx(1.25)
    # where in the map a feature fires is not seen: moving it changes nothing
    assert augshift_penalty(f2, torch.roll(f2, 1, dims=-1)).item() == 0.0


def _result(arm, seed, consistency, by_budget=None, epochs=4):
    """A RunResult of a baseline-like arm (λ 0, no BlurPool) whose consistency is given."""
    from posinfo.augshift import RunResult
    return RunResult(arm, 0.0, None, seed, clean_accuracy=0.5, consistency=consistency,
                     shifted_accuracy=0.5, cut_consistency=0.7, latent_distance=0.1,
                     position_probe=0.2, shift_curve=[0.5], from_cache=False,
                     by_budget=by_budget or {}, epochs=epochs)


def test_consistency_gain_is_augshift_minus_baseline_seed_by_seed():
    from posinfo.augshift import consistency_gain, verdict_arms
    s = posinfo.chapter_settings("augshift", "smoke")
    base, aug = verdict_arms(s)
    results = [_result(aug, 301, 0.95, {1: 0.6}), _result(base, 300, 0.90, {1: 0.5}),
               _result(base, 301, 0.80, {1: 0.7}), _result(aug, 300, 0.91, {1: 0.4})]
    assert consistency_gain(results, s) == pytest.approx({300: 0.01, 301: 0.15})
    assert consistency_gain(results, s, budget=1) == pytest.approx({300: -0.1, 301: -0.1})
    with pytest.raises(ValueError, match="share their seeds"):
        consistency_gain(results + [_result(aug, 302, 0.9)], s)


def test_table_2_compares_arms_at_the_seeds_they_share():
    from posinfo.augshift import at_shared_seeds, summarise
    results = [_result("baseline", seed, 0.9 + 0.01 * seed) for seed in range(5)]
    results += [_result("BlurPool", seed, 0.8) for seed in (0, 1)]
    shared = at_shared_seeds(results)
    assert {r.seed for r in shared} == {0, 1} and len(shared) == 4
    assert summarise(shared)["baseline"]["consistency"][0] == pytest.approx(0.905)


def test_consistency_gain_reads_the_verdicts_budget_only():
    # gpu: run_experiment also measures the verdict's arms at the sweep's shorter budget
    from posinfo.augshift import consistency_gain, verdict_arms
    s = posinfo.chapter_settings("augshift", "smoke")
    base, aug = verdict_arms(s)
    short = [_result(base, 300, 0.1, epochs=1), _result(aug, 300, 0.9, epochs=1)]
    results = [_result(base, 300, 0.90), _result(aug, 300, 0.92)] + short
    assert consistency_gain(results, s) == pytest.approx({300: 0.02})


def test_every_glue_key_of_chapter_3_is_written_out_and_quoted(monkeypatch):
    """The library's glue dicts for chapter 3 name each key in full (a grep for a key in the
    prose finds it) and hold exactly the ch3_ keys the prose quotes that the chapter does
    not glue itself: none missing, none glued for nothing."""
    import re
    from types import SimpleNamespace

    from posinfo import augshift
    from posinfo.interval import t_interval

    def fake_measure(name, config, n_pairs, budgets=()):
        score = 0.5 + 0.1 * config["augshift_lambda"] + 0.01 * config["seed"] % 0.05
        return augshift.RunResult(name, config["augshift_lambda"], config["blur_size"],
                                  config["seed"], 0.9, score, 0.8, 0.7, 0.1, 0.5, [0.9],
                                  False, {}, config["epochs"])

    monkeypatch.setattr(augshift, "measure", fake_measure)
    monkeypatch.setattr(augshift, "running_bn_accuracy",
                        lambda settings, seeds: {s: 0.85 for s in seeds})
    s = posinfo.chapter_settings("augshift", "smoke", n_seeds=3)
    results = augshift.run_experiment(s, progress=None)
    estimate = t_interval([0.02, 0.03, 0.04], 0.95)
    verdict = SimpleNamespace(estimate=estimate)
    base, aug = augshift.verdict_arms(s)
    two_arms = augshift.summarise(augshift.at_budget(results, s.epochs))
    summary = augshift.summarise(augshift.at_budget(augshift.at_shared_seeds(results),
                                                    s.ablation_epochs))
    glued = {**augshift.reading_values(s, summary, two_arms, verdict,
                                       {m: estimate for m in augshift.METRICS}),
             **augshift.exercise_answers(s, results, {"candidates": [{"consistency": [0.5]}]})}
    glued.pop("ch3_ex_table3")  # a table, printed, not glued
    source = (Path(posinfo.__file__).parents[2] / "book" / "03_augshift.py").read_text()
    quoted = set(re.findall(r"\{glue:text\}`(ch3_\w+)`", source))
    in_chapter = set(re.findall(r"\b(ch3_\w+)=", source))
    assert set(glued) == quoted - in_chapter
    library = (Path(augshift.__file__)).read_text()
    assert all(f'"{key}"' in library or f"{key}=" in library for key in glued)
