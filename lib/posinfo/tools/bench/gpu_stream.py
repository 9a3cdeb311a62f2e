"""The GPU bench's data: location-task batches built on the device by the library itself
(CanvasTask's epoch_draws and device_batch, through graphed.DeviceBatches, as train.fit's
graphed loop builds them), so that a timed step never waits for the host, a captured CUDA
graph reads a new batch at every replay, and every arm, the library's loop included, sees
the same batches from one seed.
"""
from __future__ import annotations

import torch

from ...canvas import CanvasTask, ImageSet, flip_some, place_on_canvas
from ...graphed import DeviceBatches
from ...train import to_device
from .common import check_same


class CanvasStream:
    """Location-task batches of an image pool: each epoch one random order of the pool, one
    random cell and (``hflip``) one flip coin per image, drawn on the device with a device
    generator seeded with ``seed`` (CanvasTask.epoch_draws); every batch full (the last one
    completed with the epoch's first images, canvas.whole_batches).

    ``batch()`` gathers the step's positions made in Python (eager and compiled steps);
    ``graph_batch()`` reads them from the step counter held on the device, so a captured
    CUDA graph reads a new batch at every replay. Both give the same batches in the same
    order; ``advance()`` keeps the host's count (epoch boundaries) for either."""

    def __init__(self, pool: torch.Tensor, grid: int, batch_size: int, seed: int = 0,
                 hflip: bool = False):
        self.pool, self.grid, self.batch_size, self.seed = pool, grid, batch_size, seed
        labels = torch.zeros(len(pool), dtype=torch.long, device=pool.device)
        images = ImageSet(pool, labels, 10)
        self.task = CanvasTask(images, images, grid, "location", hflip=hflip)
        self.batches = DeviceBatches(self.task, batch_size, pool.device)
        self.steps_per_epoch = self.batches.steps
        self.total = torch.zeros((), device=pool.device)  # summed step losses, on the device
        self.reset()
        epoch = self.batches.epoch
        first = epoch["order"][:batch_size]
        check_same("device canvas builder",
                   place_on_canvas(flip_some(pool[first], epoch["flips"][:batch_size]),
                                   epoch["cells"][:batch_size], grid),
                   self.batch()[0].contiguous())
        self.reset()

    @property
    def flips(self) -> torch.Tensor:
        return self.batches.epoch["flips"]

    def generator(self) -> torch.Generator:
        """A device generator seeded as this stream's: the same epochs again."""
        return torch.Generator(device=self.pool.device).manual_seed(self.seed)

    def reset(self):
        self._generator = self.generator()
        self._new_epoch()

    def _new_epoch(self):
        self.batches.new_epoch(self._generator)  # zeroes the device step counter too
        self.step = 0

    def advance(self) -> int:
        if self.step == self.steps_per_epoch:
            self._new_epoch()
        self.step += 1
        return self.step - 1

    def batch(self):
        start = self.advance() * self.batch_size
        positions = torch.arange(start, start + self.batch_size, device=self.pool.device)
        x, y, _ = self.task.device_batch(self.batches.epoch, positions, {})
        return to_device(x, self.pool.device), y

    def graph_batch(self):
        x, y = self.batches.batch()
        self.batches.counter.add_(1)
        return to_device(x, self.pool.device), y
