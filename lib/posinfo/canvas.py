"""Grid canvases and the location / class tasks built on them (their images: ``datasets``).

The paper's location task: paste an image into one cell of a grid x grid layout on a larger
canvas, zeros elsewhere, and ask the network *which cell*. Everything here is batched tensor
code on the target device: no per-sample Python loop touches pixels.

Used by chapters 1-3 (chapter 3 through ``shifts``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import BACKGROUNDS, check_geometry
from .datasets import ImageSet, load_split


# ---- canvases ----------------------------------------------------------------------------
def paste(images: torch.Tensor, canvas: torch.Tensor, top: torch.Tensor, left: torch.Tensor):
    """Paste image i at (top[i], left[i]) of canvas i, in place, for the whole batch at once.

    One scatter into the flattened canvas: each image pixel's flat destination index is
    (top + row) * side + (left + col). Every image must lie fully inside its canvas.
    """
    n, c, h, w = images.shape
    side = canvas.shape[-1]
    dev = images.device
    rows = top.to(dev)[:, None, None] + torch.arange(h, device=dev)[None, :, None]  # n,h,1
    cols = left.to(dev)[:, None, None] + torch.arange(w, device=dev)[None, None, :]  # n,1,w
    flat = (rows * side + cols).reshape(n, 1, h * w).expand(n, c, h * w)
    canvas.view(n, c, -1).scatter_(2, flat, images.reshape(n, c, h * w))
    return canvas


def make_background(kind: str, n: int, channels: int, size: int, generator: torch.Generator,
                    device, images: ImageSet | None = None) -> torch.Tensor:
    """Canvas backgrounds: zeros (the paper's), per-pixel noise, or crops of a real texture.

    With ``images`` (the set pasted onto them), noise and texture are drawn as [0, 1] pixels
    and put into that set's space; zeros stay zeros there, as in the reference code, where
    the blank canvas is zero after normalisation.
    """
    if kind == "zeros":
        return torch.zeros(n, channels, size, size, device=device)
    into = images.normalize if images is not None else (lambda x: x)
    if kind == "noise":
        return into(torch.rand(n, channels, size, size, generator=generator).to(device))
    if kind == "texture":
        tex = _texture(device)
        top = torch.randint(0, tex.shape[-2] - size + 1, (n,), generator=generator)
        left = torch.randint(0, tex.shape[-1] - size + 1, (n,), generator=generator)
        rows = (top[:, None] + torch.arange(size))[:, :, None].to(device)
        cols = (left[:, None] + torch.arange(size))[:, None, :].to(device)
        return into(tex[rows, cols][:, None].expand(n, channels, size, size).contiguous())
    raise ValueError(f"background must be one of {BACKGROUNDS}, got {kind!r}")


_TEXTURES: dict = {}


def _texture(device) -> torch.Tensor:
    """scikit-image's bundled gravel photo (512x512, grey), scaled to [0, 1]."""
    key = str(device)
    if key not in _TEXTURES:
        from skimage import data
        _TEXTURES[key] = torch.tensor(data.gravel(), dtype=torch.float32, device=device) / 255.0
    return _TEXTURES[key]


def place_on_canvas(images: torch.Tensor, cells: torch.Tensor, grid: int,
                    background: torch.Tensor | None = None) -> torch.Tensor:
    """Put image i into grid cell cells[i] (row-major, 0..grid^2 - 1) of a grid x grid
    canvas.

    The canvas side is grid * image side unless ``background`` gives another size; the image
    is centred in its cell. Returns a new tensor (N, C, S, S).
    """
    n, c, h, w = images.shape
    canvas = (images.new_zeros(n, c, grid * h, grid * w) if background is None
              else background.clone())
    size = canvas.shape[-1]
    check_geometry(max(h, w), grid, size)
    if cells.min() < 0 or cells.max() >= grid * grid:
        raise ValueError(f"cells must lie in [0, {grid * grid - 1}] for grid={grid}")
    return paste_in_cells(images, cells, grid, canvas)


def paste_in_cells(images: torch.Tensor, cells: torch.Tensor, grid: int,
                   canvas: torch.Tensor) -> torch.Tensor:
    """place_on_canvas without its checks, in place: image i centred in cell cells[i] of
    ``canvas``. The range check reads the cells back to the host, a wait for the GPU at
    every step and an error inside a CUDA graph capture (bench's graphed step uses this)."""
    h, w = images.shape[-2:]
    cell = canvas.shape[-1] // grid
    top = (cells // grid) * cell + (cell - h) // 2
    left = (cells % grid) * cell + (cell - w) // 2
    return paste(images, canvas, top, left)


# ---- one epoch drawn on the device (train.fit's graphed path on CUDA) -----------------------
def whole_batches(order: torch.Tensor, batch_size: int) -> torch.Tensor:
    """An epoch's order completed to a whole number of batches with its own first entries.

    The graphed loop needs every batch the same size. Instead of dropping the last partial
    batch, it is filled up with the first images of the same order again (seen twice in that
    epoch, in the same cell with the same flip and offsets), so an epoch has ceil(n /
    batch_size) steps of exactly batch_size canvases: the same step count as train_batches."""
    n = len(order)
    m = -(-n // batch_size) * batch_size
    return order if m == n else order.repeat(-(-m // n))[:m]


_STATS: dict = {}


def _into_space(images: ImageSet, x: torch.Tensor) -> torch.Tensor:
    """ImageSet.normalize with the mean and std kept on x's device after the first call, so
    that a step never copies them from the host again (a wait for the GPU, and an error
    inside a CUDA graph capture). The same arithmetic, hence the same values."""
    if images.mean is None:
        return x
    key = (images.mean, images.std, str(x.device))
    if key not in _STATS:
        _STATS[key] = images._stats(x)
    mean, std = _STATS[key]
    return (x - mean) / std


def draw_background(kind: str, n: int, channels: int, size: int, generator: torch.Generator,
                    images: ImageSet) -> torch.Tensor | None:
    """make_background with every draw made on ``generator``'s device (no copy from the
    host), from the same calls in the same order: for a CPU generator the very same values.
    None for zeros (the canvas starts blank, nothing is drawn)."""
    dev = generator.device
    if kind == "zeros":
        return None
    if kind == "noise":
        return _into_space(images, torch.rand(n, channels, size, size, generator=generator,
                                              device=dev))
    if kind == "texture":
        tex = _texture(dev)
        top = torch.randint(0, tex.shape[-2] - size + 1, (n,), generator=generator, device=dev)
        left = torch.randint(0, tex.shape[-1] - size + 1, (n,), generator=generator, device=dev)
        rows = (top[:, None] + torch.arange(size, device=dev))[:, :, None]
        cols = (left[:, None] + torch.arange(size, device=dev))[:, None, :]
        return _into_space(images, tex[rows, cols][:, None].expand(n, channels, size, size)
                           .contiguous())
    raise ValueError(f"background must be one of {BACKGROUNDS}, got {kind!r}")


def device_flips(n: int, enabled: bool, generator: torch.Generator) -> torch.Tensor:
    """draw_flips on ``generator``'s device; all False (nothing drawn) when flips are off."""
    dev = generator.device
    if not enabled:
        return torch.zeros(n, dtype=torch.bool, device=dev)
    return torch.rand(n, generator=generator, device=dev) < 0.5


# ---- flips ---------------------------------------------------------------------------------
def draw_flips(n: int, enabled: bool, generator: torch.Generator) -> torch.Tensor | None:
    """One coin per training image for an epoch's random horizontal flips (the reference
    code's RandomHorizontalFlip); None, drawing nothing, when flips are off."""
    return torch.rand(n, generator=generator) < 0.5 if enabled else None


def flip_some(images: torch.Tensor, flips: torch.Tensor | None) -> torch.Tensor:
    """Images i with flips[i] mirrored left-right, before they are pasted."""
    if flips is None:
        return images
    return torch.where(flips.to(images.device)[:, None, None, None], images.flip(-1), images)


# ---- tasks -------------------------------------------------------------------------------
TARGETS = ("location", "class")


@dataclass
class ImageTask:
    """What every training task of the library shares (``CanvasTask``, ``shifts.ShiftTask``):
    images of a train and a test set drawn onto canvases, and the protocol ``train.fit``
    reads batches by.

    A task yields ``train_batches(batch_size, generator)`` (one epoch, on the host's
    generator) and ``test_batches()``; for the graphed loop on CUDA (``graphed``) it draws
    one epoch up front with ``epoch_draws`` (the same calls in the same order as
    train_batches) and builds each batch on the device with ``device_batch(epoch, positions,
    step)``, where ``step`` is ``step_draws``' per-step backgrounds. A subclass gives
    ``canvas_size``, ``epoch_draws``, ``device_batch``, ``train_batches`` and
    ``test_batches``, and the fields ``background`` and ``hflip`` (declared there, after its
    own, so that its constructor keeps its arguments' order)."""
    train: ImageSet
    test: ImageSet

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    def step_draws(self, batch_size: int, generator: torch.Generator) -> dict:
        """What one step draws besides the epoch's draws: its backgrounds (none for zeros)."""
        background = draw_background(self.background, batch_size, self.in_channels,
                                     self.canvas_size, generator, self.train)
        return {} if background is None else {"background": background}

    def device_images(self, epoch: dict, positions: torch.Tensor) -> tuple:
        """(indices into train, their images flipped as drawn) at the epoch's ``positions``:
        what every ``device_batch`` starts from, with device operations only."""
        idx = epoch["order"].index_select(0, positions)
        images = self.train.images.index_select(0, idx)
        if self.hflip:
            images = flip_some(images, epoch["flips"].index_select(0, positions))
        return idx, images

    def blank_canvases(self, images: torch.Tensor, step: dict) -> torch.Tensor:
        """The step's canvases before the images are pasted: its drawn backgrounds (cloned:
        pasting must not write into the drawn tensor), else zeros."""
        n, c = images.shape[:2]
        return (images.new_zeros(n, c, self.canvas_size, self.canvas_size)
                if "background" not in step else step["background"].clone())

    def device_batches(self, batch_size: int, generator: torch.Generator):
        """One epoch of train_batches' batches built on ``generator``'s device, every batch
        of batch_size (the last one completed, see ``whole_batches``)."""
        epoch = self.epoch_draws(batch_size, generator)
        dev = generator.device
        for start in range(0, len(epoch["order"]), batch_size):
            positions = torch.arange(start, start + batch_size, device=dev)
            yield self.device_batch(epoch, positions, self.step_draws(batch_size, generator))


@dataclass
class CanvasTask(ImageTask):
    """Images on a grid x grid canvas; the label is the cell ("location") or the image's class.

    Training canvases draw a fresh random cell for every image in every epoch, like the
    reference code. The test set is exhaustive and deterministic: every held-out image in
    every cell, so per-cell accuracy has equal support in each cell.
    """
    grid: int
    target: str = "location"
    background: str = "zeros"
    hflip: bool = False  # random horizontal flips of the training images (CIFAR, not digits)

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        check_geometry(self.train.images.shape[-1], self.grid)

    @property
    def num_outputs(self) -> int:
        return self.grid ** 2 if self.target == "location" else self.train.num_classes

    @property
    def canvas_size(self) -> int:
        return self.grid * self.train.images.shape[-1]

    @property
    def chance(self) -> float:
        return 1.0 / self.num_outputs

    def _canvases(self, images, labels, cells, generator):
        bg = make_background(self.background, len(images), images.shape[1], self.canvas_size,
                             generator, images.device, self.train)
        x = place_on_canvas(images, cells, self.grid, bg)
        y = cells.to(images.device) if self.target == "location" else labels
        return x, y, cells

    def train_batches(self, batch_size: int, generator: torch.Generator):
        """One epoch of (canvas, label, cell) batches in a random order."""
        n = len(self.train)
        order = torch.randperm(n, generator=generator)
        cells = torch.randint(0, self.grid ** 2, (n,), generator=generator)
        flips = draw_flips(n, self.hflip, generator)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            idx_dev = idx.to(self.train.images.device)
            images = flip_some(self.train.images[idx_dev], None if flips is None else flips[idx])
            yield self._canvases(images, self.train.labels[idx_dev], cells[idx], generator)

    # The graphed loop's batches (train.fit on CUDA, see ``graphed``): one epoch's draws made
    # up front on the generator's device, then batches gathered from them by positions held
    # on the device, with static shapes and no read-back to the host.
    def epoch_draws(self, batch_size: int, generator: torch.Generator) -> dict:
        """One epoch's order, cells and flips, drawn on ``generator``'s device by the same
        calls in the same order as train_batches (a CPU generator draws the very same values),
        per position of the order completed to whole batches (``whole_batches``)."""
        n, dev = len(self.train), generator.device
        order = torch.randperm(n, generator=generator, device=dev)
        cells = torch.randint(0, self.grid ** 2, (n,), generator=generator, device=dev)
        flips = device_flips(n, self.hflip, generator)
        order = whole_batches(order, batch_size)
        return {"order": order, "cells": cells[order], "flips": flips[order]}

    def device_batch(self, epoch: dict, positions: torch.Tensor, step: dict):
        """(canvas, label, cell) of the epoch's ``positions`` (a tensor on the device), as
        train_batches builds them, with device operations only: capturable in a CUDA graph."""
        idx, images = self.device_images(epoch, positions)
        cells = epoch["cells"].index_select(0, positions)
        x = paste_in_cells(images, cells, self.grid, self.blank_canvases(images, step))
        y = cells if self.target == "location" else self.train.labels.index_select(0, idx)
        return x, y, cells

    def _test_index(self):
        n, k = len(self.test), self.grid ** 2
        return torch.arange(n).repeat_interleave(k), torch.arange(k).repeat(n)

    def test_labels(self) -> dict:
        """Image index, cell and class of every test canvas, in test_batches' order."""
        image_idx, cells = self._test_index()
        return {"image": image_idx, "cell": cells, "class": self.test.labels.cpu()[image_idx]}

    def test_batches(self, batch_size: int = 512):
        """Every test image in every cell; backgrounds drawn from a fixed seed."""
        generator = torch.Generator().manual_seed(12345)
        image_idx, cells = self._test_index()
        for start in range(0, len(cells), batch_size):
            idx = image_idx[start:start + batch_size].to(self.test.images.device)
            yield self._canvases(self.test.images[idx], self.test.labels[idx],
                                 cells[start:start + batch_size], generator)


def make_task(settings, target: str = "location", grid: int | None = None,
              background: str | None = None, device=None) -> CanvasTask:
    """Build a CanvasTask from chapter settings (dataset, image_size, n_train, n_test...)."""
    train, test = load_split(settings, device)
    return CanvasTask(train, test, grid or settings.grid, target,
                      background or settings.background, settings.get("hflip", False))
