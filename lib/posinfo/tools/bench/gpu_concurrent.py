"""The GPU bench's arms that train K models at once, each in a process of its own or each on
a CUDA stream of its own: how much of the GPU one graphed run at batch 48 leaves idle, and
how much of it K runs take up.

Why: the paper's ResNet-18 step at batch 48 is small for an H200, even replayed as a CUDA
graph (3.1 ms a step), and a chapter trains many independent runs (seeds, arms). Stacking
seeds in one vmapped step is not the way (16 seeds in one torch.func.vmap step reached 1.1x
of one eager model), so the runs are trained side by side instead: K copies of the library's
own graphed training (``gpu.library_loop``: graphed.Loop, what train.fit runs on CUDA), each
in a fresh Python process (subprocess: nothing of the bench's CUDA state inherited) with its
own CUDA context, allocator and host thread, so that no run waits for another's launches and
a crash stays in its process. Without MPS a GPU
time-slices between contexts instead of running their kernels side by side; the arm measures
what the machine gives, and records whether an MPS control pipe was found. The streams arm
(``streams_arm``) is the other way, measured in the same bench run: K copies of the loop in
the bench's own process, each graph replayed on a CUDA stream of its own, whose kernels can
run side by side without MPS; one host thread launches all K.

The protocol is one JSON line each way, through each worker's stdin and stdout. The parent
starts all K workers, then writes each its job (the bench config, device, index); each
worker builds the bench's data and model, captures the loop, runs the check steps (its first
losses, compared with eager's like every arm's) and a short calibration, says ``ready`` and
waits. When all K are ready the parent writes ``go`` to every one (the common start
barrier); each times its own window of cfg.seconds and says ``done`` with its canvases/s and
the window's start and end on the machine's monotonic clock, so the parent can tell how far
the windows overlapped. A worker that exits early, or is not ready or done in time, fails the
arm with an error that names it and ends with its stderr; the others are killed, never
waited for. The rate arithmetic is ``gpu_report.concurrent_rates``.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

# A worker's protocol lines start with this; anything else it prints is not read.
TAG = "posinfo-bench-worker "
WORKER_COMMAND = [sys.executable, "-c",
                  "from posinfo.tools.bench.gpu_concurrent import worker; "
                  "raise SystemExit(worker())"]
# Seconds. A worker imports torch, starts its CUDA context and captures its graph before it
# is ready (about 10 s on an H200); a worker that takes longer than this is taken as hung.
READY_TIMEOUT_S = 120.0
DONE_AFTER_WINDOW_S = 60.0  # allowed beyond its timed window for a worker to say done
# A worker syncs with the GPU every chunk of steps to read the clock: a chunk is this many
# seconds of steps alone, short enough that the K windows end together.
CHUNK_S = 0.02
STDERR_TAIL = 1500  # characters of a failed worker's stderr kept in the error

_live: set = set()  # the workers running now: killed at the bench's hard stop


class WorkerFailed(RuntimeError):
    """A worker exited, or was not ready or done in time: the arm fails with this."""


def arm_name(runs: int) -> str:
    return f"library fit, {runs} process{'es' if runs > 1 else ''}"


def streams_arm_name(runs: int) -> str:
    return f"library fit, {runs} streams"


def streams_arm_what(runs: int) -> str:
    return (f"{runs} copies of the library fit arm's loop in the bench's process, each "
            f"captured, then replayed on a CUDA stream of its own, launched in turn by one "
            f"host thread; canvases/s: all {runs} together")


def arm_what(runs: int) -> str:
    return (f"{runs} cop{'ies' if runs > 1 else 'y'} of the library fit arm's loop (graphed."
            f"Loop, captured on CUDA) started together, each in a spawned process of its own "
            f"(own CUDA context), each timed over the same window after its capture and a "
            f"common start barrier; canvases/s: the sum of the runs' rates")


def mps_control_found() -> bool:
    """Whether an MPS control daemon's pipe is where CUDA looks for it: with MPS, kernels of
    several processes can run side by side; without it the GPU time-slices between them."""
    pipes = os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")
    return os.path.exists(os.path.join(pipes, "control"))


def kill_workers(processes=None) -> None:
    """Kill ``processes`` (default: every worker still running) and reap them. The bench's
    hard stop calls this before it exits: a worker would otherwise outlive the bench,
    holding its share of the GPU."""
    for process in list(_live) if processes is None else processes:
        if process.poll() is None:
            process.kill()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass  # not reaped yet (a process stuck in the driver): killed all the same
        _live.discard(process)


def _say(**message) -> None:
    print(TAG + json.dumps(message), flush=True)


def worker(stdin=None) -> int:
    """A worker process (started by ``run_workers``): read the job, train and time the
    library's loop as the module docstring says, print ``ready`` and ``done`` lines."""
    started = time.monotonic()
    stdin = sys.stdin if stdin is None else stdin
    job = json.loads(stdin.readline())
    import torch

    from .gpu import GpuBenchConfig, _Bench, library_loop

    cfg = GpuBenchConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in job["config"].items()})
    torch.set_num_threads(job["threads"])
    b = _Bench(cfg, torch.device(job["device"]))
    model, _ = b.fresh()
    with library_loop(b, model) as (step, loop, losses):
        b.sync()
        start = time.perf_counter()
        for _ in range(3):  # a calibration, alone or beside the others' set-up
            step()
        b.sync()
        alone = (time.perf_counter() - start) / 3
        chunk = max(1, round(CHUNK_S / alone))
        _say(ready=True, index=job["index"], losses=[float(v) for v in losses],
             setup_s=time.monotonic() - started, ms_per_step_alone=alone * 1e3,
             captured=b.cuda)
        if stdin.readline().strip() != "go":  # the parent is gone: nothing to time for
            return 1
        loop.total.zero_()
        b.sync()
        steps, first = 0, time.monotonic()
        while True:
            for _ in range(chunk):
                step()
            b.sync()
            steps += chunk
            last = time.monotonic()
            if last - first >= cfg.seconds:
                break
        seconds = last - first
        done = {"index": job["index"], "steps": steps, "seconds": seconds, "start": first,
                "end": last, "canvases_per_s": steps * cfg.batch_size / seconds,
                "ms_per_step": seconds / steps * 1e3,
                "loss_window": float(loop.total) / (steps * cfg.batch_size),
                "peak_memory_mb": None, "device_memory_used_mb": None}
        if b.cuda:  # the peak over the process's life: its capture included
            free, total = torch.cuda.mem_get_info(b.device)
            done.update(peak_memory_mb=torch.cuda.max_memory_allocated(b.device) / 2 ** 20,
                        device_memory_used_mb=(total - free) / 2 ** 20)
    _say(done=True, **done)
    return 0


def _read(index: int, stream, events: queue.Queue) -> None:
    """A worker's stdout, on a thread: its protocol lines as (index, message), then
    (index, None) at the end of the stream."""
    for line in stream:
        if line.startswith(TAG):
            try:
                events.put((index, json.loads(line[len(TAG):])))
            except ValueError:
                pass  # a cut line: the worker's exit says what happened
    events.put((index, None))


def _stderr_tail(file) -> str:
    file.flush()
    file.seek(0)
    return file.read().decode(errors="replace")[-STDERR_TAIL:].strip()


def _collect(kind: str, events: queue.Queue, processes: list, errors: list, timeout_s: float,
             said: list, ended: set) -> list:
    """Wait until every worker has said ``kind`` (``ready`` or ``done``); a worker whose
    stdout ended without it (``ended``: the indices whose stdout ended), or none at all
    within ``timeout_s``, is a WorkerFailed."""
    n, deadline = len(processes), time.monotonic() + timeout_s
    while True:
        gone = [i for i in sorted(ended) if kind not in said[i]]
        if gone:
            try:
                status = processes[gone[0]].wait(timeout=10)
            except subprocess.TimeoutExpired:
                status = "unknown (still running)"
            tail = _stderr_tail(errors[gone[0]])
            last = tail.splitlines()[-1] if tail else "no output on stderr"
            raise WorkerFailed(f"worker {gone[0]} of {n} exited with status {status} before "
                               f"it was {kind}: {last}\n{tail}")
        if all(kind in s for s in said):
            return [dict(s) for s in said]
        try:
            index, message = events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            late = [i for i, s in enumerate(said) if kind not in s]
            raise WorkerFailed(f"worker(s) {late} of {n} not {kind} within {timeout_s:.0f} s: "
                               f"taken as hung and killed; stderr of worker {late[0]}:\n"
                               f"{_stderr_tail(errors[late[0]])}") from None
        if message is None:
            ended.add(index)
        else:
            said[index].update(message)


def run_workers(jobs: list, *, ready_timeout_s: float = READY_TIMEOUT_S,
                done_timeout_s: float, command=None) -> tuple[list, list, float]:
    """Start one worker per job at once, wait until all are ready, release them together
    (``go``), wait until all are done. Returns (their ready messages, their done messages,
    seconds from the start to the release). Raises WorkerFailed (see ``_collect``); every
    worker still running on the way out, whatever happened, is killed."""
    import posinfo

    lib = str(Path(posinfo.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (lib, os.environ.get("PYTHONPATH")) if p)}
    command = WORKER_COMMAND if command is None else command
    events: queue.Queue = queue.Queue()
    processes, errors, said, ended = [], [], [{} for _ in jobs], set()
    started = time.monotonic()
    try:
        for _ in jobs:
            errors.append(tempfile.TemporaryFile())
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=errors[-1], text=True, env=env)
            _live.add(process)
            processes.append(process)
        for index, (process, job) in enumerate(zip(processes, jobs)):
            threading.Thread(target=_read, args=(index, process.stdout, events),
                             daemon=True).start()
            _write(process, json.dumps(job))
        ready = _collect("ready", events, processes, errors, ready_timeout_s, said, ended)
        released = time.monotonic() - started
        for process in processes:
            _write(process, "go")
        done = _collect("done", events, processes, errors, done_timeout_s, said, ended)
        return ready, done, released
    finally:
        kill_workers(processes)
        for file in errors:
            file.close()


def _write(process, line: str) -> None:
    try:
        process.stdin.write(line + "\n")
        process.stdin.flush()
    except OSError:  # it exited already (a broken pipe): its stdout's end says why
        pass


def concurrent_arm(b, runs: int, single: tuple | None, *, command=None,
                   ready_timeout_s: float = READY_TIMEOUT_S) -> dict:
    """``runs`` workers at once (``run_workers``) on the bench's config and device; their
    first losses checked against eager's (``b.reference``), their rates summed and set
    against ``single``, (arm name, canvases/s) of one graphed run measured in this bench
    run, by ``gpu_report.concurrent_rates``."""
    from .gpu_report import window_overlap

    if not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a whole number of processes >= 1, got {runs!r}")
    cfg = b.cfg
    threads = max(1, (os.cpu_count() or 1) // runs)  # no run's threads wait for another's
    jobs = [{"config": asdict(cfg), "device": str(b.device), "index": i, "threads": threads}
            for i in range(runs)]
    ready, done, released = run_workers(jobs, ready_timeout_s=ready_timeout_s,
                                        done_timeout_s=cfg.seconds + DONE_AFTER_WINDOW_S,
                                        command=command)
    peaks = [d["peak_memory_mb"] for d in done]
    used = [d["device_memory_used_mb"] for d in done]
    result = _runs_result(
        b, [r["losses"] for r in ready], [d["canvases_per_s"] for d in done], single,
        captured=all(r.get("captured") for r in ready),
        ms_per_step=cfg.batch_size / sum(d["canvases_per_s"] for d in done) * 1e3,  # all K
        steps_timed=sum(d["steps"] for d in done), setup_s=released,
        loss_window=sum(d["loss_window"] for d in done) / runs,
        overlap=window_overlap([(d["start"], d["end"]) for d in done]),
        processes=[{**{k: r[k] for k in ("setup_s", "ms_per_step_alone")},
                    **{k: d[k] for k in ("canvases_per_s", "ms_per_step", "steps", "seconds",
                                         "peak_memory_mb")},
                    "losses": r["losses"]} for r, d in zip(ready, done)],
        mps_control_found=mps_control_found())
    if None not in peaks:
        result["peak_memory_mb"] = sum(peaks)  # allocated by torch; each context adds its own
        result["device_memory_used_mb"] = max(used)  # the whole GPU, contexts included
    return result


def _runs_result(b, losses: list, rates: list, single: tuple | None, captured: bool,
                 **fields) -> dict:
    """An arm of K runs at once: each run's first ``losses`` checked against eager's (all
    must pass), its ``rates`` summed and set against ``single`` (gpu_report.
    concurrent_rates), the arm's ``fields``, and its line in words as the note."""
    from .gpu_report import concurrent_line, concurrent_rates

    checks = [b.check(one) for one in losses]
    oks = [c["ok"] for c in checks]
    check = {"ok": None if None in oks else all(oks), "runs": len(checks), "captured": captured}
    if oks[0] is not None:
        check.update(max_abs_diff=max(c["max_abs_diff"] for c in checks),
                     tolerance=b.cfg.loss_tolerance)
    result = concurrent_rates(rates, single[1] if single else None)
    result.update(status="ok", check=check, **fields,
                  single={"arm": single[0], "canvases_per_s": single[1]} if single else None)
    result["note"] = concurrent_line(result)
    return result


def streams_arm(b, runs: int, single: tuple | None) -> dict:
    """``runs`` copies of the library's loop (``gpu.library_loop``) in this process, each
    replayed on a CUDA stream of its own, launched in turn, and timed together; their first
    losses checked against eager's, their rate set against ``single`` as the process arm's
    (every copy steps once a round, so each trains at 1/runs of the total). On a CPU, no
    streams: the same loops in turn, what a test can check."""
    import contextlib

    import torch

    from .gpu import library_loop

    if not isinstance(runs, int) or runs < 2:
        raise ValueError(f"runs must be a whole number of streams >= 2, got {runs!r}")
    cfg = b.cfg
    with contextlib.ExitStack() as stack:
        b.sync()
        start = time.perf_counter()
        loops = [stack.enter_context(library_loop(b, b.fresh()[0])) for _ in range(runs)]
        streams = [torch.cuda.Stream() for _ in loops] if b.cuda else [None] * runs
        for stream in streams:
            if stream is not None:  # after the set-up and check steps on the default stream
                stream.wait_stream(torch.cuda.current_stream())

        def step():
            for (one, _, _), stream in zip(loops, streams):
                with torch.cuda.stream(stream) if stream else contextlib.nullcontext():
                    one()

        b.sync()
        first = time.perf_counter() - start
        losses = [[float(v) for v in one] for _, _, one in loops]
        timed = b.timed(step, first, {}, total=loops[0][1].total)
    return _runs_result(b, losses, [timed["canvases_per_s"]] * runs, single, captured=b.cuda,
                        ms_per_step=timed["ms_per_step"] / runs,  # all K together
                        steps_timed=timed["steps_timed"] * runs, setup_s=timed["setup_s"],
                        loss_window=timed["loss_window"] / cfg.batch_size)
