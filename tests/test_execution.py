"""A chapter's kernel as the user sees it (posinfo.execution): its progress on the terminal,
no transport warning, the lock recorded in the notebook, the cell named when the kernel dies,
and no staging folder outliving a killed runner; nbval never collects a kept failed run."""
import os
import re
import subprocess
import sys
import textwrap

import nbformat

from posinfo import execution, lockfile, run


def _chapter(book, name, body):
    book.mkdir(exist_ok=True)
    (book / f"01_{name}.py").write_text('# %% tags=["parameters"]\nprofile = "smoke"\n\n'
                                        + textwrap.dedent(body))


def test_a_run_shows_its_cells_on_the_terminal_and_records_the_lock(tmp_path, monkeypatch,
                                                                      capsys):
    _chapter(tmp_path / "book", "tiny", '# %%\nprint("hi")\n\n# %%\nx = 1\n')
    monkeypatch.setattr(run, "BOOK", tmp_path / "book")
    assert run.main(["tiny", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "01_tiny: 100%" in err and "3/3" in err  # chapter, cell n of m
    assert "without encryption" not in err  # the kernel talks over local sockets
    nb = nbformat.read(tmp_path / "out" / "01_tiny.ipynb", as_version=4)
    recorded = nb.metadata["posinfo"]["environment"]
    assert recorded["lock"] == "requirements.lock"
    assert recorded["lock_sha256"] == lockfile.sha256() and recorded["differences"] == []


def test_each_model_the_kernel_trains_is_shown_on_the_terminal_not_in_the_notebook(
        tmp_path, monkeypatch, capsys):
    # a tiny classifier trained in the chapter's kernel: its two lines reach the runner's
    # terminal through the training log; the notebook's outputs are the cell's own print
    _chapter(tmp_path / "book", "trains", """\
        # %%
        from posinfo.settings import chapter_settings
        from posinfo.train import model_config, train_classifier
        s = chapter_settings("gap_keeps_position", "smoke", image_size=8, width=4, epochs=1,
                             n_train=32, n_test=8)
        print("trained:", not train_classifier(model_config(s)).from_cache)
        """)
    monkeypatch.setattr(run, "BOOK", tmp_path / "book")
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "cache"))
    assert run.main(["trains", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"01_trains: training location zeros g3 zeros \(1 epochs, seed \d+\) "
                     r"\.\.\.\n", err), err
    assert re.search(r"01_trains: trained location zeros g3 zeros \(1 epochs, seed \d+\) in "
                     rf"\d+ s \(cached at {re.escape(str(tmp_path / 'cache'))}/", err), err
    nb = nbformat.read(tmp_path / "out" / "01_trains.ipynb", as_version=4)
    outputs = [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]
    assert outputs == ["trained: True\n"], outputs


def test_a_kernel_that_dies_names_its_cell(tmp_path, monkeypatch, capsys):
    _chapter(tmp_path / "book", "dies", '# %%\nx = 1\n\n# %%\nimport os, signal\n'
                                        'os.kill(os.getpid(), signal.SIGKILL)\n')
    monkeypatch.setattr(run, "BOOK", tmp_path / "book")
    assert run.main(["dies", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "'01_dies' failed in cell 2 of 3" in err, err
    assert f"kept at {tmp_path / 'out' / '01_dies.failed.ipynb'}" in err


def test_the_staging_folder_of_a_killed_runner_is_removed_by_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(execution.tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f"{execution.STAGING_PREFIX}{dead}-abc"
    running = tmp_path / f"{execution.STAGING_PREFIX}{os.getpid()}-def"
    for folder in (stale, running):
        (folder / "executed").mkdir(parents=True)
    assert execution.remove_stale_staging() == [stale]
    assert not stale.exists() and running.exists()  # a live runner's folder stays


def test_nbval_never_collects_a_kept_failed_run(tmp_path):
    # pyproject's --ignore-glob pattern is taken relative to where pytest runs (make test: the
    # repository, whose book/ holds the chapters)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    for name in ("01_a.ipynb", "01_a.failed.ipynb"):
        nbformat.write(notebook, tmp_path / name)
    out = subprocess.run([sys.executable, "-m", "pytest", "-c", str(run.REPO / "pyproject.toml"),
                          "--rootdir", str(tmp_path), "--collect-only", "-q", "--nbval-lax",
                          str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert "01_a.ipynb::Cell 0" in out.stdout, out.stdout + out.stderr
    assert "failed" not in out.stdout


def test_the_cell_a_run_stopped_in_is_the_last_one_started(tmp_path):
    executed = tmp_path / "x.ipynb"
    cells = [nbformat.v4.new_code_cell(str(i)) for i in range(3)]
    for cell, start in zip(cells, ("t0", "t1", None)):
        cell.metadata["papermill"] = {"start_time": start, "status": "completed"}
    nbformat.write(nbformat.v4.new_notebook(cells=cells), executed)
    assert execution._cell_reached(executed) == "cell 1 of 3"
    assert execution._cell_reached(tmp_path / "missing.ipynb") == ""
