"""The book's GPU part on a GPU machine: pilots and chapters at the ``gpu`` profile, each
notebook stamped with the commit and the machine it ran on.

The GPU machine has torch but not the Jupyter packages, and fetches nothing: ``make
gpu-wheels`` downloads them here into .whl/, which travels with the repository. There:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=lib:/tmp/site POSINFO_PROGRESS=off
    python3 -m posinfo.tools.gpu_book --out "$OUT" --chapters 1,4 --commit <sha>

In order, each step logged to stdout and to OUT/gpu_book.log:

1. **Dry run**: the chapters at the smoke profile into a scratch folder with a fresh model
   cache; the first failure stops everything, so a packaging mistake costs seconds, not a
   session (``--skip-dry-run``: none).
2. **Pilots** (``--pilots augshift,region_attack``): each record written into OUT, to be
   committed under book/pilots/ before its chapter's verdict seeds run; without
   ``--chapters`` no chapter runs, since a chapter's n_seeds comes from its pilot's record.
   ``--pilot-stages N`` stops chapter 3's pilot after N stages (``pilots.augshift_pilot``).
3. **Prefetch** (``--prefetch JOBS``): a plan pass of every pilot and chapter, then their
   runs trained JOBS at a time side by side (``tools.prefetch``) into the model cache that
   the pilots and chapters then read. What fails here they train themselves.
4. **Chapters**, one after another in book order (chapter 5 reads chapter 4's segmenters
   from the shared cache), each ``python -m posinfo.run N --out OUT -p profile P``. A failed
   chapter makes the exit status 1; the next one still runs. Each notebook records its run
   under ``posinfo_run`` in its metadata: commit, machine, torch and CUDA, profile, start
   and end (UTC), status; the GPU part's page (``tools.report``) lists them.

The commit: ``--commit`` (the GPU machine's copy has no .git, so expand it on this side:
``"$(git rev-parse HEAD)$(git diff --quiet HEAD -- lib book || echo +dirty)"``), else
$POSINFO_COMMIT, else git where .git exists, else "not recorded". ``--deadline S``: after S
seconds whatever still runs is stopped and logged, and the prefetch starts no run that
would end later; keep it under the device call's limit so that the log comes back.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from ..checks import PROFILES
from ..pilots import PILOTS
from ..run import REPO, chapter_sources, check_out, resolve_chapter

LIB = REPO / "lib"
LOG_NAME = "gpu_book.log"
DRY_RUN_PROFILE = "smoke"
OUTPUT_TAIL_LINES = 200  # of each command's own output, in the log
COMMIT_ENV = "POSINFO_COMMIT"
NOTEBOOK_KEY = "posinfo_run"  # the notebook metadata gpu_book writes (tools.report reads it)
NOT_RECORDED = "not recorded"
# The machine a chapter ran on, as its notebook records it (one line of JSON).
MACHINE_PROBE = """\
import json, platform, torch
cuda = torch.cuda.is_available()
print(json.dumps({"machine": torch.cuda.get_device_name(0) if cuda else
                  f"CPU ({platform.machine()}, no CUDA device)", "torch": torch.__version__,
                  "cuda": torch.version.cuda, "python": platform.python_version()}))
"""


def chapter_stems() -> dict[int, str]:
    """{number: stem} of every chapter (``run.chapter_sources``), in book order."""
    return {int(path.stem[:2]): path.stem for path in chapter_sources().values()}


def resolve_chapters(names) -> list[int]:
    """Chapter numbers from ``--chapters`` items: numbers or names as ``posinfo.run`` takes
    them, each item possibly comma-separated; a ValueError names the first unknown one."""
    numbers = {int(resolve_chapter(name)[1].stem[:2])
               for item in names for name in (part.strip() for part in item.split(",")) if name}
    if not numbers:
        raise ValueError("--chapters names no chapter")
    return sorted(numbers)


def chapter_command(number: int, out: Path, profile: str, python: str = sys.executable):
    """The ``python -m posinfo.run`` command that executes one chapter into ``out``."""
    return [python, "-m", "posinfo.run", str(number), "--out", str(out), "-p", "profile", profile]


def pilot_command(name: str, out: Path, profile: str, stages: int | None = None,
                  python: str = sys.executable) -> list[str]:
    """The ``python -m posinfo.pilots`` command that writes one pilot's record into ``out``."""
    command = [python, "-m", "posinfo.pilots", name, "--profile", profile, "--out", str(out)]
    return command + (["--stages", str(stages)] if stages and name == "augshift" else [])


def plan_command(plan: Path, command: list[str], python: str = sys.executable) -> list[str]:
    """``command`` as a plan pass recording into ``plan`` (``tools.prefetch plan``)."""
    return [python, "-m", "posinfo.tools.prefetch", "plan", str(plan), "--", *command]


def child_env(base: dict | None = None) -> dict:
    """The environment of every command: lib/ first on PYTHONPATH and every entry absolute
    (the kernel starts in book/, where a relative ``lib`` names nothing), no progress bars."""
    env = dict(os.environ if base is None else base)
    entries = [str(LIB)]
    for entry in env.get("PYTHONPATH", "").split(os.pathsep):
        if entry and str(Path(entry).resolve()) not in entries:
            entries.append(str(Path(entry).resolve()))
    return {**env, "PYTHONPATH": os.pathsep.join(entries), "POSINFO_PROGRESS": "off",
            "PYTHONUNBUFFERED": "1"}


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


def machine_record(env: dict) -> dict:
    """MACHINE_PROBE's answer; NOT_RECORDED fields when it fails."""
    done = subprocess.run([sys.executable, "-c", MACHINE_PROBE], env=env, cwd=REPO,
                          capture_output=True, text=True)
    try:
        return dict(json.loads(done.stdout.splitlines()[-1]))
    except (ValueError, IndexError, TypeError):
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


# --- running commands -------------------------------------------------------------------------

class Session:
    """One gpu_book call: its log (stdout and OUT/gpu_book.log, flushed line by line, so a
    run cut off at the device tool's limit still brings back what happened), the
    environment of its commands and its deadline."""

    def __init__(self, out: Path, env: dict, deadline_s: float | None = None):
        self.path, self.env = out / LOG_NAME, env
        self.deadline = None if deadline_s is None else time.monotonic() + deadline_s
        self.path.write_text("")

    def log(self, text: str, echo: bool = True) -> None:
        line = (time.strftime("%H:%M:%S ") + text) if echo else text
        if echo:
            print(line, flush=True)
        with self.path.open("a") as f:
            f.write(line.rstrip("\n") + "\n")

    def left(self) -> float | None:
        """Seconds to the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def run(self, what: str, command: list[str], env: dict | None = None):
        """Run ``command`` until it ends or the deadline comes; its output's last lines go
        into the log. Returns (status: ok | FAILED | killed | not run, seconds, output)."""
        left = self.left()
        if left is not None and left <= 0:
            self.log(f"{what}: not run, the deadline has passed")
            return "not run", 0.0, ""
        started = time.monotonic()
        try:
            done = subprocess.run(command, cwd=REPO, env=self.env if env is None else env,
                                  capture_output=True, text=True, timeout=left)
            status = "ok" if done.returncode == 0 else "FAILED"
            output = done.stdout + done.stderr
        except subprocess.TimeoutExpired as stopped:  # the command was killed
            status = "killed"
            output = "".join(o.decode(errors="replace") if isinstance(o, bytes) else o or ""
                             for o in (stopped.stdout, stopped.stderr))
        seconds = time.monotonic() - started
        lines = output.rstrip().splitlines()[-OUTPUT_TAIL_LINES:]
        self.log(f"--- output of {what} ({status}, {seconds:.1f} s) ---\n" + "\n".join(lines),
                 echo=False)
        if status == "killed":
            self.log(f"{what}: killed after {seconds:.0f} s, stopped at the deadline")
        elif status == "FAILED":
            self.log(f"{what} FAILED after {seconds:.1f} s (exit code {done.returncode}):\n    "
                     + error_of(output).replace("\n", "\n    "))
        return status, seconds, output


def error_of(output: str) -> str:
    """The runner's own error message (``error: chapter ... failed in cell ...``), else the
    output's last lines."""
    lines = output.rstrip().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("error:"):
            return "\n".join(lines[i:i + 3])
    return "\n".join(lines[-15:])


def dry_run(session: Session, stems: dict[int, str], scratch: Path) -> bool:
    """Every chapter at the smoke profile, fresh cache, notebooks thrown away; stops at the
    first failure, whose output it prints."""
    env = {**session.env, "POSINFO_CACHE": str(scratch / "dry-cache")}
    (scratch / "dry").mkdir()
    started = time.monotonic()
    for number, stem in stems.items():
        status, _, output = session.run(f"dry run of {stem}", chapter_command(
            number, scratch / "dry", DRY_RUN_PROFILE), env)
        if status != "ok":
            print(f"--- output of {stem} ---\n{output.rstrip()}", file=sys.stderr)
            session.log(f"dry run FAILED in {time.monotonic() - started:.0f} s: {stem} {status}")
            return False
    session.log(f"dry run passed in {time.monotonic() - started:.0f} s")
    return True


def prefetch(session: Session, commands: list[list[str]], jobs: int, scratch: Path) -> None:
    """A plan pass of each command, then the runs they recorded trained ``jobs`` at a time
    into the model cache (``tools.prefetch``). Costs time when it fails, never results."""
    plans = []
    for command in commands:
        plans.append(scratch / f"plan-{len(plans)}.jsonl")
        session.run(f"plan pass of {' '.join(command[2:4])}", plan_command(plans[-1], command))
    train = [sys.executable, "-m", "posinfo.tools.prefetch", "train", *map(str, plans),
             "--jobs", str(jobs)]
    left = session.left()
    session.run("prefetch", train + ([] if left is None else ["--deadline", f"{left:.0f}"]))


def run_chapters(session: Session, stems: dict[int, str], out: Path, profile: str,
                 record: dict) -> dict[str, tuple[str, float]]:
    """Each chapter into ``out`` in turn, its notebook stamped with ``record`` and its own
    start, end and status. Returns {stem: (status, seconds)}."""
    results = {}
    started = time.monotonic()
    for number, stem in stems.items():
        session.log(f"start  {stem}")
        begun = utc_now()
        status, seconds, _ = session.run(stem, chapter_command(number, out, profile))
        results[stem] = status, seconds
        entry = {**record, "profile": profile, "chapter": stem, "started": begun,
                 "finished": utc_now(), "seconds": round(seconds, 1), "status": status,
                 "runner": "posinfo.tools.gpu_book"}
        written = [path.name for path in (out / f"{stem}.ipynb", out / f"{stem}.failed.ipynb")
                   if path.exists() and stamp_notebook(path, entry)]
        session.log(f"record {stem}: commit {entry['commit']}, machine {entry['machine']}, "
                    f"torch {entry['torch']}, {begun} to {entry['finished']}, {status}"
                    + (f" (in {', '.join(written)})" if written else " (no notebook)"))
    ok = sum(status == "ok" for status, _ in results.values())
    session.log(f"book: {ok} of {len(results)} chapters ok in "
                f"{time.monotonic() - started:.0f} s wall\n" + "\n".join(
                    f"  {stem:<24}  {status:<8} {seconds:8.1f}"
                    for stem, (status, seconds) in results.items()))
    return results


def parse(argv=None) -> tuple[argparse.Namespace, list[int], list[str]]:
    """The options, checked before anything runs: (args, chapter numbers, pilots)."""
    parser = argparse.ArgumentParser(prog="python -m posinfo.tools.gpu_book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the notebooks, pilot records "
                        "and gpu_book.log (flat)")
    parser.add_argument("--profile", default="gpu", help="profile of the run (default gpu)")
    parser.add_argument("--chapters", nargs="+", metavar="CHAPTER",
                        help="only these chapters, by number or name: --chapters 2,3")
    parser.add_argument("--pilots", nargs="+", metavar="PILOT", default=[],
                        help=f"before the chapters, these pilots ({', '.join(PILOTS)})")
    parser.add_argument("--pilot-stages", type=int, metavar="N",
                        help="with --pilots augshift: stop its pilot after N stages")
    parser.add_argument("--prefetch", type=int, metavar="JOBS",
                        help="first train the runs JOBS at a time (posinfo.tools.prefetch)")
    parser.add_argument("--skip-dry-run", action="store_true", help="no smoke dry run")
    parser.add_argument("--commit", help=f"the commit the code is (default ${COMMIT_ENV}, "
                        "else git rev-parse HEAD where .git exists)")
    parser.add_argument("--deadline", type=float, metavar="SECONDS",
                        help="stop whatever still runs this long after the start")
    args = parser.parse_args(argv)
    if args.profile not in PROFILES:
        parser.error(f"--profile must be one of {PROFILES}, got {args.profile!r}")
    if args.prefetch is not None and args.prefetch < 1:
        parser.error(f"--prefetch must be at least 1 (runs at a time), got {args.prefetch}")
    pilots = [name for given in args.pilots for name in given.split(",") if name]
    unknown = sorted(set(pilots) - set(PILOTS))
    if unknown:
        parser.error(f"--pilots must name pilots of {sorted(PILOTS)}, got {unknown}")
    if args.pilot_stages is not None and (args.pilot_stages < 1 or "augshift" not in pilots):
        parser.error(f"--pilot-stages must be a whole number >= 1, with --pilots augshift; "
                     f"got {args.pilot_stages} with pilots {pilots}")
    try:
        numbers = resolve_chapters(args.chapters) if args.chapters else list(chapter_stems())
    except ValueError as err:
        parser.error(f"--chapters: {err}")
    try:
        args.out = check_out(Path(args.out))
    except ValueError as err:
        parser.error(str(err))
    if pilots and not args.chapters:  # the pilots' session: no chapter unless named
        numbers = []
    return args, numbers, pilots


def main(argv=None) -> int:
    args, numbers, pilots = parse(argv)
    stems = {n: stem for n, stem in chapter_stems().items() if n in numbers}
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    session = Session(out, child_env(), args.deadline)
    session.log(f"posinfo.tools.gpu_book: profile {args.profile}, chapters {numbers}, pilots "
                f"{pilots}, out {out}")
    commit, source = run_commit(args.commit)
    machine = machine_record(session.env)
    session.log(f"commit: {commit} (from {source})")
    session.log("environment: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    if commit != NOT_RECORDED:  # the chapters' kernels see it too
        session.env[COMMIT_ENV] = commit
    with tempfile.TemporaryDirectory(prefix="posinfo-gpu-book-") as scratch:
        scratch = Path(scratch)
        if stems and not args.skip_dry_run and not dry_run(session, stems, scratch):
            return 1
        session.env["POSINFO_CACHE"] = str(scratch / "cache")
        commands = [pilot_command(name, scratch, args.profile, args.pilot_stages)
                    for name in pilots]
        commands += [chapter_command(n, scratch / "plan", args.profile) for n in stems]
        if args.prefetch and commands:
            prefetch(session, commands, args.prefetch, scratch)
        ok = True
        for name in pilots:
            status, seconds, _ = session.run(f"pilot {name}", pilot_command(
                name, out, args.profile, args.pilot_stages))
            ok &= status == "ok"
            if status == "ok":
                session.log(f"pilot {name} done in {seconds:.0f} s -> "
                            f"{out / f'{name}-{args.profile}.json'}")
        results = run_chapters(session, stems, out, args.profile,
                               {"commit": commit, **machine}) if stems else {}
    return 0 if ok and all(status == "ok" for status, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
