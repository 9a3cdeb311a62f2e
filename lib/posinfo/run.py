"""Run chapters headless with papermill.

    python -m posinfo.run --list
    python -m posinfo.run gap_keeps_position --out runs/circ -p padding circular -p seed 3
    python -m posinfo.run --book            # the book build: every chapter, default profile
    python -m posinfo.run --book 2          # re-execute one chapter of the book in place
    python -m posinfo.run 3 --out runs/paper -p profile paper --compile   # torch.compile (GPU)
    python -m posinfo.run 1 --out runs/circ -p padding circular --replace   # rerun into runs/circ

A user's run writes ``OUT/<chapter>.ipynb`` and never touches the committed chapters. Its
parameters, the environment it reads (POSINFO_PROFILE, POSINFO_COMPILE, a writable
POSINFO_CACHE) and the data of the paper profile are checked before a kernel starts; a
relative POSINFO_CACHE or POSINFO_DATA means a folder of the directory the command runs in,
and a POSINFO_PLAN left in the environment (a plan pass trains nothing) is refused. An OUT
that already holds the chapter's run is refused unless --replace is given. The notebook is
executed in a staging folder and moved into OUT only when every cell ran (posinfo.execution):
a failed, killed or interrupted run never replaces a complete one; it is kept beside it as
``OUT/<chapter>.failed.ipynb``, and the message names the chapter, the cell and the path.

Used by the book build and every rerun of a chapter.
"""
from __future__ import annotations

import argparse
import ast
import io
import os
import signal
import sys
import tokenize
from pathlib import Path

from . import cache
from .execution import ChapterFailed, execute, warn_gpu_profile_on_cpu
from .checks import PROFILES, allowed, renamed
from .settings import CHAPTERS, FIRST_VERDICT_SEED, PROFILE_ENV, chapter_settings
from .graphed import graph_mode
from .train import COMPILE_BACKENDS, COMPILE_ENV, PLAN_ENV, compile_backend

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"


def chapter_sources() -> dict[str, Path]:
    """{settings key: jupytext source} for every chapter, in book order (01_..., 02_...)."""
    found = {}
    for path in sorted(BOOK.glob("[0-9][0-9]_*.py")):
        found[path.stem.split("_", 1)[1]] = path
    return found


def resolve_chapter(name: str) -> tuple[str, Path]:
    """Accept 'gap_keeps_position', '01_gap_keeps_position', '01', '1' or a path."""
    sources = chapter_sources()
    stem = Path(name).stem
    for key, path in sources.items():
        number = path.stem.split("_", 1)[0]
        if stem in (key, path.stem, number) or (stem.isdigit() and int(stem) == int(number)):
            return key, path
    raise ValueError(f"chapter must be one of {sorted(sources)} (or its number), got {name!r}")


def parse_value(text: str):
    """'4' -> 4, '0.5' -> 0.5, '(2, 2)' -> (2, 2), 'circular' -> 'circular'."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parameters_cell(source: Path) -> dict[str, tuple[object, str]]:
    """The chapter's cell tagged ``parameters``: {name: (value, meaning)}, in cell order.

    The value is the assignment's literal (None, "the profile's value", also for a call such
    as ``posinfo.default_profile()``); the meaning is the comment that ends its line.
    """
    import jupytext

    cell = next((c for c in jupytext.read(source).cells
                 if "parameters" in c.metadata.get("tags", ())), None)
    if cell is None:
        raise ValueError(f"chapter {source.stem!r} has no cell tagged 'parameters'")
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(cell.source).readline)
                if tok.type == tokenize.COMMENT}
    found = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = None
            found[node.targets[0].id] = (value, comments.get(node.end_lineno, ""))
    return found


def _shown(value) -> str:
    """A value as ``-p NAME VALUE`` takes it: strings bare, tuples as (a, b)."""
    return "-" if value is None else str(value)


def describe(key: str, source: Path) -> str:
    """``--list`` for one chapter: per parameter of its parameters cell, its meaning, its
    value at every profile of the chapter's table, and the values it accepts."""
    tables = CHAPTERS.get(key, {})
    lines = [f"{source.stem}   python -m posinfo.run {key} --out DIR -p NAME VALUE ..."]
    for name, (value, meaning) in parameters_cell(source).items():
        lines.append(f"  {name}" + (f": {meaning}" if meaning else ""))
        if name != "profile" and tables:
            if value is not None:  # a value in the cell overrides every profile's
                values = f"{_shown(value)} at every profile (set in the chapter)"
            else:
                fallback = FIRST_VERDICT_SEED if name == "seed" else None
                at = {profile: _shown(table.get(name, fallback))
                      for profile, table in tables.items()}
                values = (f"{next(iter(at.values()))} at every profile"
                          if len(set(at.values())) == 1
                          else "  ".join(f"{profile}={v}" for profile, v in at.items()))
            lines.append(f"      {values}")
        offered = allowed(name, next(iter(tables.values()), {}))
        if offered:
            lines.append(f"      allowed: {offered}")
    return "\n".join(lines)


def validate(key: str, parameters: dict):
    """Raise the chapter's own parameter error now, before any kernel or training starts;
    return its resolved settings (None for a chapter without a settings table)."""
    params = dict(parameters)
    profile = params.pop("profile", os.environ.get(PROFILE_ENV, "default"))
    if key in CHAPTERS:
        return chapter_settings(key, profile, **params)
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    return None


# Paths the kernel reads from the environment. It runs in book/, so a relative path would
# name a folder there (POSINFO_CACHE=relcache filled book/relcache/ with models).
PATH_ENVS = (cache.CACHE_ENV, "POSINFO_DATA")
# Set, with POSINFO_PLAN's value, by a plan pass (posinfo.tools.prefetch plan) for the command
# it runs: a POSINFO_PLAN without it is a leftover of the user's environment.
PLAN_PASS_ENV = "POSINFO_PLAN_PASS"


def resolve_environment_paths() -> None:
    """Make a relative POSINFO_CACHE or POSINFO_DATA absolute, against the directory the
    command runs in, once, before any check reads it and any kernel inherits it."""
    for name in PATH_ENVS:
        value = os.environ.get(name)
        if value and value != "off" and not Path(value).expanduser().is_absolute():
            os.environ[name] = str(Path(value).expanduser().resolve())


def check_plan_pass() -> None:
    """A plan pass (POSINFO_PLAN) trains nothing and records what would train; a chapter run
    with it exits 0 with untrained models and judges them. Only the plan pass may set it."""
    plan = os.environ.get(PLAN_ENV)
    if plan and os.environ.get(PLAN_PASS_ENV) != plan:
        raise ValueError(f"{PLAN_ENV}={plan!r} is set, but this is no plan pass: with it a "
                         f"chapter trains nothing and judges untrained models; unset it "
                         f"(a plan pass is python -m posinfo.tools.prefetch plan ... -- "
                         f"python -m posinfo.run ...)")


def check_environment(compile_given: bool = False) -> None:
    """The environment variables a chapter's kernel reads, checked before it starts.

    POSINFO_PROFILE is read by every parameters cell even when ``-p profile`` overrides it
    after; POSINFO_COMPILE and POSINFO_GRAPH by the training loop, and only when a model is
    not cached (so a typo would surface at some later run, or never); POSINFO_CACHE must be
    writable, or the first trained model would be thrown away when the kernel fails to
    store it."""
    check_plan_pass()
    value = os.environ.get(PROFILE_ENV)
    if value is not None and value not in PROFILES:
        raise ValueError(f"{PROFILE_ENV} must be one of {PROFILES} (or unset), got {value!r}")
    if not compile_given:  # --compile sets the kernel's POSINFO_COMPILE itself
        compile_backend()  # raises "POSINFO_COMPILE must be one of ..., got ..."
    graph_mode()  # POSINFO_GRAPH, read by the training loop on CUDA only
    cache.check_writable()


def missing_data(settings) -> list[str]:
    """What the data a chapter's settings ask for lacks on this machine (the paper profile's
    CIFAR, Cityscapes and segmenter checkpoint), each with where it goes; empty when usable.
    The same paths the library reads (datasets.data_dir, segment's checkpoint)."""
    from .datasets import _CIFAR, data_dir

    if settings is None:
        return []
    missing = []
    dataset = settings.get("dataset")
    if dataset in _CIFAR:
        _, folder, archive, _ = _CIFAR[dataset]
        path = data_dir() / dataset / folder
        if not path.is_dir():
            missing.append(f"dataset={dataset!r}: {path} (unpack {archive} in {path.parent})")
    if settings.get("data") == "cityscapes":
        from .scenes import cityscapes_missing
        from .segment import _missing_checkpoint, _repo_path

        missing += [f"data='cityscapes': {m}"
                    for m in cityscapes_missing(data_dir() / "cityscapes")]
        if not _repo_path(settings.checkpoint).is_file():
            missing.append(_missing_checkpoint(_repo_path(settings.checkpoint)))
    return missing


def check_data(settings) -> None:
    missing = missing_data(settings)
    if missing:
        raise FileNotFoundError(f"the {settings.profile} profile needs data this machine lacks: "
                                + "; ".join(missing) + ". See data/README.md (or set "
                                "POSINFO_DATA); nothing is downloaded at run time.")


def check_no_previous_run(output: Path, replace: bool) -> None:
    """Refuse an OUT that already holds this chapter's complete run, unless --replace."""
    if output.exists() and not replace:
        raise ValueError(f"--out already holds a run of this chapter: {output}; pass --replace "
                         f"to replace it (it is kept if the new run fails), or choose "
                         f"another --out")


def check_parameter_names(source: Path, parameters: dict) -> None:
    """Refuse names the chapter would not read. papermill injects every ``-p`` value as a new
    cell after the ``parameters`` cell, but a chapter passes only the names of that cell to
    its settings: any other name would be ignored (papermill merely warns), and a user who
    asked for ``-p n_train 64`` would get the profile's 800 images without being told."""
    allowed = list(parameters_cell(source))
    unknown = [name for name in parameters if name not in allowed]
    if unknown:
        raise ValueError(f"chapter {source.stem!r} has no parameter(s) {unknown}"
                         f"{renamed(unknown)}: a chapter "
                         f"reads only the names of its parameters cell, which are {allowed}")


def check_out(out: Path) -> Path:
    """The resolved ``--out`` (symbolic links and ``..`` followed), refused when it is or lies
    in the repository's book/ or data/: a run must never add notebooks among the committed
    chapters or the data."""
    out = out.resolve()
    for folder in (BOOK.resolve(), (REPO / "data").resolve()):
        if out == folder or folder in out.parents:
            raise ValueError(f"--out must not be {out}: it lies inside {folder}, which holds the "
                             f"repository's {'chapters' if folder == BOOK.resolve() else 'data'}; "
                             f"choose a folder of your own (e.g. runs/)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, and {out} is a file")
    created = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    try:
        cache.probe_writable(out)
    except OSError as err:
        raise ValueError(f"--out {out} cannot be written ({type(err).__name__}: "
                         f"{err.strerror or err}); choose a folder of your own (e.g. runs/)"
                         ) from None
    finally:  # the run creates it when it starts; a refused run leaves nothing behind
        for folder in created:
            if folder.is_dir():
                folder.rmdir()
    return out


def build_book(chapters=(), profile: str = "default", env: dict | None = None) -> None:
    """Execute chapters in place (book/NN_name.ipynb): the outputs the book renders.

    With no names, every chapter; otherwise only the named ones (name or number).
    """
    if os.environ.get(PLAN_ENV):  # even from a plan pass: it would write over the book
        raise ValueError(f"{PLAN_ENV} is set: a plan pass trains nothing, and --book would "
                         "write its notebooks over the book's; unset it, or plan a chapter "
                         "into a folder of its own (python -m posinfo.tools.prefetch plan)")
    selected = [resolve_chapter(c) for c in chapters] or list(chapter_sources().items())
    check_environment(bool((env or {}).get(COMPILE_ENV)))
    for key, source in selected:
        check_data(validate(key, {"profile": profile}))
        # No injected parameters: the committed notebook must stay runnable at any profile
        # (nbval re-executes it at smoke through POSINFO_PROFILE).
        execute(key, source, source.with_suffix(".ipynb"), {},
                {PROFILE_ENV: profile, **(env or {})})


def main(argv=None) -> int:
    """The command line; SIGTERM is turned into SystemExit while it runs (see _terminate)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    except KeyboardInterrupt:  # Ctrl-C: the run said where its notebook is kept
        return 128 + signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posinfo.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapter", nargs="*", help="chapter name or number (see --list); "
                        "with --book, the chapters to re-execute (default: all)")
    parser.add_argument("--out", help="folder for the executed notebook (required for a chapter)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="set a parameter (repeatable)")
    parser.add_argument("--book", action="store_true",
                        help="execute every chapter at the default profile into book/")
    parser.add_argument("--replace", action="store_true",
                        help="replace the chapter's run already in --out (without it, such an "
                        "--out is refused); a failed run still leaves it in place")
    parser.add_argument("--list", action="store_true",
                        help="list chapters and their parameters (--list N: chapter N only)")
    parser.add_argument("--compile", nargs="?", const="inductor", choices=COMPILE_BACKENDS,
                        help="train with torch.compile (default backend: inductor); worth it on "
                        "a GPU at the paper profile, not on a CPU")
    args = parser.parse_args(argv)

    try:
        if args.list:
            chosen = ([resolve_chapter(c) for c in args.chapter] if args.chapter
                      else list(chapter_sources().items()))
            print(f"profiles: {', '.join(PROFILES)} (-p profile NAME; else ${PROFILE_ENV}, else "
                  "default). Values per profile are lib/posinfo/settings.py's tables; "
                  "-p NAME VALUE overrides one.\n")
            print("\n\n".join(describe(key, path) for key, path in chosen))
            return 0
        env = {COMPILE_ENV: args.compile} if args.compile else {}
        resolve_environment_paths()
        if args.book:
            if args.parameter or args.out:
                parser.error("--book executes the book's chapters in place at the default "
                             "profile: it takes no -p or --out (run a chapter with --out DIR "
                             "-p NAME VALUE instead)")
            build_book(args.chapter, env=env)
            return 0
        if len(args.chapter) != 1:
            parser.error("name one chapter (or use --book / --list)")
        if not args.out:
            parser.error("--out DIR is required: a run never writes over the committed chapter")
        key, source = resolve_chapter(args.chapter[0])
        out_dir = check_out(Path(args.out))
        output = out_dir / f"{source.stem}.ipynb"
        parameters = {name: parse_value(value) for name, value in args.parameter}
        check_parameter_names(source, parameters)
        check_environment(compile_given=bool(args.compile))
        settings = validate(key, parameters)
        check_data(settings)
        check_no_previous_run(output, args.replace)
        warn_gpu_profile_on_cpu(key, settings)
        execute(key, source, output, parameters, env)
        return 0
    except (ValueError, FileNotFoundError, ChapterFailed) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


def _terminate(signum, frame):
    """SIGTERM as an exception, so that ``execute``'s cleanup runs (the staging folder is
    removed, the partial notebook kept) instead of the process vanishing mid-write."""
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
