"""Shifted views (claim 3): an image on a larger blank canvas, moved by a random offset.

Geometry: an image of side ``s`` sits in the middle of a canvas of side ``s + 2 * margin``.
A *view* shifts the canvas content by (dy, dx) with |dy|, |dx| <= max_shift. While max_shift
<= margin no pixel of the image leaves the canvas and a view only moves the object; beyond
the margin the object is cut at the edge (up to ``max_shift - margin`` pixels of it, at most
half its side), as a random crop of a photo cuts its object. Two protocols shift it: ``crop``
reads the view as a crop of the zero-padded canvas (fresh zeros come in at the edge),
``roll`` shifts the canvas circularly (what leaves one edge comes back at the other, as
``torch.roll``). On a blank canvas with no cut the two give identical pixels; on a textured
one, or with a cut, they differ at the edges.

``ShiftTask`` serves the views to ``train.fit`` (AugShift's training, ``augshift``) and the
shift metrics (``invariance``).

Used by chapter 3.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .canvas import (ImageTask, device_flips, draw_flips, flip_some, make_background, paste,
                     whole_batches)
from .datasets import load_split
from .checks import check_protocol, check_shift


# ---- views ---------------------------------------------------------------------------------
def centred_canvases(images: torch.Tensor, margin: int, background: torch.Tensor | None = None):
    """Each image in the middle of its own canvas of side s + 2 * margin (zeros or
    ``background``)."""
    n, c, h, w = images.shape
    canvas = (images.new_zeros(n, c, h + 2 * margin, w + 2 * margin) if background is None
              else background.clone())
    offset = torch.full((n,), margin, dtype=torch.long)
    return paste(images, canvas, offset, offset)


def shift_views(canvases: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                protocol: str = "crop") -> torch.Tensor:
    """Canvas i with its content moved down dy[i] and right dx[i] pixels, the whole batch at once.

    ``crop``: out[r, c] = in[r - dy, c - dx], zero where that falls outside the canvas (a crop
    of the zero-padded canvas). ``roll``: the same indices taken modulo the side, which is
    ``torch.roll(canvas, (dy, dx), dims=(-2, -1))`` for every image with its own shift.
    """
    check_protocol(protocol)
    n, c, h, w = canvases.shape
    dev = canvases.device
    rows = torch.arange(h, device=dev)[None, :] - dy.to(dev)[:, None]  # n, h: source rows
    cols = torch.arange(w, device=dev)[None, :] - dx.to(dev)[:, None]  # n, w
    if protocol == "roll":
        rows, cols = rows % h, cols % w
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    batch = torch.arange(n, device=dev)[:, None, None]
    out = canvases[batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    return (out * inside[..., None]).permute(0, 3, 1, 2).contiguous()  # n,h,w,c -> n,c,h,w


def random_offsets(n: int, max_shift: int, generator: torch.Generator):
    """(dy, dx), each uniform over the integers in [-max_shift, max_shift]."""
    offsets = torch.randint(-max_shift, max_shift + 1, (2, n), generator=generator)
    return offsets[0], offsets[1]


@dataclass
class ShiftTask(ImageTask):
    """Classify images that sit at a random position on a larger canvas.

    ``train_batches`` yields both views stacked, (2B, C, S, S), the B labels, and the (dy, dx)
    offsets of the two views, for ``AugShiftLoss``. ``test_batches`` yields the unshifted
    (centred) test canvases, so ``train.evaluate`` measures clean accuracy.
    """
    margin: int
    max_shift: int
    protocol: str = "crop"
    background: str = "zeros"
    hflip: bool = False  # random horizontal flips of the training images (CIFAR, not digits)
    grid = 1  # one "cell": train.evaluate reports a single accuracy

    def __post_init__(self):
        check_shift(self.max_shift, self.margin, self.train.images.shape[-1])
        check_protocol(self.protocol)

    @property
    def canvas_size(self) -> int:
        return self.train.images.shape[-1] + 2 * self.margin

    @property
    def num_outputs(self) -> int:
        return self.train.num_classes

    def canvases(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        background = make_background(self.background, len(images), images.shape[1],
                                     self.canvas_size, generator, images.device, self.train)
        return centred_canvases(images, self.margin, background)

    def views(self, images, dy, dx, generator) -> torch.Tensor:
        return shift_views(self.canvases(images, generator), dy, dx, self.protocol)

    def train_batches(self, batch_size: int, generator: torch.Generator):
        """One epoch: for each image two views at independent random offsets."""
        n = len(self.train)
        order = torch.randperm(n, generator=generator)
        dy1, dx1 = random_offsets(n, self.max_shift, generator)
        dy2, dx2 = random_offsets(n, self.max_shift, generator)
        flips = draw_flips(n, self.hflip, generator)  # one flip per image: both views share it
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            images = flip_some(self.train.images[idx.to(self.train.images.device)],
                               None if flips is None else flips[idx])
            # One canvas (one background draw) for both views: they differ only by the shift.
            canvas = self.canvases(images, generator)
            both = shift_views(canvas.repeat(2, 1, 1, 1), torch.cat([dy1[idx], dy2[idx]]),
                               torch.cat([dx1[idx], dx2[idx]]), self.protocol)
            offsets = torch.stack([dy1[idx], dx1[idx], dy2[idx], dx2[idx]], 1)
            yield both, self.train.labels[idx.to(self.train.labels.device)], offsets

    # The graphed loop's batches (train.fit on CUDA, see ``graphed``), as CanvasTask's.
    def epoch_draws(self, batch_size: int, generator: torch.Generator) -> dict:
        """One epoch's order, both views' offsets and the flips, drawn on ``generator``'s
        device by the same calls in the same order as train_batches (a CPU generator draws the
        very same values), per position of the order completed to whole batches
        (``canvas.whole_batches``)."""
        n, dev = len(self.train), generator.device
        order = torch.randperm(n, generator=generator, device=dev)
        shift = (-self.max_shift, self.max_shift + 1, (2, n))
        view1 = torch.randint(*shift, generator=generator, device=dev)
        view2 = torch.randint(*shift, generator=generator, device=dev)
        flips = device_flips(n, self.hflip, generator)
        order = whole_batches(order, batch_size)
        return {"order": order, "dy": torch.cat([view1[0][order], view2[0][order]]),
                "dx": torch.cat([view1[1][order], view2[1][order]]), "flips": flips[order]}

    def device_batch(self, epoch: dict, positions: torch.Tensor, step: dict):
        """(both views, labels, offsets) of the epoch's ``positions`` (a tensor on the
        device), as train_batches builds them, with device operations only: capturable in a
        CUDA graph."""
        idx, images = self.device_images(epoch, positions)
        canvas, n = self.blank_canvases(images, step), len(images)
        margin = torch.full((n,), self.margin, dtype=torch.long, device=images.device)
        paste(images, canvas, margin, margin)  # centred_canvases, offsets made on the device
        both = torch.cat([positions, positions + len(epoch["order"])])
        dy, dx = epoch["dy"].index_select(0, both), epoch["dx"].index_select(0, both)
        views = shift_views(canvas.repeat(2, 1, 1, 1), dy, dx, self.protocol)
        offsets = torch.stack([dy[:n], dx[:n], dy[n:], dx[n:]], 1)
        return views, self.train.labels.index_select(0, idx), offsets

    def test_batches(self, batch_size: int = 512):
        """Every test image once, unshifted; backgrounds from a fixed seed."""
        generator = torch.Generator().manual_seed(12345)
        for start in range(0, len(self.test), batch_size):
            images = self.test.images[start:start + batch_size]
            yield (self.canvases(images, generator), self.test.labels[start:start + batch_size],
                   torch.zeros(len(images), dtype=torch.long))


def make_shift_task(settings, device=None) -> ShiftTask:
    train, test = load_split(settings, device)
    return ShiftTask(train, test, settings.margin, settings.max_shift, settings.shift_protocol,
                     settings.background, settings.get("hflip", False))
