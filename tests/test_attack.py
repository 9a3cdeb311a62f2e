"""Position-channel ranking, the channel-zeroing attack, mIoU by region, the paper path."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import posinfo
from posinfo.attack import (check_region, random_channels, rank_position_channels, region_miou,
                            zero_channels, zeroed)
from posinfo.segment import (Segmenter, backbone_features, build_segmenter, confusion_matrix,
                             mean_iou, segmentation_setup)
from posinfo.scenes import IGNORE, load_cityscapes


class _KnownBackbone(nn.Module):
    """Four channels; only channel 2 codes position (image brightness times a left-to-right ramp)."""

    def forward(self, x):
        bright = x.mean(1, keepdim=True)
        ramp = torch.linspace(0, 1, x.shape[-1])
        return torch.cat([bright, bright ** 2, bright * ramp, 1 - bright], 1)


def _known_model():
    return Segmenter(_KnownBackbone(), nn.Conv2d(4, 3, 1), channels=4)


def _right_heavy_images(n=8):
    x = torch.rand(n, 3, 8, 16, generator=torch.Generator().manual_seed(0)) * 0.2
    x[..., 8:] += 0.7  # bright on the right, like the scenes' right-side furniture
    return x


def test_flip_ranking_finds_the_position_channel_first():
    ranking = rank_position_channels(_known_model(), _right_heavy_images(), device="cpu")
    assert ranking.overall[0] == 2 and ranking.right[0] == 2
    assert ranking.abs_diff[[0, 1, 3]].abs().max() < 1e-6  # flip-invariant channels: no change
    assert ranking.bottom[-1] == 2
    # Mirrored data: the same channel now leads the other side.
    assert rank_position_channels(_known_model(), _right_heavy_images().flip(-1), device="cpu").left[0] == 2


def test_attack_hook_zeroes_exactly_the_chosen_channels():
    model = build_segmenter(3, width=4, blocks=(1, 1), atrous_rates=(1, 2), head_channels=8).eval()
    x = torch.rand(2, 3, 32, 32)
    seen = {}
    model.head.register_forward_hook(lambda m, inp, out: seen.__setitem__("f", inp[0].clone()))
    with torch.no_grad():
        model(x)
        clean = seen["f"]
        with zero_channels(model, [1, 5]):
            model(x)
        attacked = seen["f"]
        model(x)
    assert attacked[:, [1, 5]].abs().max() == 0
    keep = [c for c in range(model.channels) if c not in (1, 5)]
    assert torch.equal(attacked[:, keep], clean[:, keep])
    assert torch.equal(seen["f"], clean)  # the hook is gone after the block
    # The precomputed-features path gives the same predictions as the hook.
    feats = backbone_features(model, x, device="cpu")
    labels = torch.randint(0, 3, (2, 32, 32))
    assert (region_miou(model, x, labels, 3, [1, 5], device="cpu")
            == region_miou(model, x, labels, 3, [1, 5], features=feats, device="cpu"))
    assert torch.equal(zeroed(clean, [0])[:, 1:], clean[:, 1:])


def test_miou_matches_a_hand_worked_example():
    target = torch.tensor([[0, 0, 1, 1], [0, 2, 2, IGNORE]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 2]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]
    # IoU: class 0: 2 / (3 + 3 - 2) = 1/2; class 1: 2 / (3 + 2 - 2) = 2/3; class 2: 1 / (1 + 2 - 1) = 1/2
    assert mean_iou(conf) == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)


def test_region_miou_scores_each_half_on_its_own():
    model = _known_model()
    labels = torch.zeros(1, 4, 8, dtype=torch.long)
    labels[..., 4:] = 1
    # Force predictions: class 0 everywhere, so the left half is perfect, the right half all wrong.
    model.decode = lambda f, size: torch.stack([torch.ones(1, *size), torch.zeros(1, *size),
                                                torch.zeros(1, *size)], 1)
    scores = region_miou(model, torch.rand(1, 3, 4, 8), labels, 3, device="cpu",
                         features=torch.zeros(1, 4, 4, 8))
    assert scores["left"] == 1.0 and scores["right"] == 0.0 and scores["whole"] == pytest.approx(0.25)


def test_bad_inputs_are_clear_errors():
    ranking = rank_position_channels(_known_model(), _right_heavy_images(), device="cpu")
    with pytest.raises(ValueError, match=r"N must be an integer in \[1, 4\].*got 0"):
        ranking.top("overall", 0)
    with pytest.raises(ValueError, match=r"N must be an integer in \[1, 4\].*got 5"):
        ranking.top("overall", 5)
    with pytest.raises(ValueError, match=r"region must be one of .* got 'top'"):
        ranking.top("top", 1)
    with pytest.raises(ValueError, match="region must be one of"):
        check_region("middle")
    wider = build_segmenter(3, width=4, blocks=(1, 1), atrous_rates=(1,), head_channels=4)
    with pytest.raises(ValueError, match="computed on a backbone of 4 channels, the model has 8"):
        ranking.top("overall", 1, wider)
    with pytest.raises(ValueError, match=r"channels must lie in \[0, 3\]"):
        with zero_channels(_known_model(), [4]):
            pass
    with pytest.raises(ValueError, match="N must be an integer"):
        random_channels(4, 9, torch.Generator())


def _write_cityscapes_fixture(root, n=2):
    """The folder layout torchvision.datasets.Cityscapes reads, with tiny PNGs."""
    for i in range(n):
        img_dir = root / "leftImg8bit" / "val" / "frankfurt"
        gt_dir = root / "gtFine" / "val" / "frankfurt"
        img_dir.mkdir(parents=True, exist_ok=True)
        gt_dir.mkdir(parents=True, exist_ok=True)
        stem = f"frankfurt_000000_{i:06d}"
        rgb = (np.random.default_rng(i).random((16, 32, 3)) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(img_dir / f"{stem}_leftImg8bit.png")
        ids = np.full((16, 32), 7, np.uint8)  # road
        ids[:, 24:] = 8  # sidewalk on the right
        ids[:4] = 23  # sky
        ids[-2:] = 1  # ego vehicle: ignored
        Image.fromarray(ids).save(gt_dir / f"{stem}_gtFine_labelIds.png")


def test_cityscapes_loader_and_ranking_on_a_tiny_fixture(tmp_path):
    _write_cityscapes_fixture(tmp_path / "cityscapes")
    val = load_cityscapes(tmp_path / "cityscapes", "val", height=16, width=32)
    assert val.images.shape == (2, 3, 16, 32) and val.labels.shape == (2, 16, 32)
    assert val.labels[0, 8, 0] == 0 and val.labels[0, 8, 30] == 1 and val.labels[0, 0, 0] == 10
    assert (val.labels[:, -2:] == IGNORE).all()
    model = build_segmenter(19, width=4, blocks=(1, 1), atrous_rates=(1,), head_channels=8)
    ranking = rank_position_channels(model, val.images, device="cpu")
    assert sorted(ranking.overall.tolist()) == list(range(model.channels))
    assert set(region_miou(model, val.images, val.labels, 19, ranking.top("left", 2, model),
                           device="cpu")) == {"whole", "left", "right", "centre"}


def test_paper_profile_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("POSINFO_DATA", str(tmp_path))
    settings = posinfo.chapter_settings("position_channels", "paper",
                                        checkpoint=str(tmp_path / "weights.pth"))
    with pytest.raises(FileNotFoundError) as err:
        segmentation_setup(settings)
    message = str(err.value)
    assert "leftImg8bit/val" in message and "gtFine/val" in message and "weights.pth" in message
