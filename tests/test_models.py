import pytest
import torch

from posinfo.canvas import place_on_canvas
from posinfo.checks import PADDINGS, check_input_size
from posinfo.geometry import feature_size
from posinfo.models import build_backbone, build_classifier


@pytest.mark.parametrize("padding", PADDINGS)
def test_feature_size_arithmetic_matches_the_real_network(padding):
    backbone = build_backbone(1, width=4, blocks=(1, 2, 1), padding=padding).eval()
    out = backbone(torch.zeros(1, 1, 72, 72))
    assert out.shape[-1] == feature_size(72, (1, 2, 1), padding)
    assert out.shape[1] == backbone.out_channels == 16


@pytest.mark.parametrize("head", ["gapnet", "gap_linear"])
def test_classifier_outputs_one_logit_per_class_and_a_gap_latent(head):
    model = build_classifier(3, 9, width=4, blocks=(1, 1), head=head).eval()
    x = torch.rand(2, 3, 48, 48)
    assert model(x).shape == (2, 9)
    assert model.latent(x).shape == (2, 8)


def test_unknown_padding_and_head_are_clear_errors():
    with pytest.raises(ValueError, match=r"padding must be one of .*'zeros'.*got 'mirror'"):
        build_backbone(1, padding="mirror")
    with pytest.raises(ValueError, match="head must be one of"):
        build_classifier(1, 4, head="mlp")


def test_valid_convolution_on_a_small_canvas_is_refused_before_training():
    with pytest.raises(ValueError, match="padding='none' shrinks a 48px canvas"):
        check_input_size(48, (1, 1, 1), "none")
    check_input_size(72, (1, 1, 1), "none")  # fits: 3x3


def test_circular_padding_makes_gap_blind_to_shifts_by_the_total_stride():
    # Why circular padding gives chance in chapter 1: moving an image by a whole cell
    # (a multiple of the stride 2 * 2 * 2 = 8) leaves the pooled features unchanged.
    torch.manual_seed(0)
    model = build_classifier(1, 9, width=4, blocks=(1, 1, 1), padding="circular").eval()
    digit = torch.rand(2, 1, 16, 16)
    z = [model.latent(place_on_canvas(digit, torch.tensor([c, c]), 3)) for c in (0, 4, 8)]
    assert torch.allclose(z[0], z[1], atol=1e-5) and torch.allclose(z[0], z[2], atol=1e-5)
    zero = build_classifier(1, 9, width=4, blocks=(1, 1, 1), padding="zeros").eval()
    za, zb = (zero.latent(place_on_canvas(digit, torch.tensor([c, c]), 3)) for c in (0, 4))
    assert not torch.allclose(za, zb, atol=1e-3)  # zero padding: the border shows


@pytest.mark.parametrize("blur", [3, 4])
def test_circular_padding_with_blur_pool_keeps_gap_exactly_blind_to_cell_shifts(blur):
    # Issue 13 item 7: BlurPool used to reflect-pad whatever the network's padding, which put
    # a border back into a circular network (latents differed by ~3e-3). Padding the blur
    # circularly too makes a whole-cell shift (a multiple of the total stride 8) exact again.
    torch.manual_seed(0)
    model = build_classifier(1, 9, width=4, blocks=(1, 1, 1), padding="circular",
                             blur_size=blur).eval()
    digit = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        z = [model.latent(place_on_canvas(digit, torch.tensor([c, c]), 3)) for c in (0, 4, 8)]
    assert (z[0] - z[1]).abs().max() < 1e-6 and (z[0] - z[2]).abs().max() < 1e-6
    assert z[0].abs().max() > 1e-3  # the latent is not trivially zero


# Binomial filters written out by hand (rows of Pascal's triangle, outer product, sum 1), and
# antialiased-cnns' padding: (k - 1) // 2 rows before, k // 2 after.
BINOMIAL = {3: ([1, 2, 1], (1, 1)), 4: ([1, 3, 3, 1], (1, 2))}


@pytest.mark.parametrize("size", sorted(BINOMIAL))
@pytest.mark.parametrize("padding", PADDINGS)
def test_blur_pool_pads_its_border_as_the_network_does(padding, size):
    from posinfo.models import BLUR_PADDING, BlurPool
    torch.manual_seed(0)
    x = torch.rand(1, 2, 8, 8)
    row, (before, after) = BINOMIAL[size]
    taps = torch.tensor(row, dtype=torch.float32)
    kernel = (torch.outer(taps, taps) / taps.sum() ** 2).repeat(2, 1, 1, 1)
    mode = {"zeros": "constant", "none": "reflect"}.get(padding, padding)
    padded = torch.nn.functional.pad(x, (before, after, before, after), mode=mode)
    expected = torch.nn.functional.conv2d(padded, kernel, stride=2,
                                          groups=2)
    assert BLUR_PADDING[padding] == mode
    assert torch.allclose(BlurPool(size, 2, padding)(x), expected, atol=1e-6)


def test_blur_pool_of_a_constant_map_hand_worked():
    from posinfo.models import BlurPool
    # zeros padding, 3x3 binomial: the top-left output sees the kernel's lower-right 2x2
    # (weights 4, 2, 2, 1 of 16) inside the map, so 0.7 * 9 / 16; the interior stays 0.7
    out = BlurPool(3, 2, "zeros")(torch.full((1, 1, 8, 8), 0.7))
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 0, 0].item() == pytest.approx(0.7 * 9 / 16, abs=1e-6)
    assert out[0, 0, 0, 1].item() == pytest.approx(0.7 * 12 / 16, abs=1e-6)  # top row: 3/4
    assert out[0, 0, 1, 1].item() == pytest.approx(0.7, abs=1e-6)


def test_blur_pool_border_behaviour_per_padding_mode():
    constant = torch.full((1, 1, 8, 8), 0.7)
    # zeros: the blur darkens a constant map at its border, as the zero-padded convolutions do
    from posinfo.models import BlurPool
    zeros = BlurPool(3, 2, "zeros")(constant)
    assert zeros[0, 0, 0, 0] < 0.7 - 0.1 and torch.isclose(zeros[0, 0, 2, 2], torch.tensor(0.7))
    for padding in ("reflect", "replicate", "circular", "none"):  # no border value added
        assert torch.allclose(BlurPool(3, 2, padding)(constant), torch.full((1, 1, 4, 4), 0.7))
    # circular: rolling the input by the stride rolls the output by one, exactly
    x = torch.rand(1, 1, 8, 8)
    blur = BlurPool(3, 2, "circular")
    assert torch.allclose(blur(torch.roll(x, 2, dims=-1)), torch.roll(blur(x), 1, dims=-1),
                          atol=1e-6)
    with pytest.raises(ValueError, match=r"padding must be one of .*got 'mirror'"):
        BlurPool(3, 2, "mirror")


def _blur_inputs_seen(size, blocks, padding, blur=3):
    from posinfo.models import BlurPool
    seen = []
    backbone = build_backbone(1, width=4, blocks=blocks, padding=padding, blur_size=blur)
    for module in backbone.modules():
        if isinstance(module, BlurPool):
            module.register_forward_pre_hook(lambda _m, inp: seen.append(inp[0].shape[-1]))
    out = backbone.eval()(torch.zeros(1, 1, size, size))
    return seen, out


@pytest.mark.parametrize("padding", ["zeros", "circular", "none"])
@pytest.mark.parametrize("blocks", [(1, 1, 1), (2, 1, 1)])
def test_blur_and_channel_arithmetic_matches_the_real_network(padding, blocks):
    from posinfo.geometry import backbone_channels, blur_input_sizes
    for size in (72, 75):
        seen, out = _blur_inputs_seen(size, blocks, padding)
        assert seen == blur_input_sizes(size, blocks, padding)
        assert out.shape[1] == backbone_channels(4, blocks)


def test_a_blur_wider_than_the_smallest_map_is_refused_with_the_allowed_range():
    from posinfo.checks import check_blur_size
    # 8px canvas, blocks (1, 1, 1): BlurPool sees 8, 4, 4 and 2 px maps; k // 2 < 2 allows k <= 3.
    for padding in ("zeros", "circular", "reflect"):
        with pytest.raises(ValueError, match=r"blur_size must be in \[1, 3\] for a canvas of 8px "
                                             r".*"
                                             r"smallest map BlurPool filters is 2x2.*got 7"):
            check_blur_size(7, 8, (1, 1, 1), padding)
        check_blur_size(3, 8, (1, 1, 1), padding)
    for padding in ("zeros", "circular"):  # the largest allowed size runs
        _blur_inputs_seen(8, (1, 1, 1), padding, blur=3)


def test_reflect_padding_on_a_one_pixel_map_is_refused_before_training():
    # torch cannot reflect-pad a 1x1 map: an 8px canvas with three stages ends at 1x1.
    with pytest.raises(ValueError, match=r"padding='reflect' shrinks a 8px canvas to a 1x1 map"
                                         r".*at least 2x2"):
        check_input_size(8, (1, 1, 1), "reflect")
    check_input_size(16, (1, 1, 1), "reflect")
    build_classifier(1, 3, width=4, blocks=(1, 1, 1), padding="reflect").eval()(
        torch.zeros(1, 1, 16, 16))  # 2x2 runs
