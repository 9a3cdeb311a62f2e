"""The book's sources: paired chapters in sync, no lib -> book imports, parameters cells."""
import ast
import re

import jupytext
import nbformat
import pytest

from posinfo.tools.report import VERDICT_LINE
from posinfo.verdict import RECORD_MIME
from posinfo.run import BOOK, REPO, chapter_sources

CHAPTERS = list(chapter_sources().values())


def _code(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_text_source_and_executed_notebook_hold_the_same_cells(source):
    executed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    # papermill's injected cell is not part of the source (the book build injects none)
    executed.cells = [c for c in executed.cells
                      if "injected-parameters" not in c.metadata.get("tags", [])]
    assert _code(jupytext.read(source)) == _code(executed)


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_executed_notebook_is_a_default_profile_run_with_a_verdict(source):
    executed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert re.search(r"^profile\s+default$", text, re.M), "commit the default-profile run"
    verdicts = VERDICT_LINE.findall(text)
    # one main verdict (no label) per chapter; a labelled one may follow (chapter 5's control)
    claims = {v[0] for v in verdicts}
    main = [v for v in verdicts if not v[1]]
    assert len(main) == 1 and len(claims) == 1, "one verdict line per chapter, in the book's form"
    assert source.with_suffix(".ipynb").stat().st_size < 2_000_000


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_each_chapter_has_one_parameters_cell_with_profile_and_seed(source):
    cells = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    names = {t.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign)
             for t in node.targets}
    assert {"profile", "seed"} <= names


def test_lib_never_imports_from_book():
    for path in (REPO / "lib").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                assert not any(n.split(".")[0] == "book" for n in names), path


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_nbval_compares_only_outputs_no_cpu_can_change(source):
    """A checked cell prints an exact invariant or the verdict line; the sanitizer masks
    every number, the outcome and the seed count of the latter, so a checked output cannot
    depend on the order of floating-point sums (another CPU, another thread count)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "tests" / "nbval_sanitize.cfg")
    rules = [(re.compile(cfg[k]["regex"]), cfg[k]["replace"]) for k in cfg.sections()]

    def sanitize(text):
        for regex, replace in rules:
            text = regex.sub(replace, text)
        return text

    executed = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
    checked = [c for c in executed.cells
               if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checked, "every chapter checks its verdict line's form"
    for cell in checked:
        text = "".join(o.get("text", "") for o in cell.get("outputs", []))
        masked = sanitize(text)
        assert not re.search(r"\d\.\d", masked), masked  # no number survives
        if VERDICT_LINE.search(text):
            assert "OUTCOME" in masked and "n = N" in masked
            # the record beside the line (posinfo.verdict.show): nbval compares its data,
            # which names the verdict only; the numbers sit in the metadata nbval skips
            kept = [o for o in cell.get("outputs", []) if RECORD_MIME in o.get("metadata", {})]
            assert kept, "the verdict cell keeps its record (posinfo.verdict.show)"
            assert all(set(o["data"][RECORD_MIME]) == {"claim", "label", "statistic"}
                       for o in kept)
        else:  # an exact invariant: a sentence ending in True
            assert text.strip().endswith("True"), text


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_code_fits_the_page(source):
    """The theme shows about 80 columns; longer code lines are cut off at the page's edge.
    A code cell is read in place, so it holds at most 16 lines (issue 29: "about 15"); the
    parameters cell and the imports cell (the first) are lists, not code to read, and are
    exempt. Longer computations belong in the library, under a name that says what they
    compute."""
    code = [c for c in jupytext.read(source).cells if c.cell_type == "code"]
    long = [(i, len(line)) for cell in code
            for i, line in enumerate(cell.source.splitlines(), 1) if len(line) > 79]
    assert not long, f"code lines over 79 columns (line in cell, length): {long}"
    tall = [(k, len(cell.source.splitlines())) for k, cell in enumerate(code)
            if k > 0 and "parameters" not in cell.metadata.get("tags", [])
            and len(cell.source.splitlines()) > 16]
    assert not tall, f"code cells over 16 lines (code cell, lines): {tall}"


@pytest.mark.parametrize("source", CHAPTERS[1:], ids=lambda p: p.stem)
def test_claims_2_to_5_show_a_budget_curve(source):
    cells = [c for c in jupytext.read(source).cells
             if "budget-curve" in c.metadata.get("tags", [])]
    assert len(cells) == 1 and "figures.budget_curve(" in cells[0].source


GPU_NOTEBOOKS = sorted((BOOK / "gpu").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", GPU_NOTEBOOKS, ids=lambda p: p.stem)
def test_gpu_part_holds_only_gpu_runs_of_the_books_chapters(notebook):
    """book/gpu/ is the gpu profile executed on a GPU: each notebook names a chapter, ran
    at profile gpu, says it ran on cuda, and prints its verdict. CPU output never lands
    here (a dry run on a CPU would say "CPU" in its machine line)."""
    assert notebook.stem in {p.stem for p in CHAPTERS}
    executed = nbformat.read(notebook, as_version=4)
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert re.search(r"^profile\s+gpu$", text, re.M)
    assert len(VERDICT_LINE.findall(text)) == 1
    raw = notebook.read_text()
    assert "(cuda), torch " in raw and "CPU, " not in raw.split("ran on ", 1)[1][:80]


def test_the_gpu_part_is_in_the_table_of_contents_exactly_when_its_notebooks_exist():
    import yaml
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    listed = sorted(f for f in files if f.startswith("book/gpu/0"))
    assert listed == [f"book/gpu/{p.stem}" for p in GPU_NOTEBOOKS]
    if GPU_NOTEBOOKS:
        assert "book/gpu/index" in files and (BOOK / "gpu" / "index.md").exists()
