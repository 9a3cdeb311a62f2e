"""posinfo.tools.prefetch and the plan pass of train.cached_fit: a plan records a chapter's
runs and trains nothing; training the plan side by side stores every run under the key the
chapter asks for, so that the chapter then finds them all in the cache."""
import json
import math
import subprocess
import sys

import pytest

from posinfo import pilots, run
from posinfo.settings import chapter_settings
from posinfo.tools import gpu_book, prefetch
from posinfo.train import PLAN_ENV, model_config, train_budgets, train_classifier


def _smoke_config():
    return model_config(chapter_settings("channel_order", "smoke"), "location")


def _run(config, snapshots=(), trainer="posinfo.train:train_classifier"):
    return {"trainer": trainer, "config": config, "snapshots": list(snapshots)}


def test_a_budget_curve_is_one_run_and_repeats_are_trained_once():
    config = {"epochs": 8, "n_train": 100, "batch_size": 10, "seed": 1}
    longest = _run(config, snapshots=(2, 8))
    shorter = _run({**config, "epochs": 2}, snapshots=(2, 8))  # a snapshot of the longest
    other = _run({**config, "seed": 2, "epochs": 4})
    not_a_snapshot = _run({**config, "epochs": 3})
    runs = prefetch.schedule([shorter, longest, other, dict(other), not_a_snapshot])
    assert [(r["config"]["seed"], r["config"]["epochs"]) for r in runs] == \
        [(1, 8), (2, 4), (1, 3)]  # longest first; the snapshot and the repeat dropped
    assert prefetch.steps(runs[0]) == 80


def test_a_plan_pass_records_the_runs_and_trains_nothing(fresh_cache, tmp_path, monkeypatch):
    plan = tmp_path / "plan.jsonl"
    monkeypatch.setenv(PLAN_ENV, str(plan))
    runs = train_budgets(train_classifier, _smoke_config(), (1, 2))
    assert all(not r.from_cache and all(math.isnan(v) for v in r.history)
               for r in runs.values())
    assert not list(fresh_cache.glob("*.pt"))  # nothing trained, nothing stored
    recorded = prefetch.read_plan(plan)
    assert [(r["trainer"], r["config"]["epochs"], r["snapshots"]) for r in recorded] == \
        [("posinfo.train:train_classifier", 2, [1, 2]),
         ("posinfo.train:train_classifier", 1, [1, 2])]
    assert len(prefetch.schedule(recorded)) == 1  # the 1-epoch run is the 2-epoch's snapshot


def test_the_trained_plan_is_what_the_chapter_asks_for(fresh_cache, tmp_path, monkeypatch):
    plan = tmp_path / "plan.jsonl"
    config = _smoke_config()
    with monkeypatch.context() as m:
        m.setenv(PLAN_ENV, str(plan))
        train_budgets(train_classifier, config, (1, 2))
    runs = prefetch.schedule(prefetch.read_plan(plan))
    broken = _run(config, trainer="posinfo.train:no_such_trainer")
    lines = []
    summary = prefetch.train_plan(runs + [broken], jobs=2, log=lines.append)
    assert (summary["trained"], summary["failed"], summary["not_started"]) == (1, 1, 0)
    assert any(line.startswith("FAILED") and "no_such_trainer" in line for line in lines)
    # The chapter's own calls now load every budget: the keys came out the same.
    again = train_budgets(train_classifier, config, (1, 2))
    assert all(r.from_cache for r in again.values())
    assert all(math.isfinite(v) for r in again.values() for v in r.history)
    # and a second plan pass records nothing
    plan.unlink()
    with monkeypatch.context() as m:
        m.setenv(PLAN_ENV, str(plan))
        train_budgets(train_classifier, config, (1, 2))
    assert prefetch.read_plan(plan) == []


def test_past_the_deadline_no_run_starts(fresh_cache):
    lines = []
    summary = prefetch.train_plan([_run(_smoke_config())], jobs=1, deadline_s=0,
                                  log=lines.append)
    assert (summary["trained"], summary["not_started"]) == (0, 1)
    assert lines[0].startswith("not started (deadline)")


@pytest.mark.parametrize("jobs", [0, -1, 1.5])
def test_jobs_must_be_a_positive_whole_number(jobs):
    with pytest.raises(ValueError, match=f"jobs must be a whole number >= 1, got {jobs}"):
        prefetch.train_plan([], jobs=jobs)


def test_plan_runs_a_command_as_a_plan_pass(fresh_cache, tmp_path):
    plan = tmp_path / "plan.jsonl"
    code = ("from posinfo.settings import chapter_settings as s; from posinfo.train import *; "
            "r = train_classifier(model_config(s('channel_order', 'smoke'), 'class')); "
            "print(r.history)")
    done = subprocess.run([sys.executable, "-m", "posinfo.tools.prefetch", "plan", str(plan),
                           "--", sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "[nan, nan]" in done.stdout and "plan: 1 runs recorded, 1 to train" in done.stdout
    (recorded,) = prefetch.read_plan(plan)
    assert recorded["config"]["target"] == "class"
    assert json.loads(json.dumps(recorded)) == recorded  # a plan line is plain JSON


def test_a_plan_pass_writes_over_neither_the_book_nor_a_pilot_record(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.setenv(PLAN_ENV, str(tmp_path / "plan.jsonl"))
    with pytest.raises(ValueError, match=f"{PLAN_ENV} is set"):
        run.build_book(["1"])
    monkeypatch.setitem(pilots.PILOTS, "augshift", lambda profile: {"profile": profile})
    assert pilots.main(["augshift", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    assert not list(tmp_path.glob("*.json"))
    assert "no record written" in capsys.readouterr().out


def test_gpu_book_plans_and_trains_before_the_book_pass(tmp_path, monkeypatch):
    # The chapters stood in for by a command that trains nothing: the plan is empty, the
    # prefetch trains nothing, and the book pass runs as without --prefetch.
    script = tmp_path / "chapter.py"
    script.write_text("import pathlib, sys\n"
                      "pathlib.Path(sys.argv[1]).mkdir(exist_ok=True)\n"
                      "pathlib.Path(sys.argv[1], '01_fake.ipynb').write_text('{}')\n")
    monkeypatch.setattr(gpu_book, "chapter_command",
                        lambda n, out, profile, python=sys.executable:
                        [python, str(script), str(out)])
    monkeypatch.setattr(gpu_book, "machine_record", lambda env: {"machine": "m", "torch": "t"})
    out = tmp_path / "out"
    assert gpu_book.main(["--out", str(out), "--skip-dry-run", "--profile", "smoke",
                          "--chapters", "1", "--prefetch", "2"]) == 0
    log = (out / "gpu_book.log").read_text()
    assert log.index("output of plan pass") < log.index("prefetch: 0 trained") \
        < log.index("1 of 1 chapters ok")


def test_the_tool_and_the_training_loop_name_one_variable():
    # prefetch drops it from its workers' environment: another name would make them record
    from posinfo import train
    assert prefetch.PLAN_ENV == train.PLAN_ENV
