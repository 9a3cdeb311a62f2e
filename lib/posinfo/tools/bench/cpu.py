"""The CPU bench: how fast the book's own machine builds canvases and trains, and where a
chapter's minutes go (``python -m posinfo.tools.bench`` without --gpu; see the package's
docstring for the flags).
"""
from __future__ import annotations

import os
import platform
import time

import torch

from ...canvas import place_on_canvas
from ...models import build_classifier
from ...settings import chapter_settings
from .common import best_of, check_same, count_flops, train_step

# What the book allows on a 2-core CPU: the whole book from an empty cache, and README's
# test command.
BOOK_BUDGET_MIN, TESTS_BUDGET_MIN = 20, 6


def canvas_speedup(n=2048, image_size=24, grid=3) -> dict:
    """Seconds to build n canvases: batched place_on_canvas, two per-sample Python loops, and
    the floor any method pays (allocating the zero-filled canvases)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(n, 1, image_size, image_size, generator=generator)
    cells = torch.randint(0, grid * grid, (n,), generator=generator)
    side = grid * image_size

    def loop():  # per-sample slicing into one preallocated batch
        canvas = torch.zeros(n, 1, side, side)
        for i in range(n):
            r, c = divmod(int(cells[i]), grid)
            canvas[i, :, r * image_size:(r + 1) * image_size,
                   c * image_size:(c + 1) * image_size] = images[i]
        return canvas

    def reference_loop():  # the reference code: a canvas per sample in __getitem__, then collate
        out = []
        for i in range(n):
            canvas = torch.zeros(1, side, side)
            r, c = divmod(int(cells[i]), grid)
            canvas[:, r * image_size:(r + 1) * image_size,
                   c * image_size:(c + 1) * image_size] = images[i]
            out.append(canvas)
        return torch.stack(out)

    def batched():
        return place_on_canvas(images, cells, grid)

    check_same("loop", loop(), batched())
    check_same("reference loop", reference_loop(), batched())
    return {"batched": best_of(batched), "loop": best_of(loop),
            "reference loop": best_of(reference_loop),
            "zero-fill floor": best_of(lambda: torch.zeros(n, 1, side, side))}


def matmul_gflops(n=1024, repeats=10):
    """The machine's fp32 matmul rate: the ceiling a conv net's training step can approach."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    t = best_of(lambda: [a @ b for _ in range(repeats)], repeats=3)
    return 2 * n ** 3 * repeats / t / 1e9


def _chapter1_model(settings):
    """The chapter-1 location classifier the settings describe, with seeded weights."""
    torch.manual_seed(0)
    return build_classifier(1, settings.grid ** 2, settings.width, settings.blocks,
                            settings.padding, settings.head)


def time_training_step(model, x, y, steps=10, compile: str = "off",
                       threads: int | None = None) -> dict:
    """One training step of ``model`` on the batch (x, y) with Adam (``common.train_step``):
    its FLOPs (counted on the first step), seconds per step (best of three runs of ``steps``
    steps), images/s, achieved GFLOP/s, and the seconds the first timed step took
    (compilation, when ``compile`` names a backend). ``threads``: torch's thread count for
    the timing, restored afterwards."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        train_step(model, opt, x, y)

    flops = count_flops(step)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads or saved)
    try:
        if compile != "off":
            model.compile(backend=compile)
        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        seconds = best_of(lambda: [step() for _ in range(steps)], repeats=3) / steps
    finally:
        torch.set_num_threads(saved)
        torch._dynamo.reset()
    return {"flops": flops, "seconds_per_step": seconds, "images_per_s": len(x) / seconds,
            "gflops_per_s": flops / seconds / 1e9, "first_step_s": first}


def training_throughput(settings, batch_size=64, steps=10, compile: str = "off",
                        threads: int | None = None):
    """Images/s of one training step of the chapter-1 model, its achieved GFLOP/s, and the
    seconds the first step took (``time_training_step``)."""
    canvas = settings.image_size * settings.grid
    x = torch.rand(batch_size, 1, canvas, canvas)
    y = torch.randint(0, settings.grid ** 2, (batch_size,))
    timing = time_training_step(_chapter1_model(settings), x, y, steps, compile, threads)
    return timing["images_per_s"], timing["gflops_per_s"], timing["first_step_s"]


def loop_overhead(settings, n_images=640, batch_size=64):
    """Images/s of the library's ``fit`` against a bare PyTorch loop doing the same work:
    the same model, optimizer, canvases (batched place_on_canvas) and batches."""
    from ...canvas import CanvasTask, ImageSet
    from ...train import fit

    generator = torch.Generator().manual_seed(0)
    size = settings.image_size
    images = ImageSet(torch.rand(n_images, 1, size, size, generator=generator),
                      torch.randint(0, 10, (n_images,), generator=generator), 10)
    task = CanvasTask(images, images, settings.grid)

    def model_and_opt():
        model = _chapter1_model(settings)
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
            opt.zero_grad()
            train_step(model, opt, x, cells[idx])

    # Interleaved, best of five each: on a shared machine a slow spell then hits both.
    times = {library: [], bare: []}
    bare()  # warm-up
    for _ in range(5):
        for fn, seen in times.items():
            start = time.perf_counter()
            fn()
            seen.append(time.perf_counter() - start)
    t_lib, t_bare = min(times[library]), min(times[bare])
    return n_images / t_lib, n_images / t_bare


def chapter_time_shares(profile: str = "default", keep: str | None = None) -> list[dict]:
    """Each chapter executed twice into a scratch folder: with an empty model cache, then with
    the cache it filled. The difference is training; the warm run's cells are evaluation,
    probes and figures; the rest of its wall time is kernel start-up. ``keep``: a folder
    that keeps the executed notebooks (cold/ and warm/) and the cache."""
    import tempfile
    from pathlib import Path

    import nbformat

    from ...cache import CACHE_ENV
    from ...run import chapter_sources, execute, largest_kernel_mb
    from ...settings import PROFILE_ENV

    rows = []
    with tempfile.TemporaryDirectory(prefix="posinfo-bench-") as tmp:
        scratch = keep or tmp
        env = {PROFILE_ENV: profile, CACHE_ENV: str(Path(scratch) / "cache")}
        for key, source in chapter_sources().items():
            wall = {}
            for run in ("cold", "warm"):
                out = Path(scratch) / run / f"{source.stem}.ipynb"
                start = time.perf_counter()
                execute(key, source, out, {}, env)
                wall[run] = time.perf_counter() - start
            cells = sum(c.metadata.get("papermill", {}).get("duration") or 0
                        for c in nbformat.read(out, as_version=4).cells)
            rows.append({"chapter": source.stem, "wall": wall["cold"],
                         "training": wall["cold"] - wall["warm"], "evaluation": cells,
                         "start-up": wall["warm"] - cells})
    rows.append({"peak_mb": largest_kernel_mb()})
    return rows


def test_command_minutes() -> tuple[float, int]:
    """Wall-clock minutes of README's test command (`make test`, run as it is, so the bench
    times exactly what CI runs) and its exit status."""
    import subprocess

    from ...run import REPO

    started = time.perf_counter()
    done = subprocess.run(["make", "test"], cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    return (time.perf_counter() - started) / 60, done.returncode


def main(chapters: bool = False, keep: str | None = None, tests: bool = False,
           compile: bool = True) -> None:
    """Print the CPU bench, one measurement a line (``python -m posinfo.tools.bench``)."""
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for n in (64, 2048):
        t = canvas_speedup(n)
        print(f"canvas construction, {n} images: batched {t['batched'] * 1e3:.2f} ms; "
              f"{t['loop'] / t['batched']:.1f}x faster than a per-sample loop, "
              f"{t['reference loop'] / t['batched']:.1f}x faster than the reference code's "
              f"per-sample canvases + collate; the zero-filled allocation alone takes "
              f"{t['zero-fill floor'] / t['batched']:.0%} of the batched time")
    peak = matmul_gflops()
    print(f"fp32 matmul (1024x1024): {peak:.0f} GFLOP/s")
    settings = chapter_settings("gap_keeps_position", "default")
    images_s, gflops, _ = training_throughput(settings)
    step_ms = 64 / images_s * 1e3
    print(f"training step, chapter 1 default model (width {settings.width}, blocks "
          f"{settings.blocks}, {settings.image_size * settings.grid}px canvas, batch 64): "
          f"{images_s:.0f} images/s ({step_ms:.0f} ms/step), {gflops:.1f} GFLOP/s = "
          f"{gflops / peak:.0%} of matmul peak; building its canvases is "
          f"{canvas_speedup(64)['batched'] * 1e3 / step_ms:.1%} of a step")
    one_thread, _, _ = training_throughput(settings, threads=1)
    print(f"  1 thread instead of {torch.get_num_threads()}: {one_thread:.0f} images/s "
          f"({images_s / one_thread:.2f}x slower)")
    if compile:
        compiled, _, first = training_throughput(settings, compile="inductor")
        print(f"  torch.compile (inductor): {compiled:.0f} images/s ({compiled / images_s:.2f}x "
              f"eager) after {first:.0f} s of compilation")
    lib_rate, bare_rate = loop_overhead(settings)
    print(f"posinfo.train.fit vs a bare PyTorch loop (same model, canvases, batches): "
          f"{lib_rate:.0f} vs {bare_rate:.0f} images/s -> the library loop runs at "
          f"{lib_rate / bare_rate:.0%} of the bare loop's speed")
    if chapters:
        rows = chapter_time_shares(keep=keep)
        peak_mb = rows.pop()["peak_mb"]
        print("chapters at the default profile, empty model cache (seconds and share of wall):")
        for r in rows:
            print(f"  {r['chapter']:<24} {r['wall']:6.0f} s: "
                  f"training {r['training'] / r['wall']:4.0%}, "
                  f"evaluation/probes/figures {r['evaluation'] / r['wall']:4.0%}, "
                  f"kernel start-up {r['start-up'] / r['wall']:4.0%}")
        total = sum(r["wall"] for r in rows)
        train = sum(r["training"] for r in rows)
        print(f"  whole book {total / 60:.1f} min, {train / total:.0%} of it training; "
              f"largest kernel {peak_mb:.0f} MB resident (budget: {BOOK_BUDGET_MIN} min)")
    if tests:
        minutes, code = test_command_minutes()
        print(f"make test: {minutes:.1f} min, exit status {code} (budget: {TESTS_BUDGET_MIN} "
              f"min; the venv and Chromium already installed)")
