"""The front page's verdict table, read from the executed chapters (never typed in).

    python -m posinfo.tools.report            # writes book/_generated/verdicts.md

Every chapter prints one verdict line (``posinfo.verdict.Verdict.line``) in a cell of its
own, right after the cell whose table holds the numbers behind it:

    Claim N: holds|does not hold|inconclusive — <statistic> = <estimate> [95% CI a, b];
    needs <rule>; n = <seeds>

and keeps beside it, in the same cell, the verdict's record (``posinfo.verdict.show``): the
per-seed values of the primary statistic, the rule, the level and n. This module reads the
records of the committed .ipynb and re-judges each from its per-seed values
(``Verdict.from_record``), with the profile the chapter ran at, so the front page can only
ever show what a run measured. A notebook without a record (the `gpu` part's first edition,
executed before verdicts kept one) is read from its printed line and marked so on the page:
its numbers can be checked against nothing but themselves.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

from ..run import BOOK, chapter_sources
from ..verdict import VERDICT_LINE, Verdict, records
from .gpu_book import NOT_RECORDED, NOTEBOOK_KEY

PROFILE = re.compile(r"^profile\s+(\w+)$", re.M)
EPOCHS = re.compile(r"^epochs\s+(\d+)$", re.M)  # the verdict's training budget


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def _fields(verdict: Verdict) -> dict:
    """A verdict as the parsed line's fields (strings, as the line prints them)."""
    return VERDICT_LINE.match(verdict.line()).groupdict()


def chapter_verdict(notebook_path: Path) -> dict:
    """Title, profile, the verdicts and the numbers behind them, from one chapter: from its
    records where it has them (``recorded`` True), else parsed from its printed lines."""
    nb = nbformat.read(notebook_path, as_version=4)
    title = next((line[2:].strip() for c in nb.cells if c.cell_type == "markdown"
                  for line in c.source.splitlines() if line.startswith("# ")), notebook_path.stem)
    code = [c for c in nb.cells if c.cell_type == "code"]
    kept = records(nb)
    verdicts = [_fields(Verdict.from_record(r)) for r in kept]
    evidence = []
    for i, cell in enumerate(code):
        found = [m.groupdict() for m in VERDICT_LINE.finditer(_text(cell))]
        if not found:
            continue
        if not kept:
            verdicts += found
        around = [_text(code[j]).rstrip() for j in (i - 1, i, i + 1) if 0 <= j < len(code)]
        evidence.append("\n".join(t for t in around if t))
    profiles = {m for c in code for m in PROFILE.findall(_text(c))}
    epochs = {m for c in code for m in EPOCHS.findall(_text(c))}
    return {"doc": notebook_path.stem, "title": title, "verdicts": verdicts,
            "recorded": bool(kept), "evidence": "\n\n".join(evidence),
            "profile": ", ".join(sorted(profiles)) or "unknown",
            "epochs": ", ".join(sorted(epochs, key=int)) or "?"}


# The book's second part: the same chapters at the gpu profile, executed on a GPU by
# `python -m posinfo.tools.gpu_book` and committed as they came back (see README).
GPU_BOOK = BOOK / "gpu"
PARTS = (("default", BOOK), ("gpu", GPU_BOOK))


# How the page marks a verdict read from its printed line, with no record behind it.
NO_RECORD = "no verdict record: the printed line, not re-derivable"


def _cell(verdict: dict, row: dict, link: str) -> str:
    """One part's verdict for one claim: outcome, estimate [CI], seeds, epochs, link; marked
    where the notebook kept no record of it."""
    return (f"**{verdict['outcome']}** {verdict['estimate']} [{verdict['low']}, "
            f"{verdict['high']}]; n = {verdict['n']}, {row['epochs']} epochs, "
            f"`{row['profile']}` ({link})" + ("" if row["recorded"] else f"; *{NO_RECORD}*"))


def _link(row: dict, folder: Path) -> str:
    where = folder.relative_to(BOOK.parent).as_posix()
    return f"{{doc}}`{'chapter' if folder == BOOK else 'GPU run'} </{where}/{row['doc']}>`"


def part_rows(folder: Path) -> list[dict]:
    """chapter_verdict of every executed chapter in ``folder``, in book order."""
    return [chapter_verdict(folder / f"{p.stem}.ipynb") for p in chapter_sources().values()
            if (folder / f"{p.stem}.ipynb").exists()]


def _escaped(text: str) -> str:
    """Text for a cell of a markdown table: a "|" (an absolute value) would end the cell."""
    return text.replace("|", "\\|")


def _key(verdict: dict) -> tuple[str, str]:
    """A verdict's row on the front page: its claim and its label ("" for the main one)."""
    return verdict["claim"], verdict.get("label") or ""


def verdict_markdown() -> str:
    """The front page's table: per claim, the statistic and its rule, then the verdict of
    each part of the book (the default profile on a CPU, the gpu profile on a GPU)."""
    rows = {name: part_rows(folder) for name, folder in PARTS}  # each notebook read once
    # A claim may have several verdicts (chapter 5's control is labelled): one row each.
    parts = {name: {_key(v): (v, row, _link(row, folder))
                    for row in rows[name] for v in row["verdicts"]}
             for name, folder in PARTS}
    lines = ["| claim | primary statistic | needs | `default` (2-core CPU) | `gpu` (one GPU) |",
             "|---|---|---|---|---|"]
    for row in rows["default"]:
        if not row["verdicts"]:
            lines.append(f"| ? | | | not executed ({_link(row, BOOK)}) | |")
    for claim in sorted(set().union(*parts.values()),
                        key=lambda k: (int(k[0]), k[1])):
        first = next(part[claim][0] for part in parts.values() if claim in part)
        cells = []
        for name, _ in PARTS:
            if claim not in parts[name]:
                cells.append("not run yet" if name == "gpu" else "not executed")
                continue
            v, row, link = parts[name][claim]
            differs = (v["statistic"], v["rule"]) != (first["statistic"], first["rule"])
            cells.append(_cell(v, row, link)
                         + (f" (statistic {_escaped(v['statistic'])}, needs {v['rule']})"
                            if differs else ""))
        name = claim[0] + (f" ({claim[1]})" if claim[1] else "")
        lines.append(f"| {name} | {_escaped(first['statistic'])} | {first['rule']} | "
                     + " | ".join(cells) + " |")
    lines.append("")
    for name, folder in PARTS:
        for row in filter(lambda r: r["verdicts"], rows[name]):
            claims = ", ".join(f"Claim {v['claim']}" for v in row["verdicts"])
            lines += [f"**{claims}, `{name}`**: the numbers behind the verdict "
                      f"({_link(row, folder)}):", "", "```text", row["evidence"], "```", ""]
    return "\n".join(lines)


# ---- the GPU run: its log and benches, as python -m posinfo.tools.gpu_book brought them back
GPU_LOG = GPU_BOOK / "gpu_book.log"
# The bench inside the book's run had the 30 s the deadline left it (compile variants skipped);
# bench_gpu_full.json is `python -m posinfo.tools.bench --gpu --budget 150`, called on its own on
# the same machine right after the book.
GPU_BENCH, GPU_BENCH_IN_RUN = GPU_BOOK / "bench_gpu_full.json", GPU_BOOK / "bench_gpu.json"
LOG_ENVIRONMENT = re.compile(r"environment: (?P<text>.+)$", re.M)
LOG_PLAN = re.compile(r"lanes (?P<lanes>\[\[.*?\]\]), jobs (?P<jobs>\d+)")
LOG_CHAPTER = re.compile(r"^  (?P<stem>\d\d_\w+)\s+(?P<status>\w+)\s+(?P<seconds>[\d.]+)$", re.M)
LOG_BOOK = re.compile(r"book: (?P<ok>\d+) of (?P<n>\d+) chapters ok in (?P<wall>\d+) s wall")
LOG_DRY = re.compile(r"dry run passed in (?P<seconds>\d+) s")


def gpu_run(log: Path = GPU_LOG) -> dict:
    """What the GPU run's log says: machine, lanes, dry run, wall time, each chapter's
    seconds. A run stopped before the book ended (failed dry run, deadline) has no wall
    time: None, and the page says so."""
    text = log.read_text()
    env, plan = LOG_ENVIRONMENT.search(text), LOG_PLAN.search(text)
    book, dry = LOG_BOOK.search(text), LOG_DRY.search(text)
    return {"environment": env["text"] if env else "not logged",
            "lanes": plan["lanes"] if plan else "?", "jobs": int(plan["jobs"]) if plan else None,
            "dry_run_s": int(dry["seconds"]) if dry else None,
            "wall_s": int(book["wall"]) if book else None,
            "ok": int(book["ok"]) if book else 0, "n": int(book["n"]) if book else None,
            "chapters": {m["stem"]: (m["status"], float(m["seconds"]))
                         for m in LOG_CHAPTER.finditer(text)}}


def _short(commit: str) -> str:
    """A full sha as its first 7 characters (a "+dirty" suffix kept); anything else as is."""
    sha, plus, rest = commit.partition("+")
    if re.fullmatch(r"[0-9a-f]{40}", sha):
        return f"`{sha[:7]}{plus}{rest}`"
    return commit if commit == NOT_RECORDED else f"`{commit}`"


def first_committed(path: Path) -> str | None:
    """The short sha of the commit that added ``path`` to the repository; None where git
    cannot say (no .git, a file outside the repository or never committed)."""
    import subprocess

    try:
        done = subprocess.run(["git", "log", "--diff-filter=A", "--format=%h", "--",
                               str(path.resolve())], cwd=BOOK.parent, capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    shas = done.stdout.split() if done.returncode == 0 else []
    return shas[-1] if shas else None


def chapter_runs(folder: Path = GPU_BOOK) -> dict[str, dict]:
    """{stem: commit, machine, torch, date} of every executed chapter in ``folder``, from
    the record posinfo.tools.gpu_book writes into each notebook's metadata. A notebook
    without one (run before gpu_book recorded it) says so, with the commit that added it to
    the repository: its run was of that commit's parent code or older, which the notebook
    itself cannot tell."""
    runs = {}
    for source in chapter_sources().values():
        path = folder / f"{source.stem}.ipynb"
        if not path.exists():
            continue
        run = json.loads(path.read_text()).get("metadata", {}).get(NOTEBOOK_KEY)
        if run:
            runs[source.stem] = {"commit": _short(str(run.get("commit", NOT_RECORDED))),
                                 "machine": run.get("machine", NOT_RECORDED),
                                 "torch": run.get("torch", NOT_RECORDED),
                                 "date": str(run.get("started", ""))[:10] or NOT_RECORDED}
            continue
        added = first_committed(path)
        runs[source.stem] = {"commit": NOT_RECORDED + (f" (run before gpu_book recorded "
                                                       f"commits; committed in `{added}`)"
                                                       if added else ""),
                             "machine": "stated in the chapter",
                             "torch": "stated in the chapter", "date": NOT_RECORDED}
    return runs


def runs_markdown(folder: Path = GPU_BOOK) -> list[str]:
    """The table of which commit, machine and torch each chapter ran on."""
    runs = chapter_runs(folder)
    if not runs:
        return []
    lines = ["Which code each chapter ran, as its notebook records it (chapters may run in "
             "separate GPU runs, on different commits):", "",
             "| chapter | commit | machine | torch | date (UTC) |", "|---|---|---|---|---|"]
    lines += [f"| {stem} | {r['commit']} | {r['machine']} | {r['torch']} | {r['date']} |"
              for stem, r in runs.items()]
    return lines + [""]


def _bench_rows(bench: dict) -> dict:
    return {name: {"canvases/s": f"{a['canvases_per_s']:.0f}",
                   "ms/step": f"{a['ms_per_step']:.2f}",
                   "vs eager": f"{a['vs_eager']:.2f}x",
                   "setup s": f"{a['setup_s']:.1f}",
                   "20 epochs, min": f"{a['projected_min_with_setup']:.2f}"}
            for name, a in bench_variants(bench).items() if a.get("status") == "ok"}


def bench_variants(bench: dict) -> dict:
    """The bench's timed variants, {name: result}; records written before 2026-12-08 call
    them "arms"."""
    return bench["variants"] if "variants" in bench else bench["arms"]


def bench_deadline(bench: dict) -> str:
    """The time limit the bench of ``bench`` ran with, as its command gave it then (flag
    --budget, recorded as budget_s; "" for a bench without one)."""
    given = bench["config"].get("budget_s")
    return "" if given is None else f" --budget {given:g}"


def gpu_run_markdown(log: Path = GPU_LOG, bench: Path = GPU_BENCH,
                     bench_in_run: Path = GPU_BENCH_IN_RUN, folder: Path = GPU_BOOK) -> str:
    """The GPU part's page: which commit and machine each chapter (in ``folder``) ran on,
    how long each took and the bench's training-step speeds."""
    from ..tables import format_table

    run = gpu_run(log)
    lines = [f"Machine (from the run's log): {run['environment']}.", ""]
    if run["wall_s"] is None:
        lines += ["The log has no end of the book run (it stopped before: see the log).", ""]
    else:
        dry = "" if run["dry_run_s"] is None else \
            f"The smoke dry run took {run['dry_run_s']} s; then "
        lanes = ", one after another" if run["jobs"] is None else \
            f", in the lanes {run['lanes']} ({run['jobs']} at a time; a lane runs its " \
            f"chapters in order)"
        lines += [f"{dry}{run['ok']} of {run['n']} chapters ran at the `gpu` profile in "
                  f"**{run['wall_s']} s wall ({run['wall_s'] / 60:.1f} min)**{lanes}.", ""]
    if run["chapters"]:
        lines += ["```text", format_table({stem: {"status": status, "seconds": f"{sec:.0f}"}
                                           for stem, (status, sec) in run["chapters"].items()},
                                          index="chapter"), "```", ""]
    lines += runs_markdown(folder)
    if bench.exists():
        b = json.loads(bench.read_text())
        h, best = b["header"], b["summary"]
        lines += [f"Training-step speed of the paper's CIFAR-10 location run (ResNet-18 width "
                  f"64, batch 48, bf16, channels_last; 96 px canvases built on the GPU from "
                  f"random 32 px RGB images), measured by `python -m posinfo.tools.bench --gpu"
                  f"{bench_deadline(b)}` on {h['device']} (torch "
                  f"{h['torch']}, {h['date'][:10]}), called on its own right after the book, "
                  f"every variant in the same run:", "", "```text",
                  format_table(_bench_rows(b), index="variant"), "```", "",
                  f"Best: {best['best']}, {best['vs_eager']:.2f}x eager: 20 epochs of 50,000 "
                  f"canvases in {best['projected_min']:.2f} min (target "
                  f"{best['target_minutes']:g} min: "
                  f"{'met' if best['meets_target'] else 'missed'})."]
        if bench_in_run.exists():
            r = json.loads(bench_in_run.read_text())
            eager, fast = bench_variants(r)["eager"], bench_variants(r).get(best["best"], {})
            if eager.get("status") == "ok" and fast.get("status") == "ok":
                def moved(a, name):
                    return abs(a["canvases_per_s"] / bench_variants(b)[name]["canvases_per_s"]
                               - 1)
                lines += ["", f"The bench inside the book's run, a minute earlier with the "
                          f"{r['config'].get('budget_s', '?')} s its deadline left (compile "
                          f"variants "
                          f"skipped), measured eager at {eager['canvases_per_s']:.0f} "
                          f"canvases/s and {best['best']} at {fast['canvases_per_s']:.0f} "
                          f"({fast['vs_eager']:.2f}x eager). Between the two runs eager moved "
                          f"by {moved(eager, 'eager'):.1%}, the graph by "
                          f"{moved(fast, best['best']):.1%}: quote the speed-up as a range."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    out = BOOK / "_generated" / "verdicts.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(verdict_markdown())
    print(f"verdict table -> {out}")
    if GPU_LOG.exists():
        gpu = BOOK / "_generated" / "gpu_run.md"
        gpu.write_text(gpu_run_markdown())
        print(f"GPU run -> {gpu}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
