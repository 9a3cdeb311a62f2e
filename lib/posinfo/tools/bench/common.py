"""What the CPU and the GPU bench share: the training step they time, written once, its FLOP
count, and the two rules that keep a timing honest (best of several runs; a baseline must
build exactly what the library builds).
"""
from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def best_of(fn, repeats=5) -> float:
    """The shortest of ``repeats`` timed calls of ``fn``, after one untimed warm-up call."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class UnfairBaseline(RuntimeError):
    """A baseline built something else than the library: its timing would compare nothing."""


def check_same(name: str, baseline: torch.Tensor, library: torch.Tensor) -> None:
    # A real check, not an assert: ``python -O`` strips asserts, and a benchmark of two
    # methods that build different canvases would still print a speed-up.
    if baseline.shape != library.shape or not torch.equal(baseline, library):
        raise UnfairBaseline(f"baseline {name!r} does not build what the library builds "
                             f"(shapes {tuple(baseline.shape)} and {tuple(library.shape)}); "
                             f"its timing would not be comparable")


def train_step(model, optimizer, x, y, amp=contextlib.nullcontext, total=None):
    """One training step of a classifier, as ``posinfo.train.fit`` takes it: forward and
    cross-entropy under ``amp()`` (autocast, or nothing), backward, optimizer step. The
    gradients are *not* zeroed here: each caller zeroes them where its step needs it (a
    captured CUDA graph must not contain the zeroing). ``total``: a device tensor the loss
    is added to, so that no step reads a number back to the host. Returns the loss."""
    with amp():
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    if total is not None:
        total.add_(loss.detach())
    return loss


def count_flops(fn) -> int:
    """Floating-point operations of one call of ``fn`` (torch's FlopCounterMode: matmuls and
    convolutions, forward and backward; optimizer arithmetic is not counted)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()
