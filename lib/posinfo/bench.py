"""Speed benchmarks, printed as ratios measured in one run on one machine.

    python -m posinfo.bench              # canvases, training step, loop overhead (~2 min)
    python -m posinfo.bench --chapters   # + each chapter's time, training vs the rest (~15 min)
    python -m posinfo.bench --tests      # + README's test command, `make test`, timed (~5 min)
    python -m posinfo.bench --gpu [--json PATH] [--quick]
                                         # only the GPU section: the paper's CIFAR-10 location
                                         # run's training step, eager vs torch.compile vs CUDA
                                         # graphs (63 s of arms on an H200; --quick: tiny, any device)

Machines are noisy, so nothing here is asserted in a test; the README quotes the output
together with the machine it came from.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .canvas import flip_some, paste_in_cells, place_on_canvas
from .models import build_classifier
from .settings import chapter_settings
from .tables import format_table
from .train import autocast, pick_device, prepare_model, to_device


def _best_of(fn, repeats=5):
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

    batched = lambda: place_on_canvas(images, cells, grid)
    check_same("loop", loop(), batched())
    check_same("reference loop", reference_loop(), batched())
    return {"batched": _best_of(batched), "loop": _best_of(loop),
            "reference loop": _best_of(reference_loop),
            "zero-fill floor": _best_of(lambda: torch.zeros(n, 1, side, side))}


def matmul_gflops(n=1024, repeats=10):
    """The machine's fp32 matmul rate: the ceiling a conv net's training step can approach."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    t = _best_of(lambda: [a @ b for _ in range(repeats)], repeats=3)
    return 2 * n ** 3 * repeats / t / 1e9


def _chapter1_model(settings):
    """The chapter-1 location classifier the settings describe, with seeded weights."""
    torch.manual_seed(0)
    return build_classifier(1, settings.grid ** 2, settings.width, settings.blocks,
                            settings.padding, settings.head)


def training_throughput(settings, batch_size=64, steps=10, compile: str = "off",
                        threads: int | None = None):
    """Images/s of one training step of the chapter-1 model, its achieved GFLOP/s, and the
    seconds the first step took (compilation, when ``compile`` names a backend)."""
    canvas = settings.image_size * settings.grid
    model = _chapter1_model(settings)
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
    saved = torch.get_num_threads()
    torch.set_num_threads(threads or saved)
    try:
        if compile != "off":
            model.compile(backend=compile)
        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        t = _best_of(lambda: [step() for _ in range(steps)], repeats=3) / steps
    finally:
        torch.set_num_threads(saved)
        torch._dynamo.reset()
    return batch_size / t, flops / t / 1e9, first


def loop_overhead(settings, n_images=640, batch_size=64):
    """Images/s of the library's ``fit`` against a bare PyTorch loop doing the same work:
    the same model, optimizer, canvases (batched place_on_canvas) and batches."""
    from .canvas import CanvasTask, ImageSet
    from .train import fit

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
            loss = F.cross_entropy(model(x), cells[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

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

    from .cache import CACHE_ENV
    from .run import chapter_sources, execute, largest_kernel_mb
    from .settings import PROFILE_ENV

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


# ---- GPU section: the paper's CIFAR-10 location run, eager vs compile vs CUDA graphs -------
# The paper's own run: 20 epochs of 50,000 CIFAR-10 canvases; the target for it.
PAPER_EPOCHS, PAPER_CANVASES, TARGET_MINUTES = 20, 50_000, 1.0


@dataclass(frozen=True)
class GpuBenchConfig:
    """The training step the GPU section times; the default is the paper's CIFAR-10 run
    (ResNet-18 width, GAPNet head, 32 px images on a 3x3 grid, batch 48, Adam 1e-3 (0.5,
    0.999)). ``seconds``: timed steps per arm after warm-up; ``check_steps``: the first steps
    of every arm, whose losses are compared with eager's on the same batches from the same
    initial weights; ``budget_s``: an arm that would start too late to fit is skipped;
    ``deadline_s`` (default budget_s + 40): a hard stop, should an arm (a compilation) run
    long: the results so far are written and the process exits with status 3."""
    width: int = 64
    blocks: tuple = (2, 2, 2, 2)
    image_size: int = 32
    grid: int = 3
    batch_size: int = 48
    lr: float = 1e-3
    betas: tuple = (0.5, 0.999)
    hflip: bool = True  # the paper profile's random horizontal flips (drawn per image, epoch)
    pool: int = 50_000
    seconds: float = 2.0
    check_steps: int = 6
    loss_tolerance: float = 0.05
    budget_s: float = 140.0
    deadline_s: float | None = None
    cpu_compile_backend: str = "aot_eager"  # on CPU: traces, no code generation


# --quick: a tiny net on a tiny canvas, a fraction of a second per arm (tests, dry runs).
QUICK = GpuBenchConfig(width=4, blocks=(1, 1, 1, 1), image_size=8, batch_size=8, pool=40,
                       seconds=0.05, check_steps=3)

# In the order they run.
ARMS = {
    "eager": "fit's step (zero_grad, forward + cross-entropy under bf16 autocast, backward, "
             "Adam (foreach) step, loss summed on the device), channels_last, canvases built "
             "on the device from a device pool: no host sync per step",
    "eager, fused Adam": "the same step with Adam(fused=True)",
    "library fit": "posinfo.train.fit itself: batch order, cells and flips drawn on the CPU "
                   "and copied over at every step; Adam (foreach)",
    "CUDA graph (manual)": "the whole step (canvases, forward, loss, backward, fused Adam with "
                           "capturable=True) captured once with torch.cuda.graph, then replayed",
    "compile": "model.compile() (inductor, default mode), fused Adam",
    "compile, reduce-overhead": "model.compile(mode='reduce-overhead'): inductor + CUDA graphs "
                                "of forward and backward, fused Adam",
}
# Seconds an arm needs at least (compilation dominates); an arm that would start later than
# budget_s minus this is skipped, so the section ends inside its budget.
_ARM_NEEDS_S = {"compile": 45.0, "compile, reduce-overhead": 30.0}


def projected_seconds(canvases_per_s: float, epochs: int = PAPER_EPOCHS,
                      canvases: int = PAPER_CANVASES) -> float:
    """Seconds of training for ``epochs`` epochs of ``canvases`` canvases at a given rate."""
    return epochs * canvases / canvases_per_s


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


class _Bench:
    """What every arm shares: config, device, data, the clock and eager's reference losses."""

    def __init__(self, cfg: GpuBenchConfig, device: torch.device, started: float | None = None):
        self.cfg, self.device, self.cuda = cfg, device, device.type == "cuda"
        self.started = time.perf_counter() if started is None else started
        gen = torch.Generator(device=device).manual_seed(0)
        self.pool = torch.rand(cfg.pool, 3, cfg.image_size, cfg.image_size, generator=gen,
                               device=device)
        self.stream = CanvasStream(self.pool, cfg.grid, cfg.batch_size, hflip=cfg.hflip)
        self.reference = None  # eager's first losses

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def fresh(self, **adam):
        """The paper's classifier with seeded weights (the same in every arm), and Adam."""
        cfg = self.cfg
        torch.manual_seed(0)
        model = build_classifier(3, cfg.grid ** 2, cfg.width, cfg.blocks, "zeros", "gapnet")
        prepare_model(model, self.device).train()
        return model, torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, **adam)

    def check(self, losses) -> dict:
        losses = [float(v) for v in losses]
        if self.reference is None:
            return {"losses": losses, "ok": None, "note": "no eager reference"}
        diff = max(abs(a - b) for a, b in zip(losses, self.reference))
        return {"losses": losses, "eager": self.reference, "max_abs_diff": diff,
                "tolerance": self.cfg.loss_tolerance, "ok": diff <= self.cfg.loss_tolerance}

    def timed(self, step, first_s: float, check: dict) -> dict:
        """Steady state: a calibration of 3 steps sizes a window of ``cfg.seconds``."""
        cfg = self.cfg
        self.sync()
        start = time.perf_counter()
        for _ in range(3):
            step()
        self.sync()
        per = (time.perf_counter() - start) / 3
        n = max(3, int(cfg.seconds / per))
        self.stream.total.zero_()
        self.sync()
        start = time.perf_counter()
        for _ in range(n):
            step()
        self.sync()
        per = (time.perf_counter() - start) / n
        return {"status": "ok", "canvases_per_s": cfg.batch_size / per, "ms_per_step": per * 1e3,
                "steps_timed": n, "setup_s": max(0.0, first_s - cfg.check_steps * per),
                "loss_window": float(self.stream.total) / n, "check": check}

    def step_arm(self, model, opt, amp, mark_step=False) -> dict:
        """Time the training step of ``model`` (eager or compiled): the step fit takes, with
        the loss summed on the device instead of read back."""
        stream = self.stream

        def step():
            if mark_step:
                torch.compiler.cudagraph_mark_step_begin()
            # zero_grad first (fit does it after the forward: the same arithmetic): under
            # reduce-overhead the gradients are graph outputs, dropped before the next replay
            opt.zero_grad(set_to_none=True)
            x, y = stream.batch()
            with amp():
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            stream.total.add_(loss.detach())
            return loss

        stream.reset()
        self.sync()
        start = time.perf_counter()
        losses = [step().detach().clone() for _ in range(self.cfg.check_steps)]
        self.sync()
        first = time.perf_counter() - start
        return self.timed(step, first, self.check(losses))


def _arm_eager(b: _Bench, **adam) -> dict:
    model, opt = b.fresh(**adam)
    result = b.step_arm(model, opt, lambda: autocast(b.device))
    if not adam:
        b.reference = result["check"]["losses"]
        result["check"] = {"losses": b.reference, "ok": None, "note": "the reference"}
    return result


def _arm_library_fit(b: _Bench) -> dict:
    """posinfo.train.fit itself, on a task over the same device pool: what the book runs.
    A first epoch of ``check_steps`` batches warms it up and sizes the timed epoch."""
    from .canvas import CanvasTask, ImageSet
    from .train import fit

    cfg = b.cfg
    labels = torch.zeros(len(b.pool), dtype=torch.long, device=b.device)

    def run(n_batches):
        n = min(n_batches * cfg.batch_size, len(b.pool))
        images = ImageSet(b.pool[:n], labels[:n], 10)
        b.sync()
        start = time.perf_counter()
        task = CanvasTask(images, images, cfg.grid, **({"hflip": True} if cfg.hflip else {}))
        history = fit(model, task, epochs=1,
                      batch_size=cfg.batch_size, lr=cfg.lr, betas=cfg.betas,
                      generator=torch.Generator().manual_seed(0), device=b.device)
        b.sync()
        return time.perf_counter() - start, n, history

    model, _ = b.fresh()
    first, n_first, _ = run(cfg.check_steps)
    seconds, n, history = run(max(3, int(n_first / first * cfg.seconds / cfg.batch_size)))
    rate = n / seconds
    return {"status": "ok", "canvases_per_s": rate, "ms_per_step": cfg.batch_size / rate * 1e3,
            "steps_timed": -(-n // cfg.batch_size),
            "setup_s": max(0.0, first - cfg.check_steps * cfg.batch_size / rate),
            "loss_window": history[0],
            "check": {"ok": None, "note": "its own batches (CPU generator): not comparable"}}


def _arm_compile(b: _Bench, mode: str | None) -> dict:
    torch._dynamo.reset()
    model, opt = b.fresh(fused=True)
    if b.cuda:
        model.compile(mode=mode)
    else:
        model.compile(backend=b.cfg.cpu_compile_backend)
    try:
        from torch._dynamo.utils import counters
        skips_before = counters["inductor"]["cudagraph_skips"]
    except Exception:  # counters moved: the note is lost, not the timing
        counters, skips_before = None, 0
    result = b.step_arm(model, opt, lambda: autocast(b.device),
                        mark_step=mode == "reduce-overhead")
    result["backend"] = "inductor" if b.cuda else b.cfg.cpu_compile_backend
    if mode == "reduce-overhead" and counters is not None:
        skips = counters["inductor"]["cudagraph_skips"] - skips_before
        result["cudagraph_skips"] = skips
        if skips:
            result["note"] = f"inductor skipped CUDA graphs {skips} time(s): not graphed"
    torch._dynamo.reset()
    return result


def _arm_cuda_graph(b: _Bench, capture: bool = True) -> dict:
    """The whole step captured once: canvases from the device tables (graph_batch), bf16
    forward, loss, backward and fused capturable Adam; then replayed. The warm-up that
    capture needs changes the weights, so they, the BN statistics, the Adam state and the
    data are reset in place before the check, which replays from eager's start and compares
    the inputs (exactly) and the losses with eager's. ``capture=False`` runs the same body,
    warm-up and reset eagerly: what a CPU test can check."""
    cfg, stream = b.cfg, b.stream
    model, opt = b.fresh(fused=True, capturable=capture)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    # autocast's weight-cast cache must be off under capture (torch.cuda.graph's docs)
    amp = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False))
           if b.cuda else (lambda: autocast(b.device)))

    def body():
        x, y = stream.graph_batch()
        with amp():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        stream.total.add_(loss.detach())
        return x, loss

    b.sync()
    start = time.perf_counter()
    stream.reset()
    if capture:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side) if capture else contextlib.nullcontext():
        for _ in range(3):  # warm-up (off the default stream, as capture requires)
            stream.advance()
            opt.zero_grad(set_to_none=True)
            body()
    if capture:
        torch.cuda.current_stream().wait_stream(side)
        opt.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static = body()  # replays write new values into these same tensors
        replay = graph.replay
    else:
        static = [None, None]

        def replay():
            opt.zero_grad(set_to_none=True)
            static[:] = body()
    with torch.no_grad():  # back to the start: weights, BN statistics, Adam state, data
        for k, v in model.state_dict().items():
            v.copy_(initial[k])
        for state in opt.state.values():
            for v in state.values():
                if torch.is_tensor(v):
                    v.zero_()
    stream.reset()

    def step():
        stream.advance()
        replay()

    inputs, losses = [], []
    for _ in range(cfg.check_steps):
        step()
        inputs.append(static[0].clone())
        losses.append(static[1].detach().clone())
    b.sync()
    first = time.perf_counter() - start
    check = b.check(losses)
    stream.reset()
    same = all(torch.equal(x, stream.batch()[0]) for x in inputs)
    check["inputs_equal_eager"] = same
    if not same:
        check["ok"] = False
    check["captured"] = capture
    result = b.timed(step, first, check)
    del replay, static
    return result


def _skip_reason(name: str, b: _Bench) -> str | None:
    if not b.cuda and name in ("CUDA graph (manual)", "compile, reduce-overhead"):
        return "needs CUDA"
    need = _ARM_NEEDS_S.get(name, 5.0)
    if b.elapsed() > b.cfg.budget_s - need:
        return (f"over the time budget: {b.elapsed():.0f} s of {b.cfg.budget_s:.0f} s used, "
                f"the arm needs about {need:.0f} s")
    return None


def gpu_header(device: torch.device) -> dict:
    from datetime import datetime

    cuda = device.type == "cuda"
    return {"device": torch.cuda.get_device_name(device) if cuda else f"CPU ({platform.machine()}, "
            f"{torch.get_num_threads()} threads)",
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "python": platform.python_version(),
            "date": datetime.now().astimezone().isoformat(timespec="seconds")}


def gpu_bench(cfg: GpuBenchConfig = GpuBenchConfig(), device=None, json_path=None,
              log=print) -> dict:
    """Canvases/s of the paper's training step in every arm (ARMS), measured in one run;
    the projected minutes of the paper's run (20 x 50,000 canvases) at each rate; the best
    arm against TARGET_MINUTES. An arm that fails records its error and the rest go on; the
    JSON (``json_path``) is rewritten after every arm, so a run cut short keeps what it had."""
    import threading

    started = time.perf_counter()
    device = pick_device(device)
    result = {"header": gpu_header(device), "config": asdict(cfg),
              "paper_run": {"epochs": PAPER_EPOCHS, "canvases_per_epoch": PAPER_CANVASES,
                            "target_minutes": TARGET_MINUTES},
              "arms": {}}

    def save():
        if json_path:
            with open(json_path, "w") as f:
                json.dump(result, f, indent=1, default=str)

    deadline = cfg.budget_s + 40 if cfg.deadline_s is None else cfg.deadline_s
    running = {"arm": None}

    def stop():  # on a timer thread: the main thread is stuck in an arm
        try:
            name = running["arm"]
            if name is not None:
                result["arms"][name] = {
                    "status": "error", "what": ARMS[name],
                    "error": f"still running at the {deadline:.0f} s deadline: bench stopped"}
            result["summary"] = summarize(result["arms"])
            result["elapsed_s"] = time.perf_counter() - started
            result["stopped_at_deadline"] = name
            save()
            log(f"deadline of {deadline:.0f} s reached during {name!r}: stopped, results so "
                f"far in {json_path}", flush=True)
            log(gpu_report(result), flush=True)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(3)

    timer = threading.Timer(deadline, stop)
    timer.daemon = True
    timer.start()
    try:
        return _gpu_arms(cfg, device, result, save, log, started, running)
    finally:
        timer.cancel()


def _gpu_arms(cfg, device, result, save, log, started, running) -> dict:
    log(" | ".join(f"{k} {v}" for k, v in result["header"].items()), flush=True)
    b = _Bench(cfg, device, started)
    runs = {"eager": lambda: _arm_eager(b),
            "eager, fused Adam": lambda: _arm_eager(b, fused=True),
            "library fit": lambda: _arm_library_fit(b),
            "CUDA graph (manual)": lambda: _arm_cuda_graph(b),
            "compile": lambda: _arm_compile(b, None),
            "compile, reduce-overhead": lambda: _arm_compile(b, "reduce-overhead")}
    for name, run in runs.items():
        reason = _skip_reason(name, b)
        if reason:
            arm = {"status": "skipped", "reason": reason}
        else:
            log(f"[{b.elapsed():5.0f} s] {name} ...", flush=True)
            running["arm"] = name
            if b.cuda:
                torch.cuda.reset_peak_memory_stats(device)
            try:
                arm = run()
                if b.cuda:
                    arm["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
            except Exception as error:
                arm = {"status": "error", "error": f"{type(error).__name__}: {error}"[:2000],
                       "traceback": traceback.format_exc()[-4000:]}
            running["arm"] = None
            gc.collect()
            if b.cuda:
                torch.cuda.empty_cache()
        arm["what"] = ARMS[name]
        result["arms"][name] = arm
        log(f"[{b.elapsed():5.0f} s] {name}: " + _arm_line(arm), flush=True)
        save()
    result["summary"] = summarize(result["arms"])
    result["elapsed_s"] = b.elapsed()
    save()
    return result


def _arm_line(arm: dict) -> str:
    if arm["status"] != "ok":
        return f"{arm['status']}: {arm.get('reason') or arm.get('error')}"
    ok = arm["check"].get("ok")
    return (f"{arm['canvases_per_s']:.0f} canvases/s ({arm['ms_per_step']:.2f} ms/step), setup "
            f"{arm['setup_s']:.1f} s, check {'-' if ok is None else 'ok' if ok else 'FAILED'}"
            + (f"; {arm['note']}" if arm.get("note") else ""))


def summarize(arms: dict) -> dict:
    """Adds projections and ratios to every timed arm, in place; returns the best arm
    against the target (only arms whose loss check did not fail count)."""
    eager = arms.get("eager", {}).get("canvases_per_s")
    for arm in arms.values():
        if arm.get("status") == "ok":
            seconds = projected_seconds(arm["canvases_per_s"])
            arm["projected_min"] = seconds / 60
            arm["projected_min_with_setup"] = (seconds + arm["setup_s"]) / 60
            arm["vs_eager"] = arm["canvases_per_s"] / eager if eager else None
    valid = {k: a for k, a in arms.items()
             if a.get("status") == "ok" and a["check"].get("ok") is not False}
    if not valid:
        return {"best": None, "meets_target": False}
    best = max(valid, key=lambda k: valid[k]["canvases_per_s"])
    minutes = valid[best]["projected_min"]
    return {"best": best, "canvases_per_s": valid[best]["canvases_per_s"],
            "projected_min": minutes, "vs_eager": valid[best]["vs_eager"],
            "target_minutes": TARGET_MINUTES, "meets_target": minutes <= TARGET_MINUTES,
            "target_over_projected": TARGET_MINUTES / minutes}


def gpu_table(result: dict) -> str:
    rows = {}
    for name, arm in result["arms"].items():
        if arm["status"] != "ok":
            rows[name] = {"status": arm["status"]}
            continue
        ok = arm["check"].get("ok")
        rows[name] = {"canvases/s": round(arm["canvases_per_s"]),
                      "ms/step": arm["ms_per_step"], "setup s": arm["setup_s"],
                      "vs eager": arm["vs_eager"], "20 ep min": arm["projected_min"],
                      "+ setup": arm["projected_min_with_setup"],
                      "check": "-" if ok is None else "ok" if ok else "FAILED",
                      "status": "ok"}
    return format_table(rows, index="arm", digits=2)


def gpu_report(result: dict) -> str:
    cfg, s = result["config"], result["summary"]
    lines = [f"the step timed (the paper's unless --quick): width {cfg['width']}, blocks "
             f"{tuple(cfg['blocks'])}, {cfg['image_size'] * cfg['grid']} px canvases, batch "
             f"{cfg['batch_size']}, flips {cfg['hflip']}, bf16 autocast + channels_last on CUDA",
             gpu_table(result)]
    for name, arm in result["arms"].items():
        if arm["status"] != "ok":
            lines.append(f"  {name}: {arm.get('reason') or arm.get('error')}")
        elif arm.get("note"):
            lines.append(f"  {name}: {arm['note']}")
    if s["best"] is None:
        lines.append("no arm ran")
    else:
        lines.append(f"best: {s['best']}, {s['canvases_per_s']:.0f} canvases/s, "
                     f"{s['vs_eager'] or float('nan'):.2f}x eager -> the paper's run "
                     f"({PAPER_EPOCHS} x {PAPER_CANVASES:,} canvases) in "
                     f"{s['projected_min']:.2f} min; target {TARGET_MINUTES:g} min: "
                     f"{'met' if s['meets_target'] else 'missed'} "
                     f"({s['target_over_projected']:.2f}x the needed speed)")
    return "\n".join(lines)


def gpu_main(quick: bool = False, json_path=None, budget_s: float | None = None) -> dict:
    if not quick and not torch.cuda.is_available():
        print("posinfo.bench --gpu needs a CUDA GPU (torch.cuda.is_available() is False); "
              "--quick runs its code path on the CPU", file=sys.stderr)
        raise SystemExit(2)
    cfg = QUICK if quick else GpuBenchConfig()
    if budget_s is not None:
        cfg = replace(cfg, budget_s=budget_s)
    result = gpu_bench(cfg, json_path=json_path)
    print(gpu_report(result), flush=True)
    return result


def main(argv=None):
    import argparse

    os.environ.setdefault("POSINFO_PROGRESS", "off")  # no progress bars between the lines

    parser = argparse.ArgumentParser(prog="python -m posinfo.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chapters", action="store_true",
                        help="also time every chapter at the default profile, cold and warm")
    parser.add_argument("--keep", metavar="DIR",
                        help="with --chapters: keep the executed notebooks and cache in DIR")
    parser.add_argument("--tests", action="store_true",
                        help="also time README's test command, `make test` (about 5 min)")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the torch.compile measurement (about a minute on CPU)")
    parser.add_argument("--gpu", action="store_true",
                        help="only the GPU section: the paper's training step, eager vs "
                             "torch.compile vs CUDA graphs (needs CUDA unless --quick)")
    parser.add_argument("--json", metavar="PATH", help="with --gpu: write the results here")
    parser.add_argument("--quick", action="store_true",
                        help="with --gpu: a tiny model, a fraction of a second per arm (tests)")
    parser.add_argument("--budget", type=float, metavar="S",
                        help="with --gpu: skip arms that would start too late to end within "
                             "S seconds (default 140)")
    args = parser.parse_args(argv)
    if (args.json or args.quick or args.budget is not None) and not args.gpu:
        parser.error("--json, --quick and --budget go with --gpu")
    if args.gpu:
        gpu_main(args.quick, args.json, args.budget)
        return
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
    if not args.no_compile:
        compiled, _, first = training_throughput(settings, compile="inductor")
        print(f"  torch.compile (inductor): {compiled:.0f} images/s ({compiled / images_s:.2f}x "
              f"eager) after {first:.0f} s of compilation")
    lib_rate, bare_rate = loop_overhead(settings)
    print(f"posinfo.train.fit vs a bare PyTorch loop (same model, canvases, batches): "
          f"{lib_rate:.0f} vs {bare_rate:.0f} images/s -> the library loop runs at "
          f"{lib_rate / bare_rate:.0%} of the bare loop's speed")
    if args.chapters:
        rows = chapter_time_shares(keep=args.keep)
        peak_mb = rows.pop()["peak_mb"]
        print("chapters at the default profile, empty model cache (seconds and share of wall):")
        for r in rows:
            print(f"  {r['chapter']:<24} {r['wall']:6.0f} s: training {r['training'] / r['wall']:4.0%}, "
                  f"evaluation/probes/figures {r['evaluation'] / r['wall']:4.0%}, "
                  f"kernel start-up {r['start-up'] / r['wall']:4.0%}")
        total = sum(r["wall"] for r in rows)
        train = sum(r["training"] for r in rows)
        print(f"  whole book {total / 60:.1f} min, {train / total:.0%} of it training; "
              f"largest kernel {peak_mb:.0f} MB resident (budget: {BOOK_BUDGET_MIN} min)")
    if args.tests:
        minutes, code = test_command_minutes()
        print(f"make test: {minutes:.1f} min, exit status {code} (budget: {TESTS_BUDGET_MIN} "
              f"min; the venv and Chromium already installed)")


# What DEVELOPERS.md allows on a 2-core CPU: the whole book from an empty cache, and README's
# test command.
BOOK_BUDGET_MIN, TESTS_BUDGET_MIN = 20, 6


def test_command_minutes() -> tuple[float, int]:
    """Wall-clock minutes of README's test command (`make test`, run as it is, so the bench
    times exactly what CI runs) and its exit status."""
    import subprocess
    from .run import REPO

    started = time.perf_counter()
    done = subprocess.run(["make", "test"], cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    return (time.perf_counter() - started) / 60, done.returncode


if __name__ == "__main__":
    main()
