"""posinfo.tools.gpu_book, the book on the GPU machine: lanes, commands, the wheel list, that it
starts on the standard library alone, and what a failing, or too slow, chapter does.
Chapters are stood in for by tiny Python commands: no kernel, no training, no network."""
import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from posinfo.tools import gpu_book

STEMS = gpu_book.chapter_stems()


def test_the_book_has_the_chapters_the_lanes_are_planned_for():
    assert sorted(STEMS) == [1, 2, 3, 4, 5]
    assert STEMS[4].startswith("04_") and STEMS[5].startswith("05_")


def test_chapter_5_runs_after_chapter_4_in_its_lane_and_every_other_chapter_alone():
    assert gpu_book.plan_lanes([1, 2, 3, 4, 5]) == [[4, 5], [1], [2], [3]]
    assert gpu_book.plan_lanes([5, 4]) == [[4, 5]]
    assert gpu_book.plan_lanes([5, 1]) == [[1], [5]]  # without 4, 5 trains its own segmenters
    assert gpu_book.plan_lanes([3]) == [[3]]


def test_the_commands_it_runs(tmp_path):
    assert gpu_book.chapter_command(3, tmp_path, "gpu", python="py") == \
        ["py", "-m", "posinfo.run", "3", "--out", str(tmp_path), "-p", "profile", "gpu"]
    assert gpu_book.chapter_command(1, tmp_path, "smoke", "inductor", python="py")[-2:] == \
        ["--compile", "inductor"]
    assert gpu_book.bench_command(tmp_path, python="py") == \
        ["py", "-m", "posinfo.tools.bench", "--gpu", "--json", str(tmp_path / "bench_gpu.json")]
    assert gpu_book.bench_command(tmp_path, quick=True, budget=90, python="py")[-3:] == \
        ["--quick", "--budget", "90"]
    assert gpu_book.PIP_INSTALL[:4] == ["-m", "pip", "install", "-q"]
    assert {"--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "--upgrade"} \
        <= set(gpu_book.PIP_INSTALL) and gpu_book.PIP_INSTALL[-1] == "--target"


def test_every_process_gets_lib_and_the_wheels_first_with_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(gpu_book.REPO)
    site = tmp_path / "site"
    path = gpu_book.pythonpath(site, os.pathsep.join(["lib", "elsewhere"])).split(os.pathsep)
    assert path == [str(gpu_book.LIB), str(site), str(gpu_book.REPO / "elsewhere")]
    env = gpu_book.child_env(site, tmp_path / "cache", lanes=4,
                             base={"PYTHONPATH": "lib", "OMP_NUM_THREADS": "1"})
    assert env["POSINFO_CACHE"] == str(tmp_path / "cache") and env["POSINFO_PROGRESS"] == "off"
    assert env["OMP_NUM_THREADS"] == "1"  # a setting of the user's is kept
    assert int(gpu_book.child_env(None, tmp_path, lanes=4, base={})["OMP_NUM_THREADS"]) >= 1


def test_the_wheel_list_pins_one_version_of_each_package_the_gpu_image_lacks(tmp_path):
    pins = gpu_book.read_wheel_list()
    assert {"papermill", "jupytext", "ipykernel", "myst-nb", "kornia"} <= set(pins)
    assert not {"torch", "numpy", "sphinx", "myst-parser", "jupyter-cache"} & set(pins)
    for line in gpu_book.WHEEL_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "#" in line, f"say why it is there: {line}"
    loose = tmp_path / "loose.txt"
    loose.write_text("# a comment\n\npapermill>=2  # not one version\n")
    with pytest.raises(ValueError, match="loose.txt:3: expected NAME==VERSION"):
        gpu_book.read_wheel_list(loose)


def test_a_wheels_folder_must_hold_exactly_the_pinned_versions(tmp_path):
    pins = {"myst-nb": "1.4.0", "rpds-py": "2026.9.1"}
    (tmp_path / "myst_nb-1.4.0-py3-none-any.whl").touch()
    (tmp_path / "rpds_py-2026.9.1-cp312-cp312-manylinux_2_17_x86_64.whl").touch()
    assert len(gpu_book.check_wheels(tmp_path, pins)) == 2
    (tmp_path / "rpds_py-2025.1.0-cp312-cp312-manylinux_2_17_x86_64.whl").touch()
    with pytest.raises(ValueError, match="rpds-py: 2 wheels"):
        gpu_book.check_wheels(tmp_path, pins)
    with pytest.raises(ValueError, match="kornia: 0 wheels"):
        gpu_book.check_wheels(tmp_path, {"kornia": "0.9.0"})
    with pytest.raises(ValueError, match="wheel 1.4.0, pinned 1.5.0"):
        gpu_book.check_wheels(tmp_path, {"myst-nb": "1.5.0"})


def test_it_imports_only_the_standard_library_before_the_wheels_are_in():
    # Importing it loads nothing but the standard library and posinfo's own
    # standard-library modules, though torch and the rest could be imported here.
    env = {**os.environ, "PYTHONPATH": str(gpu_book.LIB)}
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; before = set(sys.modules); "
         "import posinfo.tools.gpu_book; print(sorted(m for m in set(sys.modules) - before "
         "if m.split('.')[0] not in sys.stdlib_module_names))"],
        env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    modules = ast.literal_eval(loaded.stdout)
    assert {"posinfo.tools.gpu_book"} <= set(modules)
    assert all(m.split(".")[0] == "posinfo" for m in modules), modules
    # And with no site-packages at all (python -S): it parses, checks the profile
    # (posinfo.checks) and refuses a wrong one, all before any install.
    done = subprocess.run([sys.executable, "-S", "-m", "posinfo.tools.gpu_book", "--out", "x",
                           "--profile", "nope"], env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "--profile must be one of" in done.stderr, done.stderr


# --- chapters stood in for by tiny commands ----------------------------------------------------

FAKE = textwrap.dedent('''\
    import pathlib, sys, time
    number, out, events = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    fail, sleep = sys.argv[4].split(","), float(sys.argv[5])
    with open(events, "a") as f:
        f.write(f"start {number} {time.time()}\\n")
    # A barrier, not a race: the first chapters wait (up to 30 s) until two have started,
    # so that "two lanes at once" does not depend on how fast a loaded machine starts them.
    waited = time.time()
    while open(events).read().count("start") < 2 and time.time() - waited < 30:
        time.sleep(0.02)
    time.sleep(sleep)
    with open(events, "a") as f:
        f.write(f"end {number} {time.time()}\\n")
    if str(number) in fail:
        print(f"error: chapter {number:02d} failed in cell 7 (execution count 7): "
              "RuntimeError: boom", file=sys.stderr)
        sys.exit(1)
    (out / f"{number:02d}_fake.ipynb").write_text("{}")
    print(f"{number:02d}: executed")
''')


@pytest.fixture
def fake_chapters(tmp_path, monkeypatch):
    """gpu_book with its chapter command replaced by FAKE; returns (events file, set(fail,
    sleep))."""
    script = tmp_path / "fake_chapter.py"
    script.write_text(FAKE)
    events = tmp_path / "events"
    knobs = {"fail": "", "sleep": 0.2}

    def command(number, out, profile, compile_backend=None, python=sys.executable):
        return [python, str(script), str(number), str(out), str(events), knobs["fail"],
                str(knobs["sleep"])]

    monkeypatch.setattr(gpu_book, "chapter_command", command)
    monkeypatch.setattr(gpu_book, "probe", lambda code, env, python=None: "(probe skipped)")
    return events, knobs


def _intervals(events: Path) -> dict[int, tuple[float, float]]:
    times = {}
    for line in events.read_text().splitlines():
        kind, number, at = line.split()
        times.setdefault(int(number), {})[kind] = float(at)
    return {n: (t["start"], t.get("end", float("inf"))) for n, t in times.items()}


def test_lanes_run_concurrently_up_to_jobs_and_chapter_5_waits_for_4(fake_chapters, tmp_path):
    events, knobs = fake_chapters
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke",
                          "--jobs", "2"]) == 0
    spans = _intervals(events)
    assert sorted(spans) == [1, 2, 3, 4, 5]
    assert spans[5][0] >= spans[4][1]  # 5 starts after 4 ended
    moments = sorted(t for span in spans.values() for t in span)
    most = max(sum(start <= m < end for start, end in spans.values()) for m in moments)
    assert most == 2  # concurrent, and never more than --jobs lanes
    assert sorted(p.name for p in out.iterdir()) == \
        [f"0{n}_fake.ipynb" for n in range(1, 6)] + ["gpu_book.log"]  # flat
    log = (out / "gpu_book.log").read_text()
    assert "5 of 5 chapters ok" in log and "done   04_position_channels" in log


def test_a_failing_chapter_fails_the_run_and_the_other_lanes_go_on(fake_chapters, tmp_path):
    events, knobs = fake_chapters
    knobs["fail"] = "2,4"
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke"]) == 1
    log = (out / "gpu_book.log").read_text()
    assert "FAILED 02_channel_order" in log and "failed in cell 7" in log
    assert "skip   05_region_attack: chapter 4 before it in its lane failed" in log
    assert "2 of 5 chapters ok" in log
    assert sorted(_intervals(events)) == [1, 2, 3, 4]  # 1 and 3 ran to the end, 5 never started
    assert {p.name for p in out.glob("*.ipynb")} == {"01_fake.ipynb", "03_fake.ipynb"}


def test_a_failing_dry_run_stops_everything_at_once(fake_chapters, tmp_path, capsys):
    events, knobs = fake_chapters
    knobs["fail"] = "1"
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke"]) == 1
    log = (out / "gpu_book.log").read_text()
    assert "dry run FAILED" in log and "01_gap_keeps_position FAILED" in log
    assert "book at profile" not in log  # the book run never started
    assert "RuntimeError: boom" in capsys.readouterr().err  # the chapter's error, printed
    assert not list(out.glob("*.ipynb"))  # dry-run notebooks never land in OUT


def test_the_deadline_stops_what_still_runs(fake_chapters, tmp_path):
    events, knobs = fake_chapters
    knobs["sleep"] = 60
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke",
                          "--jobs", "1", "--deadline", "1", "--chapters", "1", "2"]) == 1
    log = (out / "gpu_book.log").read_text()
    assert "deadline reached" in log and "killed 01_gap_keeps_position" in log
    assert "stopped at the deadline" in log
    assert re.search(r"02_channel_order +not run", log)


def test_a_bench_without_the_gpu_option_is_skipped_with_a_message(tmp_path, monkeypatch):
    old_bench = [sys.executable, "-c", "import argparse; argparse.ArgumentParser()"
                 ".parse_args(['--gpu', '--json', 'x'])"]
    monkeypatch.setattr(gpu_book, "bench_command", lambda *a, **k: old_bench)
    log = gpu_book.Log(tmp_path / "log")
    assert gpu_book.run_bench(tmp_path, dict(os.environ), log) is True
    assert "bench SKIPPED: this posinfo.tools.bench has no --gpu/--json option" in \
        (tmp_path / "log").read_text()
    failing = [sys.executable, "-c", "import sys; sys.exit('no CUDA')"]
    monkeypatch.setattr(gpu_book, "bench_command", lambda *a, **k: failing)
    assert gpu_book.run_bench(tmp_path, dict(os.environ), log) is False
    assert "bench FAILED" in (tmp_path / "log").read_text()


@pytest.mark.parametrize("seconds_left", [1000, 200, 120])
def test_the_bench_stops_itself_before_the_runner_stops_it(tmp_path, monkeypatch,
                                                           seconds_left):
    """With a deadline, run_bench gives the bench a --budget; the bench then stops itself
    at its own hard stop for that budget (GpuBenchConfig.hard_stop_s, which the bench arms:
    test_bench), which must come before the runner's timeout for the bench, which must come
    no later than the deadline."""
    from dataclasses import replace

    from posinfo.tools.bench.gpu import GpuBenchConfig

    now = 5000.0
    monkeypatch.setattr(gpu_book.time, "monotonic", lambda: now)
    seen = {}

    def bench_process(command, timeout=None, **kwargs):
        seen.update(command=command, timeout=timeout)
        return subprocess.CompletedProcess(command, 0, "best: eager", "")

    monkeypatch.setattr(gpu_book.subprocess, "run", bench_process)
    log = gpu_book.Log(tmp_path / "log")
    assert gpu_book.run_bench(tmp_path, {}, log, deadline=now + seconds_left) is True
    budget = float(seen["command"][seen["command"].index("--budget") + 1])
    assert 0 < budget <= GpuBenchConfig().budget_s  # never more than the bench's default
    bench_stops = replace(GpuBenchConfig(), budget_s=budget).hard_stop_s()
    assert bench_stops < seen["timeout"] <= seconds_left
    if seconds_left == 1000:
        assert budget == GpuBenchConfig().budget_s  # time enough: the bench's own budget


def test_no_bench_when_too_little_time_is_left(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_book.subprocess, "run", lambda *a, **k: pytest.fail("bench ran"))
    log = gpu_book.Log(tmp_path / "log")
    deadline = gpu_book.time.monotonic() + 60  # less than the hard stop and margin
    assert gpu_book.run_bench(tmp_path, {}, log, deadline=deadline) is True
    assert "bench skipped: too little time left" in (tmp_path / "log").read_text()


@pytest.mark.parametrize("where", ["book", "book/gpu", "data"])
def test_out_inside_book_or_data_is_refused_before_anything_runs(where, capsys):
    """The runner takes run.check_out's rule: no notebooks among the committed ones."""
    with pytest.raises(SystemExit) as exit_:
        gpu_book.main(["--out", str(gpu_book.REPO / where), "--profile", "smoke"])
    assert exit_.value.code == 2
    assert "--out must not be" in capsys.readouterr().err


# --- subsets of chapters, and what each notebook records ---------------------------------------

def test_chapters_are_named_by_number_or_name_comma_or_space_separated():
    assert gpu_book.resolve_chapters(["2,3"], STEMS) == [2, 3]
    assert gpu_book.resolve_chapters(["channel_order", "03_augshift"], STEMS) == [2, 3]
    assert gpu_book.resolve_chapters(["5", "04", "5"], STEMS) == [4, 5]
    with pytest.raises(ValueError, match="chapter must be one of .*, got 'nope'"):
        gpu_book.resolve_chapters(["2,nope"], STEMS)
    with pytest.raises(ValueError, match="names no chapter"):
        gpu_book.resolve_chapters([","], STEMS)


def test_an_unknown_chapter_is_refused_before_anything_is_installed_or_started(
        tmp_path, monkeypatch, capsys):
    def never(*args, **kwargs):
        pytest.fail("work started before the chapters were checked")
    monkeypatch.setattr(gpu_book, "install_wheels", never)
    monkeypatch.setattr(gpu_book, "probe", never)
    monkeypatch.setattr(gpu_book, "Runner", never)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        gpu_book.main(["--out", str(out), "--wheels", str(tmp_path), "--chapters", "2,9"])
    assert stop.value.code == 2
    assert "--chapters: chapter must be one of" in capsys.readouterr().err
    assert not out.exists()


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


NOTEBOOK = textwrap.dedent('''\
    import json, os, pathlib, sys
    number, out, stem = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    nb = {"cells": [], "metadata": {"papermill": {"parameters": {"profile": "smoke"}}},
          "nbformat": 4, "nbformat_minor": 5}
    (out / f"{stem}.ipynb").write_text(json.dumps(nb))
    print(f"{stem}: executed at commit {os.environ.get('POSINFO_COMMIT')}")
''')
SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_subset_run_records_its_run_in_each_notebook_and_the_gpu_page_shows_it(
        tmp_path, monkeypatch):
    """A dry run of the GPU part on the CPU, into a temporary folder (never book/gpu/):
    chapters 2 and 3 stood in for by a script that writes a notebook; each notebook then
    names its commit, machine, torch and date, and the GPU page renders them."""
    import json

    from posinfo.tools import report

    script = tmp_path / "notebook.py"
    script.write_text(NOTEBOOK)

    def command(number, out, profile, compile_backend=None, python=sys.executable):
        return [python, str(script), str(number), str(out), STEMS[number]]

    def probe(code, env, python=None):
        if code == gpu_book.MACHINE_PROBE:
            return json.dumps({"machine": "Fake GPU", "torch": "2.99", "cuda": "13.9",
                               "python": "3.12"})
        return "(probe skipped)"

    monkeypatch.setattr(gpu_book, "chapter_command", command)
    monkeypatch.setattr(gpu_book, "probe", probe)
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke",
                          "--chapters", "channel_order,3", "--commit", SHA]) == 0
    assert sorted(p.name for p in out.iterdir()) == \
        ["02_channel_order.ipynb", "03_augshift.ipynb", "gpu_book.log"]
    for stem in ("02_channel_order", "03_augshift"):
        nb = json.loads((out / f"{stem}.ipynb").read_text())
        run = nb["metadata"][gpu_book.NOTEBOOK_KEY]
        assert nb["metadata"]["papermill"] == {"parameters": {"profile": "smoke"}}  # kept
        assert run["commit"] == SHA and run["machine"] == "Fake GPU" and run["torch"] == "2.99"
        assert run["status"] == "ok" and run["profile"] == "smoke" and run["chapter"] == stem
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", run["started"])
    log = (out / "gpu_book.log").read_text()
    assert f"commit: {SHA} (from --commit)" in log
    assert f"record 02_channel_order: commit {SHA}, machine Fake GPU, torch 2.99" in log
    assert "2 of 2 chapters ok" in log
    assert f"03_augshift: executed at commit {SHA}" in log  # the chapter sees it too

    page = report.gpu_run_markdown(out / "gpu_book.log", tmp_path / "none.json",
                                   tmp_path / "none.json", folder=out)
    date = json.loads((out / "03_augshift.ipynb").read_text())["metadata"][
        gpu_book.NOTEBOOK_KEY]["started"][:10]
    assert f"| 03_augshift | `0123456` | Fake GPU | 2.99 | {date} |" in page
    assert "| 02_channel_order | `0123456` |" in page and "01_gap" not in page.split(
        "Which code")[1]


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

def test_the_pilots_it_knows_are_the_librarys():
    from posinfo import pilots
    assert sorted(gpu_book.PILOTS) == sorted(pilots.PILOTS)


def test_an_unknown_pilot_is_refused_before_anything_starts(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        gpu_book.main(["--out", str(tmp_path / "out"), "--pilots", "augshift,nope"])
    assert stopped.value.code == 2
    assert "--pilots must name pilots of ['augshift', 'region_attack'], got ['nope']" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


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
    monkeypatch.setattr(gpu_book, "probe", lambda code, env, python=None: "(probe skipped)")
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
    assert "pilot augshift FAILED in its pilot (exit code 1)" in log
    assert "error: the pilot failed" in log
    assert (out / "region_attack-smoke.json").exists()


def test_with_prefetch_a_pilot_is_planned_and_prefetched_first(fake_pilots, tmp_path):
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke", "--pilots", "augshift",
                          "--prefetch", "2"]) == 0
    log = (out / "gpu_book.log").read_text()
    assert log.index("pilot augshift: plan pass") < log.index("pilot augshift: prefetch") \
        < log.index("pilot augshift: pilot") < log.index("pilot augshift done")
    assert "prefetch: 0 trained, 0 failed, 0 not started" in log  # the stand-in trains nothing
    assert (out / "augshift-smoke.json").exists()


# --- MPS ------------------------------------------------------------------------------------

def test_mps_is_started_for_the_runs_and_quit_at_the_end(fake_pilots, tmp_path, monkeypatch):
    # A stand-in for the control binary: "-d" starts, "quit" on stdin stops; each is noted.
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    control = bin_dir / gpu_book.MPS_CONTROL
    control.write_text(f"#!{sys.executable}\n"
                       "import os, sys\n"
                       f"with open({str(calls)!r}, 'a') as f:\n"
                       "    f.write(' '.join(sys.argv[1:]) or sys.stdin.read().strip())\n"
                       "    f.write(' ' + os.environ['CUDA_MPS_PIPE_DIRECTORY'] + '\\n')\n")
    control.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke", "--pilots", "augshift",
                          "--mps"]) == 0
    started, quit_ = calls.read_text().splitlines()
    assert started.startswith("-d ") and quit_.startswith("quit ")
    assert started.split()[1] == quit_.split()[1]  # one pipe folder for both
    log = (out / "gpu_book.log").read_text()
    assert log.index("mps: control daemon started") < log.index("pilot augshift done") \
        < log.index("mps: control daemon quit")


def test_without_the_mps_binary_the_run_goes_on_and_says_so(fake_pilots, tmp_path,
                                                           monkeypatch):
    monkeypatch.setattr(gpu_book.shutil, "which", lambda name: None)
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--profile", "smoke", "--pilots", "augshift",
                          "--mps"]) == 0
    log = (out / "gpu_book.log").read_text()
    assert "nvidia-cuda-mps-control not found; runs side by side will time-slice" in log
    assert "pilot augshift done" in log


def test_pilot_stages_reach_the_augshift_pilot_only(tmp_path):
    assert gpu_book.pilot_command("augshift", tmp_path, "gpu", 1)[-2:] == ["--stages", "1"]
    assert "--stages" not in gpu_book.pilot_command("region_attack", tmp_path, "gpu", 1)
    with pytest.raises(SystemExit):
        gpu_book.main(["--out", str(tmp_path / "out"), "--pilots", "region_attack",
                       "--pilot-stages", "1"])


def test_the_bench_runs_under_mps_when_asked_for(fake_pilots, tmp_path, monkeypatch):
    events = []
    monkeypatch.setattr(gpu_book.Mps, "start",
                        lambda self: setattr(self, "env", {"CUDA_MPS_PIPE_DIRECTORY": "p"})
                        or dict(self.env))
    monkeypatch.setattr(gpu_book, "run_bench",
                        lambda out, env, log, quick, deadline:
                        events.append(("bench", env.get("CUDA_MPS_PIPE_DIRECTORY"))) or True)
    monkeypatch.setattr(gpu_book.Mps, "stop", lambda self: events.append(("stop", None)))
    assert gpu_book.main(["--out", str(tmp_path / "out"), "--profile", "smoke",
                          "--pilots", "augshift", "--mps", "--bench"]) == 0
    assert events == [("bench", "p"), ("stop", None)]  # under MPS, which is quit after
