"""The reference code's input pipeline (gpu and paper profiles): per-channel normalisation
before pasting, so a blank canvas is the dataset's mean colour, and random horizontal flips
of the training images for CIFAR, never for digits."""
import pytest
import torch

from posinfo.canvas import CanvasTask, make_background, make_task
from posinfo.datasets import REFERENCE_STATS, ImageSet, channel_stats, load_split
from posinfo.settings import Settings, chapter_settings
from posinfo.shifts import ShiftTask
from test_cifar_loader import no_md5, write_cifar10_fixture  # noqa: F401 (fixture)

MEAN, STD = (0.25, 0.5), (0.5, 0.25)


def _set(n=6, c=2, size=4, seed=0):
    x = torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))
    return ImageSet(x, torch.arange(n) % 3, 3)


def test_normalized_images_are_per_channel_and_raw_inverts_them():
    raw = _set()
    normed = raw.normalized(MEAN, STD)
    for ch in range(2):
        assert torch.allclose(normed.images[:, ch], (raw.images[:, ch] - MEAN[ch]) / STD[ch])
    assert torch.allclose(normed.raw(normed.images), raw.images, atol=1e-6)
    assert raw.raw(raw.images) is raw.images  # un-normalised sets pass through


def _draws(seed, n, grid, hflip=False):
    """The draws train_batches makes, in its order: image order, cells, flip coins."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    cells = torch.randint(0, grid * grid, (n,), generator=g)
    coins = torch.rand(n, generator=g) < 0.5 if hflip else None
    return order, cells, coins


def test_blank_canvas_is_zero_after_normalisation_so_the_mean_colour_in_pixels():
    images = _set().normalized(MEAN, STD)
    task = CanvasTask(images, images, grid=2)
    x, _, _ = next(task.train_batches(6, torch.Generator().manual_seed(0)))
    order, cells, _ = _draws(0, 6, 2)
    for i in range(6):
        r, c = divmod(int(cells[order[i]]), 2)
        assert torch.equal(x[i, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4], images.images[order[i]])
        blank = torch.ones(8, 8, dtype=torch.bool)
        blank[4 * r:4 * r + 4, 4 * c:4 * c + 4] = False
        assert torch.all(x[i][:, blank] == 0)  # zero in normalised space ...
        pixels = images.raw(x[i])[:, blank]  # ... which is the mean colour in pixels
        assert torch.allclose(pixels, torch.tensor(MEAN)[:, None].expand_as(pixels))


def test_noise_background_is_drawn_in_pixels_then_normalised():
    images = _set().normalized(MEAN, STD)
    plain = make_background("noise", 3, 2, 8, torch.Generator().manual_seed(1), "cpu")
    normed = make_background("noise", 3, 2, 8, torch.Generator().manual_seed(1), "cpu", images)
    assert torch.allclose(normed, images.normalize(plain))
    zeros = make_background("zeros", 3, 2, 8, torch.Generator().manual_seed(1), "cpu", images)
    assert torch.equal(zeros, torch.zeros(3, 2, 8, 8))


def test_digits_statistics_come_from_the_training_split():
    settings = Settings(dataset="digits", image_size=8, n_train=1437, n_test=360,
                        normalize=True)
    train, test = load_split(settings)
    assert abs(float(train.images.mean())) < 1e-5
    assert abs(float(train.images.std()) - 1) < 1e-3
    assert test.mean == train.mean and test.std == train.std
    raw_train, _ = load_split(Settings(settings, normalize=False))
    assert raw_train.mean is None and float(raw_train.images.min()) == 0.0


def test_cifar10_uses_the_reference_codes_constants(tmp_path, no_md5):  # noqa: F811
    from posinfo.datasets import load_cifar10

    write_cifar10_fixture(tmp_path)
    train, _ = load_cifar10(32, root=tmp_path)
    assert channel_stats("cifar10", train) == REFERENCE_STATS["cifar10"]
    assert REFERENCE_STATS["cifar10"] == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))


def test_hflip_mirrors_the_images_its_coins_pick_and_off_draws_nothing():
    images = _set(n=64, c=1)
    flipping = CanvasTask(images, images, grid=2, hflip=True)
    x, _, got_cells = next(flipping.train_batches(64, torch.Generator().manual_seed(3)))
    order, cells, coins = _draws(3, 64, 2, hflip=True)
    assert torch.equal(got_cells, cells[order])
    for i in range(64):
        r, c = divmod(int(cells[order[i]]), 2)
        patch = x[i, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4]
        source = images.images[order[i]]
        assert torch.equal(patch, source.flip(-1) if coins[order[i]] else source)
    assert 16 < int(coins.sum()) < 48
    # Off, no coin is drawn: after an epoch the generator stands where order and cells left it.
    plain = CanvasTask(images, images, grid=2)
    g = torch.Generator().manual_seed(3)
    list(plain.train_batches(64, g))
    g_expected = torch.Generator().manual_seed(3)
    torch.randperm(64, generator=g_expected), torch.randint(0, 4, (64,), generator=g_expected)
    assert torch.equal(torch.rand(5, generator=g), torch.rand(5, generator=g_expected))


def test_shift_views_of_one_image_share_its_flip():
    """Replay train_batches' draws (order, two offsets, then the coins): each view is its
    image, mirrored when its coin says so, at that view's own shift; never the other way."""
    from posinfo.shifts import shift_views

    images = ImageSet(_set(n=32, c=1, size=4).images, torch.arange(32), 32)  # label = index
    task = ShiftTask(images, images, margin=2, max_shift=2, hflip=True)
    both, labels, offsets = next(task.train_batches(32, torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(32, generator=g)
    for _ in range(2):  # dy1, dx1 then dy2, dx2
        torch.randint(-2, 3, (2, 32), generator=g)
    coins = torch.rand(32, generator=g) < 0.5
    assert torch.equal(labels, order) and 8 < int(coins.sum()) < 24
    first, second = both.chunk(2)
    for i, j in enumerate(order.tolist()):
        image = images.images[j].flip(-1) if coins[j] else images.images[j]
        canvas = torch.zeros(1, 1, 8, 8)
        canvas[0, :, 2:6, 2:6] = image
        dy1, dx1, dy2, dx2 = offsets[i]
        assert torch.equal(first[i], shift_views(canvas, dy1[None], dx1[None])[0])
        assert torch.equal(second[i], shift_views(canvas, dy2[None], dx2[None])[0])


def test_task_noise_backgrounds_are_pixels_put_into_the_images_space():
    """Both tasks draw noise as [0, 1] pixels and normalise it like the images: replaying
    the generator's draws, the canvas outside the image is that noise, back in pixels."""
    images = _set(n=8, c=2, size=4).normalized(MEAN, STD)
    canvas_task = CanvasTask(images, images, grid=2, background="noise")
    x, _, cells = next(canvas_task.train_batches(8, torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(0)
    torch.randperm(8, generator=g), torch.randint(0, 4, (8,), generator=g)
    noise = torch.rand(8, 2, 8, 8, generator=g)
    shift_task = ShiftTask(images, images, margin=2, max_shift=0, background="noise")
    views, _, _ = next(shift_task.train_batches(8, torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(0)
    torch.randperm(8, generator=g)
    for _ in range(2):
        torch.randint(0, 1, (2, 8), generator=g)
    shift_noise = torch.rand(8, 2, 8, 8, generator=g)
    for batch, drawn, where in ((x, noise, cells), (views[:8], shift_noise, None)):
        keep = torch.ones(8, 2, 8, 8, dtype=torch.bool)
        for i in range(8):
            r, c = divmod(int(where[i]), 2) if where is not None else (0.5, 0.5)
            top, left = int(4 * r), int(4 * c)  # the shift task's image sits at (2, 2)
            keep[i, :, top:top + 4, left:left + 4] = False
        assert torch.allclose(images.raw(batch)[keep], drawn[keep], atol=1e-5)


def test_hflip_on_digits_is_refused_before_any_work():
    with pytest.raises(ValueError, match="hflip must be False with dataset='digits'"):
        chapter_settings("gap_keeps_position", "gpu", hflip=True)
    with pytest.raises(ValueError, match=r"normalize must be one of \(False, True\)"):
        chapter_settings("channel_order", "default", normalize="yes")


@pytest.mark.parametrize("chapter", ["gap_keeps_position", "channel_order", "augshift"])
def test_gpu_and_paper_use_the_reference_pipeline_cpu_profiles_do_not(chapter):
    assert chapter_settings(chapter, "gpu").normalize is True
    assert chapter_settings(chapter, "gpu").hflip is False  # digits
    assert chapter_settings(chapter, "paper").normalize is True
    assert chapter_settings(chapter, "paper").hflip is True  # CIFAR-10
    for profile in ("smoke", "default"):
        s = chapter_settings(chapter, profile)
        assert s.normalize is False and s.hflip is False


def test_make_task_and_make_shift_task_carry_the_pipeline_settings():
    from posinfo.shifts import make_shift_task

    settings = Settings(dataset="digits", image_size=8, n_train=20, n_test=5, grid=2,
                        background="zeros", normalize=True, hflip=True, margin=2,
                        max_shift=2, shift_protocol="crop")
    for task in (make_task(settings), make_shift_task(settings)):
        assert task.train.mean is not None and task.test.mean == task.train.mean
        assert task.hflip is True
    plain = make_shift_task(Settings(settings, normalize=False, hflip=False))
    assert plain.train.mean is None and plain.hflip is False
