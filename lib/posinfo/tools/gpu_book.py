"""Run the whole book on the GPU machine and bring back the executed notebooks.

    make gpu-wheels                      # here, once: the wheels the GPU image lacks, into .whl/
    PYTHONPATH=lib python3 -m posinfo.tools.gpu_book --wheels .whl --out "$OUT" \
        --profile gpu --bench

On the GPU machine nothing can be fetched and its image lacks papermill, jupytext, ipykernel,
myst-nb and kornia: they travel as wheels (lib/posinfo/tools/gpu_wheels.txt), which this installs
into --site and puts on the PYTHONPATH of every process it starts (the papermill kernel, the
"python3" spec of ipykernel, inherits it). Then:

1. a dry run: every chapter at the smoke profile, fresh model cache, notebooks thrown away;
   the first failure stops it and prints the chapter's error, so a packaging mistake costs
   seconds, not a book;
2. the book at --profile: chapters as concurrent lanes of ``python -m posinfo.run`` (chapter
   5 after chapter 4 in one lane, since it reads chapter 4's segmenters from the shared model
   cache; every other chapter in a lane of its own; --jobs lanes at a time). Each notebook
   lands in --out as it is executed; OUT/gpu_book.log has every chapter's start, end,
   seconds, the failure if any, and each chapter's output. A failed chapter makes the exit
   code 1, while the other lanes go on. With --prefetch JOBS, first
   ``posinfo.tools.prefetch`` for those chapters: a plan pass of each, then their training
   runs JOBS at a time in processes of their own, into the cache the book pass then reads
   (one run at batch 48 leaves an H200 mostly idle);
3. with --bench, ``python -m posinfo.tools.bench --gpu --json OUT/bench_gpu.json``.

``--pilots augshift,region_attack`` runs those pilots (``posinfo.pilots``) at --profile
before any chapter, each record written into OUT as ``<chapter>-<profile>.json``, to be
committed under book/pilots/ before the chapter's verdict seeds run (with --prefetch, each
pilot's runs are trained side by side first). Without --chapters it runs no chapter and no
dry run: a session of its own, since a chapter's n_seeds comes from its pilot's record.

``--chapters 2,3`` (numbers or names, as ``posinfo.run`` takes them) runs a subset, so that
chapters at the paper's length can run in separate GPU runs; a chapter it does not know is
refused before anything is installed or started.

Each executed notebook records its run in its metadata (``posinfo_run``: the commit, the
machine, torch and CUDA versions, the profile, start and end in UTC, the status), and the
log says the same. The GPU machine's copy of the repository may have no .git, so the commit
is read on this side and written into the command as a literal (expand it where the command
is composed, not on the GPU machine):

    --commit "$(git rev-parse HEAD)$(git diff --quiet HEAD -- lib book || echo +dirty)"

or $POSINFO_COMMIT; without either, ``git rev-parse HEAD`` where .git exists (``+dirty``
when lib/ or book/ differ from it), else "not recorded".

OUT stays flat (5 notebooks, the log, the bench JSON): the device tool brings back 8 files.
Only the standard library is imported here at top level: this runs before the wheels are in.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

# The bench package's __init__: standard library only, like this module.
from .bench import GPU_BUDGET_S, HARD_STOP_AFTER_BUDGET_S

REPO = Path(__file__).resolve().parents[3]
LIB = REPO / "lib"
WHEEL_LIST = Path(__file__).with_name("gpu_wheels.txt")
DEFAULT_SITE = Path("/tmp/posinfo-site")
LOG_NAME = "gpu_book.log"
# posinfo.pilots.PILOTS' names (a test ties them): read here before any wheel is in, when
# the pilots module (numpy, scipy) cannot be imported yet.
PILOTS = ("augshift", "region_attack")
BENCH_JSON = "bench_gpu.json"
DRY_RUN_PROFILE = "smoke"
# A chapter that reads what an earlier one cached runs after it, in the same lane.
RUNS_AFTER = {5: 4}
OUTPUT_TAIL_LINES = 200  # of each chapter's own output, in the log
# Seconds. The bench skips arms that would end after its --budget (default BENCH_BUDGET) and
# stops itself, writing what it has, BENCH_HARD_STOP after the budget (the bench's own
# numbers). Its budget here is the time left less both and a margin, so that its own stop
# comes before ours.
BENCH_BUDGET, BENCH_HARD_STOP, BENCH_MARGIN = GPU_BUDGET_S, HARD_STOP_AFTER_BUDGET_S, 15

PIP_INSTALL = ["-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
               "--no-cache-dir", "--upgrade", "--disable-pip-version-check", "--target"]

ENV_PROBE = """\
import os, platform, sys
print(f"python {platform.python_version()} ({sys.executable}), {os.cpu_count()} cpus")
import torch
device = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}): {device}")
"""

# The machine a chapter ran on, as its notebook records it (one line of JSON).
MACHINE_PROBE = """\
import json, platform, torch
cuda = torch.cuda.is_available()
print(json.dumps({"machine": torch.cuda.get_device_name(0) if cuda else
                  f"CPU ({platform.machine()}, no CUDA device)", "torch": torch.__version__,
                  "cuda": torch.version.cuda, "python": platform.python_version()}))
"""
COMMIT_ENV = "POSINFO_COMMIT"
NOTEBOOK_KEY = "posinfo_run"  # the notebook metadata gpu_book writes
NOT_RECORDED = "not recorded"

# After the install: the packages the wheels bring, from where, and the kernel papermill asks
# for; any packaging mistake that an import shows fails here, before a kernel starts.
PACKAGES_PROBE = """\
import importlib, importlib.metadata as md
for module, dist in [("papermill", "papermill"), ("jupytext", "jupytext"),
                     ("ipykernel", "ipykernel"), ("myst_nb", "myst-nb"), ("kornia", "kornia")]:
    importlib.import_module(module)
    print(f"{dist} {md.version(dist)}", end="; ")
from myst_nb import glue
from kornia.filters import BlurPool2D
from jupyter_client.kernelspec import KernelSpecManager
print("kernel python3:", " ".join(KernelSpecManager().get_kernel_spec("python3").argv[:3]))
"""


# --- planning -------------------------------------------------------------------------------

def chapter_stems() -> dict[int, str]:
    """{number: stem} of every chapter (``run.chapter_sources``), in book order."""
    from ..run import chapter_sources  # imports torch: not at the top (see the docstring)
    return {int(path.stem[:2]): path.stem for path in chapter_sources().values()}


def resolve_chapters(names, stems: dict[int, str] | None = None) -> list[int]:
    """Chapter numbers from ``--chapters`` items: numbers or names as ``posinfo.run`` takes
    them (run.resolve_chapter: '2', '02', 'channel_order', '02_channel_order'), each item
    possibly a comma-separated list; a ValueError names the first unknown one."""
    from ..run import resolve_chapter  # imports torch: not at the top (see the docstring)

    stems = chapter_stems() if stems is None else stems
    numbers = []
    for item in names:
        for name in filter(None, (part.strip() for part in item.split(","))):
            _key, path = resolve_chapter(name)
            number = int(path.stem[:2])
            if number not in stems:
                raise ValueError(f"chapter {name!r} has no number among {sorted(stems)}")
            numbers.append(number)
    if not numbers:
        raise ValueError("--chapters names no chapter")
    return sorted(set(numbers))


def plan_lanes(numbers, runs_after: dict[int, int] = RUNS_AFTER) -> list[list[int]]:
    """Chapters grouped into lanes that may run concurrently: a chapter that reads what an
    earlier one cached (``runs_after``) goes after it in that chapter's lane, every other
    chapter gets a lane of its own. Longest lanes first, so that under a --jobs cap the
    long lane starts at once."""
    numbers = sorted(set(numbers))
    lanes: list[list[int]] = []
    for n in numbers:
        before = runs_after.get(n)
        lane = next((lane for lane in lanes if before in lane), None)
        if lane is not None:
            lane.append(n)
        else:
            lanes.append([n])
    return sorted(lanes, key=lambda lane: (-len(lane), lane[0]))


def chapter_command(number: int, out: Path, profile: str, compile_backend: str | None = None,
                    python: str = sys.executable) -> list[str]:
    """The ``python -m posinfo.run`` command that executes one chapter into ``out``."""
    command = [python, "-m", "posinfo.run", str(number), "--out", str(out),
               "-p", "profile", profile]
    if compile_backend:
        command += ["--compile", compile_backend]
    return command


def bench_command(out: Path, quick: bool = False, budget: int | None = None,
                  python: str = sys.executable) -> list[str]:
    command = [python, "-m", "posinfo.tools.bench", "--gpu", "--json", str(out / BENCH_JSON)]
    return command + (["--quick"] if quick else []) + \
        (["--budget", str(budget)] if budget is not None else [])


def pythonpath(site: Path | None, existing: str | None = None) -> str:
    """lib/, then the wheels' site, then what was already there, every entry absolute: the
    kernel starts in book/, where a relative ``lib`` would name nothing."""
    entries = [str(LIB)] + ([str(site)] if site else [])
    for entry in (existing or "").split(os.pathsep):
        if entry and str(Path(entry).resolve()) not in entries:
            entries.append(str(Path(entry).resolve()))
    return os.pathsep.join(entries)


def child_env(site: Path | None, cache: Path, lanes: int, base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = pythonpath(site, env.get("PYTHONPATH"))
    env["POSINFO_CACHE"] = str(cache)
    env["POSINFO_PROGRESS"] = "off"
    env["PYTHONUNBUFFERED"] = "1"
    # Concurrent kernels share the cores: each gets its share of threads, unless set already.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, lanes))))
    return env


# --- what each notebook records --------------------------------------------------------------

def run_commit(given: str | None = None, repo: Path = REPO) -> tuple[str, str]:
    """(commit, where it came from): ``given`` (--commit), else $POSINFO_COMMIT, else
    ``git rev-parse HEAD`` of ``repo`` with "+dirty" when lib/ or book/ differ from it, else
    NOT_RECORDED (a copy without .git, and nothing passed in)."""
    if given:
        return given, "--commit"
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV], COMMIT_ENV
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, timeout=30)
        if head.returncode == 0 and head.stdout.strip():
            dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "lib", "book"],
                                   cwd=repo, capture_output=True, timeout=30).returncode != 0
            return head.stdout.strip() + ("+dirty" if dirty else ""), "git"
    except (OSError, subprocess.SubprocessError):
        pass
    return NOT_RECORDED, f"no --commit, no {COMMIT_ENV}, no git repository"


def machine_record(env: dict, python: str = sys.executable) -> dict:
    """MACHINE_PROBE's answer; NOT_RECORDED fields when it fails."""
    try:
        found = json.loads(probe(MACHINE_PROBE, env, python).splitlines()[-1])
        if isinstance(found, dict):
            return found
    except (RuntimeError, ValueError, IndexError):
        pass
    return {"machine": NOT_RECORDED, "torch": NOT_RECORDED}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def stamp_notebook(path: Path, record: dict) -> bool:
    """Add ``record`` to the notebook's metadata under NOTEBOOK_KEY, written as nbformat
    writes (sorted keys, indent 1); False when there is no readable notebook there."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(nb, dict):
        return False
    nb.setdefault("metadata", {})[NOTEBOOK_KEY] = record
    text = json.dumps(nb, sort_keys=True, indent=1, separators=(",", ": "), ensure_ascii=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return True


def record_line(stem: str, record: dict) -> str:
    return (f"record {stem}: commit {record['commit']}, machine {record['machine']}, torch "
            f"{record['torch']}, {record['started']} to {record['finished']}, "
            f"{record['status']}")


# --- wheels ---------------------------------------------------------------------------------

def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def read_wheel_list(path: Path = WHEEL_LIST) -> dict[str, str]:
    """{package: pinned version} of a requirements-style list (``name==version  # why``)."""
    pins = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", line)
        if not match:
            raise ValueError(f"{path}:{number}: expected NAME==VERSION, got {line!r}")
        pins[match.group(1)] = match.group(2)
    return pins


def check_wheels(wheels: Path, pins: dict[str, str]) -> list[Path]:
    """The .whl files of ``wheels``, refused unless each pinned package has exactly one, of
    its pinned version (two versions would stop pip's whole install)."""
    files = sorted(wheels.glob("*.whl"))
    found: dict[str, list[str]] = {}
    for path in files:
        dist, version = path.name.split("-")[:2]
        found.setdefault(normalize(dist), []).append(version)
    problems = []
    for name, version in pins.items():
        versions = found.get(normalize(name), [])
        if len(versions) != 1:
            problems.append(f"{name}: {len(versions)} wheels {versions}")
        elif normalize(versions[0]) != normalize(version):
            problems.append(f"{name}: wheel {versions[0]}, pinned {version}")
    if problems:
        raise ValueError(f"wheels in {wheels} do not match {WHEEL_LIST.name} (run `make "
                         f"gpu-wheels`): " + "; ".join(problems))
    return files


def install_wheels(wheels: Path, site: Path, python: str = sys.executable) -> int:
    files = check_wheels(wheels, read_wheel_list())
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run([python, *PIP_INSTALL, str(site), *map(str, files)], check=True)
    return len(files)


# --- running chapters -----------------------------------------------------------------------

class Log:
    """Lines to stdout and OUT/gpu_book.log at once (flushed: a run killed at the device
    tool's limit still brings back what happened until then)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.lock = threading.Lock()
        if path:
            path.write_text("")

    def __call__(self, text: str = "", stamp: bool = True) -> None:
        line = (time.strftime("%H:%M:%S ") if stamp else "") + text
        with self.lock:
            print(line, flush=True)
            if self.path:
                with self.path.open("a") as f:
                    f.write(line + "\n")

    def block(self, text: str) -> None:
        with self.lock:
            if self.path:
                with self.path.open("a") as f:
                    f.write(text if text.endswith("\n") else text + "\n")


class Result:
    def __init__(self, number: int, stem: str):
        self.number, self.stem = number, stem
        self.status = "not run"  # ok | FAILED | skipped | killed | not run
        self.seconds = 0.0
        self.returncode: int | None = None
        self.error = ""
        self.output = ""
        self.started = self.finished = ""  # UTC, ISO 8601


def error_of(output: str) -> str:
    """The runner's own error message (``error: chapter ... failed in cell ...``), else the
    output's last lines."""
    lines = output.rstrip().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("error:"):
            return "\n".join(lines[i:i + 3])
    return "\n".join(lines[-15:])


class Runner:
    """Runs lanes of chapter commands, ``jobs`` lanes at a time.

    ``command(number)`` builds a chapter's command; ``fail_fast`` stops every lane at the
    first failure; at ``deadline`` (a time.monotonic() time) whatever still runs is stopped.
    """

    def __init__(self, command, stems: dict[int, str], env: dict, log: Log, scratch: Path,
                 jobs: int | None = None, fail_fast: bool = False, deadline: float | None = None,
                 on_done=None):
        self.command, self.stems, self.env, self.log = command, stems, env, log
        self.on_done = on_done  # called with each chapter's Result as it ends
        self.scratch, self.jobs, self.fail_fast = scratch, jobs, fail_fast
        self.deadline = deadline
        self.stop = threading.Event()
        self.reason = ""  # why it stopped early, if it did
        self.interrupted: BaseException | None = None
        self.lock = threading.Lock()
        self.running: dict[int, subprocess.Popen] = {}

    def run(self, lanes: list[list[int]]) -> dict[int, Result]:
        results = {n: Result(n, self.stems[n]) for lane in lanes for n in lane}
        queue = list(lanes)
        workers = [threading.Thread(target=self._worker, args=(queue, results), daemon=True)
                   for _ in range(min(len(lanes), self.jobs or len(lanes)))]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(timeout=1)
                    if self.deadline and time.monotonic() > self.deadline \
                            and not self.stop.is_set():
                        self.log("deadline reached: stopping the chapters still running")
                        self._stop_all("the deadline")
        except (KeyboardInterrupt, SystemExit) as err:  # Ctrl-C, SIGTERM: stop every chapter
            self.log("interrupted: stopping the chapters still running")
            self.interrupted = err
            self._stop_all("an interruption")
            for worker in workers:
                worker.join()
        return results

    def _worker(self, queue: list, results: dict[int, Result]) -> None:
        while not self.stop.is_set():
            with self.lock:
                if not queue:
                    return
                lane = queue.pop(0)
            failed = None
            for n in lane:
                result = results[n]
                if self.stop.is_set():
                    return
                if failed is not None:
                    result.status = "skipped"
                    result.error = f"chapter {failed} before it in its lane failed"
                    self.log(f"skip   {result.stem}: {result.error}")
                    continue
                self._run_one(result)
                if result.status != "ok":
                    failed = n
                    if self.fail_fast and not self.stop.is_set():
                        self._stop_all(f"{result.stem}'s failure in a fail-fast run")

    def _run_one(self, result: Result) -> None:
        command = self.command(result.number)
        output_path = self.scratch / f"{result.stem}.out"
        self.log(f"start  {result.stem}")
        result.started = utc_now()
        started = time.monotonic()
        with output_path.open("w") as output:
            # Its own process group (in our session, which the device tool ends at its limit),
            # so that stopping it stops whatever it started; its kernel (a session of its own,
            # jupyter_client's) exits when it finds its parent gone (ipykernel's parent poller).
            process = subprocess.Popen(command, cwd=REPO, env=self.env, stdout=output,
                                       stderr=subprocess.STDOUT, process_group=0)
            with self.lock:
                self.running[result.number] = process
            if self.stop.is_set():  # stopped while it started
                _stop(process)
            process.wait()
            with self.lock:
                self.running.pop(result.number, None)
        result.seconds = time.monotonic() - started
        result.finished = utc_now()
        result.returncode = process.returncode
        result.output = output_path.read_text(errors="replace")
        if process.returncode == 0:
            result.status = "ok"
            self.log(f"done   {result.stem} in {result.seconds:.1f} s")
        else:
            result.status = "killed" if self.stop.is_set() else "FAILED"
            result.error = error_of(result.output) if result.status == "FAILED" else \
                f"stopped at {self.reason}"
            self.log(f"{result.status} {result.stem} after {result.seconds:.1f} s "
                     f"(exit code {process.returncode}):\n    "
                     + result.error.replace("\n", "\n    "), stamp=True)
        if self.on_done is not None:
            self.on_done(result)

    def _stop_all(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.stop.set()
        with self.lock:
            processes = list(self.running.values())
        for process in processes:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """End a chapter process we started, with its process group."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def summary(results: dict[int, Result]) -> str:
    width = max(len(r.stem) for r in results.values())
    rows = [f"  {'chapter':<{width}}  {'status':<8} {'seconds':>8}"]
    rows += [f"  {r.stem:<{width}}  {r.status:<8} {r.seconds:8.1f}"
             for r in sorted(results.values(), key=lambda r: r.number)]
    return "\n".join(rows)


def outputs(results: dict[int, Result]) -> str:
    """Each chapter's own output (the runner's lines, warnings, a traceback), its last lines."""
    parts = []
    for r in sorted(results.values(), key=lambda r: r.number):
        if r.status in ("skipped", "not run"):
            continue
        lines = r.output.rstrip().splitlines()
        cut = max(0, len(lines) - OUTPUT_TAIL_LINES)
        parts.append(f"--- output of {r.stem} ({r.status}, {r.seconds:.1f} s)"
                     + (f", last {OUTPUT_TAIL_LINES} of {len(lines)} lines" if cut else "")
                     + " ---\n" + "\n".join(lines[cut:]))
    return "\n".join(parts)


# --- the whole run --------------------------------------------------------------------------

def probe(code: str, env: dict, python: str = sys.executable) -> str:
    done = subprocess.run([python, "-c", code], env=env, cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"`{python} -c ...` failed:\n{done.stderr.strip()}")
    return done.stdout.strip()


def dry_run(stems: dict[int, str], lanes: list[list[int]], site: Path | None, log: Log,
            jobs: int | None, deadline: float | None = None) -> bool:
    """Every chapter at smoke, fresh cache, notebooks thrown away; stops at the first
    failure."""
    with tempfile.TemporaryDirectory(prefix="posinfo-dry-") as tmp:
        tmp = Path(tmp)
        (tmp / "cache").mkdir()
        (tmp / "notebooks").mkdir()
        env = child_env(site, tmp / "cache", len(lanes))
        started = time.monotonic()
        log(f"dry run: {len(stems)} chapters at {DRY_RUN_PROFILE}, fresh cache, lanes {lanes}")
        runner = Runner(lambda n: chapter_command(n, tmp / "notebooks", DRY_RUN_PROFILE),
                        stems, env, log, tmp, jobs=jobs, fail_fast=True, deadline=deadline)
        results = runner.run(lanes)
        if runner.interrupted is not None:
            raise runner.interrupted
        failed = [r for r in results.values() if r.status != "ok"]
        if failed:
            for r in failed:
                if r.status == "FAILED":  # not those it stopped
                    log.block(outputs({r.number: r}))
                    print(f"--- output of {r.stem} ---\n{r.output.rstrip()}", file=sys.stderr)
            log(f"dry run FAILED in {time.monotonic() - started:.0f} s: "
                + ", ".join(f"{r.stem} {r.status}" for r in failed))
            return False
        log(f"dry run passed in {time.monotonic() - started:.0f} s")
        return True


def plan_command(plan: Path, command: list[str], python: str = sys.executable) -> list[str]:
    """``command`` as a plan pass recording into ``plan`` (``tools.prefetch plan``)."""
    return [python, "-m", "posinfo.tools.prefetch", "plan", str(plan), "--", *command]


def prefetch_command(plans, jobs: int, deadline: float | None = None,
                     python: str = sys.executable) -> list[str]:
    """``tools.prefetch train`` of ``plans``, ``jobs`` at a time; with ``deadline`` (a
    time.monotonic() time), no run starts that would end after it."""
    command = [python, "-m", "posinfo.tools.prefetch", "train", *map(str, plans),
               "--jobs", str(jobs)]
    if deadline is not None:
        command += ["--deadline", f"{max(0.0, deadline - time.monotonic()):.0f}"]
    return command


def prefetch(stems: dict[int, str], lanes: list[list[int]], profile: str, env: dict, log: Log,
             scratch: Path, jobs: int, lane_jobs: int | None = None,
             deadline: float | None = None) -> None:
    """``tools.prefetch`` for the chapters: a plan pass of each (concurrent lanes, notebooks
    thrown away), then their runs trained ``jobs`` at a time into the book's cache, so that
    the book pass finds them there. Whatever fails here the chapter trains itself, in order:
    this costs time when it goes wrong, never results."""
    plans = scratch / "plans"
    plans.mkdir()
    started = time.monotonic()
    log(f"prefetch: plan pass of {sorted(stems)} at {profile}")
    runner = Runner(lambda n: plan_command(plans / f"{n}.jsonl",
                                           chapter_command(n, plans / "notebooks", profile)),
                    stems, env, log, scratch, jobs=lane_jobs, deadline=deadline)
    results = runner.run(lanes)
    if runner.interrupted is not None:
        raise runner.interrupted
    for r in results.values():
        if r.status != "ok":
            log.block(outputs({r.number: r}))
    files = sorted(str(path) for path in plans.glob("*.jsonl"))
    if not any(Path(f).read_text().strip() for f in files):
        log("prefetch: no run recorded; the chapters train whatever they need themselves")
        return
    command = prefetch_command(files, jobs, deadline)
    log(f"prefetch: plan pass done in {time.monotonic() - started:.0f} s; training "
        f"{len(files)} plans' runs, {jobs} at a time")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    log.block(f"--- output of posinfo.tools.prefetch train ---\n"
              f"{(done.stdout + done.stderr).rstrip()}")
    ended = "done" if done.returncode == 0 else f"ended with exit code {done.returncode}"
    log(f"prefetch: {ended} in {time.monotonic() - started:.0f} s (plan pass and training)")


MPS_CONTROL = "nvidia-cuda-mps-control"


class Mps:
    """CUDA's Multi-Process Service for the run, when asked for (--mps): its control daemon
    started in a folder of its own and quit at the end. Why: without it a GPU time-slices
    between processes, so runs trained side by side (--prefetch) take turns instead of
    sharing the chip; with it their kernels run together. Nothing of the device's settings
    changes (no compute mode, no MIG): the daemon is a user process, and quitting it leaves
    the GPU as it was. Where the daemon cannot start, the run goes on without it, and the
    log says so."""

    def __init__(self, folder: Path, log: Log, control: str = MPS_CONTROL):
        self.folder, self.log, self.control = folder, log, control
        self.env: dict[str, str] = {}

    def start(self) -> dict:
        """The environment every process needs to reach the daemon ({} without one)."""
        binary = shutil.which(self.control)
        if binary is None:
            self.log(f"mps: {self.control} not found; runs side by side will time-slice")
            return {}
        env = {"CUDA_MPS_PIPE_DIRECTORY": str(self.folder / "pipe"),
               "CUDA_MPS_LOG_DIRECTORY": str(self.folder / "log")}
        for path in env.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        done = subprocess.run([binary, "-d"], env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=30)
        if done.returncode:
            self.log(f"mps: {binary} -d failed (exit code {done.returncode}: "
                     f"{(done.stdout + done.stderr).strip()}); going on without it")
            return {}
        self.log(f"mps: control daemon started, pipe {env['CUDA_MPS_PIPE_DIRECTORY']}")
        self.env = env
        return env

    def stop(self) -> None:
        if not self.env:
            return
        done = subprocess.run([shutil.which(self.control) or self.control], input="quit\n",
                              env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=30)
        self.log(f"mps: control daemon quit (exit code {done.returncode})")
        self.env = {}


def pilot_command(name: str, out: Path, profile: str, stages: int | None = None,
                  python: str = sys.executable) -> list[str]:
    """The ``python -m posinfo.pilots`` command that writes one pilot's record into ``out``
    (``stages``: chapter 3's pilot stops after that many, see ``pilots.augshift_pilot``)."""
    command = [python, "-m", "posinfo.pilots", name, "--profile", profile, "--out", str(out)]
    return command + (["--stages", str(stages)] if stages and name == "augshift" else [])


def run_pilots(names: list[str], profile: str, env: dict, log: Log, out: Path, scratch: Path,
               prefetch_jobs: int | None = None, deadline: float | None = None,
               stages: int | None = None) -> bool:
    """Each pilot in turn, its record written into ``out`` (as OUT/<chapter>-<profile>.json,
    to be committed under book/pilots/); with ``prefetch_jobs``, its runs trained side by
    side first (a plan pass of the pilot, then ``tools.prefetch train``). False if any
    failed or the deadline came first."""
    ok = True
    for name in names:
        if deadline is not None and time.monotonic() > deadline:
            log(f"pilot {name} not started: the deadline has passed")
            return False
        started = time.monotonic()
        plan = scratch / f"pilot-{name}.jsonl"
        # built as each step starts: the prefetch's --deadline is the time left then
        steps = [("plan pass", lambda: plan_command(plan, pilot_command(name, scratch, profile,
                                                                        stages))),
                 ("prefetch", lambda: prefetch_command([plan], prefetch_jobs, deadline))
                 ] if prefetch_jobs else []
        steps.append(("pilot", lambda: pilot_command(name, out, profile, stages)))
        for what, make_command in steps:
            log(f"pilot {name}: {what}")
            left = None if deadline is None else max(1.0, deadline - time.monotonic())
            command = make_command()
            try:
                done = subprocess.run(command, cwd=REPO, env=env, capture_output=True,
                                      text=True, timeout=left)
            except subprocess.TimeoutExpired:
                log(f"pilot {name} FAILED: its {what} was still running at the deadline")
                return False
            text = (done.stdout + done.stderr).rstrip()
            log.block(f"--- output of pilot {name}, {what} ---\n"
                      + "\n".join(text.splitlines()[-OUTPUT_TAIL_LINES:]))
            if done.returncode and what != "prefetch":  # a failed prefetch costs time only
                log(f"pilot {name} FAILED in its {what} (exit code {done.returncode})")
                ok = False
                break
        else:
            log(f"pilot {name} done in {time.monotonic() - started:.0f} s -> "
                f"{out / f'{name}-{profile}.json'}")
    return ok


def run_bench(out: Path, env: dict, log: Log, quick: bool = False,
              deadline: float | None = None) -> bool:
    """posinfo.tools.bench --gpu; with a deadline, its --budget is the time left (less its
    hard stop and a margin)."""
    budget = None
    if deadline is not None:
        budget = int(min(BENCH_BUDGET, deadline - time.monotonic() - BENCH_HARD_STOP
                         - BENCH_MARGIN))
        if budget < BENCH_MARGIN:
            log("bench skipped: too little time left before the deadline")
            return True
    command = bench_command(out, quick, budget)
    log("bench: " + " ".join(command[1:]))
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=None if budget is None
                              else budget + BENCH_HARD_STOP + BENCH_MARGIN)
    except subprocess.TimeoutExpired:
        log("bench FAILED: still running at the deadline, stopped")
        return False
    text = (done.stdout + done.stderr).rstrip()
    if done.returncode == 2 and "unrecognized arguments" in done.stderr:
        log("bench SKIPPED: this posinfo.tools.bench has no --gpu/--json option yet "
            f"({done.stderr.strip().splitlines()[-1]})")
        return True
    log.block(f"--- output of posinfo.tools.bench ---\n{text}")
    print(text, flush=True)
    if done.returncode:
        log(f"bench FAILED after {time.monotonic() - started:.0f} s "
            f"(exit code {done.returncode})")
        return False
    log(f"bench done in {time.monotonic() - started:.0f} s -> {out / BENCH_JSON}")
    return True


def _terminated(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posinfo.tools.gpu_book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True,
                        help="folder for the notebooks, gpu_book.log and bench_gpu.json (flat)")
    parser.add_argument("--wheels", help="folder of the wheels of make gpu-wheels; without it "
                        "nothing is installed (the current environment has the packages)")
    parser.add_argument("--site", default=str(DEFAULT_SITE),
                        help=f"where the wheels are installed (default {DEFAULT_SITE})")
    parser.add_argument("--profile", default="gpu", help="profile of the book run (default gpu)")
    parser.add_argument("--jobs", type=int, help="lanes at a time (default: every lane)")
    parser.add_argument("--chapters", nargs="+", metavar="CHAPTER",
                        help="only these chapters, by number or name, space- or "
                             "comma-separated: --chapters 2,3 (default: all)")
    parser.add_argument("--commit", help=f"the commit the code is, recorded in every notebook "
                        f"(default: ${COMMIT_ENV}, else git rev-parse HEAD where .git exists)")
    parser.add_argument("--cache", help="model cache of the book run (default: a fresh "
                        "temporary folder, removed at the end)")
    parser.add_argument("--compile", nargs="?", const="inductor", metavar="BACKEND",
                        help="pass --compile to posinfo.run (torch.compile)")
    parser.add_argument("--deadline", type=float, metavar="SECONDS",
                        help="stop whatever still runs this long after the start (wheels, dry "
                        "run and bench included), log it and exit 1: keep it under the device "
                        "call's limit so that the log and notebooks come back")
    dry = parser.add_mutually_exclusive_group()
    dry.add_argument("--dry-run-only", action="store_true", help="only the smoke dry run")
    dry.add_argument("--skip-dry-run", action="store_true", help="no smoke dry run")
    parser.add_argument("--prefetch", type=int, metavar="JOBS",
                        help="before the book pass, train the chapters' runs JOBS at a time "
                        "(posinfo.tools.prefetch: a plan pass, then the runs side by side)")
    parser.add_argument("--mps", action="store_true",
                        help="run under CUDA's Multi-Process Service, so that runs side by "
                        "side (--prefetch) share the GPU instead of taking turns; started "
                        "before the pilots and chapters, quit after the bench")
    parser.add_argument("--pilots", nargs="+", metavar="CHAPTER", default=[],
                        help=f"before the chapters, these pilots ({', '.join(PILOTS)}; space- "
                        "or comma-separated), each record written into --out (with "
                        "--prefetch, their runs trained side by side first)")
    parser.add_argument("--pilot-stages", type=int, metavar="N",
                        help="with --pilots augshift: stop its pilot after N stages (one "
                        "candidate's baselines, or the chosen task's AugShift runs), taking "
                        "up the committed unfinished record; its plan pass then records "
                        "exactly those runs")
    parser.add_argument("--bench", action="store_true",
                        help="afterwards: python -m posinfo.tools.bench --gpu --json "
                             f"OUT/{BENCH_JSON}")
    parser.add_argument("--bench-quick", action="store_true",
                        help="with --bench: bench's --quick (tiny, any device: a CPU rehearsal)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    deadline = None if args.deadline is None else time.monotonic() + args.deadline
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.prefetch is not None and args.prefetch < 1:
        parser.error(f"--prefetch must be at least 1 (runs at a time), got {args.prefetch}")

    from ..checks import PROFILES  # standard library only, like the package's __init__
    if args.profile not in PROFILES:
        parser.error(f"--profile must be one of {PROFILES}, got {args.profile!r}")
    stems = chapter_stems()
    try:
        numbers = resolve_chapters(args.chapters, stems) if args.chapters else list(stems)
    except ValueError as err:
        parser.error(f"--chapters: {err}")
    stems = {n: stems[n] for n in numbers}
    lanes = plan_lanes(numbers)
    pilots = [name for given in args.pilots for name in given.split(",") if name]
    unknown = sorted(set(pilots) - set(PILOTS))
    if unknown:
        parser.error(f"--pilots must name pilots of {list(PILOTS)}, got {unknown}")
    if args.pilot_stages is not None and (args.pilot_stages < 1 or "augshift" not in pilots):
        parser.error(f"--pilot-stages must be a whole number >= 1, with --pilots augshift; "
                     f"got {args.pilot_stages} with pilots {pilots}")
    if pilots and not args.chapters:  # the pilots' session: no chapter unless named
        numbers, stems, lanes = [], {}, []

    from ..run import check_out
    try:
        out = check_out(Path(args.out))
    except ValueError as err:
        parser.error(str(err))
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / LOG_NAME)
    log(f"posinfo.tools.gpu_book: profile {'-' if args.dry_run_only else args.profile}, chapters "
        f"{numbers}, lanes {lanes}, jobs {args.jobs or len(lanes)}, out {out}")
    commit, source = run_commit(args.commit)
    log(f"commit: {commit} (from {source})")
    site = Path(args.site).resolve() if args.wheels else None
    try:
        log("environment: " + probe(ENV_PROBE, child_env(None, out, len(lanes)))
            .replace("\n", "; "))
        if args.wheels:
            started = time.monotonic()
            count = install_wheels(Path(args.wheels), site)
            log(f"wheels: {count} from {args.wheels} installed into {site} in "
                f"{time.monotonic() - started:.1f} s")
        machine = machine_record(child_env(None, out, len(lanes)))
        log("packages: " + probe(PACKAGES_PROBE, child_env(site, out, len(lanes))))
    except (ValueError, RuntimeError, subprocess.CalledProcessError) as err:
        log(f"setup FAILED: {err}")
        return 1

    if not args.skip_dry_run and stems:
        if not dry_run(stems, plan_lanes(numbers), site, log, args.jobs, deadline):
            return 1
        if args.dry_run_only:
            return 0

    keep_cache = args.cache is not None
    cache = Path(args.cache).resolve() if keep_cache else Path(tempfile.mkdtemp(
        prefix="posinfo-cache-"))
    cache.mkdir(parents=True, exist_ok=True)
    # The chapters' kernels and the bench see the commit too ($POSINFO_COMMIT).
    known = {} if commit == NOT_RECORDED else {COMMIT_ENV: commit}
    env = {**child_env(site, cache, len(lanes)), **known}
    log(f"book at profile {args.profile}: cache {cache}, OMP_NUM_THREADS "
        f"{env['OMP_NUM_THREADS']}")
    started = time.monotonic()

    def record(result: Result) -> None:  # as each chapter ends: a killed run keeps the rest
        entry = {"commit": commit, **machine, "profile": args.profile, "chapter": result.stem,
                 "started": result.started, "finished": result.finished,
                 "seconds": round(result.seconds, 1), "status": result.status,
                 "runner": "posinfo.tools.gpu_book"}
        written = [path.name for path in (out / f"{result.stem}.ipynb",
                                          out / f"{result.stem}.failed.ipynb")
                   if path.exists() and stamp_notebook(path, entry)]
        log(record_line(result.stem, entry)
            + (f" (in {', '.join(written)})" if written else " (no notebook to record it in)"))

    with tempfile.TemporaryDirectory(prefix="posinfo-gpu-book-") as scratch:
        mps = Mps(Path(scratch) / "mps", log)
        try:  # MPS, if asked for, for everything that trains, the bench included
            mps_env = mps.start() if args.mps else {}
            env = {**env, **mps_env}
            pilots_ok = not pilots or run_pilots(pilots, args.profile, env, log, out,
                                                 Path(scratch), args.prefetch, deadline,
                                                 args.pilot_stages)
            if args.prefetch and stems:
                prefetch(stems, lanes, args.profile, env, log, Path(scratch), args.prefetch,
                         args.jobs, deadline)
            runner = Runner(lambda n: chapter_command(n, out, args.profile, args.compile),
                            stems, env, log, Path(scratch), jobs=args.jobs, deadline=deadline,
                            on_done=record)
            results = runner.run(lanes)
            failed = [r for r in results.values() if r.status != "ok"]
            if results:
                log(f"book: {len(results) - len(failed)} of {len(results)} chapters ok in "
                    f"{time.monotonic() - started:.0f} s wall\n" + summary(results))
                log.block(outputs(results))
            if runner.interrupted is not None:
                raise runner.interrupted

            bench_ok = True
            if args.bench:
                if runner.stop.is_set():
                    log(f"bench skipped: the book run was stopped at {runner.reason}")
                else:
                    bench_ok = run_bench(out, {**child_env(site, cache, 1), **known, **mps_env},
                                         log, args.bench_quick, deadline)
        finally:
            mps.stop()
    if not keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    return 0 if not failed and bench_ok and pilots_ok else 1


if __name__ == "__main__":
    sys.exit(main())
