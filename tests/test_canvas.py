import numpy as np
import pytest
import torch

from posinfo.canvas import CanvasTask, check_geometry, make_background, place_on_canvas
from posinfo.datasets import ImageSet, load_digits


def _images(n=5, c=2, size=4, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) + 0.1


def test_place_on_canvas_matches_a_per_sample_loop():
    images, grid = _images(), 3
    cells = torch.tensor([0, 4, 8, 2, 6])
    canvas = place_on_canvas(images, cells, grid)
    expected = torch.zeros(5, 2, 12, 12)
    for i, cell in enumerate(cells.tolist()):
        r, c = divmod(cell, grid)
        expected[i, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] = images[i]
    assert torch.equal(canvas, expected)


def test_place_on_canvas_keeps_the_background_outside_the_cell():
    images = _images(n=2, c=1)
    background = torch.full((2, 1, 15, 15), 7.0)
    canvas = place_on_canvas(images, torch.tensor([0, 8]), 3, background)
    # 15px canvas, 5px cells, 4px images centred at offset 0 ((5 - 4) // 2 == 0)
    assert torch.equal(canvas[0, :, 0:4, 0:4], images[0])
    assert torch.equal(canvas[1, :, 10:14, 10:14], images[1])
    assert canvas[0, :, 5:, :].eq(7).all() and background.eq(7).all()  # input untouched


def test_image_larger_than_a_cell_is_a_clear_error():
    with pytest.raises(ValueError, match="image_size=20 is larger than a cell"):
        check_geometry(20, 3, canvas_size=48)
    with pytest.raises(ValueError, match="grid must be"):
        check_geometry(16, 0)


def test_cells_outside_the_grid_are_rejected():
    with pytest.raises(ValueError, match="cells must lie in"):
        place_on_canvas(_images(n=1), torch.tensor([9]), 3)


@pytest.mark.parametrize("kind", ["zeros", "noise", "texture"])
def test_backgrounds_have_the_canvas_shape_and_range(kind):
    bg = make_background(kind, 3, 1, 24, torch.Generator().manual_seed(0), "cpu")
    assert bg.shape == (3, 1, 24, 24) and bg.min() >= 0 and bg.max() <= 1
    if kind != "zeros":
        assert bg.std() > 0.01


def test_unknown_background_names_the_allowed_values():
    with pytest.raises(ValueError, match="background must be one of"):
        make_background("plaid", 1, 1, 8, torch.Generator(), "cpu")


def test_digits_are_real_upsampled_and_split_without_overlap():
    train, test = load_digits(16)
    assert train.images.shape[1:] == (1, 16, 16) and len(train) + len(test) == 1797
    assert 0 <= train.images.min() and train.images.max() <= 1
    assert set(test.labels.tolist()) == set(range(10))
    # At 8 px (no resampling) the images are scikit-learn's own, all 1,797 distinct: the
    # split must use each exactly once, so no test digit was also trained on.
    from sklearn.datasets import load_digits as sk_digits
    train, test = load_digits(8)
    key = lambda s: {tuple(row) for row in (s.images.flatten(1) * 16).round().int().tolist()}
    assert key(train).isdisjoint(key(test))
    every = {tuple(row) for row in sk_digits().data.astype(int).tolist()}
    assert key(train) | key(test) == every and len(every) == 1797
    # stratified 80/20: each class holds its share of the test set, within one image
    counts = np.bincount(sk_digits().target, minlength=10)
    assert np.abs(np.bincount(test.labels.numpy(), minlength=10) - 0.2 * counts).max() <= 1


def test_test_set_holds_every_image_in_every_cell():
    images = ImageSet(_images(n=4, c=1), torch.arange(4), 4)
    task = CanvasTask(images, images, grid=2)
    cells = torch.cat([c for _, _, c in task.test_batches(batch_size=3)])
    labels = torch.cat([y for _, y, _ in task.test_batches(batch_size=3)])
    assert len(cells) == 16 and torch.equal(torch.bincount(cells), torch.full((4,), 4))
    assert torch.equal(labels, cells)  # location target: the label is the cell


def test_training_batches_are_reproducible_from_the_seed():
    images = ImageSet(_images(n=10, c=1), torch.arange(10) % 3, 3)
    task = CanvasTask(images, images, grid=2, target="class", background="noise")
    def run(seed):
        return [(x, y) for x, y, _ in task.train_batches(4, torch.Generator().manual_seed(seed))]
    a, b, other = run(1), run(1), run(2)
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert np.isclose(sum(len(y) for _, y in a), 10)
    # ...and it is the seed that decides: another seed, another epoch
    assert not all(torch.equal(xa, xo) for (xa, _), (xo, _) in zip(a, other))


def _epoch_order(task, images, seed):
    """The training images in the order one epoch shows them, each checked in its cell."""
    seen = []
    for x, y, cells in task.train_batches(4, torch.Generator().manual_seed(seed)):
        assert torch.equal(y, cells)  # location target: the label is the cell
        for canvas, cell in zip(x, cells.tolist()):
            r, c = divmod(cell, 2)
            patch = canvas[:, 4 * r:4 * r + 4, 4 * c:4 * c + 4]
            match = [i for i in range(len(images)) if torch.equal(patch, images[i])]
            rest = canvas.clone()
            rest[:, 4 * r:4 * r + 4, 4 * c:4 * c + 4] = 0
            assert len(match) == 1 and rest.eq(0).all()  # blank elsewhere
            seen += match
    return seen


def test_an_epoch_shows_every_training_image_once_in_the_cell_it_names():
    # Known answer: on a blank canvas each training canvas is one image, whole, in the cell
    # of its label and nowhere else, and one epoch uses each image exactly once, in an order
    # the seed draws (10! orders: two seeds agreeing by chance is one in 3.6 million).
    images = _images(n=10, c=1)  # distinct 4x4 images, every pixel > 0
    task = CanvasTask(ImageSet(images, torch.zeros(10, dtype=torch.long), 1), None, grid=2)
    first, again, other = (_epoch_order(task, images, seed) for seed in (0, 0, 1))
    assert sorted(first) == list(range(10)) and first == again and first != other
