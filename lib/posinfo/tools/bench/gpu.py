"""The GPU bench: the training step of the paper's CIFAR-10 location run (ResNet-18, batch
48, 96 px canvases), timed in every arm of ``arms(cfg)`` in one run: eager, fused Adam, the
library's own ``fit``, the whole step captured as a CUDA graph by hand, K copies of the
library's graphed training at once, in K processes and on K CUDA streams (how much of the
GPU one run leaves idle: ``gpu_concurrent``), and torch.compile in two modes. Every arm
starts from the same weights on the same batches, and its first losses are checked against
eager's, so a faster arm that computes something else is caught.
(``python -m posinfo.tools.bench --gpu``; ``--quick`` runs the same code on a tiny net, on
any device.)
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

from ...graphed import restore_start
from ...models import build_classifier
from ...train import autocast, pick_device, prepare_model
from . import GPU_BUDGET_S, HARD_STOP_AFTER_BUDGET_S
from .common import train_step
from .gpu_concurrent import (READY_TIMEOUT_S, arm_name, arm_what, concurrent_arm, kill_workers,
                             streams_arm, streams_arm_name, streams_arm_what)
from .gpu_report import PAPER_CANVASES, PAPER_EPOCHS, TARGET_MINUTES, gpu_report, summarize
from .gpu_stream import CanvasStream


@dataclass(frozen=True)
class GpuBenchConfig:
    """The training step the GPU section times; the default is the paper's CIFAR-10 run
    (ResNet-18 width, GAPNet head, 32 px images on a 3x3 grid, batch 48, Adam 1e-3 (0.5,
    0.999)). ``seconds``: timed steps per arm after warm-up; ``check_steps``: the first steps
    of every arm, whose losses are compared with eager's on the same batches from the same
    initial weights; ``budget_s``: an arm that would start too late to fit is skipped;
    ``deadline_s`` (default: budget_s + HARD_STOP_AFTER_BUDGET_S): a hard stop, should an
    arm (a compilation) run long: the results so far are written and the process exits
    with status 3. ``concurrency``: an arm for each number of graphed runs trained at once,
    each in a process of its own (``gpu_concurrent``); 1 is the single run they are set
    against, measured the same way; and for each K > 1, an arm of K runs on K CUDA streams
    of the bench's process."""
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
    budget_s: float = GPU_BUDGET_S
    deadline_s: float | None = None
    cpu_compile_backend: str = "aot_eager"  # on CPU: traces, no code generation
    # An H200 with 16 CPU cores: 8 runs leave each two cores and about 1/8 of the GPU's
    # 139 GiB (a run needs about 2 GB with its context).
    concurrency: tuple = (1, 4, 8)

    def __post_init__(self):
        if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                   for k in self.concurrency):
            raise ValueError(f"concurrency must be a tuple of whole numbers of processes >= 1, "
                             f"e.g. (1, 4, 8), or () for none; got {self.concurrency!r}")

    def hard_stop_s(self) -> float:
        """Seconds after the start at which the bench stops itself, whatever still runs."""
        return self.budget_s + HARD_STOP_AFTER_BUDGET_S if self.deadline_s is None \
            else self.deadline_s


# --quick: a tiny net on a tiny canvas, a fraction of a second per arm (tests, dry runs).
# Two processes at once: the concurrent arms' code path, at the cost of two Python starts.
QUICK = GpuBenchConfig(width=4, blocks=(1, 1, 1, 1), image_size=8, batch_size=8, pool=40,
                       seconds=0.05, check_steps=3, concurrency=(2,))

# The arms of one model each, in the order they run; the concurrent arms run after the
# manual CUDA graph (see ``arms``).
ARMS = {
    "eager": "fit's step (zero_grad, forward + cross-entropy under bf16 autocast, backward, "
             "Adam (foreach) step, loss summed on the device), channels_last, canvases built "
             "on the device from a device pool: no host sync per step",
    "eager, fused Adam": "the same step with Adam(fused=True)",
    "library fit": "posinfo.train.fit's loop on CUDA (posinfo.graphed): the epoch's order, "
                   "cells and flips drawn on the device, the step (batch, bf16 forward, loss, "
                   "backward, fused capturable Adam) captured as a CUDA graph and replayed; "
                   "plus one epoch of fit itself timed end to end",
    "CUDA graph (manual)": "the whole step (canvases, forward, loss, backward, fused Adam with "
                           "capturable=True) captured once with torch.cuda.graph, then replayed",
    "compile": "model.compile() (inductor, default mode), fused Adam",
    "compile, reduce-overhead": "model.compile(mode='reduce-overhead'): inductor + CUDA graphs "
                                "of forward and backward, fused Adam",
}
# Seconds an arm needs at least (compilation dominates); an arm that would start later than
# budget_s minus this is skipped, so the section ends inside its budget.
_ARM_NEEDS_S = {"compile": 45.0, "compile, reduce-overhead": 30.0}


def _concurrent_needs_s(runs: int, streams: bool = False) -> float:
    """Seconds an arm of ``runs`` runs at once needs at least. In processes: each starts
    Python, imports torch, starts a CUDA context and captures its graph (about 10 s on an
    H200, the K processes side by side), then a window of cfg.seconds. On streams: K
    captures one after another (under a second each), then the window."""
    return 4.0 + runs / 2 if streams else 12.0 + runs


def arms(cfg: GpuBenchConfig) -> dict:
    """{arm: what it times} in the order the arms run: ARMS with, after the manual CUDA
    graph, an arm of processes for each entry of cfg.concurrency, then one of streams for
    each entry above 1."""
    names = list(ARMS)
    at = names.index("CUDA graph (manual)") + 1
    concurrent = {arm_name(k): arm_what(k) for k in cfg.concurrency}
    concurrent.update({streams_arm_name(k): streams_arm_what(k) for k in cfg.concurrency
                       if k > 1})
    return {**{k: ARMS[k] for k in names[:at]}, **concurrent,
            **{k: ARMS[k] for k in names[at:]}}


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

    def timed(self, step, first_s: float, check: dict, total=None) -> dict:
        """Steady state: a calibration of 3 steps sizes a window of ``cfg.seconds``;
        ``total``: the device tensor the step sums its losses into (default the stream's)."""
        cfg = self.cfg
        total = self.stream.total if total is None else total
        self.sync()
        start = time.perf_counter()
        for _ in range(3):
            step()
        self.sync()
        per = (time.perf_counter() - start) / 3
        n = max(3, int(cfg.seconds / per))
        total.zero_()
        self.sync()
        start = time.perf_counter()
        for _ in range(n):
            step()
        self.sync()
        per = (time.perf_counter() - start) / n
        return {"status": "ok", "canvases_per_s": cfg.batch_size / per, "ms_per_step": per * 1e3,
                "steps_timed": n, "setup_s": max(0.0, first_s - cfg.check_steps * per),
                "loss_window": float(total) / n, "check": check}

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
            return train_step(model, opt, x, y, amp, stream.total)

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


@contextlib.contextmanager
def library_loop(b: _Bench, model):
    """train.fit's own loop on CUDA (posinfo.graphed.Loop: the epoch drawn on the device,
    the step captured as a CUDA graph and replayed; on a CPU, the same loop uncaptured) for
    ``model``, on the stream's task with a device generator of the stream's seed: eager's
    batches. Yields (step, loop, losses): ``step()`` trains one step (a new epoch's draws
    when one ends; the loss sum goes on), ``losses`` the first cfg.check_steps losses."""
    from ...graphed import Loop
    from ...train import cross_entropy_loss

    cfg = b.cfg
    with Loop(model, b.stream.task, batch_size=cfg.batch_size, lr=cfg.lr, betas=cfg.betas,
              loss_fn=cross_entropy_loss, device=b.device, capture=b.cuda) as loop:
        generator = b.stream.generator()
        loop.new_epoch(generator)
        done = [0]

        def step():
            if done[0] == loop.steps:
                loop.batches.new_epoch(generator)
                done[0] = 0
            loop.step(generator)
            done[0] += 1

        losses = []
        for _ in range(cfg.check_steps):
            step()
            losses.append(loop.loss.detach().clone())
        yield step, loop, losses


def _arm_library_fit(b: _Bench) -> dict:
    """The library's loop (``library_loop``), its first losses checked against eager's,
    then timed. Then one epoch of ``fit`` itself, timed end to end (capture included), to
    show that fit takes this loop."""
    from ...graphed import use_graph

    cfg = b.cfg
    model, _ = b.fresh()
    b.sync()
    start = time.perf_counter()
    with library_loop(b, model) as (step, loop, losses):
        b.sync()
        first = time.perf_counter() - start
        check = b.check(losses)
        check["captured"] = b.cuda
        result = b.timed(step, first, check, total=loop.total)
        result["loss_window"] *= 1 / cfg.batch_size  # the loop sums batch_size x loss
    result["fit"] = _fit_end_to_end(b, result["canvases_per_s"])
    result["fit"]["graphed"] = use_graph(b.device, b.stream.task)
    return result


def _fit_end_to_end(b: _Bench, rate: float) -> dict:
    """One epoch of posinfo.train.fit on a pool subset sized to about cfg.seconds at
    ``rate``, timed from the call to its return (set-up and capture included)."""
    from ...canvas import CanvasTask, ImageSet
    from ...train import fit

    cfg = b.cfg
    n = int(min(len(b.pool), max(3 * cfg.batch_size, rate * cfg.seconds)))
    images = ImageSet(b.pool[:n], torch.zeros(n, dtype=torch.long, device=b.device), 10)
    task = CanvasTask(images, images, cfg.grid, hflip=cfg.hflip)
    model, _ = b.fresh()
    b.sync()
    start = time.perf_counter()
    history = fit(model, task, epochs=1, batch_size=cfg.batch_size, lr=cfg.lr, betas=cfg.betas,
                  generator=torch.Generator().manual_seed(0), device=b.device)
    b.sync()
    seconds = time.perf_counter() - start
    return {"canvases": n, "seconds": seconds, "canvases_per_s": n / seconds,
            "loss": history[0]}


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
        return x, train_step(model, opt, x, y, amp, stream.total)

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
    restore_start(model, opt, initial)  # back to the start: weights, BN statistics, Adam
    stream.reset()  # and the data

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
    replay = static = None  # the graph and its tensors go before the next arm
    return result


def _single(runs: int, done: dict) -> tuple | None:
    """(arm, canvases/s) of the one graphed run that an arm of ``runs`` runs at once is set
    against, from the arms ``done`` in this bench run: the 1-process arm, measured as the
    process arms are, else (for itself, or when it did not run) the library fit arm."""
    for name in (arm_name(1), "library fit"):
        arm = done.get(name, {})
        if name != arm_name(runs) and arm.get("status") == "ok":
            return name, arm["canvases_per_s"]
    return None


def _arm_concurrent(b: _Bench, runs: int, done: dict) -> dict:
    """``runs`` graphed runs at once in processes (gpu_concurrent.concurrent_arm), set
    against ``_single``. A worker not ready by the time the budget runs out is taken as
    hung."""
    left = b.cfg.budget_s - b.elapsed()
    return concurrent_arm(b, runs, _single(runs, done),
                          ready_timeout_s=min(READY_TIMEOUT_S, max(left, 30.0)))


def _skip_reason(name: str, b: _Bench, need: float | None = None) -> str | None:
    if not b.cuda and name in ("CUDA graph (manual)", "compile, reduce-overhead"):
        return "needs CUDA"
    need = _ARM_NEEDS_S.get(name, 5.0) if need is None else need
    if b.elapsed() > b.cfg.budget_s - need:
        return (f"over the time budget: {b.elapsed():.0f} s of {b.cfg.budget_s:.0f} s used, "
                f"the arm needs about {need:.0f} s")
    return None


def gpu_header(device: torch.device) -> dict:
    from datetime import datetime

    cuda = device.type == "cuda"
    cpu = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    return {"device": torch.cuda.get_device_name(device) if cuda else cpu,
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "python": platform.python_version(),
            "date": datetime.now().astimezone().isoformat(timespec="seconds"),
            "commit": os.environ.get("POSINFO_COMMIT")}  # gpu_book passes it in


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

    deadline = cfg.hard_stop_s()
    running = {"arm": None}

    def stop():  # on a timer thread: the main thread is stuck in an arm
        try:
            kill_workers()  # os._exit below would leave a concurrent arm's processes running
            name = running["arm"]
            if name is not None:
                result["arms"][name] = {
                    "status": "error", "what": arms(cfg)[name],
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
    needs = {}
    for k in cfg.concurrency:
        needs[arm_name(k)] = _concurrent_needs_s(k)
        runs[arm_name(k)] = lambda k=k: _arm_concurrent(b, k, result["arms"])
        if k > 1:
            needs[streams_arm_name(k)] = _concurrent_needs_s(k, streams=True)
            runs[streams_arm_name(k)] = lambda k=k: streams_arm(b, k,
                                                                _single(k, result["arms"]))
    for name, what in arms(cfg).items():
        run = runs[name]
        reason = _skip_reason(name, b, needs.get(name))
        if reason:
            arm = {"status": "skipped", "reason": reason}
        else:
            log(f"[{b.elapsed():5.0f} s] {name} ...", flush=True)
            running["arm"] = name
            if b.cuda:
                torch.cuda.reset_peak_memory_stats(device)
            try:
                arm = run()
                if b.cuda:  # a concurrent arm's is its processes', not this one's
                    arm.setdefault("peak_memory_mb",
                                   torch.cuda.max_memory_allocated(device) / 2 ** 20)
            except Exception as error:
                arm = {"status": "error", "error": f"{type(error).__name__}: {error}"[:2000],
                       "traceback": traceback.format_exc()[-4000:]}
            running["arm"] = None
            gc.collect()
            if b.cuda:
                torch.cuda.empty_cache()
        arm["what"] = what
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


def main(quick: bool = False, json_path=None, budget_s: float | None = None,
         concurrency: tuple | None = None) -> dict:
    """``python -m posinfo.tools.bench --gpu``: every arm, then the report; refuses to start
    without CUDA unless ``quick``. ``concurrency``: see GpuBenchConfig."""
    if not quick and not torch.cuda.is_available():
        print("posinfo.tools.bench --gpu needs a CUDA GPU (torch.cuda.is_available() is "
              "False); --quick runs its code path on the CPU", file=sys.stderr)
        raise SystemExit(2)
    cfg = QUICK if quick else GpuBenchConfig()
    if budget_s is not None:
        cfg = replace(cfg, budget_s=budget_s)
    if concurrency is not None:
        cfg = replace(cfg, concurrency=tuple(concurrency))
    result = gpu_bench(cfg, json_path=json_path)
    print(gpu_report(result), flush=True)
    return result

