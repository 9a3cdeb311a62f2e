"""The front page's verdict table, read from the executed chapters (never typed in).

    python -m posinfo.report            # writes book/_generated/verdicts.md

Every chapter prints one verdict line (``posinfo.verdict.Verdict.line``) in a cell of its
own, right after the cell whose table holds the numbers behind it:

    Claim N: holds|does not hold|inconclusive — <statistic> = <estimate> [95% CI a, b];
    needs <rule>; n = <seeds>

This module parses that line from the committed .ipynb, with the profile the chapter ran at,
so the front page can only ever show what a run printed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from .run import BOOK, chapter_sources
from .verdict import OUTCOMES

VERDICT_LINE = re.compile(
    r"^Claim (?P<claim>\d+): (?P<outcome>" + "|".join(OUTCOMES) + r") — "
    r"(?P<statistic>.+?) = (?P<estimate>\S+) \[(?P<level>\d+)% CI (?P<low>\S+), (?P<high>\S+)\]; "
    r"needs (?P<rule>.+?); n = (?P<n>\d+)$", re.M)
PROFILE = re.compile(r"^profile\s+(\w+)$", re.M)
EPOCHS = re.compile(r"^epochs\s+(\d+)$", re.M)  # the verdict's training budget


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def chapter_verdict(notebook_path: Path) -> dict:
    """Title, profile, parsed verdict lines and the numbers behind them, from one chapter."""
    nb = nbformat.read(notebook_path, as_version=4)
    title = next((line[2:].strip() for c in nb.cells if c.cell_type == "markdown"
                  for line in c.source.splitlines() if line.startswith("# ")), notebook_path.stem)
    code = [c for c in nb.cells if c.cell_type == "code"]
    verdicts, evidence = [], []
    for i, cell in enumerate(code):
        found = [m.groupdict() for m in VERDICT_LINE.finditer(_text(cell))]
        if not found:
            continue
        verdicts += found
        around = [_text(code[j]).rstrip() for j in (i - 1, i, i + 1) if 0 <= j < len(code)]
        evidence.append("\n".join(t for t in around if t))
    profiles = {m for c in code for m in PROFILE.findall(_text(c))}
    epochs = {m for c in code for m in EPOCHS.findall(_text(c))}
    return {"doc": notebook_path.stem, "title": title, "verdicts": verdicts,
            "evidence": "\n\n".join(evidence),
            "profile": ", ".join(sorted(profiles)) or "unknown",
            "epochs": ", ".join(sorted(epochs, key=int)) or "?"}


def verdict_markdown(book: Path = BOOK) -> str:
    rows = [chapter_verdict(p.with_suffix(".ipynb")) for p in chapter_sources().values()
            if p.with_suffix(".ipynb").exists()]
    lines = ["| claim | verdict | primary statistic | estimate [95% CI] | needs | n seeds "
             "| epochs | profile | chapter |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        link = f"{{doc}}`{row['title']} </book/{row['doc']}>`"
        if not row["verdicts"]:
            lines.append(f"| ? | not executed | | | | | | | {link} |")
        for v in row["verdicts"]:
            lines.append(f"| {v['claim']} | **{v['outcome']}** | {v['statistic']} | "
                         f"{v['estimate']} [{v['low']}, {v['high']}] | {v['rule']} | {v['n']} "
                         f"| {row['epochs']} | `{row['profile']}` | {link} |")
    lines.append("")
    for row in filter(lambda r: r["verdicts"], rows):
        claims = ", ".join(f"Claim {v['claim']}" for v in row["verdicts"])
        lines += [f"**{claims}**: the numbers behind the verdict "
                  f"({{doc}}`{row['title']} </book/{row['doc']}>`):", "", "```text",
                  row["evidence"], "```", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    out = BOOK / "_generated" / "verdicts.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(verdict_markdown())
    print(f"verdict table -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
