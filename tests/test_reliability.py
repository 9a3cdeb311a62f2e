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
    cell = next(c for c in jupytext.read(source).cells
                if "parameters" in c.metadata.get("tags", []))
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

# A child process that trains what a chapter would: a finished model (config A), then a long
# run (config B, 400 epochs) whose 1-epoch budget is cached as a snapshot on the way. It is
# killed by a signal while B trains, as a user closing a terminal or an out-of-memory kill would.
_CHILD = """
import json, sys
sys.path.insert(0, {lib!r})
from posinfo.settings import chapter_settings
from posinfo.train import model_config, train_budgets, train_classifier
settings = chapter_settings("gap_keeps_position", "smoke", **{tiny!r})
a = train_classifier(model_config(settings, padding="zeros"))
print(json.dumps({{"accuracy": a.evaluation.accuracy, "history": a.history}}), flush=True)
train_budgets(train_classifier, model_config(settings, padding="circular", epochs=400), [1, 400])
print("B finished: the kill came too late", flush=True)
"""


def test_a_run_killed_by_a_signal_mid_training_resumes_from_the_cache(tmp_path, monkeypatch):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from posinfo import cache, train

    store = tmp_path / "cache"
    env = {**os.environ, "POSINFO_CACHE": str(store), "POSINFO_PROGRESS": "off",
           "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(lib=str(run.REPO / "lib"),
                                                                 tiny=TINY)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        printed = json.loads(child.stdout.readline() or "null")  # A is done and stored
        assert printed, child.communicate()[1]
        deadline = time.time() + 120
        while len(list(store.glob("*.pt"))) < 2:  # ...and B's 1-epoch snapshot too
            assert child.poll() is None and time.time() < deadline, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)  # mid-way through B's 400 epochs
        out, _ = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL and "B finished" not in out
    assert not list(store.glob("*.tmp"))  # no half-written entry left behind

    # The rerun loads what the killed run finished, and trains nothing to get it.
    monkeypatch.setenv("POSINFO_CACHE", str(store))
    settings = chapter_settings("gap_keeps_position", "smoke", **TINY)
    a, b = model_config(settings, padding="zeros"), model_config(settings, padding="circular")

    def no_training(*args, **kwargs):
        raise AssertionError("retrained a model the killed run had already cached")
    monkeypatch.setattr(train, "fit", no_training)
    resumed = train_classifier(a)
    assert resumed.from_cache and resumed.history == printed["history"]
    assert resumed.evaluation.accuracy == printed["accuracy"]
    assert train_classifier({**b, "epochs": 1}).from_cache  # B's snapshot
    assert not cache.path_for({**b, "epochs": 400}).exists()  # B itself never finished


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
