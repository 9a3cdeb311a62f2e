import pytest
import torch

from posinfo.canvas import place_on_canvas
from posinfo.models import (PADDINGS, build_backbone, build_classifier, check_input_size,
                            feature_size)


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
