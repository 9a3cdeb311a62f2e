"""The benchmarks are not timed in tests (machines are noisy), but what they count and
compare must be right: the FLOPs of a step (against a count by hand), baselines that build
exactly what the library builds, the GPU bench's arms and arithmetic."""
import contextlib
import sys

import pytest
import torch

from posinfo.settings import chapter_settings
from posinfo.tools.bench import common, cpu, gpu, gpu_concurrent, gpu_report
from posinfo.tools.bench import __main__ as command
from posinfo.tools.bench.gpu_stream import CanvasStream


def test_canvas_baselines_build_the_same_canvases_and_every_method_is_timed():
    # canvas_speedup asserts that both per-sample loops equal place_on_canvas before timing.
    times = cpu.canvas_speedup(n=16, image_size=6, grid=3)
    assert set(times) == {"batched", "loop", "reference loop", "zero-fill floor"}
    assert all(t > 0 for t in times.values())


def test_a_training_steps_flops_are_counted_as_by_hand():
    # A 3x3 convolution (1 -> 2 channels, no bias) on a 4x4 image gives 2x2x2 = 8 outputs,
    # each a 9-term dot product: 2 * 9 * 8 = 144 FLOPs forward, and as many for its weight
    # gradient (the input needs none). The linear layer (8 -> 3): 2 * 8 * 3 = 48 forward,
    # 48 for its input gradient, 48 for its weight gradient. 432 per image; Adam's
    # elementwise arithmetic is not counted.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, bias=False), torch.nn.Flatten(),
                                torch.nn.Linear(8, 3, bias=False))
    batch = 5
    x, y = torch.rand(batch, 1, 4, 4), torch.tensor([0, 1, 2, 1, 0])
    timing = cpu.time_training_step(model, x, y, steps=2)
    assert timing["flops"] == batch * (144 + 144 + 3 * 48)
    seconds = timing["seconds_per_step"]
    assert timing["images_per_s"] == pytest.approx(batch / seconds)
    assert timing["gflops_per_s"] == pytest.approx(batch * 432 / seconds / 1e9)


def test_the_timed_step_trains_and_the_thread_count_is_restored():
    settings = chapter_settings("gap_keeps_position", "smoke", width=4, image_size=8)
    threads = torch.get_num_threads()
    model = cpu._chapter1_model(settings)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = torch.rand(4, 1, 24, 24), torch.tensor([0, 4, 8, 2])
    timing = cpu.time_training_step(model, x, y, steps=1, threads=1)
    assert timing["first_step_s"] > 0 and timing["flops"] > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))  # it trains
    assert torch.get_num_threads() == threads
    images_s, gflops, first = cpu.training_throughput(settings, batch_size=4, steps=1)
    assert images_s > 0 and gflops > 0 and first > 0


def test_the_shared_step_is_one_adam_step_on_the_cross_entropy():
    # common.train_step against the step written out: the same weights after one step.
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3)
    twin = torch.nn.Linear(6, 3)
    twin.load_state_dict(model.state_dict())
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])
    opt, twin_opt = (torch.optim.Adam(m.parameters(), lr=0.1) for m in (model, twin))
    total = torch.zeros(())
    loss = common.train_step(model, opt, x, y, total=total)
    expected = torch.nn.functional.cross_entropy(twin(x), y)
    expected.backward()
    twin_opt.step()
    assert loss.item() == pytest.approx(expected.item()) and total.item() == loss.item()
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(a, b)


def test_a_baseline_that_builds_other_canvases_is_an_error_even_under_python_O(monkeypatch):
    from posinfo.canvas import place_on_canvas

    # The library "improved" to put every image one pixel off: the loops no longer match it.
    def one_pixel_off(images, cells, grid):
        return torch.roll(place_on_canvas(images, cells, grid), 1, dims=-1)

    monkeypatch.setattr(cpu, "place_on_canvas", one_pixel_off)
    with pytest.raises(common.UnfairBaseline,
                       match="baseline 'loop' does not build what the library"):
        cpu.canvas_speedup(n=4, image_size=4, grid=2)
    with pytest.raises(common.UnfairBaseline, match=r"shapes \(1, 2\) and \(2, 1\)"):
        common.check_same("x", torch.zeros(1, 2), torch.zeros(2, 1))
    common.check_same("x", torch.ones(2), torch.ones(2))  # equal: no error


def test_library_code_uses_no_bare_assert():
    # python -O removes asserts: a check in library code must raise an error of its own.
    import ast
    from pathlib import Path

    import posinfo
    package = Path(posinfo.__file__).parent
    found = [f"{path.relative_to(package)}:{node.lineno}" for path in sorted(package.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert found == []


# ---- the GPU section (--gpu): its code path on the CPU, its arithmetic, its refusal ----------
def test_gpu_section_quick_path_runs_on_cpu_and_writes_every_arm(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path, anywhere
    path = tmp_path / "bench_gpu.json"
    command.main(["--gpu", "--quick", "--json", str(path)])
    result = json.loads(path.read_text())
    assert set(result) == {"header", "config", "paper_run", "arms", "summary", "elapsed_s"}
    assert {"device", "torch", "cuda", "date"} <= set(result["header"])
    assert result["paper_run"] == {"epochs": 20, "canvases_per_epoch": 50_000,
                                   "target_minutes": 1.0}
    arms = result["arms"]
    assert list(arms) == ["eager", "eager, fused Adam", "library fit", "CUDA graph (manual)",
                          "library fit, 2 processes", "library fit, 2 streams", "compile",
                          "compile, reduce-overhead"]
    for name in ("library fit, 2 processes", "library fit, 2 streams"):
        assert arms[name]["status"] == "ok" and arms[name]["check"]["ok"] is True, arms[name]
    for name in ("eager", "eager, fused Adam", "library fit", "compile"):
        arm = arms[name]
        assert arm["status"] == "ok", arm
        assert {"canvases_per_s", "ms_per_step", "setup_s", "projected_min",
                "projected_min_with_setup", "vs_eager", "check"} <= set(arm)
    # Compiled (aot_eager on CPU) and fused steps see the same batches from the same weights
    # as eager: their first losses match eager's.
    assert arms["eager, fused Adam"]["check"]["ok"] is True
    assert arms["compile"]["check"]["ok"] is True
    # The library's own loop (posinfo.graphed, uncaptured on a CPU) on eager's batches.
    library = arms["library fit"]
    assert library["check"]["ok"] is True and library["check"]["captured"] is False
    assert library["fit"]["graphed"] is False and library["fit"]["canvases_per_s"] > 0
    assert len(arms["eager"]["check"]["losses"]) == gpu.QUICK.check_steps
    for name in ("CUDA graph (manual)", "compile, reduce-overhead"):
        assert arms[name] == {"status": "skipped", "reason": "needs CUDA",
                              "what": gpu.ARMS[name]}
    assert result["summary"]["best"] in arms
    # A sum over two models is no model's speed: never the best arm, reported on its own.
    assert not result["summary"]["best"].startswith("library fit, 2")
    assert result["summary"]["most_canvases"]["arm"].startswith("library fit, 2")
    out = capsys.readouterr().out
    assert "canvases/s" in out and "best:" in out


def test_projection_of_the_paper_run_and_the_best_arm():
    # 20 epochs x 50,000 canvases at 10,000 canvases/s: 100 s.
    assert gpu_report.projected_seconds(10_000) == 100
    assert gpu_report.projected_seconds(500, epochs=2, canvases=1_000) == 4

    def arm(rate, ok=True):
        return {"status": "ok", "canvases_per_s": rate, "ms_per_step": 1.0, "setup_s": 30.0,
                "check": {"ok": ok}}

    arms = {"eager": arm(10_000, None), "fast": arm(20_000), "wrong": arm(90_000, False),
            "broken": {"status": "error", "error": "x", "check": {}}}
    summary = gpu_report.summarize(arms)
    assert arms["eager"]["projected_min"] == 100 / 60
    assert arms["fast"]["projected_min"] == 50 / 60
    assert arms["fast"]["projected_min_with_setup"] == 80 / 60
    assert arms["fast"]["vs_eager"] == 2
    assert "projected_min" not in arms["broken"]
    # An arm whose losses differ from eager's is not the best, however fast.
    assert summary["best"] == "fast" and summary["meets_target"] is True
    assert summary["target_over_projected"] == 1.2
    assert "fast" in gpu_report.gpu_table({"arms": arms})


def test_gpu_section_refuses_without_cuda_before_any_work(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu, "gpu_bench", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SystemExit) as stop:
        command.main(["--gpu"])
    assert stop.value.code == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        command.main(["--quick"])  # --quick alone means nothing
    assert stop.value.code == 2


def test_graph_batches_replay_the_eager_batches_across_epochs():
    # graph_batch (the device step counter a CUDA graph replays) and batch (Python slicing)
    # give the same canvases in the same order, over epoch boundaries.
    pool = torch.rand(10, 3, 4, 4)
    eager = CanvasStream(pool, grid=3, batch_size=4, hflip=True)   # 3 steps per epoch
    graphed = CanvasStream(pool, grid=3, batch_size=4, hflip=True)
    assert eager.flips.any() and not eager.flips.all() and eager.steps_per_epoch == 3
    for _ in range(7):
        graphed.advance()
        x, y = graphed.graph_batch()
        x_ref, y_ref = eager.batch()
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
        assert x.shape == (4, 3, 12, 12)


def test_cuda_graph_arm_resets_weights_adam_state_and_data_before_its_check():
    # The CUDA-graph arm warms up (moving the weights), then resets everything in place and
    # replays from eager's start. Run eagerly here (no capture on a CPU): its first losses
    # must be eager's to float precision, and its canvases eager's exactly.
    b = gpu._Bench(gpu.QUICK, torch.device("cpu"))
    gpu._arm_eager(b)
    result = gpu._arm_cuda_graph(b, capture=False)
    check = result["check"]
    assert check["inputs_equal_eager"] is True and check["captured"] is False
    assert check["ok"] is True and check["max_abs_diff"] < 1e-4, check


def test_gpu_section_stops_at_its_deadline_and_keeps_what_it_measured(tmp_path):
    # A compilation that runs long must not take the one-shot GPU run's whole time: at the
    # deadline the results so far are written and the process exits with status 3.
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import posinfo

    path = tmp_path / "bench_gpu.json"
    code = ("from dataclasses import replace; from posinfo.tools.bench import gpu; "
            "gpu.gpu_bench(replace(gpu.QUICK, seconds=60, deadline_s=1), "
            f"json_path={str(path)!r}, device='cpu')")
    lib = str(Path(posinfo.__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": lib})
    assert done.returncode == 3, done.stderr
    assert "deadline of 1 s reached during 'eager'" in done.stdout
    result = json.loads(path.read_text())
    assert result["stopped_at_deadline"] == "eager"
    assert "deadline" in result["arms"]["eager"]["error"]
    assert result["summary"] == {"best": None, "meets_target": False}


def test_the_gpu_bench_stops_itself_at_its_budget_plus_the_hard_stop(monkeypatch):
    # gpu_book sizes the bench's --budget so that this stop comes before its own deadline.
    import threading
    from dataclasses import replace

    from posinfo.tools.bench import HARD_STOP_AFTER_BUDGET_S

    armed = []

    class Timer:  # records when the bench would stop itself; never fires
        def __init__(self, interval, function):
            armed.append(interval)

        def start(self):
            pass

        def cancel(self):
            pass

    monkeypatch.setattr(threading, "Timer", Timer)
    monkeypatch.setattr(gpu, "_gpu_arms", lambda *args: {"arms": {}})  # no arm runs
    gpu.gpu_bench(replace(gpu.QUICK, budget_s=7), device="cpu")
    gpu.gpu_bench(replace(gpu.QUICK, budget_s=7, deadline_s=3), device="cpu")
    assert armed == [7 + HARD_STOP_AFTER_BUDGET_S, 3]


def test_the_bench_runs_as_a_module_with_its_flags():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "posinfo.tools.bench", "--quick"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--json, --quick, --budget and --concurrency go with --gpu" in done.stderr
    done = subprocess.run([sys.executable, "-m", "posinfo.tools.bench", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for flag in ("--chapters", "--keep", "--tests", "--no-compile", "--gpu", "--json",
                 "--quick", "--budget", "--concurrency"):
        assert flag in done.stdout


def test_the_bench_stream_is_the_librarys_device_batches_for_its_seed():
    # Every arm, the library's loop included, trains on what train.fit's graphed loop builds.
    from posinfo.canvas import CanvasTask, ImageSet

    pool = torch.rand(10, 3, 4, 4)
    stream = CanvasStream(pool, grid=2, batch_size=4, seed=5, hflip=True)
    images = ImageSet(pool, torch.zeros(10, dtype=torch.long), 10)
    task = CanvasTask(images, images, 2, "location", hflip=True)
    library = task.device_batches(4, torch.Generator().manual_seed(5))
    for x_ref, y_ref, _ in library:
        x, y = stream.batch()
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_the_graph_check_runs_every_case_on_the_cpu_and_refuses_without_cuda(tmp_path,
                                                                             monkeypatch):
    # On a GPU it compares the captured loop with the eager one; here both are uncaptured,
    # which checks the script (every case builds, trains, calls fit both ways).
    import json

    from posinfo.tools.bench import gpu_check

    path = tmp_path / "graph_check.json"
    assert gpu_check.main(["--cpu", "--steps", "2", "--json", str(path)]) == 0
    cases = json.loads(path.read_text())["cases"]
    assert {"location, blank canvas", "class, noise background, flips",
            "AugShift lambda 1, two views", "PermuteNet after GAP",
            "segmenter (dropout)"} <= set(cases)
    for row in cases.values():
        assert row["ok"] and row["max_abs_diff"] == 0 and row["captured"] is False, row
        assert row["fit"]["on"]["on_epoch_end"] == [1, 2]
        assert row["fit"]["on"]["graphed"] is False  # a CPU never takes the graphed loop
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2


# ---- several graphed runs at once, each in a process of its own (gpu_concurrent) -------------
def test_the_rates_of_runs_at_once_add_up_and_are_set_against_one_run():
    # Three runs at 4,000, 5,000 and 6,000 canvases/s beside one run alone at 10,000.
    rates = gpu_report.concurrent_rates([4_000, 5_000, 6_000], single=10_000)
    assert rates["runs"] == 3 and rates["canvases_per_s"] == 15_000
    assert rates["vs_single"] == 1.5 and rates["per_process_vs_single"] == 0.5
    # The paper's run is 1,000,000 canvases: 200 s at the mean rate of 5,000; the slowest
    # run (4,000/s) ends all three after 250 s; one after another at 10,000/s, 3 x 100 s.
    assert rates["projected_min_per_model"] == 200 / 60
    assert rates["projected_min_all_models"] == 250 / 60
    assert rates["projected_min_one_after_another"] == 300 / 60
    alone = gpu_report.concurrent_rates([10_000])
    assert alone["vs_single"] is None and alone["projected_min_one_after_another"] is None
    for bad in ([], [100, 0]):
        with pytest.raises(ValueError, match=r"per_process must be one positive canvases/s"):
            gpu_report.concurrent_rates(bad)
    # Windows [0, 10], [1, 11], [2, 12]: all three ran from 2 to 10, 8 s of a 12 s span.
    assert gpu_report.window_overlap([(0, 10), (1, 11), (2, 12)]) == 8 / 12
    assert gpu_report.window_overlap([(0, 1), (2, 3)]) == 0  # they never met
    assert gpu_report.window_overlap([(5, 7)]) == 1
    with pytest.raises(ValueError, match=r"windows must be \(start, end\) pairs"):
        gpu_report.window_overlap([(3, 1)])


def test_runs_at_once_are_never_the_best_arm_but_the_most_canvases():
    arms = {"eager": {"status": "ok", "canvases_per_s": 4_000, "setup_s": 0.0,
                      "check": {"ok": None}},
            "one": {"status": "ok", "canvases_per_s": 15_000, "setup_s": 0.0,
                    "check": {"ok": True}},
            "four": {"status": "ok", "setup_s": 10.0, "check": {"ok": True},
                     **gpu_report.concurrent_rates([6_000] * 4, single=15_000)}}
    summary = gpu_report.summarize(arms)
    assert summary["best"] == "one"
    assert summary["most_canvases"] == {"arm": "four", "runs": 4, "canvases_per_s": 24_000,
                                        "vs_single": 1.6, "vs_eager": 6.0,
                                        "projected_min_all_models": 1_000_000 / 6_000 / 60}
    arms["four"]["single"] = {"arm": "one", "canvases_per_s": 15_000}
    line = gpu_report.concurrent_line(arms["four"])
    assert "6000 + 6000 + 6000 + 6000 = 24000 canvases/s, 1.60x one graphed run (one)" in line


def test_two_graphed_runs_at_once_both_report_and_their_rates_are_summed():
    # For real, on the CPU: two worker processes train the library's loop (uncaptured here)
    # on the bench's batches from the bench's weights, released together.
    b = gpu._Bench(gpu.QUICK, torch.device("cpu"))
    gpu._arm_eager(b)  # the reference losses every arm is checked against
    arm = gpu_concurrent.concurrent_arm(b, 2, ("library fit", 100.0))
    assert arm["status"] == "ok" and arm["runs"] == 2 and len(arm["processes"]) == 2
    rates = [p["canvases_per_s"] for p in arm["processes"]]
    assert arm["per_process_canvases_per_s"] == rates and all(r > 0 for r in rates)
    assert arm["canvases_per_s"] == pytest.approx(sum(rates))
    assert arm["vs_single"] == pytest.approx(sum(rates) / 100.0)
    for p in arm["processes"]:  # each its own window of whole steps, timed
        assert p["steps"] > 0 and p["seconds"] >= gpu.QUICK.seconds
        assert p["canvases_per_s"] == pytest.approx(p["steps"] * gpu.QUICK.batch_size
                                                    / p["seconds"])
    # Both processes trained what eager trained: the same first losses.
    assert arm["check"]["ok"] is True and arm["check"]["captured"] is False, arm["check"]
    assert 0 <= arm["overlap"] <= 1 and arm["steps_timed"] == sum(
        p["steps"] for p in arm["processes"])
    assert arm["single"] == {"arm": "library fit", "canvases_per_s": 100.0}
    assert gpu_concurrent._live == set()  # no worker left behind


# A stand-in worker speaking the protocol's first words: worker 1 fails at once, the others
# wait for their go (which never comes).
BROKEN_WORKER = [sys.executable, "-c", (
    "import json, sys\n"
    "job = json.loads(sys.stdin.readline())\n"
    "if job['index'] == 1:\n"
    "    raise ValueError('worker 1 broke')\n"
    "sys.stdin.readline()\n")]
HUNG_WORKER = [sys.executable, "-c", "import os, sys, time\n"
               "print('pid', os.getpid(), file=sys.stderr, flush=True)\n"
               "time.sleep(60)\n"]


def test_a_failing_worker_makes_its_arm_an_error_and_the_bench_goes_on(monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(gpu_concurrent, "WORKER_COMMAND", BROKEN_WORKER)
    result = gpu.gpu_bench(replace(gpu.QUICK, concurrency=(2,)), device="cpu",
                           log=lambda *a, **k: None)
    arm = result["arms"]["library fit, 2 processes"]
    assert arm["status"] == "error", arm
    assert arm["error"].startswith("WorkerFailed: worker 1 of 2 exited with status 1 before "
                                   "it was ready: ValueError: worker 1 broke")
    assert result["arms"]["compile"]["status"] == "ok"  # the arms after it still ran
    assert gpu_concurrent._live == set()  # worker 0, waiting for its go, was killed


def test_a_worker_that_fails_after_it_was_ready_fails_the_arm_at_once():
    # Its end is an error as soon as it comes, not after the minute a worker has to say done.
    ready_then_fail = [sys.executable, "-c", (
        "import json, sys\n"
        "sys.stdin.readline()\n"
        f"print({gpu_concurrent.TAG!r} + json.dumps({{'ready': True}}), flush=True)\n"
        "sys.stdin.readline()\n"
        "raise SystemExit('lost the GPU')\n")]
    # both fail: whichever the parent sees first names the arm's error
    with pytest.raises(gpu_concurrent.WorkerFailed,
                       match=r"worker [01] of 2 exited with status 1 before it was done: lost"):
        gpu_concurrent.run_workers([{}, {}], done_timeout_s=600, command=ready_then_fail)
    assert gpu_concurrent._live == set()


def test_a_worker_that_hangs_is_killed_at_its_timeout():
    import os
    import re

    b = gpu._Bench(gpu.QUICK, torch.device("cpu"))
    with pytest.raises(gpu_concurrent.WorkerFailed,
                       match=r"worker\(s\) \[0\] of 1 not ready within 1 s") as failed:
        gpu_concurrent.concurrent_arm(b, 1, None, command=HUNG_WORKER, ready_timeout_s=1)
    pid = int(re.search(r"pid (\d+)", str(failed.value))[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped, not left sleeping
    assert gpu_concurrent._live == set()


def test_concurrency_is_checked_where_it_is_given():
    with pytest.raises(ValueError, match=r"concurrency must be a tuple of whole numbers .* "
                                         r"got \(4, 0\)"):
        gpu.GpuBenchConfig(concurrency=(4, 0))
    assert command.parse(["--gpu", "--concurrency", "1,2,8"]).concurrency == (1, 2, 8)
    assert command.parse(["--gpu", "--concurrency", "none"]).concurrency == ()
    assert command.parse(["--gpu"]).concurrency is None  # the config's default
    for bad in ("0", "4,x", ""):
        with pytest.raises(SystemExit):
            command.parse(["--gpu", "--concurrency", bad])
    # Each arm set against one graphed run of the same bench run: the 1-process arm, else
    # (for itself, or when it failed) the library fit arm.
    ok = lambda rate: {"status": "ok", "canvases_per_s": rate}
    done = {"library fit": ok(10.0), "library fit, 1 process": ok(12.0)}
    assert gpu._single(4, done) == ("library fit, 1 process", 12.0)
    assert gpu._single(1, done) == ("library fit", 10.0)
    done["library fit, 1 process"] = {"status": "error"}
    assert gpu._single(4, done) == ("library fit", 10.0)
    assert gpu._single(4, {}) is None
    assert list(gpu.arms(gpu.GpuBenchConfig(concurrency=(1, 4)))) == [
        "eager", "eager, fused Adam", "library fit", "CUDA graph (manual)",
        "library fit, 1 process", "library fit, 4 processes", "library fit, 4 streams",
        "compile", "compile, reduce-overhead"]


def test_runs_on_streams_each_take_every_step_of_a_round(monkeypatch):
    # On a CPU no streams, the same loops in turn: every copy must step once a round (the
    # arm's rate is runs x the round's), and train what eager trained.
    loops = []
    library_loop = gpu.library_loop

    @contextlib.contextmanager
    def counted(b, model):
        with library_loop(b, model) as (step, loop, losses):
            loops.append(0)
            index = len(loops) - 1

            def count():
                loops[index] += 1
                step()
            yield count, loop, losses

    monkeypatch.setattr(gpu, "library_loop", counted)
    b = gpu._Bench(gpu.QUICK, torch.device("cpu"))
    gpu._arm_eager(b)
    arm = gpu_concurrent.streams_arm(b, 3, ("library fit", 100.0))
    assert len(loops) == 3 and loops[0] > 3 and loops == [loops[0]] * 3
    assert arm["status"] == "ok" and arm["check"]["ok"] is True and arm["check"]["runs"] == 3
    rates = arm["per_process_canvases_per_s"]
    assert rates == [rates[0]] * 3 and arm["canvases_per_s"] == pytest.approx(3 * rates[0])
    assert arm["steps_timed"] == 3 * (loops[0] - 3)  # all but the calibration's 3 rounds
