"""The CPU bench: how fast the book's own machine trains, against its matmul rate and a bare
PyTorch loop, and where a chapter's minutes go (``python -m posinfo.tools.bench``).
"""
from __future__ import annotations

import os
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ...canvas import CanvasTask, place_on_canvas
from ...datasets import ImageSet
from ...models import build_classifier
from ...settings import chapter_settings
from ...train import fit

BOOK_DEADLINE_MIN = 20  # what the book allows on a 2-core CPU, from an empty cache


def best_of(fn, repeats=5) -> float:
    """The shortest of ``repeats`` timed calls of ``fn``, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def train_step(model, optimizer, x, y):
    """One training step as ``posinfo.train.fit`` takes it on a CPU: zero the gradients,
    forward and cross-entropy, backward, optimizer step. Returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


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


def time_training_step(model, x, y, steps=10) -> dict:
    """One Adam training step of ``model`` on the batch (x, y): its FLOPs (torch's
    FlopCounterMode, matmuls and convolutions forward and backward, counted on one step),
    seconds per step (best of three runs of ``steps`` steps), images/s and GFLOP/s."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with FlopCounterMode(display=False) as counter:
        train_step(model, opt, x, y)
    flops = counter.get_total_flops()
    seconds = best_of(lambda: [train_step(model, opt, x, y) for _ in range(steps)],
                      repeats=3) / steps
    return {"flops": flops, "seconds_per_step": seconds, "images_per_s": len(x) / seconds,
            "gflops_per_s": flops / seconds / 1e9}


def loop_overhead(settings, n_images=640, batch_size=64):
    """Images/s of the library's ``fit`` against a bare PyTorch loop doing the same work:
    the same model, optimizer, canvases (batched place_on_canvas) and batches."""
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
            train_step(model, opt, place_on_canvas(images.images[idx], cells[idx],
                                                   settings.grid), cells[idx])

    # Interleaved, best of five each: on a shared machine a slow spell then hits both.
    times = {library: [], bare: []}
    bare()  # warm-up
    for _ in range(5):
        for fn, seen in times.items():
            start = time.perf_counter()
            fn()
            seen.append(time.perf_counter() - start)
    return n_images / min(times[library]), n_images / min(times[bare])


def chapter_time_shares(profile: str = "default", keep: str | None = None) -> list[dict]:
    """Each chapter executed twice into a scratch folder: with an empty model cache, then with
    the cache it filled. The difference is training; the warm run's cells are evaluation,
    probes and figures; the rest of its wall time is kernel start-up. ``keep``: a folder
    that keeps the executed notebooks (cold/ and warm/) and the cache."""
    import tempfile
    from pathlib import Path

    import nbformat

    from ...cache import CACHE_ENV
    from ...run import chapter_sources, execute
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
    return rows


def main(chapters: bool = False, keep: str | None = None) -> None:
    """Print the CPU bench, one measurement a line (``python -m posinfo.tools.bench``)."""
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    peak = matmul_gflops()
    print(f"fp32 matmul (1024x1024): {peak:.0f} GFLOP/s")
    settings = chapter_settings("gap_keeps_position", "default")
    canvas = settings.image_size * settings.grid
    step = time_training_step(_chapter1_model(settings), torch.rand(64, 1, canvas, canvas),
                              torch.randint(0, settings.grid ** 2, (64,)))
    print(f"training step, chapter 1 default model (width {settings.width}, blocks "
          f"{settings.blocks}, {canvas}px canvas, batch 64): {step['images_per_s']:.0f} "
          f"images/s ({step['seconds_per_step'] * 1e3:.0f} ms/step), "
          f"{step['gflops_per_s']:.1f} GFLOP/s = {step['gflops_per_s'] / peak:.0%} of matmul peak")
    lib_rate, bare_rate = loop_overhead(settings)
    print(f"posinfo.train.fit vs a bare PyTorch loop (same model, canvases, batches): "
          f"{lib_rate:.0f} vs {bare_rate:.0f} images/s -> the library loop runs at "
          f"{lib_rate / bare_rate:.0%} of the bare loop's speed")
    if chapters:
        rows = chapter_time_shares(keep=keep)
        print("chapters at the default profile, empty model cache (seconds and share of wall):")
        for r in rows:
            print(f"  {r['chapter']:<24} {r['wall']:6.0f} s: "
                  f"training {r['training'] / r['wall']:4.0%}, "
                  f"evaluation/probes/figures {r['evaluation'] / r['wall']:4.0%}, "
                  f"kernel start-up {r['start-up'] / r['wall']:4.0%}")
        total = sum(r["wall"] for r in rows)
        print(f"  whole book {total / 60:.1f} min, "
              f"{sum(r['training'] for r in rows) / total:.0%} of it training "
              f"(deadline: {BOOK_DEADLINE_MIN} min)")
