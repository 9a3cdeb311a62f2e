"""posinfo.tools.report, the front page's verdict table and the GPU part's first page: what
they show is checked against the notebooks and files themselves, read here without the
report's own parser (plain string splitting of the printed verdict line)."""
import json
import re

import nbformat
import pytest

from posinfo.run import BOOK, chapter_sources
from posinfo.tools.report import (NO_RECORD, bench_variants, chapter_verdict, gpu_run_markdown,
                                  verdict_markdown)
from posinfo.interval import Rule
from posinfo.verdict import RECORD_MIME, judge, records

STEMS = [p.stem for p in chapter_sources().values()]
GPU_NOTEBOOKS = sorted((BOOK / "gpu").glob("*.ipynb"))
GPU_LOG, GPU_BENCH = BOOK / "gpu" / "gpu_book.log", BOOK / "gpu" / "bench_gpu_full.json"
GPU_BENCH_IN_RUN = BOOK / "gpu" / "bench_gpu.json"


def printed(notebook) -> list[str]:
    """Every line the notebook's code cells printed to stdout."""
    nb = nbformat.read(notebook, as_version=4)
    return [line for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", []) if out.get("name") == "stdout"
            for line in out.get("text", "").splitlines()]


def printed_verdicts(notebook) -> list[dict]:
    """The notebook's verdict lines, taken apart by hand:
    Claim N[ (LABEL)]: OUTCOME — STATISTIC = ESTIMATE [95% CI LOW, HIGH]; needs RULE; n = SEEDS
    each with the profile and epochs its settings table printed (``profile  gpu``)."""
    lines = printed(notebook)
    table = dict(line.split(None, 1) for line in lines
                 if len(line.split()) == 2 and line.split()[0] in ("profile", "epochs"))
    found = []
    for line in (line for line in lines if line.startswith("Claim ")):
        head, statement = line.split(" — ", 1)
        name, outcome = head.removeprefix("Claim ").split(": ")
        claim, _, label = name.partition(" (")
        left, right = statement.split(" [", 1)
        statistic, estimate = left.rsplit(" = ", 1)
        interval, rest = right.split("]; needs ", 1)
        low, high = interval.split(" CI ")[1].split(", ")
        rule, n = rest.rsplit("; n = ", 1)
        found.append({"claim": claim, "label": label.removesuffix(")"), "outcome": outcome,
                      "statistic": statistic, "estimate": estimate, "low": low,
                      "high": high, "rule": rule, "n": n, **table})
    return found


def test_the_hand_parser_reads_a_verdict_line(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "stream", name="stdout", text="profile   gpu\nepochs    20\nClaim 7: does not hold — a "
        "= b = -0.105 [95% CI -0.160, -0.050]; needs > +0.500; n = 5\n")])]
    nb.cells[0].outputs[0].text += ("Claim 7 (a control): holds — c = +0.100 [95% CI +0.050, "
                                    "+0.150]; needs > +0.020; n = 3\n")
    nbformat.write(nb, tmp_path / "x.ipynb")
    main, control = printed_verdicts(tmp_path / "x.ipynb")
    assert main == {
        "claim": "7", "label": "", "outcome": "does not hold", "statistic": "a = b",
        "estimate": "-0.105", "low": "-0.160", "high": "-0.050", "rule": "> +0.500", "n": "5",
        "profile": "gpu", "epochs": "20"}
    assert (control["claim"], control["label"], control["outcome"], control["low"]) == (
        "7", "a control", "holds", "+0.050")


def test_the_front_page_shows_each_verdict_the_chapters_printed():
    """Each claim's row: its statistic and rule, then in the `default` column the verdict
    book/NN.ipynb printed and in the `gpu` column the one book/gpu/NN.ipynb printed, each
    with its seeds, epochs, profile and a link to its notebook."""
    page = verdict_markdown()
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")
            for line in page.splitlines() if re.match(r"^\| \d+( \([^)]+\))? \|", line)}
    parts = [("default", BOOK, "book"), ("gpu", BOOK / "gpu", "book/gpu")]
    claims = set()
    for column, (profile, folder, where) in enumerate(parts, start=3):
        for stem in STEMS:
            notebook = folder / f"{stem}.ipynb"
            if not notebook.exists():
                continue
            for v in printed_verdicts(notebook):
                row = v["claim"] + (f" ({v['label']})" if v["label"] else "")
                claims.add(row)
                cells = rows[row]
                if profile == "default":
                    assert cells[1:3] == [v["statistic"], v["rule"]]
                assert cells[column].startswith(
                    f"**{v['outcome']}** {v['estimate']} [{v['low']}, {v['high']}]; "
                    f"n = {v['n']}, {v['epochs']} epochs, `{v['profile']}` (")
                assert v["profile"] == profile and f"</{where}/{stem}>" in cells[column]
                # a notebook without a record is marked; one with records is not
                assert (NO_RECORD in cells[column]) == (not records(notebook))
    assert sorted(rows) == sorted(claims)
    assert len({row.split(" ")[0] for row in claims}) == len(STEMS)


def _notebook(path, line: str, record: dict | None):
    nb = nbformat.v4.new_notebook()
    outputs = [nbformat.v4.new_output("stream", name="stdout", text=line + "\n")]
    if record is not None:
        outputs.append(nbformat.v4.new_output("display_data", data={RECORD_MIME: {}},
                                              metadata={RECORD_MIME: record}))
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter"),
                nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
                    "stream", name="stdout", text="profile  default\nepochs  8\n")]),
                nbformat.v4.new_code_cell(outputs=outputs)]
    nbformat.write(nb, path)
    return path


def test_the_front_page_reads_the_record_not_the_printed_line(tmp_path):
    verdict = judge(4, Rule("gap", 0.05), {100: 0.1, 101: 0.3, 102: 0.2})
    forged = verdict.line().replace("+0.200 [95% CI -0.048, +0.448]",
                                    "+0.080 [95% CI +0.060, +0.100]")
    assert forged != verdict.line()
    row = chapter_verdict(_notebook(tmp_path / "04_x.ipynb", forged, verdict.record()))
    (shown,) = row["verdicts"]
    assert row["recorded"] and (shown["estimate"], shown["low"], shown["high"]) == (
        "+0.200", "-0.048", "+0.448")
    # the record's per-seed values decide, not its stored numbers
    record = verdict.record() | {"estimate": 0.08, "low": 0.06, "high": 0.1}
    record["per_seed"] = {"100": 0.5, "101": 0.7, "102": 0.6}
    (shown,) = chapter_verdict(_notebook(tmp_path / "04_y.ipynb", forged, record))["verdicts"]
    assert (shown["estimate"], shown["outcome"]) == ("+0.600", "holds")


def test_a_notebook_without_a_record_is_marked_on_the_front_page(tmp_path):
    from posinfo.tools.report import _cell

    line = judge(4, Rule("gap", 0.05), {100: 0.1, 101: 0.3}).line()
    row = chapter_verdict(_notebook(tmp_path / "04_x.ipynb", line, None))
    assert not row["recorded"] and row["verdicts"][0]["estimate"] == "+0.200"
    assert NO_RECORD in _cell(row["verdicts"][0], row, "link")
    recorded = chapter_verdict(_notebook(tmp_path / "04_y.ipynb", line, judge(
        4, Rule("gap", 0.05), {100: 0.1, 101: 0.3}).record()))
    assert NO_RECORD not in _cell(recorded["verdicts"][0], recorded, "link")


@pytest.mark.skipif(not GPU_LOG.exists(), reason="no GPU run yet: python -m "
                    "posinfo.tools.gpu_book writes book/gpu/gpu_book.log, which un-skips this")
def test_the_gpu_page_shows_what_the_runs_log_and_bench_say():
    """The GPU part's numbers are read from its log and bench JSON, never typed: every
    chapter's seconds and status from the log's summary, and the bench's best variant."""
    page = gpu_run_markdown()
    summary = re.findall(r"^  (\d\d_\w+)\s+(\w+)\s+([\d.]+)$", GPU_LOG.read_text(), re.M)
    assert {stem for stem, _, _ in summary} == {p.stem for p in GPU_NOTEBOOKS}
    for stem, status, seconds in summary:
        assert re.search(rf"^{stem}\s+{status}\s+{round(float(seconds))}$", page, re.M)
    wall = re.search(r"book: (\d+) of (\d+) chapters ok in (\d+) s wall", GPU_LOG.read_text())
    assert f"in **{wall[3]} s wall" in page and wall[1] == wall[2]
    lanes = re.search(r"lanes (\[\[.*?\]\]), jobs", GPU_LOG.read_text())[1]
    assert f"in the lanes {lanes}" in page
    bench = json.loads(GPU_BENCH.read_text())
    assert bench["header"]["device"] in page and f"Best: {bench['summary']['best']}," in page
    for name, variant in bench_variants(bench).items():
        if variant["status"] == "ok":
            assert re.search(rf"^{re.escape(name)}\s+{variant['canvases_per_s']:.0f}\s", page,
                             re.M)
    in_run = bench_variants(json.loads(GPU_BENCH_IN_RUN.read_text()))["eager"]
    assert f"measured eager at {in_run['canvases_per_s']:.0f} canvases/s" in page


def test_a_gpu_log_that_stopped_early_still_renders(tmp_path):
    """A failed dry run or a deadline leaves no "book:" line: the page says so, and the
    book still builds."""
    log = tmp_path / "gpu_book.log"
    log.write_text("08:00:00 posinfo.tools.gpu_book: profile gpu, chapters [1], lanes [[1]], "
                   "jobs 1\n08:00:01 environment: python 3.12.3; torch 2.11.0: NVIDIA H100\n"
                   "08:00:30 dry run FAILED in 29 s: 01_gap_keeps_position FAILED\n")
    page = gpu_run_markdown(log, tmp_path / "none.json", tmp_path / "none.json")
    assert "NVIDIA H100" in page and "no end of the book run" in page


def test_an_absolute_value_in_a_statistic_does_not_break_the_table():
    from posinfo.tools.report import _escaped
    row = f"| 5 | {_escaped('own - |other|')} | > +0.020 |"
    # a markdown table splits cells at unescaped pipes only
    assert re.split(r"(?<!\\)\|", row)[1:-1] == [" 5 ", r" own - \|other\| ", " > +0.020 "]
