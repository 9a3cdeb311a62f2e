"""What a user relies on: bad input refused up front, repeatable runs, resumable runs, and a
parameterized run that leaves the committed book and data/ alone."""
import ast
import hashlib

import jupytext
import pytest

from posinfo import run
from posinfo.settings import chapter_settings
from posinfo.train import model_config, train_classifier


def _parameter_names(source):
    cell = next(c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", []))
    return [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
            for t in node.targets]


PARAMETERS = [(key, name) for key, source in run.chapter_sources().items()
              for name in _parameter_names(source)]


@pytest.mark.parametrize("chapter,name", PARAMETERS, ids=[f"{c}-{n}" for c, n in PARAMETERS])
def test_every_chapter_parameter_refuses_a_bad_value_before_any_work(chapter, name, tmp_path,
                                                                      capsys):
    # -1 is out of range, of the wrong type or not a choice for every knob there is
    assert run.main([chapter, "--out", str(tmp_path), "-p", name, "-1"]) == 1
    err = capsys.readouterr().err
    assert name in err and "got -1" in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("chapter", sorted(run.chapter_sources()))
def test_every_parameter_cell_name_is_a_setting_of_its_chapter(chapter):
    names = set(_parameter_names(run.chapter_sources()[chapter])) - {"profile"}
    chapter_settings(chapter, "smoke", **{n: None for n in names})  # unknown names would raise


TINY = dict(image_size=8, width=4, epochs=1, n_train=64, n_test=10)


def test_a_run_killed_midway_resumes_from_the_cache_with_the_same_result(tmp_path, monkeypatch):
    settings = chapter_settings("gap_keeps_position", "smoke", **TINY)
    configs = [model_config(settings, padding=p) for p in ("zeros", "circular", "reflect")]
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "uninterrupted"))
    expected = [train_classifier(c).evaluation.accuracy for c in configs]

    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "killed"))
    train_classifier(configs[0])  # ...and the process dies here
    resumed = [train_classifier(c) for c in configs]
    assert [r.from_cache for r in resumed] == [True, False, False]
    assert [r.evaluation.accuracy for r in resumed] == expected


def _digest(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_parameterized_run_writes_only_where_it_was_told(tmp_path):
    book, data = _digest(run.BOOK), _digest(run.REPO / "data")
    out = tmp_path / "mine"
    code = run.main(["gap_keeps_position", "--out", str(out), "-p", "profile", "smoke",
                     "-p", "epochs", "1", "-p", "width", "4"])
    assert code == 0
    assert [p.name for p in out.iterdir()] == ["01_gap_keeps_position.ipynb"]
    assert _digest(run.BOOK) == book and _digest(run.REPO / "data") == data
