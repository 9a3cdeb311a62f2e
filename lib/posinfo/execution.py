"""One chapter executed in a Jupyter kernel, with nothing computed lost.

The notebook is executed in a staging folder and moved to its place only when every cell
ran: a failed, killed or interrupted run never replaces a complete one; what it executed is
kept beside it as ``<chapter>.failed.ipynb``, and the message names the chapter, the cell
and where it was kept (also on SIGTERM and Ctrl-C). A staging folder left by a runner that
was killed outright (SIGKILL) is removed by the next run. The user sees the run's progress
(chapter, cell n of m, a line as each model starts and ends training, relayed from the
kernel through a file and never written into the notebook) on the terminal it started
from, after a warning with a rough length when a profile sized for a GPU starts without
one; the kernel talks to the runner over local sockets (no "running over TCP without
encryption"). Each executed notebook records, in its metadata, the lock of the environment
that ran it (``lockfile.recorded``).

Used by the runner (posinfo.run).
"""
from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import lockfile

STAGING_PREFIX = "posinfo-run-"


class ChapterFailed(RuntimeError):
    pass


def failed_path(output: Path) -> Path:
    """Where a failed or killed run's notebook is kept: beside the complete one, never on it."""
    return output.with_name(f"{output.stem}.failed.ipynb")


def largest_kernel_mb() -> float:
    """Peak resident memory of the largest kernel this process has run and reaped, in MB.

    Kernels are our children, so RUSAGE_CHILDREN holds their peak (Linux reports KiB).
    """
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _training_work(s) -> float:
    """A chapter's training, in proportion: optimiser steps x batch x width^2 x input pixels
    (two views in AugShift) x seeds of the verdict's arms. Only ratios of it mean anything."""
    if "scene_height" in s:
        pixels = s.scene_height * s.scene_width
    elif "margin" in s:
        pixels = 2 * (s.image_size + 2 * s.margin) ** 2
    else:
        pixels = (s.image_size * s.grid) ** 2
    return s.steps(s.epochs) * s.batch_size * s.width ** 2 * pixels * s.n_seeds


# The default book's chapters each took about 3 minutes on the 2-core CPU (book/reproduce.md).
DEFAULT_CHAPTER_MINUTES = 3


def warn_gpu_profile_on_cpu(key: str, settings) -> None:
    """A profile sized for a GPU, started where torch sees none, would run for hours or
    days without a word: say so, with a rough length, before the kernel starts."""
    import torch

    if settings is None or settings.profile not in ("gpu", "paper") \
            or torch.cuda.is_available():
        return
    from .settings import chapter_settings

    ratio = _training_work(settings) / _training_work(chapter_settings(key, "default"))
    hours = ratio * DEFAULT_CHAPTER_MINUTES / 60
    print(f"warning: the {settings.profile} profile is sized for a GPU and torch sees none: "
          f"its verdict's training is about {ratio:.0f}x the default profile's, so roughly "
          f"{hours:.0f} hours here (the default chapter takes about {DEFAULT_CHAPTER_MINUTES} "
          f"min on a 2-core CPU); Ctrl-C stops it and keeps what ran", file=sys.stderr,
          flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_stale_staging() -> list[Path]:
    """Remove the staging folders of runners that no longer run (killed with SIGKILL, which
    no cleanup survives): each folder's name carries its runner's process id."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{STAGING_PREFIX}*-*"):
        pid = folder.name[len(STAGING_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _cell_reached(path: Path) -> str:
    """'cell i of n' for the last cell a partly executed notebook started (papermill stamps
    each cell's start), where a run stopped or its kernel died; '' when none is readable."""
    import nbformat

    try:
        cells = nbformat.read(path, as_version=4).cells
    except Exception:  # noqa: BLE001 - a notebook cut mid-write names no cell
        return ""
    started = [i for i, c in enumerate(cells) if c.metadata.get("papermill", {}).get("start_time")]
    return f"cell {started[-1]} of {len(cells)}" if started else ""


def _kernel_manager(log: Path):
    """A kernel manager whose kernel writes its own stderr (not the cells': its startup and
    shutdown chatter, the traceback of a kernel whose runner stopped, a crash's last words)
    to ``log``: the user's terminal shows the run's progress and one line of outcome."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggedKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            with open(log, "ab") as stderr:  # the kernel holds its own copy of the handle
                return await super()._async_launch_kernel(kernel_cmd, stderr=stderr, **kw)

    return LoggedKernelManager


class _TrainingRelay(threading.Thread):
    """Prints on the runner's terminal, under the cells' bar, each line the kernel's
    training appends to ``path`` (train.report_training: one as a model starts training,
    one when it is done): the notebook gets none of them, the user sees every model."""

    def __init__(self, stem: str, path: Path):
        super().__init__(daemon=True)
        self.stem, self.path, self.offset = stem, path, 0
        self.finished = threading.Event()

    def run(self):
        while not self.finished.wait(0.5):
            self.relay()
        self.relay()  # what the last model wrote before the kernel stopped

    def stop(self):
        self.finished.set()
        self.join()

    def relay(self):
        from tqdm import tqdm

        try:
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
        except OSError:  # nothing trained yet
            return
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            tqdm.write(f"{self.stem}: {line}", file=sys.stderr)  # clears and redraws the bar


def _last_words(log: Path, lines: int = 5) -> str:
    """The end of a dead kernel's log, indented, for the error message ('' when empty)."""
    try:
        tail = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n  kernel: {line}" for line in tail)


def _finish(path: Path) -> None:
    """Tag papermill's injected cell 'remove-cell' so the rendered page stays clean, and
    record the environment's lock in the notebook's metadata."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nb.metadata["posinfo"] = {"environment": lockfile.recorded()}
    nbformat.write(nb, path)


def execute(key: str, source: Path, output: Path, parameters: dict, env: dict | None = None):
    """Execute one chapter's jupytext source into ``output`` with papermill; ``env`` holds
    environment variables for its kernel (profile, torch.compile backend)."""
    import jupytext
    import papermill
    from traitlets.config import Config

    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging()
    notebook = jupytext.read(source)
    notebook.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                                "language": "python"})
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    staged = staging / f"{source.stem}.ipynb"
    executed = staging / "executed" / f"{source.stem}.ipynb"
    executed.parent.mkdir()
    jupytext.write(notebook, staged)
    kernel_log = staging / "kernel.log"
    kept = failed_path(output)
    done = False
    # The training bars stay out of the notebook; the runner shows the cells' progress and
    # relays a line per trained model from the kernel (train.report_training).
    from .train import TRAINING_LOG_ENV

    training_log = staging / "training.log"
    env = {"POSINFO_PROGRESS": "off", TRAINING_LOG_ENV: str(training_log), **(env or {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    started = time.time()
    # papermill writes a tuple into the notebook as its string "(1, 2)", which the chapter's
    # checks then refuse; a list is written as a list literal.
    parameters = {k: list(v) if isinstance(v, tuple) else v for k, v in parameters.items()}
    relay = _TrainingRelay(source.stem, training_log)
    relay.start()
    try:
        papermill.execute_notebook(
            str(staged), str(executed), parameters=parameters, kernel_name="python3",
            cwd=str(source.parent), progress_bar={"desc": source.stem, "file": sys.stderr},
            kernel_manager_class=_kernel_manager(kernel_log),
            # local sockets: no eavesdropping, and no warning about it on every run
            config=Config({"KernelManager": {"transport": "ipc"}}))
        _finish(executed)
        shutil.move(str(executed), str(output))
        done = True
        kept.unlink(missing_ok=True)  # an earlier attempt's failure, now superseded
    except papermill.PapermillExecutionError as err:
        raise ChapterFailed(f"chapter {source.stem!r} failed in cell {err.cell_index} "
                            f"(execution count {err.exec_count}): {err.ename}: {err.evalue}\n"
                            f"the failed notebook is kept at {kept}"
                            + (f" ({output} is untouched)" if output.exists() else "")) from None
    except Exception as err:  # kernel died, notebook unreadable, ...
        where = _cell_reached(executed)
        raise ChapterFailed(f"chapter {source.stem!r} failed{' in ' + where if where else ''}: "
                            f"{type(err).__name__}: {err}{_last_words(kernel_log)}\n"
                            f"whatever was executed is kept at {kept}") from None
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (see run._terminate)
        where = _cell_reached(executed)
        print(f"\n{source.stem}: stopped{' in ' + where if where else ''}; what ran is kept at "
              f"{kept}" + (f" ({output} is untouched)" if output.exists() else ""),
              file=sys.stderr, flush=True)
        raise
    finally:
        relay.stop()
        if not done and executed.exists():
            shutil.move(str(executed), str(kept))
        shutil.rmtree(staging, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    print(f"{source.stem}: executed in {time.time() - started:.0f}s "
          f"(largest kernel so far {largest_kernel_mb():.0f} MB) -> {output}", flush=True)
