"""The front page's verdict table, read from the executed chapters (never typed in).

    python -m posinfo.report            # writes book/_generated/verdicts.md

Every chapter ends with a cell marked NBVAL_CHECK_OUTPUT that prints `Claim N: holds` or
`Claim N: does not hold`, right after a cell that prints the numbers the rule compared.
This module collects both, with the profile the chapter ran at, from the committed .ipynb.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from .run import BOOK, chapter_sources

VERDICT = re.compile(r"^(Claim \d+): (holds|does not hold)$", re.M)
PROFILE = re.compile(r"^profile\s+(\w+)$", re.M)


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("name") == "stdout")


def chapter_verdict(notebook_path: Path) -> dict:
    """Title, profile, verdict lines and the numbers behind them, from one executed chapter."""
    nb = nbformat.read(notebook_path, as_version=4)
    title = next((line[2:].strip() for c in nb.cells if c.cell_type == "markdown"
                  for line in c.source.splitlines() if line.startswith("# ")), notebook_path.stem)
    code = [c for c in nb.cells if c.cell_type == "code"]
    checks = [i for i, c in enumerate(code) if "NBVAL_CHECK_OUTPUT" in c.source]
    if not checks:
        raise ValueError(f"{notebook_path.name} has no verdict cell (marked NBVAL_CHECK_OUTPUT)")
    verdicts, evidence = [], []
    for i in checks:
        verdicts += VERDICT.findall(_text(code[i]))
        if i > 0:
            evidence.append(_text(code[i - 1]).rstrip())
    profiles = {m for c in code for m in PROFILE.findall(_text(c))}
    return {"doc": notebook_path.stem, "title": title, "verdicts": verdicts,
            "evidence": "\n\n".join(e for e in evidence if e),
            "profile": ", ".join(sorted(profiles)) or "unknown"}


def verdict_markdown(book: Path = BOOK) -> str:
    rows = [chapter_verdict(p.with_suffix(".ipynb")) for p in chapter_sources().values()
            if p.with_suffix(".ipynb").exists()]
    lines = ["| claim | verdict | chapter | profile |", "|---|---|---|---|"]
    for row in rows:
        if not row["verdicts"]:
            lines.append(f"| ? | not executed | {{doc}}`{row['title']} </book/{row['doc']}>` | |")
        for claim, verdict in row["verdicts"]:
            mark = "**holds**" if verdict == "holds" else "**does not hold**"
            lines.append(f"| {claim} | {mark} | {{doc}}`{row['title']} </book/{row['doc']}>` "
                         f"| `{row['profile']}` |")
    lines.append("")
    for row in filter(lambda r: r["verdicts"], rows):
        claims = ", ".join(c for c, _ in row["verdicts"])
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
