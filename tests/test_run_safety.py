"""No work lost: what a run needs is checked before a kernel starts, a folder that holds a
run is not silently reused, a failed or killed run never replaces a complete notebook, and
its staging folder goes away even on SIGTERM."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from posinfo import run
from posinfo.checks import allowed
from posinfo.settings import CHAPTERS

LIB = str(run.REPO / "lib")


@pytest.fixture
def no_kernel(monkeypatch):
    """run.execute replaced: a test fails, rather than starts a kernel, if a check is missing."""
    started = []
    monkeypatch.setattr(run, "execute", lambda *args, **kwargs: started.append(args))
    return started


def _refused(argv, capsys, no_kernel, *needles):
    assert run.main(argv) == 1
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err
    assert no_kernel == []
    return err


# ---- the environment ------------------------------------------------------------------------
def test_an_unwritable_cache_is_refused_before_any_kernel_naming_variable_and_path(
        tmp_path, monkeypatch, capsys, no_kernel):
    # a file where the folder should be: the NotADirectoryError, after a trained model
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("POSINFO_CACHE", str(blocker / "cache"))
    _refused(["1", "--out", str(tmp_path / "out")], capsys, no_kernel,
             f"POSINFO_CACHE='{blocker / 'cache'}'", "cannot be written", "NotADirectoryError")
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "cache"))  # a writable one runs
    assert run.main(["1", "--out", str(tmp_path / "out")]) == 0 and len(no_kernel) == 1
    assert not list((tmp_path / "cache").iterdir())  # the probe file is removed


def test_a_bad_compile_backend_in_the_environment_is_refused_before_any_kernel(
        tmp_path, monkeypatch, capsys, no_kernel):
    monkeypatch.setenv("POSINFO_COMPILE", "bogus")
    _refused(["1", "--out", str(tmp_path)], capsys, no_kernel,
             "POSINFO_COMPILE must be one of", "got 'bogus'")
    # --compile sets the kernel's own POSINFO_COMPILE: the variable is then not read
    assert run.main(["1", "--out", str(tmp_path), "--compile"]) == 0 and len(no_kernel) == 1


def test_a_bad_graph_switch_in_the_environment_is_refused_before_any_kernel(
        tmp_path, monkeypatch, capsys, no_kernel):
    # read by the loop on CUDA only: on a CPU machine a typo would never surface
    monkeypatch.setenv("POSINFO_GRAPH", "of")
    _refused(["1", "--out", str(tmp_path)], capsys, no_kernel,
             "POSINFO_GRAPH must be one of", "got 'of'")
    monkeypatch.setenv("POSINFO_GRAPH", "off")
    assert run.main(["1", "--out", str(tmp_path)]) == 0 and len(no_kernel) == 1


def test_a_bad_profile_in_the_environment_is_refused_even_with_a_profile_parameter(
        tmp_path, monkeypatch, capsys, no_kernel):
    # every parameters cell reads POSINFO_PROFILE before papermill's -p profile overrides it
    monkeypatch.setenv("POSINFO_PROFILE", "fast")
    _refused(["1", "--out", str(tmp_path), "-p", "profile", "smoke"], capsys, no_kernel,
             "POSINFO_PROFILE must be one of", "got 'fast'")


def test_missing_paper_data_is_refused_before_any_kernel_naming_the_path(
        tmp_path, monkeypatch, capsys, no_kernel):
    monkeypatch.setenv("POSINFO_DATA", str(tmp_path / "data"))
    cifar = tmp_path / "data" / "cifar10" / "cifar-10-batches-py"
    _refused(["1", "--out", str(tmp_path / "out"), "-p", "profile", "paper"], capsys,
             no_kernel, str(cifar), "cifar-10-python.tar.gz", "paper profile")
    cifar.mkdir(parents=True)  # with the data in place the same command goes ahead
    assert run.main(["1", "--out", str(tmp_path / "out"), "-p", "profile", "paper"]) == 0
    # the segmentation chapters name each missing Cityscapes folder and the checkpoint
    err = _refused(["5", "--out", str(tmp_path / "out5"), "-p", "profile", "paper",
                    "-p", "checkpoint", str(tmp_path / "weights.pth")], capsys, no_kernel[1:],
                   str(tmp_path / "data" / "cityscapes" / "leftImg8bit" / "val"),
                   str(tmp_path / "data" / "cityscapes" / "gtFine" / "val"),
                   str(tmp_path / "weights.pth"))
    assert len(no_kernel) == 1, err


# ---- --out that already holds a run ----------------------------------------------------------
def test_an_out_that_holds_a_run_is_refused_unless_replace(tmp_path, capsys, no_kernel):
    done = tmp_path / "01_gap_keeps_position.ipynb"
    done.write_text("{}")
    _refused(["1", "--out", str(tmp_path)], capsys, no_kernel,
             f"--out already holds a run of this chapter: {done}", "--replace")
    assert done.read_text() == "{}"
    assert run.main(["1", "--out", str(tmp_path), "--replace"]) == 0 and len(no_kernel) == 1
    # another chapter's run in the same folder is no reason to refuse
    assert run.main(["2", "--out", str(tmp_path)]) == 0 and len(no_kernel) == 2


def test_replace_is_documented_in_the_readme_and_the_runners_help(capsys):
    with pytest.raises(SystemExit):
        run.main(["--help"])
    assert "--replace" in capsys.readouterr().out
    readme = (run.REPO / "README.md").read_text()
    rerun = readme.split("## Rerun a chapter", 1)[1].split("\n## ", 1)[0]
    assert "--replace" in rerun


BROKEN = textwrap.dedent('''\
    # %% tags=["parameters"]
    profile = "smoke"

    # %%
    raise RuntimeError("boom")
''')


def test_a_failed_run_never_replaces_a_complete_notebook(tmp_path, monkeypatch, capsys):
    book = tmp_path / "book"
    book.mkdir()
    (book / "01_broken.py").write_text(BROKEN)
    monkeypatch.setattr(run, "BOOK", book)
    out = tmp_path / "out"
    out.mkdir()
    complete = out / "01_broken.ipynb"
    complete.write_text('{"a complete run": true}')
    assert run.main(["broken", "--out", str(out), "--replace"]) == 1
    err = capsys.readouterr().err
    assert complete.read_text() == '{"a complete run": true}'  # untouched
    failed = out / "01_broken.failed.ipynb"
    assert f"kept at {failed}" in err and f"{complete} is untouched" in err
    assert "boom" in json.dumps(json.loads(failed.read_text()))


def _staging_folders(tmp):
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("posinfo-run-"))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_run_stopped_by_sigterm_removes_its_staging_folder_and_keeps_what_ran(stop, tmp_path):
    # SIGINT: Ctrl-C, which printed "Task exception was never retrieved" and no path
    book, tmp, out = tmp_path / "book", tmp_path / "tmp", tmp_path / "out"
    book.mkdir()
    tmp.mkdir()
    marker = tmp_path / "started"
    (book / "01_slow.py").write_text(textwrap.dedent(f'''\
        # %% tags=["parameters"]
        profile = "smoke"

        # %%
        print("first cell ran")

        # %%
        import pathlib, time
        pathlib.Path({str(marker)!r}).write_text("")
        time.sleep(120)
    '''))
    script = (f"import sys, pathlib; sys.path.insert(0, {LIB!r}); from posinfo import run; "
              f"run.BOOK = pathlib.Path({str(book)!r}); "
              f"sys.exit(run.main(['slow', '--out', {str(out)!r}]))")
    env = {**os.environ, "TMPDIR": str(tmp), "POSINFO_CACHE": "off"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        assert _staging_folders(tmp), "the run should be staging while its kernel runs"
        proc.send_signal(stop)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + stop, err
    # one line says where the run stopped and what it kept; no traceback
    assert f"01_slow: stopped in cell 2 of 3; what ran is kept at {out / '01_slow.failed.ipynb'}" \
        in err, err
    assert "Traceback" not in err and "Task exception" not in err, err
    assert _staging_folders(tmp) == []
    assert not (out / "01_slow.ipynb").exists()
    kept = json.loads((out / "01_slow.failed.ipynb").read_text())
    assert "first cell ran" in json.dumps(kept)


# ---- --list ----------------------------------------------------------------------------------
def test_list_n_prints_that_chapter_only(capsys):
    assert run.main(["--list", "3"]) == 0
    out = capsys.readouterr().out
    stems = [p.stem for p in run.chapter_sources().values()]
    assert [s for s in stems if f"\n{s}   python -m posinfo.run" in out] == ["03_augshift"]


def _listed_blocks(out):
    """{parameter: its lines} of ``--list``'s output for one chapter."""
    blocks, name = {}, None
    for line in out.splitlines():
        if line.startswith("      ") and name:
            blocks[name].append(line.strip())
        elif line.startswith("  ") and not line.startswith("   "):
            name = line.strip().split(":")[0]
            blocks[name] = []
    return blocks


@pytest.mark.parametrize("chapter", sorted(run.chapter_sources()))
def test_list_states_each_parameters_allowed_values_from_its_check(chapter, capsys):
    assert run.main(["--list", chapter]) == 0
    blocks = _listed_blocks(capsys.readouterr().out)
    assert list(blocks) == list(run.parameters_cell(run.chapter_sources()[chapter]))
    for name, lines in blocks.items():
        assert f"allowed: {allowed(name, CHAPTERS[chapter]['default'])}" in lines, (name, lines)


@pytest.mark.parametrize("chapter", ["position_channels", "region_attack"])
def test_list_offers_the_segmenter_no_padding_it_cannot_take(chapter, tmp_path, capsys,
                                                             no_kernel):
    # 'none' was offered and failed in cell 9 at every profile with a raw torch error
    assert run.main(["--list", chapter]) == 0
    padding = _listed_blocks(capsys.readouterr().out)["padding"]
    offered = next(line for line in padding if line.startswith("allowed:"))
    assert "'none'" not in offered and "'circular'" in offered
    _refused([chapter, "--out", str(tmp_path), "-p", "padding", "none"], capsys, no_kernel,
             "padding must be one of", "for the segmenter", "got 'none'")


# ---- values that pass a knob's own check and used to fail or mislead after training ---------
@pytest.mark.parametrize("chapter,name,value,needles", [
    # infinity passed "> 0": NaN, then a scikit-learn error in cell 11
    ("3", "augshift_lambda", "1e999", ("augshift_lambda must be a finite number", "got inf")),
    # KeyError 'AugShift λ=0' in cell 29 of 33, after all training
    ("3", "lambdas", "(0.0,)", ("lambdas must hold at least one number > 0",)),
    # "judged N must be a non-empty subset" in cell 16, after the segmenters trained
    ("4", "verdict_fractions", "(0.001, 0.002)", ("verdict_fractions=(0.001, 0.002) holds none",)),
    ("4", "channel_fractions", "(1.0,)", ("holds none of channel_fractions=(1.0,)",)),
    # meaningless experiments, judged all the same ("does not hold ... +0.000")
    ("1", "grid", "1", ("grid must be an integer in [2, 16]", "one cell")),
    ("3", "max_shift", "0", ("max_shift must be an integer in [1, 256]", "identical views")),
    ("5", "region_channels", "64", ("region_channels must be an integer in [1, 63]",
                                    "zeroing every channel")),
    # activations fitted, weights + gradients + Adam's state did not (6 GB in 40 s at smoke)
    ("1", "width", "1024@smoke", ("width must be at most", "gradients and Adam's two moment")),
])
def test_a_value_that_would_fail_or_mean_nothing_after_training_is_refused_up_front(
        chapter, name, value, needles, tmp_path, monkeypatch, capsys, no_kernel):
    monkeypatch.setenv("POSINFO_PROFILE", "default")
    value, _, profile = value.partition("@")  # VALUE@PROFILE: at that profile
    err = _refused([chapter, "--out", str(tmp_path), "-p", name, value, "-p", "profile",
                    profile or "default"], capsys, no_kernel, *needles)
    assert "batch_size" not in err  # no knob the user cannot set


def test_a_region_attack_on_too_narrow_a_network_names_the_channels_of_chapter_5_only(
        tmp_path, capsys, no_kernel):
    # chapter 4 has no region_channels: its width 1 runs; chapter 5's is refused about it
    assert run.main(["4", "--out", str(tmp_path), "-p", "width", "1"]) == 0
    _refused(["5", "--out", str(tmp_path), "-p", "width", "1"], capsys, no_kernel[1:],
             "region_channels must be an integer in [1, 3]", "width=1")


def test_a_memory_refusal_names_the_grid_of_the_comparison_the_user_did_not_set(
        tmp_path, monkeypatch, capsys, no_kernel):
    monkeypatch.setenv("POSINFO_PROFILE", "default")
    _refused(["1", "--out", str(tmp_path), "-p", "image_size", "200"], capsys, no_kernel,
             "grid=4 (of the chapter's grid comparison, grids=(2, 3, 4))")


@pytest.mark.parametrize("chapter,name,listed,ok,refused", [
    # what --list says is what the checks do, at its ends
    ("channel_order", "placements", "an integer in [1, 5]", (5,), (6,)),
    ("augshift", "augshift_lambda", "a finite number > 0", 0.001, 0.0),
])
def test_the_listed_ends_of_a_range_are_the_ones_the_checks_enforce(
        chapter, name, listed, ok, refused, tmp_path, capsys, no_kernel):
    assert run.main(["--list", chapter]) == 0
    assert listed in capsys.readouterr().out
    assert run.main([chapter, "--out", str(tmp_path), "-p", name, repr(ok)]) == 0
    _refused([chapter, "--out", str(tmp_path), "-p", name, repr(refused)], capsys,
             no_kernel[1:], name)
    assert len(no_kernel) == 1


def test_every_parameter_has_a_description_in_list(capsys):
    assert run.main(["--list"]) == 0
    for chapter, source in run.chapter_sources().items():
        undescribed = [n for n, (_, meaning) in run.parameters_cell(source).items() if not meaning]
        assert undescribed == [], f"{source.stem}: no comment after {undescribed}"


def test_a_refusal_names_what_the_user_asked_for(tmp_path, capsys, no_kernel, monkeypatch):
    # the default profile, whatever the test run's POSINFO_PROFILE (make test sets smoke,
    # whose comparison has no "none")
    monkeypatch.delenv("POSINFO_PROFILE", raising=False)
    # Chapter 1 always compares every padding, "none" included; a small image_size is refused
    # because of that comparison, and the message must lead with the user's image_size (and
    # say what would work), not with a padding='none' the user never asked for.
    err = _refused(["1", "--out", str(tmp_path), "-p", "padding", "circular",
                    "-p", "image_size", "20"], capsys, no_kernel,
                   "image_size=20 with grid=3", "padding comparison", "use image_size >= 23")
    assert err.startswith("error: image_size=20"), err
    assert run.main(["1", "--out", str(tmp_path), "-p", "image_size", "23"]) == 0
