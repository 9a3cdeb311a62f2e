"""The GPU bench's data: location-task batches built on the device itself, so that a timed
step never waits for the host and a captured CUDA graph can draw a new batch at every replay.
"""
from __future__ import annotations

import torch

from ...canvas import flip_some, paste_in_cells, place_on_canvas
from ...train import to_device
from .common import check_same


def device_canvases(images: torch.Tensor, cells: torch.Tensor, grid: int) -> torch.Tensor:
    """Blank canvases with the images in their cells, with no read-back to the host
    (canvas.paste_in_cells). Checked equal to place_on_canvas before any timing
    (``CanvasStream``)."""
    n, c, h, w = images.shape
    return paste_in_cells(images, cells, grid, images.new_zeros(n, c, grid * h, grid * w))


class CanvasStream:
    """Location-task batches built on the device: each epoch one random order of the image
    pool, one random cell and (``hflip``) one flip coin per image, as
    CanvasTask.train_batches draws them, but drawn on the device.

    ``batch()`` slices the epoch's tables in Python (eager and compiled steps);
    ``graph_batch()`` slices them by a step counter held on the device, so a captured CUDA
    graph reads a new batch at every replay. Both give the same batches in the same order;
    ``advance()`` keeps the host's count (epoch boundaries) for either."""

    def __init__(self, pool: torch.Tensor, grid: int, batch_size: int, seed: int = 0,
                 hflip: bool = False):
        self.pool, self.grid, self.batch_size, self.seed = pool, grid, batch_size, seed
        self.hflip = hflip
        dev = pool.device
        self.steps_per_epoch = len(pool) // batch_size
        m = self.steps_per_epoch * batch_size
        self.order = torch.zeros(m, dtype=torch.long, device=dev)
        self.cells = torch.zeros(m, dtype=torch.long, device=dev)
        self.flips = torch.zeros(m, dtype=torch.bool, device=dev)
        self.counter = torch.zeros((), dtype=torch.long, device=dev)
        self.offsets = torch.arange(batch_size, device=dev)
        self.total = torch.zeros((), device=dev)  # summed step losses, kept on the device
        self.reset()
        images, cells = self.pool[:batch_size], self.cells[:batch_size]
        check_same("device canvas builder", place_on_canvas(images, cells, grid),
                   device_canvases(images, cells, grid))

    def reset(self):
        self.generator = torch.Generator(device=self.pool.device).manual_seed(self.seed)
        self._new_epoch()

    def _new_epoch(self):
        dev, m = self.pool.device, len(self.order)
        self.order.copy_(torch.randperm(len(self.pool), generator=self.generator, device=dev)[:m])
        self.cells.copy_(torch.randint(0, self.grid ** 2, (m,), generator=self.generator,
                                       device=dev))
        if self.hflip:
            self.flips.copy_(torch.rand(m, generator=self.generator, device=dev) < 0.5)
        self.counter.zero_()
        self.step = 0

    def advance(self) -> int:
        if self.step == self.steps_per_epoch:
            self._new_epoch()
        self.step += 1
        return self.step - 1

    def _build(self, idx, cells, flips):
        images = self.pool.index_select(0, idx)
        if self.hflip:  # the coins are already on the device: no copy
            images = flip_some(images, flips)
        x = device_canvases(images, cells, self.grid)
        return to_device(x, self.pool.device), cells

    def batch(self):
        start = self.advance() * self.batch_size
        s = slice(start, start + self.batch_size)
        return self._build(self.order[s], self.cells[s], self.flips[s])

    def graph_batch(self):
        pos = self.counter * self.batch_size + self.offsets
        self.counter.add_(1)
        return self._build(*(t.index_select(0, pos) for t in (self.order, self.cells, self.flips)))

