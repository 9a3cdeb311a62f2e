"""Procedural street scenes: deterministic, labelled, asymmetric only when asked to be."""
import pytest
import torch

from posinfo.checks import SCENE_MODES
from posinfo.scenes import (CLASSES, IGNORE, cityscapes_train_ids, colorize, make_scene_task,
                            make_scenes)


def _scenes(mode="asymmetric", n=64, seed=0):
    return make_scenes(n, 32, 64, mode, torch.Generator().manual_seed(seed))


def test_same_seed_same_scenes_and_labels_are_valid():
    a, b = _scenes(), _scenes()
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.shape == (64, 3, 32, 64) and a.labels.shape == (64, 32, 64)
    assert 0 <= a.images.min() and a.images.max() <= 1
    valid = a.labels[a.labels != IGNORE]
    assert valid.min() >= 0 and valid.max() < len(CLASSES)
    assert set(valid.unique().tolist()) == set(range(len(CLASSES)))  # every class occurs
    assert not torch.equal(a.images, _scenes(seed=1).images)


def _side_share(labels, name):
    """Fraction of a class's pixels in the right half of the frame."""
    mask = labels == CLASSES.index(name)
    return mask[..., labels.shape[-1] // 2:].sum().item() / mask.sum().item()


def test_asymmetric_scenes_put_sidewalk_and_building_right_and_symmetric_ones_do_not():
    asym, sym = _scenes("asymmetric", 256), _scenes("symmetric", 256)
    for name in ("sidewalk", "building", "car"):
        assert _side_share(asym.labels, name) > 0.9
        assert 0.35 < _side_share(sym.labels, name) < 0.65
    assert _side_share(asym.labels, "wall") < 0.1


def test_lookalike_classes_share_a_texture_unless_distinct():
    def mean_colour(s, name):
        return s.images.permute(0, 2, 3, 1)[s.labels == CLASSES.index(name)].mean(0)

    look, distinct = _scenes("asymmetric", 128), _scenes("distinct", 128)
    # Road and sidewalk are the same gravel (the curb darkens a thin line of sidewalk).
    assert (mean_colour(look, "road") - mean_colour(look, "sidewalk")).abs().max() < 0.08
    assert (mean_colour(distinct, "road") - mean_colour(distinct, "sidewalk")).abs().max() > 0.1


def test_task_shape_and_every_mode_the_settings_accept_makes_scenes():
    task = make_scene_task(10, 4, 32, 64, seed=3)
    x, y, _ = next(task.train_batches(4, torch.Generator().manual_seed(0)))
    assert x.shape == (4, 3, 32, 64) and y.shape == (4, 32, 64) and y.dtype == torch.long
    assert not torch.equal(task.train.images[:4], task.val.images[:4])
    assert all(len(make_scenes(1, 16, 16, mode)) == 1 for mode in SCENE_MODES)
    assert colorize(y[0]).shape == (32, 64, 3)


def test_bad_mode_and_size_are_errors():
    with pytest.raises(ValueError, match=r"scene_mode must be one of .* got 'mirror'"):
        make_scenes(2, 32, 64, "mirror")
    with pytest.raises(ValueError, match="scene_height and scene_width must be >= 16"):
        make_scenes(2, 8, 64)


def test_cityscapes_label_ids_map_to_train_ids():
    ids = torch.tensor([7, 8, 26, 33, 0, 255, 6])
    assert cityscapes_train_ids(ids).tolist() == [0, 1, 13, 18, IGNORE, IGNORE, IGNORE]
