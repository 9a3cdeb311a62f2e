"""The GPU bench: how fast ``train.fit`` trains the paper's CIFAR-10 location run on one GPU
(ResNet-18, batch 48, 96 px canvases with flips, bf16), and how many such runs to train at
once. Every variant runs fit's own loop (``posinfo.graphed.Loop``) from the same weights on the
same batches, drawn on the device:

- **eager**: the loop uncaptured, step by step (plain Adam): the baseline;
- **graphed**: the loop as fit runs it on CUDA, the step captured once as a CUDA graph and
  replayed; its first losses are checked against eager's, so a faster variant that computes
  something else is caught. The target is 3.5x eager (a step captured by hand measured
  3.5-3.8x on an H200, book/gpu/bench_gpu_full.json);
- **K at once**, for each K of ``--concurrency``: K graphed runs, each in a process of its
  own, released together after their capture and timed over the same window; their
  canvases/s summed and set against one graphed run. Run once plain and once under CUDA's
  MPS (the Reproduce page's commands): this decides ``gpu_book --prefetch K`` and whether
  MPS is used.

The JSON is rewritten after every variant, so a run cut short keeps what it measured.
``--quick``: a tiny net, a fraction of a second per variant, on any device (the tests).
"""
from __future__ import annotations

import json
import multiprocessing
import os
import platform
import queue
import sys
import time
import traceback
from dataclasses import asdict, dataclass, replace
from datetime import datetime

import torch

from ...canvas import CanvasTask
from ...datasets import ImageSet
from ...graphed import Loop
from ...models import build_classifier
from ...tables import format_table
from ...train import cross_entropy_loss, pick_device

# The paper's own run, 20 epochs of 50,000 CIFAR-10 canvases, and its target in minutes.
PAPER_EPOCHS, PAPER_CANVASES, TARGET_MINUTES = 20, 50_000, 1.0
READY_TIMEOUT_S = 120.0  # a run's start-up and capture (about 10 s on an H200), then hung
CHUNK_S = 0.02  # steps between two reads of the clock in a timed window


@dataclass(frozen=True)
class GpuBenchConfig:
    """The step timed; the default is the paper's CIFAR-10 run: ResNet-18 width, GAPNet head,
    32 px images on a 3x3 grid, batch 48, Adam 1e-3 (0.5, 0.999), flips. ``seconds``: the
    timed window of each variant; ``check_steps``: the first steps, whose losses are compared
    with eager's; ``concurrency``: a variant for each number of runs trained at once."""
    width: int = 64
    blocks: tuple = (2, 2, 2, 2)
    image_size: int = 32
    grid: int = 3
    batch_size: int = 48
    lr: float = 1e-3
    betas: tuple = (0.5, 0.999)
    hflip: bool = True
    pool: int = 50_000
    seconds: float = 2.0
    check_steps: int = 6
    loss_tolerance: float = 0.05
    concurrency: tuple = (4, 8)

    def __post_init__(self):
        if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 2
                   for k in self.concurrency):
            raise ValueError(f"concurrency must be a tuple of whole numbers of runs >= 2, "
                             f"e.g. (4, 8), or () for none; got {self.concurrency!r}")


QUICK = GpuBenchConfig(width=4, blocks=(1, 1, 1, 1), image_size=8, batch_size=8, pool=40,
                       seconds=0.05, check_steps=3, concurrency=(2,))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_run(cfg: GpuBenchConfig, device, capture: bool, barrier=None) -> dict:
    """One run of fit's loop on random pool images (seeded: every run alike): built and
    (``capture``) captured, its first ``check_steps`` losses, then, after ``barrier`` if
    given, as many steps as fit in ``cfg.seconds``, timed."""
    device = torch.device(device)
    started = time.monotonic()
    pool = torch.rand(cfg.pool, 3, cfg.image_size, cfg.image_size, device=device,
                      generator=torch.Generator(device=device).manual_seed(0))
    images = ImageSet(pool, torch.zeros(cfg.pool, dtype=torch.long, device=device), 10)
    task = CanvasTask(images, images, cfg.grid, "location", hflip=cfg.hflip)
    torch.manual_seed(0)
    model = build_classifier(3, cfg.grid ** 2, cfg.width, cfg.blocks, "zeros", "gapnet")
    with Loop(model, task, batch_size=cfg.batch_size, lr=cfg.lr, betas=cfg.betas,
              loss_fn=cross_entropy_loss, device=device, capture=capture) as loop:
        generator = torch.Generator(device=device).manual_seed(0)
        done = [0]

        def step():
            if done[0] % loop.steps == 0:
                loop.new_epoch(generator)
            loop.step(generator)
            done[0] += 1

        losses = []
        for _ in range(cfg.check_steps):
            step()
            losses.append(float(loop.loss.detach()))
        setup_s = time.monotonic() - started
        alone = time.monotonic()
        for _ in range(3):
            step()
        sync(device)
        chunk = max(1, round(CHUNK_S / ((time.monotonic() - alone) / 3)))
        if barrier is not None:
            barrier.wait(timeout=READY_TIMEOUT_S)
        steps, start = 0, time.monotonic()
        while steps == 0 or time.monotonic() - start < cfg.seconds:
            for _ in range(chunk):
                step()
            sync(device)
            steps += chunk
    end = time.monotonic()
    return {"losses": losses, "setup_s": setup_s, "steps": steps, "start": start, "end": end,
            "canvases_per_s": steps * cfg.batch_size / (end - start),
            "ms_per_step": (end - start) / steps * 1e3, "captured": capture}


def _worker(cfg, device, capture, barrier, results, index) -> None:
    """A process of a variant of runs at once: its timed run, or its error, onto ``results``."""
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // barrier.parties))
    try:
        results.put((index, timed_run(cfg, device, capture, barrier)))
    except BaseException as error:  # noqa: BLE001 -- the parent reports it
        barrier.abort()  # the others stop waiting for this one
        results.put((index, {"error": f"{type(error).__name__}: {error}"[:2000]}))


def runs_at_once(cfg: GpuBenchConfig, device, capture: bool, k: int) -> list[dict]:
    """``k`` timed runs, each in a spawned process of its own (its own CUDA context),
    released together by a barrier after their set-up. Raises RuntimeError with the first
    worker's error, or when one is not done in time; no worker outlives the call."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(k), context.Queue()
    workers = [context.Process(target=_worker, daemon=True,
                               args=(cfg, str(device), capture, barrier, results, i))
               for i in range(k)]
    for worker in workers:
        worker.start()
    done: dict[int, dict] = {}
    try:
        while len(done) < k:
            index, result = results.get(timeout=READY_TIMEOUT_S + cfg.seconds + 60)
            done[index] = result
    except queue.Empty:
        raise RuntimeError(f"{k - len(done)} of {k} runs not done in time: taken as hung")
    finally:
        for worker in workers:
            worker.kill()
            worker.join(timeout=10)
    errors = [r["error"] for r in done.values() if "error" in r]
    if errors:
        raise RuntimeError(errors[0])
    return [done[i] for i in range(k)]


def check(losses: list, reference: list | None, tolerance: float) -> dict:
    """A run's first losses against eager's: the largest difference and whether it passes."""
    if reference is None:
        return {"ok": None, "note": "the reference"}
    diff = max(abs(a - b) for a, b in zip(losses, reference))
    return {"ok": diff <= tolerance, "max_abs_diff": diff, "tolerance": tolerance}


def single_run_variant(cfg, device, capture: bool, reference: list | None) -> dict:
    run = timed_run(cfg, device, capture)
    return {"status": "ok", **{k: run[k] for k in ("canvases_per_s", "ms_per_step", "setup_s",
                                                   "steps", "captured", "losses")},
            "check": check(run["losses"], reference, cfg.loss_tolerance)}


def several_runs_variant(cfg, device, capture: bool, k: int, reference: list,
                         single: float) -> dict:
    runs = runs_at_once(cfg, device, capture, k)
    rates = [r["canvases_per_s"] for r in runs]
    checks = [check(r["losses"], reference, cfg.loss_tolerance) for r in runs]
    overlap = (min(r["end"] for r in runs) - max(r["start"] for r in runs)) / \
        (max(r["end"] for r in runs) - min(r["start"] for r in runs))
    return {"status": "ok", "runs": k, "per_run_canvases_per_s": rates,
            "canvases_per_s": sum(rates), "vs_one_graphed_run": sum(rates) / single,
            "ms_per_step": cfg.batch_size / sum(rates) * 1e3,  # one step of any of the k
            "windows_overlap": max(0.0, overlap), "captured": capture,
            "setup_s": max(r["setup_s"] for r in runs),
            "check": {"ok": all(c["ok"] for c in checks),
                      "max_abs_diff": max(c["max_abs_diff"] for c in checks)},
            "mps_pipe": os.environ.get("CUDA_MPS_PIPE_DIRECTORY")}


def summarize(variants: dict) -> dict:
    """Each timed variant's speed against eager and the paper's run projected at its rate (per
    model, for a variant of several runs); the graphed variant against the target."""
    eager = variants.get("eager", {}).get("canvases_per_s")
    for variant in variants.values():
        if variant.get("status") == "ok":
            per_model = variant["canvases_per_s"] / variant.get("runs", 1)
            variant["vs_eager"] = variant["canvases_per_s"] / eager if eager else None
            variant["projected_min"] = PAPER_EPOCHS * PAPER_CANVASES / per_model / 60
            variant["projected_min_with_setup"] = (variant["projected_min"]
                                                   + variant["setup_s"] / 60)
    graphed = variants.get("graphed", {})
    if graphed.get("status") != "ok" or graphed["check"]["ok"] is False:
        return {"best": "eager" if eager else None, "meets_target": False}
    return {"best": "graphed", "canvases_per_s": graphed["canvases_per_s"],
            "vs_eager": graphed["vs_eager"], "projected_min": graphed["projected_min"],
            "target_minutes": TARGET_MINUTES,
            "meets_target": graphed["projected_min"] <= TARGET_MINUTES}


def header(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {"device": torch.cuda.get_device_name(device) if cuda else
            f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)",
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": os.environ.get("POSINFO_COMMIT")}


def gpu_bench(cfg: GpuBenchConfig = GpuBenchConfig(), device=None, json_path=None,
              log=print) -> dict:
    """Every variant in one run, each recorded (a variant that fails records its error and
    the rest go on), the JSON rewritten after each."""
    device = pick_device(device)
    capture = device.type == "cuda"
    result = {"header": header(device), "config": asdict(cfg), "variants": {}}
    variants = result["variants"]
    plan = [("eager", lambda: single_run_variant(cfg, device, False, None)),
            ("graphed", lambda: single_run_variant(cfg, device, capture,
                                                   variants["eager"]["losses"]))]
    plan += [(f"{k} graphed runs at once", lambda k=k: several_runs_variant(
        cfg, device, capture, k, variants["eager"]["losses"],
        variants["graphed"]["canvases_per_s"]))
        for k in cfg.concurrency]
    log(" | ".join(f"{k} {v}" for k, v in result["header"].items()), flush=True)
    for name, variant in plan:
        try:
            variants[name] = variant()
        except Exception as error:  # noqa: BLE001 -- recorded, the next variant runs
            variants[name] = {"status": "error",
                              "error": f"{type(error).__name__}: {error}"[:2000],
                              "traceback": traceback.format_exc()[-4000:]}
        result["summary"] = summarize(variants)
        log(f"{name}: " + (f"{variants[name]['canvases_per_s']:.0f} canvases/s"
                           if variants[name]["status"] == "ok" else variants[name]["error"]),
            flush=True)
        if json_path:
            with open(json_path, "w") as f:
                json.dump(result, f, indent=1, default=str)
    return result


def gpu_report(result: dict) -> str:
    rows = {name: {"canvases/s": round(variant["canvases_per_s"]),
                   "vs eager": variant["vs_eager"],
                   "setup s": variant["setup_s"], "20 ep min": variant["projected_min"],
                   "check": {None: "-", True: "ok", False: "FAILED"}[variant["check"]["ok"]],
                   "at once": variant.get("runs", 1)}
            for name, variant in result["variants"].items() if variant["status"] == "ok"}
    lines = [format_table(rows, index="variant", digits=2)]
    lines += [f"  {name}: {variant['error']}" for name, variant in result["variants"].items()
              if variant["status"] != "ok"]
    lines += [f"  {name}: {variant['vs_one_graphed_run']:.2f}x one graphed run, windows overlap "
              f"{variant['windows_overlap']:.0%}" for name, variant in result["variants"].items()
              if variant["status"] == "ok" and "runs" in variant]
    s = result["summary"]
    if s.get("best") == "graphed":
        lines.append(f"graphed: {s['vs_eager']:.2f}x eager -> the paper's run ({PAPER_EPOCHS} x "
                     f"{PAPER_CANVASES:,} canvases) in {s['projected_min']:.2f} min (target "
                     f"{TARGET_MINUTES:g} min: {'met' if s['meets_target'] else 'missed'})")
    return "\n".join(lines)


def main(quick: bool = False, json_path=None, concurrency: tuple | None = None) -> dict:
    """``python -m posinfo.tools.bench --gpu``: every variant, then the table; refuses to start
    without CUDA unless ``quick``."""
    if not quick and not torch.cuda.is_available():
        print("posinfo.tools.bench --gpu needs a CUDA GPU (torch.cuda.is_available() is "
              "False); --quick runs its code path on the CPU", file=sys.stderr)
        raise SystemExit(2)
    cfg = QUICK if quick else GpuBenchConfig()
    if concurrency is not None:
        cfg = replace(cfg, concurrency=tuple(concurrency))
    result = gpu_bench(cfg, json_path=json_path)
    print(gpu_report(result), flush=True)
    return result
