"""The book's sources: paired chapters in sync, no lib -> book imports, parameters cells."""
import ast
import re

import jupytext
import nbformat
import pytest

from posinfo.run import REPO, chapter_sources

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
    assert ": holds" in text or ": does not hold" in text
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
