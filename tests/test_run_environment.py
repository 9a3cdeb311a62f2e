"""What the runner reads besides its arguments, checked before a kernel starts: a POSINFO_PLAN
left in the environment, -p or --out given to --book, relative paths in POSINFO_CACHE and
POSINFO_DATA, an --out that cannot hold a notebook, a GPU profile on a CPU; and the locked
environment every install and every executed notebook names."""
import os
import sys

import pytest

from posinfo import lockfile, run


@pytest.fixture
def kernels(monkeypatch):
    """run.execute replaced: each call records the environment its kernel would inherit."""
    started = []
    monkeypatch.setattr(run, "execute", lambda *args, **kwargs: started.append(dict(os.environ)))
    return started


def test_a_posinfo_plan_outside_a_plan_pass_is_refused(tmp_path, monkeypatch, capsys, kernels):
    # it made a run exit 0 with untrained models and print "Claim 1: does not hold ... +0.000"
    monkeypatch.setenv("POSINFO_PLAN", str(tmp_path / "plan"))
    monkeypatch.delenv("POSINFO_PLAN_PASS", raising=False)
    assert run.main(["1", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "POSINFO_PLAN=" in err and "no plan pass" in err and kernels == []
    # the plan pass (tools.prefetch plan) names its plan in POSINFO_PLAN_PASS too
    monkeypatch.setenv("POSINFO_PLAN_PASS", str(tmp_path / "plan"))
    assert run.main(["1", "--out", str(tmp_path / "out")]) == 0 and len(kernels) == 1


def test_the_plan_pass_marks_its_command_as_one(tmp_path, capfd):
    from posinfo.tools import prefetch

    check = ("import os; print('marked' if os.environ['POSINFO_PLAN_PASS'] == "
             "os.environ['POSINFO_PLAN'] else 'unmarked')")
    assert prefetch.plan(tmp_path / "plan.jsonl", [sys.executable, "-c", check]) == 0
    assert "marked" in capfd.readouterr().out.split()


@pytest.mark.parametrize("extra", [["-p", "profile", "smoke"], ["--out", "X"]])
def test_book_refuses_parameters_and_out(extra, monkeypatch, capsys):
    # `--book 1 -p profile smoke --out X` ran at the default profile, over book/01_...ipynb
    built = []
    monkeypatch.setattr(run, "build_book", lambda *args, **kwargs: built.append(args))
    with pytest.raises(SystemExit) as stop:
        run.main(["--book", "1", *extra])
    assert stop.value.code == 2 and built == []
    assert "--book" in capsys.readouterr().err


@pytest.mark.parametrize("variable", ["POSINFO_CACHE", "POSINFO_DATA"])
def test_a_relative_path_in_the_environment_means_the_users_directory(
        variable, tmp_path, monkeypatch, kernels):
    # the kernel runs in book/: POSINFO_CACHE=relcache filled book/relcache/ with models
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, "relative")
    assert run.main(["1", "--out", "out"]) == 0
    assert kernels[0][variable] == str(tmp_path / "relative")
    assert (tmp_path / "relative").is_dir() == (variable == "POSINFO_CACHE")  # its probe
    assert not (run.BOOK / "relative").exists()


def test_an_out_that_is_a_file_or_cannot_be_written_is_refused_without_a_traceback(
        tmp_path, capsys, kernels):
    (tmp_path / "file").write_text("")
    assert run.main(["1", "--out", str(tmp_path / "file")]) == 1
    assert "--out must be a folder" in capsys.readouterr().err
    assert run.main(["1", "--out", "/proc/no-such-folder"]) == 1
    assert "cannot be written" in capsys.readouterr().err
    assert kernels == []
    # a refused run leaves no folder behind
    assert run.main(["1", "--out", str(tmp_path / "new" / "out"), "-p", "grid", "1"]) == 1
    assert not (tmp_path / "new").exists()


def test_a_gpu_profile_on_a_cpu_warns_with_its_length_before_the_kernel(
        tmp_path, monkeypatch, capsys, kernels):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run.main(["2", "--out", str(tmp_path), "-p", "profile", "gpu"]) == 0
    err = capsys.readouterr().err
    assert "warning: the gpu profile is sized for a GPU" in err and "hours here" in err
    hours = int(err.split("roughly ")[1].split(" hours")[0])
    assert hours > 24  # chapter 2's 695 epochs: days on a CPU, not minutes
    assert run.main(["2", "--out", str(tmp_path / "d"), "-p", "profile", "default"]) == 0
    assert "warning" not in capsys.readouterr().err


# ---- the lock ----------------------------------------------------------------------------
def test_every_installed_distribution_is_the_locked_one():
    # make setup installs exactly requirements.lock: nothing missing, other or unlocked
    assert lockfile.differences() == []


def test_the_lock_pins_every_line_with_a_hash_and_setup_installs_only_it():
    text = lockfile.LOCK.read_text()
    entries = [e for e in text.split("\n") if "==" in e]
    assert len(entries) == len(lockfile.pins()) > 100
    assert text.count("--hash=sha256:") == len(entries)
    assert {"torch", "numpy", "papermill", "jupyter-book", "nbval", "sphinx", "pip",
            "setuptools"} <= set(lockfile.pins())
    makefile = (run.REPO / "Makefile").read_text()
    setup = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert "--require-hashes -r $(LOCK)" in setup
    assert "--no-deps --no-build-isolation -e ." in setup
    assert "\nlock:" in makefile and "make lock" in (run.REPO / "README.md").read_text()
    environment = (run.REPO / "environment.yml").read_text()
    assert "-r requirements.lock" in environment and "torch" not in environment


def test_the_lock_is_written_from_pips_installation_report():
    report = {"install": [
        {"metadata": {"name": "Jinja2", "version": "3.1.6"},
         "download_info": {"archive_info": {"hashes": {"sha256": "ab" * 32}}}},
        {"metadata": {"name": "posinfo", "version": "0.1.0"},
         "download_info": {"archive_info": {"hashes": {"sha256": "cd" * 32}}}}]}
    text = lockfile.from_report(report)
    assert f"jinja2==3.1.6 \\\n    --hash=sha256:{'ab' * 32}\n" in text and "posinfo" not in text

