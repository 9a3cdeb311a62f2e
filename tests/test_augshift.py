"""AugShift: shift views, the loss, BlurPool, the invariance metrics, and bad input."""
import pytest
import torch

import posinfo
from posinfo.augshift import (AugShiftLoss, ShiftTask, accuracy_vs_shift, augshift_terms,
                              centred_canvases, consistency, latent_distance, position_bins,
                              shift_views)
from posinfo.canvas import ImageSet
from posinfo.models import BlurPool, build_backbone, build_classifier, feature_size


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
        assert torch.equal(rolled[i], torch.roll(canvas[i], (int(dy[i]), int(dx[i])), dims=(-2, -1)))
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


def test_blurpool_preserves_a_constant_image_and_halves_resolution():
    for size in (3, 5):
        for side in (8, 9):
            out = BlurPool(size)(torch.full((2, 3, side, side), 0.7))
            assert out.shape == (2, 3, (side + 1) // 2, (side + 1) // 2)
            assert torch.allclose(out, torch.full_like(out, 0.7))


@pytest.mark.parametrize("padding", ["zeros", "circular", "none"])
def test_blurpool_backbone_has_the_same_output_size(padding):
    for blur in (None, 3, 4):
        out = build_backbone(1, width=4, blocks=(1, 1, 1), padding=padding, blurpool=blur)(
            torch.rand(1, 1, 72, 72))
        assert out.shape[-1] == feature_size(72, (1, 1, 1), padding)


def test_blurpool_off_leaves_the_backbone_unchanged():
    plain = build_backbone(1, width=4, blocks=(1, 1, 1))
    assert not any(isinstance(m, BlurPool) for m in plain.modules())
    assert sum(isinstance(m, BlurPool) for m in
               build_backbone(1, width=4, blocks=(1, 1, 1), blurpool=3).modules()) == 5


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
    assert latent_distance(SumNet(), _task(protocol="roll"), n_pairs=2) == pytest.approx(0, abs=1e-4)


def test_position_regions_cover_the_shift_range():
    d = torch.arange(-4, 5)
    regions = position_bins(d, torch.zeros_like(d), max_shift=4, bins=3)
    assert regions.tolist() == [1, 1, 1, 4, 4, 4, 7, 7, 7]


@pytest.mark.parametrize("name,value,message", [
    ("augshift_lambda", -0.5, r"augshift_lambda must be a number >= 0, got -0.5"),
    ("lambdas", (0.1, -1), r"lambdas\[1\] must be a number >= 0, got -1"),
    ("max_shift", 7, r"max_shift must be an integer in \[0, 6\] \(the canvas margin, margin=6\), got 7"),
    ("blur_size", 9, r"blur_size must be one of \(1, 2, 3, 4, 5, 6, 7\), got 9"),
    ("shift_protocol", "wrap", r"shift_protocol must be one of \('crop', 'roll'\), got 'wrap'"),
])
def test_bad_parameters_are_refused_before_any_training(name, value, message):
    with pytest.raises(ValueError, match=message):
        posinfo.chapter_settings("augshift", "default", **{name: value})


def test_library_level_checks_name_the_parameter():
    with pytest.raises(ValueError, match=r"lam must be a number >= 0 .*got -1"):
        AugShiftLoss(-1)
    with pytest.raises(ValueError, match=r"blurpool must be None \(off\) or a filter size in .*got 8"):
        build_backbone(1, blurpool=8)
    with pytest.raises(ValueError, match=r"max_shift must be an integer in \[0, 3\]"):
        _task(margin=3).__class__(_task().train, _task().test, margin=3, max_shift=4)
