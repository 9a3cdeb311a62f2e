"""Speed benchmarks, printed as ratios measured in one run on one machine.

    python -m posinfo.bench

Machines are noisy, so nothing here is asserted in a test; the README quotes the output
together with the machine it came from.
"""
from __future__ import annotations

import os
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .canvas import place_on_canvas
from .models import build_classifier
from .settings import chapter_settings


def _best_of(fn, repeats=5):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def canvas_speedup(n=2048, image_size=24, grid=3):
    """Batched place_on_canvas against the reference code's per-sample Python loop."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, image_size, image_size, generator=g)
    cells = torch.randint(0, grid * grid, (n,), generator=g)

    def loop():
        canvas = torch.zeros(n, 1, grid * image_size, grid * image_size)
        for i in range(n):
            r, c = divmod(int(cells[i]), grid)
            canvas[i, :, r * image_size:(r + 1) * image_size,
                   c * image_size:(c + 1) * image_size] = images[i]
        return canvas

    batched = lambda: place_on_canvas(images, cells, grid)
    assert torch.equal(loop(), batched())
    t_loop, t_batched = _best_of(loop), _best_of(batched)
    return t_loop, t_batched


def matmul_gflops(n=1024, repeats=10):
    """The machine's fp32 matmul rate: the ceiling a conv net's training step can approach."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    t = _best_of(lambda: [a @ b for _ in range(repeats)], repeats=3)
    return 2 * n ** 3 * repeats / t / 1e9


def training_throughput(settings, batch_size=64, steps=10):
    """Images/s of one training step of the chapter-1 model, and its achieved GFLOP/s."""
    canvas = settings.image_size * settings.grid
    model = build_classifier(1, settings.grid ** 2, settings.width, settings.blocks,
                             settings.padding, settings.head)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch_size, 1, canvas, canvas)
    y = torch.randint(0, settings.grid ** 2, (batch_size,))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    t = _best_of(lambda: [step() for _ in range(steps)], repeats=3) / steps
    return batch_size / t, flops / t / 1e9


def loop_overhead(settings, n_images=640, batch_size=64):
    """Images/s of the library's ``fit`` against a bare PyTorch loop doing the same work:
    the same model, optimizer, canvases (batched place_on_canvas) and batches."""
    from .canvas import CanvasTask, ImageSet
    from .train import fit

    g = torch.Generator().manual_seed(0)
    size = settings.image_size
    images = ImageSet(torch.rand(n_images, 1, size, size, generator=g),
                      torch.randint(0, 10, (n_images,), generator=g), 10)
    task = CanvasTask(images, images, settings.grid)

    def model_and_opt():
        torch.manual_seed(0)
        model = build_classifier(1, settings.grid ** 2, settings.width, settings.blocks,
                                 settings.padding, settings.head)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def library():
        model, _ = model_and_opt()
        fit(model, task, epochs=1, batch_size=batch_size, lr=1e-3, betas=(0.5, 0.999),
            generator=torch.Generator().manual_seed(0), device="cpu")

    def bare():
        model, opt = model_and_opt()
        model.train()
        gen = torch.Generator().manual_seed(0)
        order = torch.randperm(n_images, generator=gen)
        cells = torch.randint(0, settings.grid ** 2, (n_images,), generator=gen)
        for start in range(0, n_images, batch_size):
            idx = order[start:start + batch_size]
            x = place_on_canvas(images.images[idx], cells[idx], settings.grid)
            loss = F.cross_entropy(model(x), cells[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    t_lib, t_bare = _best_of(library, repeats=3), _best_of(bare, repeats=3)
    return n_images / t_lib, n_images / t_bare


def main():
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for n in (64, 2048):
        t_loop, t_batched = canvas_speedup(n)
        print(f"canvas construction, {n} images: per-sample loop {t_loop * 1e3:.2f} ms, "
              f"batched {t_batched * 1e3:.2f} ms -> {t_loop / t_batched:.1f}x faster")
    peak = matmul_gflops()
    print(f"fp32 matmul (1024x1024): {peak:.0f} GFLOP/s")
    settings = chapter_settings("gap_keeps_position", "default")
    images_s, gflops = training_throughput(settings)
    print(f"training step, chapter 1 default model (width {settings.width}, blocks "
          f"{settings.blocks}, {settings.image_size * settings.grid}px canvas, batch 64): "
          f"{images_s:.0f} images/s, {gflops:.1f} GFLOP/s = {gflops / peak:.0%} of matmul peak")
    lib_rate, bare_rate = loop_overhead(settings)
    print(f"posinfo.train.fit vs a bare PyTorch loop (same model, canvases, batches): "
          f"{lib_rate:.0f} vs {bare_rate:.0f} images/s -> the library loop runs at "
          f"{lib_rate / bare_rate:.0%} of the bare loop's speed")


if __name__ == "__main__":
    main()
