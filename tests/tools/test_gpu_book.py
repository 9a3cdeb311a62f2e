"""posinfo.tools.gpu_book, the book's GPU part on the GPU machine: which chapters and pilots it
runs, in what order, what a failing or too slow chapter does, and what each notebook records.
Chapters and pilots are stood in for by tiny Python commands: no kernel, no training."""
import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from posinfo.tools import gpu_book

STEMS = gpu_book.chapter_stems()
MACHINE = {"machine": "Fake GPU", "torch": "2.99", "cuda": "13.9", "python": "3.12"}


def test_chapters_are_named_by_number_or_name_comma_or_space_separated():
    assert sorted(STEMS) == [1, 2, 3, 4, 5]
    assert gpu_book.resolve_chapters(["2,3"]) == [2, 3]
    assert gpu_book.resolve_chapters(["channel_order", "03_augshift"]) == [2, 3]
    assert gpu_book.resolve_chapters(["5", "04", "5"]) == [4, 5]  # chapter 5 after 4
    with pytest.raises(ValueError, match="chapter must be one of .*, got 'nope'"):
        gpu_book.resolve_chapters(["2,nope"])
    with pytest.raises(ValueError, match="names no chapter"):
        gpu_book.resolve_chapters([","])


def test_the_commands_it_runs(tmp_path):
    assert gpu_book.chapter_command(3, tmp_path, "gpu", python="py") == \
        ["py", "-m", "posinfo.run", "3", "--out", str(tmp_path), "-p", "profile", "gpu"]
    assert gpu_book.pilot_command("augshift", tmp_path, "gpu", 1)[-2:] == ["--stages", "1"]
    assert "--stages" not in gpu_book.pilot_command("region_attack", tmp_path, "gpu", 1)
    assert gpu_book.plan_command(tmp_path / "p", ["x", "y"], python="py") == \
        ["py", "-m", "posinfo.tools.prefetch", "plan", str(tmp_path / "p"), "--", "x", "y"]


def test_every_command_gets_lib_first_and_absolute_paths(monkeypatch):
    monkeypatch.chdir(gpu_book.REPO)
    env = gpu_book.child_env({"PYTHONPATH": os.pathsep.join(["lib", "elsewhere"])})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(gpu_book.LIB),
                                                   str(gpu_book.REPO / "elsewhere")]
    assert env["POSINFO_PROGRESS"] == "off"


def test_the_wheel_list_pins_one_version_of_each_package_the_gpu_image_lacks():
    # make gpu-wheels downloads it; pip on the GPU machine installs it without dependencies
    listed = Path(gpu_book.__file__).with_name("gpu_wheels.txt").read_text().splitlines()
    pins = {}
    for line in filter(lambda line: line.strip() and not line.startswith("#"), listed):
        assert "#" in line, f"say why it is there: {line}"
        name, version = re.fullmatch(r"([A-Za-z0-9][\w.-]*)==([\w.+!-]+)",
                                     line.split("#")[0].strip()).groups()
        assert name not in pins, f"two pins of {name}"
        pins[name] = version
    assert {"papermill", "jupytext", "ipykernel", "myst-nb", "kornia"} <= set(pins)
    assert not {"torch", "numpy", "sphinx", "myst-parser", "jupyter-cache"} & set(pins)


# --- chapters stood in for by tiny commands ----------------------------------------------------

FAKE = textwrap.dedent('''\
    import json, os, pathlib, sys, time
    number, out, stem, events = int(sys.argv[1]), pathlib.Path(sys.argv[2]), *sys.argv[3:5]
    fail, sleep = sys.argv[5].split(","), float(sys.argv[6])
    with open(events, "a") as f:
        f.write(f"start {number} {time.time()}\\n")
    time.sleep(sleep)
    with open(events, "a") as f:
        f.write(f"end {number} {time.time()}\\n")
    if str(number) in fail:
        print(f"error: chapter {number:02d} failed in cell 7 (execution count 7): "
              "RuntimeError: boom", file=sys.stderr)
        sys.exit(1)
    nb = {"cells": [], "metadata": {"papermill": {"parameters": {"profile": "x"}}}}
    (out / f"{stem}.ipynb").write_text(json.dumps(nb))
    print(f"{stem}: executed at commit {os.environ.get('POSINFO_COMMIT')}")
''')


@pytest.fixture
def fake_chapters(tmp_path, monkeypatch):
    """gpu_book with its chapter command replaced by FAKE; returns (events file, knobs)."""
    script = tmp_path / "fake_chapter.py"
    script.write_text(FAKE)
    events = tmp_path / "events"
    knobs = {"fail": "", "sleep": 0.0}

    def command(number, out, profile, python=sys.executable):
        return [python, str(script), str(number), str(out), STEMS[number], str(events),
                knobs["fail"], str(knobs["sleep"])]

    monkeypatch.setattr(gpu_book, "chapter_command", command)
    monkeypatch.setattr(gpu_book, "machine_record", lambda env: dict(MACHINE))
    return events, knobs


def _started(events: Path) -> list[int]:
    return [int(line.split()[1]) for line in events.read_text().splitlines()
            if line.startswith("start")]


def test_chapters_run_in_order_into_a_flat_out(fake_chapters, tmp_path):
    events, _ = fake_chapters
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke",
                          "--chapters", "5,1,4"]) == 0
    assert _started(events) == [1, 4, 5]  # book order: 5 reads 4's segmenters
    assert sorted(p.name for p in out.iterdir()) == \
        sorted([f"{STEMS[n]}.ipynb" for n in (1, 4, 5)] + ["gpu_book.log"])
    log = (out / "gpu_book.log").read_text()
    assert "book: 3 of 3 chapters ok" in log
    assert re.search(r"^  04_position_channels +ok +[\d.]+$", log, re.M)  # tools.report reads it


def test_a_failing_chapter_fails_the_run_and_the_next_one_still_runs(fake_chapters, tmp_path):
    events, knobs = fake_chapters
    knobs["fail"] = "2"
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke",
                          "--chapters", "2,3"]) == 1
    log = (out / "gpu_book.log").read_text()
    assert "02_channel_order FAILED" in log and "failed in cell 7" in log
    assert "RuntimeError: boom" in log  # its output is in the log
    assert "book: 1 of 2 chapters ok" in log
    assert _started(events) == [2, 3]
    assert [p.name for p in out.glob("*.ipynb")] == ["03_augshift.ipynb"]


def test_a_failing_dry_run_stops_everything_at_once(fake_chapters, tmp_path, capsys):
    events, knobs = fake_chapters
    knobs["fail"] = "1"
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke"]) == 1
    log = (out / "gpu_book.log").read_text()
    assert "dry run FAILED" in log and "01_gap_keeps_position FAILED" in log
    assert "chapters ok" not in log and _started(events) == [1]  # nothing else started
    assert "RuntimeError: boom" in capsys.readouterr().err  # the chapter's error, printed
    assert not list(out.glob("*.ipynb"))  # dry-run notebooks never land in OUT


def test_a_passing_dry_run_is_followed_by_the_chapters(fake_chapters, tmp_path):
    events, _ = fake_chapters
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke", "--chapters", "1"]) == 0
    assert _started(events) == [1, 1]
    assert "dry run passed" in (out / "gpu_book.log").read_text()


def test_the_deadline_stops_what_still_runs(fake_chapters, tmp_path):
    events, knobs = fake_chapters
    knobs["sleep"] = 60
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke",
                          "--deadline", "1", "--chapters", "1", "2"]) == 1
    log = (out / "gpu_book.log").read_text()
    assert "01_gap_keeps_position: killed" in log and "stopped at the deadline" in log
    assert "02_channel_order: not run, the deadline has passed" in log
    assert _started(events) == [1]


@pytest.mark.parametrize("where", ["book", "book/gpu", "data"])
def test_out_inside_book_or_data_is_refused_before_anything_runs(where, capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_book.main(["--out", str(gpu_book.REPO / where), "--profile", "smoke"])
    assert exit_.value.code == 2
    assert "--out must not be" in capsys.readouterr().err


def test_bad_options_are_refused_before_anything_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_book, "Session", lambda *a: pytest.fail("work started"))
    out = str(tmp_path / "out")
    for argv, message in [(["--chapters", "2,9"], "--chapters: chapter must be one of"),
                          (["--profile", "nope"], "--profile must be one of"),
                          (["--prefetch", "0"], "--prefetch must be at least 1"),
                          (["--pilots", "augshift,nope"], "got ['nope']"),
                          (["--pilots", "region_attack", "--pilot-stages", "1"],
                           "--pilot-stages must be a whole number >= 1, with --pilots augshift")]:
        with pytest.raises(SystemExit) as stop:
            gpu_book.main(["--out", out, *argv])
        assert stop.value.code == 2 and message in capsys.readouterr().err, argv
    assert not (tmp_path / "out").exists()


def test_the_commit_comes_from_the_option_the_environment_or_git(tmp_path, monkeypatch):
    monkeypatch.delenv(gpu_book.COMMIT_ENV, raising=False)
    assert gpu_book.run_commit("abc", tmp_path) == ("abc", "--commit")
    monkeypatch.setenv(gpu_book.COMMIT_ENV, "def")
    assert gpu_book.run_commit(None, tmp_path) == ("def", gpu_book.COMMIT_ENV)
    monkeypatch.delenv(gpu_book.COMMIT_ENV)
    commit, source = gpu_book.run_commit(None, gpu_book.REPO)  # this checkout has .git
    assert source == "git" and re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit)
    # The GPU machine's copy may have no .git, and nothing passed in: said, not guessed.
    assert gpu_book.run_commit(None, tmp_path)[0] == gpu_book.NOT_RECORDED


SHA = "0123456789abcdef0123456789abcdef01234567"


def test_each_notebook_records_its_run_and_the_gpu_page_shows_it(fake_chapters, tmp_path):
    """A rehearsal of the GPU part on the CPU, into a temporary folder (never book/gpu/):
    each notebook then names its commit, machine, torch and date, and the page renders them."""
    from posinfo.tools import report

    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke",
                          "--chapters", "channel_order,3", "--commit", SHA]) == 0
    for stem in ("02_channel_order", "03_augshift"):
        nb = json.loads((out / f"{stem}.ipynb").read_text())
        run = nb["metadata"][gpu_book.NOTEBOOK_KEY]
        assert nb["metadata"]["papermill"] == {"parameters": {"profile": "x"}}  # kept
        assert run["commit"] == SHA and run["machine"] == "Fake GPU" and run["torch"] == "2.99"
        assert run["status"] == "ok" and run["profile"] == "smoke" and run["chapter"] == stem
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", run["started"])
    log = (out / "gpu_book.log").read_text()
    assert f"commit: {SHA} (from --commit)" in log
    assert f"record 02_channel_order: commit {SHA}, machine Fake GPU, torch 2.99" in log
    assert f"03_augshift: executed at commit {SHA}" in log  # the chapter sees it too

    page = report.gpu_run_markdown(out / "gpu_book.log", tmp_path / "none.json",
                                   tmp_path / "none.json", folder=out)
    date = json.loads((out / "03_augshift.ipynb").read_text())["metadata"][
        gpu_book.NOTEBOOK_KEY]["started"][:10]
    assert f"| 03_augshift | `0123456` | Fake GPU | 2.99 | {date} |" in page
    assert "| 02_channel_order | `0123456` |" in page and "01_gap" not in page.split(
        "Which code")[1]
    assert "2 of 2 chapters ran" in page and "Fake GPU" in page.splitlines()[0]


def test_the_gpu_page_says_when_a_notebook_records_no_commit(tmp_path):
    from posinfo.tools import report

    (tmp_path / f"{STEMS[1]}.ipynb").write_text('{"cells": [], "metadata": {}}')
    (tmp_path / f"{STEMS[2]}.ipynb").write_text(
        '{"metadata": {"posinfo_run": {"commit": "not recorded", "machine": "H200", '
        '"torch": "2.11", "started": "2026-12-04T19:00:00+00:00"}}}')
    runs = report.chapter_runs(tmp_path)
    assert runs[STEMS[1]]["commit"] == "not recorded"  # outside the repository: git can't say
    assert runs[STEMS[2]] == {"commit": "not recorded", "machine": "H200", "torch": "2.11",
                              "date": "2026-12-04"}


def test_the_committed_gpu_notebooks_predating_the_record_name_the_commit_that_added_them():
    from posinfo.tools import report

    for stem, run in report.chapter_runs().items():
        if run["date"] == "not recorded":
            added = report.first_committed(gpu_book.REPO / "book" / "gpu" / f"{stem}.ipynb")
            assert added and run["commit"] == (f"not recorded (run before gpu_book recorded "
                                               f"commits; committed in `{added}`)")


# --- pilots before the chapters ------------------------------------------------------------------

@pytest.fixture
def fake_pilots(tmp_path, monkeypatch):
    """gpu_book with the pilot command replaced by one that writes a record (or fails, for
    the names in the returned set)."""
    failing = set()
    script = tmp_path / "fake_pilot.py"
    script.write_text("import pathlib, sys\n"
                      "name, out, profile, fail = sys.argv[1:5]\n"
                      "if name in fail.split(','):\n"
                      "    sys.exit('error: the pilot failed')\n"
                      "pathlib.Path(out, f'{name}-{profile}.json').write_text('{}')\n")

    def command(name, out, profile, stages=None, python=sys.executable):
        return [python, str(script), name, str(out), profile, ",".join(failing)]

    monkeypatch.setattr(gpu_book, "pilot_command", command)
    monkeypatch.setattr(gpu_book, "machine_record", lambda env: dict(MACHINE))
    return failing


def test_pilots_alone_write_their_records_and_run_no_chapter(fake_pilots, tmp_path):
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke",
                          "--pilots", "augshift", "region_attack"]) == 0
    assert sorted(p.name for p in out.iterdir()) == \
        ["augshift-smoke.json", "gpu_book.log", "region_attack-smoke.json"]
    log = (out / "gpu_book.log").read_text()
    assert "pilot augshift done" in log and "pilot region_attack done" in log
    assert "dry run" not in log and "chapters ok" not in log


def test_a_failing_pilot_fails_the_run_and_the_next_pilot_still_runs(fake_pilots, tmp_path):
    fake_pilots.add("augshift")
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke",
                          "--pilots", "augshift,region_attack"]) == 1
    log = (out / "gpu_book.log").read_text()
    assert "pilot augshift FAILED" in log and "error: the pilot failed" in log
    assert (out / "region_attack-smoke.json").exists()


def test_with_prefetch_a_pilot_is_planned_and_prefetched_first(fake_pilots, tmp_path):
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke", "--pilots", "augshift",
                          "--prefetch", "2"]) == 0
    log = (out / "gpu_book.log").read_text()
    assert log.index("output of plan pass") < log.index("output of prefetch") \
        < log.index("pilot augshift done")
    assert "prefetch: 0 trained, 0 failed, 0 not started" in log  # the stand-in trains nothing
    assert (out / "augshift-smoke.json").exists()
