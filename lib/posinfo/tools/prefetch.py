"""Train a chapter's runs several at once, before the chapter executes: plan, train, run.

    export POSINFO_CACHE=/tmp/cache
    python -m posinfo.tools.prefetch plan runs.jsonl -- \\
        python -m posinfo.run 2 --out /tmp/plan -p profile gpu     # records, trains nothing
    python -m posinfo.tools.prefetch train runs.jsonl --jobs 4    # 4 runs at a time
    python -m posinfo.run 2 --out runs -p profile gpu              # every run is cached now

Why: a chapter trains its runs one after another. At batch 48 one ResNet-18 run keeps an
H200 mostly idle, so the GPU part's chapters, dozens of runs each, cost many times what the
chip could do. Running the runs side by side, each in a process of its own, fills it without
changing any run: each is the chapter's own trainer called with the chapter's own config.

1. **Plan.** ``plan`` runs a command (a chapter through ``posinfo.run``, or a pilot) with
   $POSINFO_PLAN naming the plan file. ``train.cached_fit`` then records every run that is
   not in the cache yet (its trainer, config and snapshots: ``train.plannable``) instead of
   training it, and the command goes on with untrained models. A plan pass costs what the
   chapter's evaluation costs, and its outputs mean nothing: its notebook goes to a folder of
   its own (``posinfo.run --book`` and the pilots' records refuse to be written by one).
2. **Train.** ``train`` reads the plan, drops the runs another run makes on its way (a budget
   curve's shorter budgets are snapshots of its longest run, see ``train.train_budgets``)
   and repeats, and trains the rest ``--jobs`` at a time, longest first, each in a fresh
   process, into the model cache ($POSINFO_CACHE). With ``--deadline`` no run starts that
   could not be stored in time, by the plan's own cost estimate.
3. **Run.** The chapter itself, as ever: every run it asks for is in the cache. A run that
   failed or was never started is trained by the chapter, in order, as without a plan, so a
   plan costs time when it is wrong, never results.

On a CPU the side-by-side runs share the cores (``--jobs`` divides the threads), so it
pays on a GPU only; the tests run it on a CPU to check that the cache keys come out the
same. ``tools.gpu_book --prefetch JOBS`` does all three for the chapters it runs.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ..settings import Settings  # the standard library only, like this module

PLAN_ENV = "POSINFO_PLAN"  # train.PLAN_ENV; this module imports no torch until a run starts


def read_plan(path: Path) -> list[dict]:
    """The runs a plan pass recorded, in the order it met them."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _identity(run: dict, **changes) -> str:
    return json.dumps({"trainer": run["trainer"], "config": {**run["config"], **changes}},
                      sort_keys=True)


def steps(run: dict) -> int:
    """Optimiser steps of a run (``Settings.steps``), the cost the schedule orders by."""
    return Settings(run["config"]).steps(run["config"]["epochs"])


def schedule(runs: list[dict]) -> list[dict]:
    """The runs to train: each once, none that another run stores as a snapshot on its way
    (the same trainer and config but for fewer epochs, named in its snapshots), the longest
    first so that the last to finish is a short one."""
    unique: dict[str, dict] = {}
    for run in runs:
        known = unique.setdefault(_identity(run), {**run, "snapshots": []})
        known["snapshots"] = sorted({*known["snapshots"], *run.get("snapshots", [])})
    made_on_the_way = {_identity(run, epochs=epochs) for run in unique.values()
                       for epochs in run["snapshots"] if epochs < run["config"]["epochs"]}
    kept = [run for key, run in unique.items() if key not in made_on_the_way]
    return sorted(kept, key=steps, reverse=True)


def describe_run(run: dict) -> str:
    config = run["config"]
    shown = [f"{k}={config[k]}" for k in ("target", "padding", "grid", "background",
                                          "permute_at", "augshift_lambda", "blur_size",
                                          "scene_mode", "epochs", "seed")
             if config.get(k) is not None]
    return f"{run['trainer'].rsplit(':', 1)[-1]} " + " ".join(shown)


def train_one(run: dict) -> dict:
    """Call the run's trainer with its config and snapshots (in a process of its own, which
    ``train_plan`` starts): the model lands in the cache. Returns seconds and whether it was
    cached already."""
    started = time.time()
    module, name = run["trainer"].split(":")
    trainer = getattr(importlib.import_module(module), name)
    trained = trainer(run["config"], snapshots=tuple(run["snapshots"]))
    return {"seconds": time.time() - started, "from_cache": bool(trained.from_cache)}


def _worker_env(threads: int) -> dict:
    """A run's process trains, never records (the plan pass's variable is dropped), quietly,
    on its share of the cores."""
    env = {k: v for k, v in os.environ.items() if k != PLAN_ENV}
    lib = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [lib, env.get("PYTHONPATH")]))
    return {**env, "POSINFO_PROGRESS": "off", "OMP_NUM_THREADS": str(threads)}


class _Running:
    """One run in its own process: its stdout ends with the result line, its stderr is
    kept for the report should it fail."""

    def __init__(self, run: dict, env: dict, scratch: Path, index: int):
        self.run, self.started = run, time.time()
        # files, not pipes: a run that prints much would block on a full pipe
        self.out_path, self.err_path = scratch / f"run-{index}.out", scratch / f"run-{index}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "posinfo.tools.prefetch", "one", json.dumps(run)],
                env=env, stdout=out, stderr=err)

    def result(self) -> dict:
        self.process.wait()
        lines = self.out_path.read_text().strip().splitlines()
        if self.process.returncode == 0 and lines:
            return {"ok": True, **json.loads(lines[-1])}
        tail = self.err_path.read_text().strip().splitlines()[-15:]
        return {"ok": False, "seconds": time.time() - self.started,
                "error": f"exit status {self.process.returncode}\n" + "\n".join(tail)}

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def train_plan(runs: list[dict], jobs: int, deadline_s: float | None = None,
               log=print) -> dict:
    """Train ``runs`` (already scheduled) ``jobs`` at a time, each in a process of its own, so
    that one crashing (out of memory, a killed worker) costs that run alone.

    ``deadline_s``: seconds from now after which no run starts whose estimated length
    (its steps x the seconds a step has taken so far, a run among ``jobs``) would overrun
    it. Returns a summary: runs trained, failed and not started, wall and summed seconds."""
    import tempfile

    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")
    started = time.time()
    env = _worker_env(max(1, (os.cpu_count() or 1) // jobs))
    pending, running, done, failed, skipped = list(runs), [], [], [], []
    step_seconds = None  # measured: seconds per step of one run among ``jobs``
    with tempfile.TemporaryDirectory(prefix="posinfo-prefetch-") as scratch:
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    run = pending.pop(0)
                    left = None if deadline_s is None else deadline_s - (time.time() - started)
                    if left is not None and (left <= 0 or (step_seconds is not None
                                                           and steps(run) * step_seconds > left)):
                        skipped.append(run)
                        log(f"not started (deadline): {describe_run(run)}")
                        continue
                    log(f"start  {describe_run(run)} ({steps(run)} steps)")
                    running.append(_Running(run, env, Path(scratch), len(done) + len(failed)
                                            + len(running) + len(skipped)))
                finished = [r for r in running if r.process.poll() is not None]
                if not finished:
                    time.sleep(0.2)
                    continue
                for one in finished:
                    running.remove(one)
                    result = one.result()
                    if result["ok"]:
                        done.append((one.run, result))
                        if not result["from_cache"]:
                            step_seconds = result["seconds"] / max(1, steps(one.run))
                        log(f"done   {describe_run(one.run)} in {result['seconds']:.1f} s"
                            + (" (was cached)" if result["from_cache"] else ""))
                    else:
                        failed.append((one.run, result))
                        log(f"FAILED {describe_run(one.run)}: {result['error']}")
        finally:  # interrupted: no run outlives the command
            for one in running:
                one.stop()
    wall = time.time() - started
    summed = sum(r["seconds"] for _, r in done + failed)
    summary = {"jobs": jobs, "trained": len(done), "failed": len(failed),
               "not_started": len(skipped), "wall_s": wall, "summed_s": summed,
               "steps": sum(steps(run) for run, _ in done)}
    log(f"prefetch: {len(done)} trained, {len(failed)} failed, {len(skipped)} not started; "
        f"{summary['steps']} steps in {wall:.1f} s wall ({summed:.1f} s of runs, "
        f"{summed / wall if wall else 0:.2f} runs at a time on average)")
    return summary


def plan(plan_path: Path, command: list[str]) -> int:
    """Run ``command`` as a plan pass into ``plan_path`` (replaced); its exit status."""
    if not command:
        raise ValueError("plan needs a command after '--', e.g. -- python -m posinfo.run 2 "
                         "--out /tmp/plan -p profile gpu")
    plan_path = Path(plan_path).resolve()
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.unlink(missing_ok=True)
    plan_path.touch()  # a command that trains nothing leaves an empty plan, not none
    # POSINFO_PLAN_PASS tells the runner this POSINFO_PLAN is a plan pass's (run.PLAN_PASS_ENV)
    status = subprocess.call(command, env={**os.environ, PLAN_ENV: str(plan_path),
                                           "POSINFO_PLAN_PASS": str(plan_path)})
    runs = read_plan(plan_path)
    print(f"plan: {len(runs)} runs recorded, {len(schedule(runs))} to train "
          f"({sum(map(steps, schedule(runs)))} steps) -> {plan_path}", flush=True)
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posinfo.tools.prefetch",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    planning = verbs.add_parser("plan", help="run a command as a plan pass")
    planning.add_argument("plan", type=Path, help="the plan file (JSON lines), replaced")
    planning.add_argument("command", nargs=argparse.REMAINDER,
                          help="-- and the command, e.g. python -m posinfo.run 2 --out DIR")
    training = verbs.add_parser("train", help="train a plan's runs into the model cache")
    training.add_argument("plan", type=Path, nargs="+", help="plan file(s); runs merged")
    training.add_argument("--jobs", type=int, default=4, help="runs at a time (default 4)")
    training.add_argument("--deadline", type=float, metavar="SECONDS",
                          help="start no run that would end after this many seconds")
    one = verbs.add_parser("one", help="(internal) train one run given as JSON")
    one.add_argument("run", help="the run, as a plan line")
    args = parser.parse_args(argv)
    if args.verb == "one":  # train_plan's process: the result is stdout's last line
        print(json.dumps(train_one(json.loads(args.run))), flush=True)
        return 0
    try:
        if args.verb == "plan":
            command = args.command[1:] if args.command[:1] == ["--"] else args.command
            return plan(args.plan, command)
        missing = [str(p) for p in args.plan if not p.exists()]
        if missing:
            raise ValueError(f"plan must name existing plan files, missing: {missing}")
        runs = schedule([run for path in args.plan for run in read_plan(path)])
        summary = train_plan(runs, args.jobs, args.deadline,
                             log=lambda text: print(text, flush=True))
        return 1 if summary["failed"] else 0
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
