"""Known answers for the computations behind chapters 1, 2 and 4's worked exercise answers."""
import math

import numpy as np
import pytest
import torch

from posinfo.attack import flip_summary, lookalike_pairs, lookalike_share, mirror_some
from posinfo.canvas import CanvasTask
from posinfo.datasets import ImageSet
from posinfo.invariance import cell_spread
from posinfo.models import build_classifier
from posinfo.probes import accuracy_with_channels, gap_latents, probe_table, with_padding
from posinfo.scenes import CLASSES
from posinfo.segment import build_segmenter
from posinfo.train import evaluate
from posinfo.interval import half_width, t_interval


def _digits(n=6, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.rand(n, 1, size, size, generator=g), torch.arange(n) % 3, 3)


def test_circular_padding_sees_the_same_in_every_cell_only_at_multiples_of_the_stride():
    torch.manual_seed(0)
    images = _digits().images
    circular = build_classifier(1, 9, width=4, blocks=(1, 1, 1), padding="circular")
    zeros = build_classifier(1, 9, width=4, blocks=(1, 1, 1), padding="zeros")
    # total stride 8: 8px and 16px cells are whole strides, 12px cells are not
    assert cell_spread(circular, images, 3, 8) < 1e-5
    assert cell_spread(circular, images, 3, 16) < 1e-5
    assert cell_spread(circular, images, 3, 12) > 1e-3
    assert cell_spread(zeros, images, 3, 8) > 1e-3


def test_keeping_every_channel_is_the_plain_accuracy_and_keeping_none_is_chance():
    torch.manual_seed(0)
    task = CanvasTask(_digits(12), _digits(6, seed=1), grid=3)
    model = build_classifier(1, 9, width=4, blocks=(1, 1, 1))
    channels = model.backbone.out_channels
    assert accuracy_with_channels(model, task, range(channels)) == evaluate(model, task).accuracy
    # nothing kept: the same logits for every canvas, one cell named, right 1 time in 9
    assert accuracy_with_channels(model, task, []) == pytest.approx(1 / 9)
    with pytest.raises(ValueError, match="keep must lie in"):
        accuracy_with_channels(model, task, [channels])
    # the hook is gone afterwards
    assert evaluate(model, task).accuracy == accuracy_with_channels(model, task, range(channels))


def test_a_circular_copy_gives_latents_no_probe_can_read_the_cell_from():
    torch.manual_seed(0)
    task = CanvasTask(_digits(12, size=16), _digits(12, size=16, seed=1), grid=3,
                      target="class")
    model = build_classifier(1, 3, width=4, blocks=(1, 1, 1, 1), head="gap_linear")
    copy = with_padding(model, "circular")
    assert all(m.padding_mode == "zeros" for m in model.modules()
               if isinstance(m, torch.nn.Conv2d))  # the original is untouched
    z = gap_latents(copy, task).reshape(12, 9, -1)
    assert np.allclose(z, z[:, :1], atol=1e-5)  # a 16px cell is a whole stride of 16
    table = probe_table(z.reshape(12 * 9, -1), task.test_labels())
    assert table[("ordered", "cell")] == pytest.approx(1 / 9)
    with pytest.raises(ValueError, match="padding must be one of"):
        with_padding(model, "none")


def test_half_width_is_the_t_intervals_and_shrinks_with_seeds():
    values = [0.1, 0.4, 0.3, 0.2]
    est = t_interval(values)
    assert half_width(est.sd, est.n, est.level) == pytest.approx(est.high - est.value)
    assert half_width(est.sd, 6) < half_width(est.sd, 4)
    assert half_width(0.0, 6) == 0.0 and half_width(0.2, 1) == math.inf
    with pytest.raises(ValueError, match="n must be"):
        half_width(0.2, 0)


def test_mirroring_half_the_images_keeps_mean_abs_d_and_shrinks_the_signed_mean():
    torch.manual_seed(0)
    model = build_segmenter(len(CLASSES), width=4, blocks=(1, 1), atrous_rates=(1, 2),
                            head_channels=8).eval()
    g = torch.Generator().manual_seed(0)
    # lopsided images: bright on the left, so the signed mean is far from 0
    images = torch.rand(64, 3, 16, 32, generator=g) * torch.linspace(1, 0, 32)
    mirrored = mirror_some(images, torch.Generator().manual_seed(1))
    flipped = (mirrored != images).flatten(1).any(1)
    assert 0 < flipped.sum() < len(images)
    assert torch.equal(mirrored[flipped], images[flipped].flip(-1))
    rows = flip_summary(model, images, seed=1)
    drawn, half = rows["as drawn"], rows["half mirrored"]
    assert half["mean |d|"] == pytest.approx(drawn["mean |d|"], rel=1e-5)
    assert half["|mean d|"] < 0.5 * drawn["|mean d|"]


def test_lookalike_share_counts_only_confusions_between_same_texture_classes():
    names = CLASSES
    pairs = lookalike_pairs(names)
    road, sidewalk, sky, puddle, car = (names.index(c) for c in
                                        ("road", "sidewalk", "sky", "puddle", "car"))
    assert (road, sidewalk) in pairs and (sidewalk, road) in pairs and (sky, puddle) in pairs
    assert not any(car in p for p in pairs) and (road, sky) not in pairs
    assert lookalike_pairs(("person", "rider")) == []

    class Fixed(torch.nn.Module):  # predicts a fixed label map whatever the image
        def __init__(self, labels):
            super().__init__()
            self.labels = labels
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.nn.functional.one_hot(self.labels[:len(x)], len(names)).permute(
                0, 3, 1, 2).float() + self.w

    truth = torch.full((1, 2, 4), road)
    pred = truth.clone()
    pred[0, 0, :3] = sidewalk  # 3 look-alike errors
    pred[0, 1, 0] = car  # 1 other error
    share = lookalike_share(Fixed(pred), torch.zeros(1, 3, 2, 4), truth, names)
    assert share == pytest.approx(3 / 4)
    assert math.isnan(lookalike_share(Fixed(truth), torch.zeros(1, 3, 2, 4), truth, names))
