"""The check of train.fit's graphed loop (posinfo.graphed) that only a GPU can run, in one call:

    PYTHONPATH=lib python -m posinfo.tools.bench.gpu_check --json OUT/graph_check.json

For every kind of training the book does on a GPU (the location and class tasks, blank and
noise backgrounds with flips, AugShift's two views with BlurPool, PermuteNet, the segmenter):

1. **capture**: the loop captured as a CUDA graph and the same loop run eagerly (capture off)
   train from the same weights on the same batches; their losses must agree step by step
   (``--tolerance``, bf16; the eager run uses foreach Adam, the graph fused capturable Adam);
2. **fit**: ``train.fit`` itself for two epochs, graphed and with POSINFO_GRAPH=off: that it
   took the graphed path, called on_epoch_end after each epoch, and how much faster it was
   end to end (capture included).

The next GPU session runs it first, then the bench (``python -m posinfo.tools.bench
--gpu``, whose graphed variant times this loop against eager): the Reproduce page's commands.

The segmenter's head has dropout: its captured and eager runs draw their masks from the same
generator state, but if only that case differs, look there before at the graph.

Exit status 1 when a check fails. ``--cpu`` runs the same code on the CPU with tiny models,
both runs uncaptured: it checks this script, not the graph (tests/tools/test_bench.py).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback

import torch

from ...augshift import AugShiftLoss
from ...canvas import CanvasTask
from ...datasets import ImageSet
from ...graphed import Loop, use_graph
from ...models import build_classifier
from ...permute import add_channel_permutation
from ...scenes import make_scene_task
from ...segment import build_segmenter, segmentation_loss
from ...shifts import ShiftTask
from ...train import cross_entropy_loss, fit, seed_everything

# The gpu profile's shapes (settings: ResNet-18 at batch 48 on 32 px images, 3x3 grid; the
# AugShift margin 5 and shift 16; the segmenter on 96x192 scenes at batch 32), fewer images.
FULL = dict(side=32, n=480, width=64, blocks=(2, 2, 2, 2), batch=48, margin=5, shift=16,
            scenes=(96, 96, 192), seg_batch=32, head=256, rates=(12, 24, 36), blur_size=3)
TINY = dict(side=6, n=24, width=4, blocks=(1, 1), batch=8, margin=2, shift=2,
            scenes=(16, 16, 32), seg_batch=4, head=8, rates=(1, 2), blur_size=3)


def _images(n, side, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = ImageSet(torch.rand(n, 1, side, side, generator=g),
                      torch.randint(0, 10, (n,), generator=g), 10)
    return images.normalized((0.3,), (0.3,))


def cases(size: dict, device) -> dict:
    """{name: (model factory, task, loss_fn, batch_size)}."""
    images = _images(size["n"], size["side"]).to(device)

    def classifier(task, **kw):
        def build():
            return build_classifier(task.in_channels, task.num_outputs, size["width"],
                                    size["blocks"], "zeros", **kw)
        return build

    location = CanvasTask(images, images, 3, "location")
    noisy = CanvasTask(images, images, 3, "class", "noise", hflip=True)
    shifted = ShiftTask(images, images, size["margin"], size["shift"])
    permuted = CanvasTask(images, images, 3, "location")
    out = {"location, blank canvas": (classifier(location), location, cross_entropy_loss,
                                      size["batch"]),
           "class, noise background, flips": (classifier(noisy), noisy, cross_entropy_loss,
                                              size["batch"]),
           "AugShift lambda 1, two views": (classifier(shifted), shifted, AugShiftLoss(1.0),
                                            size["batch"])}
    try:
        import kornia  # noqa: F401  (BlurPool's filter; a wheel on the GPU machine)
        out["AugShift + BlurPool"] = (classifier(shifted, blur_size=size["blur_size"]), shifted,
                                      AugShiftLoss(1.0), size["batch"])
    except ImportError:
        pass
    last = len(size["blocks"]) + 1
    out["PermuteNet after GAP"] = (
        lambda: add_channel_permutation(classifier(permuted, head="gap_linear")(), last, 4),
        permuted, cross_entropy_loss, size["batch"])
    n, height, width = size["scenes"]
    scenes = make_scene_task(n, 4, height, width)
    out["segmenter (dropout)"] = (
        lambda: build_segmenter(scenes.num_classes, size["width"], size["blocks"], "zeros",
                                size["rates"], size["head"]),
        scenes, segmentation_loss, size["seg_batch"])
    return out


def loop_losses(build, task, loss_fn, batch_size, device, steps: int, capture: bool) -> list:
    """The per-step losses of ``steps`` steps of graphed.Loop from seeded weights."""
    seed_everything(0)
    model = build()
    torch.manual_seed(1)  # dropout's draws
    losses = []
    with Loop(model, task, batch_size=batch_size, lr=1e-3, betas=(0.5, 0.999),
              loss_fn=loss_fn, device=device, capture=capture) as loop:
        generator = torch.Generator(device=device).manual_seed(0)
        for i in range(steps):
            if i % loop.steps == 0:
                loop.new_epoch(generator)
            loop.step(generator)
            losses.append(loop.loss.detach().float().clone())
    return torch.stack(losses).tolist()


def timed_fit(build, task, loss_fn, batch_size, device, graph: str) -> dict:
    """Two epochs of train.fit with POSINFO_GRAPH=``graph``, timed end to end."""
    seed_everything(0)
    model = build()
    epochs_seen = []
    before = os.environ.get("POSINFO_GRAPH")
    os.environ["POSINFO_GRAPH"] = graph
    try:
        graphed = use_graph(torch.device(device), task)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        history = fit(model, task, epochs=2, batch_size=batch_size, lr=1e-3, betas=(0.5, 0.999),
                      generator=torch.Generator().manual_seed(0), loss_fn=loss_fn,
                      device=device, on_epoch_end=lambda e, m, h: epochs_seen.append(e))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    finally:
        if before is None:
            os.environ.pop("POSINFO_GRAPH", None)
        else:
            os.environ["POSINFO_GRAPH"] = before
    return {"graphed": graphed, "history": history, "on_epoch_end": epochs_seen,
            "seconds": seconds}


def check_case(name, case, device, steps: int, tolerance: float) -> dict:
    build, task, loss_fn, batch_size = case
    capture = device.type == "cuda"
    graph = loop_losses(build, task, loss_fn, batch_size, device, steps, capture)
    eager = loop_losses(build, task, loss_fn, batch_size, device, steps, False)
    diff = max(abs(a - b) for a, b in zip(graph, eager))
    fits = {mode: timed_fit(build, task, loss_fn, batch_size, device, mode)
            for mode in ("on", "off")}
    on = fits["on"]
    problems = []
    if not diff <= tolerance:
        problems.append(f"captured and eager losses differ by {diff:.4g} > {tolerance}")
    if capture and not on["graphed"]:
        problems.append("fit did not take the graphed path on CUDA")
    if on["on_epoch_end"] != [1, 2]:
        problems.append(f"on_epoch_end called after epochs {on['on_epoch_end']}, not [1, 2]")
    if not all(math.isfinite(v) for v in on["history"]):
        problems.append(f"non-finite loss history {on['history']}")
    return {"captured": capture, "losses_graph": graph, "losses_eager": eager,
            "max_abs_diff": diff, "tolerance": tolerance, "fit": fits,
            "fit_speedup": fits["off"]["seconds"] / on["seconds"],
            "ok": not problems, "problems": problems}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posinfo.tools.bench.gpu_check",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    parser.add_argument("--steps", type=int, default=12, help="steps compared (default 12)")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="largest allowed loss difference (default 0.05, the bench's)")
    parser.add_argument("--cpu", action="store_true",
                        help="tiny models on the CPU, uncaptured: checks the script only")
    args = parser.parse_args(argv)
    os.environ.setdefault("POSINFO_PROGRESS", "off")
    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check needs a CUDA GPU (torch.cuda.is_available() is False); --cpu runs "
              "its code path on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.cpu else "cuda")
    from .gpu import header

    result = {"header": header(device), "steps": args.steps, "cases": {}}
    for name, case in cases(TINY if args.cpu else FULL, device).items():
        started = time.perf_counter()
        try:
            row = check_case(name, case, device, args.steps, args.tolerance)
        except Exception as error:
            row = {"ok": False, "problems": [f"{type(error).__name__}: {error}"[:2000]],
                   "traceback": traceback.format_exc()[-4000:]}
        row["seconds"] = time.perf_counter() - started
        result["cases"][name] = row
        line = (f"{name}: {'ok' if row['ok'] else 'FAILED'} in {row['seconds']:.1f} s")
        if "max_abs_diff" in row:
            line += (f"; captured vs eager max |loss diff| {row['max_abs_diff']:.2g}; fit "
                     f"{row['fit']['on']['seconds']:.2f} s graphed, "
                     f"{row['fit']['off']['seconds']:.2f} s eager "
                     f"({row['fit_speedup']:.2f}x)")
        print(line + "".join(f"\n    {p}" for p in row["problems"]), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1, default=str)
    ok = all(row["ok"] for row in result["cases"].values())
    print("graph check: " + ("every case ok" if ok else "FAILED"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
