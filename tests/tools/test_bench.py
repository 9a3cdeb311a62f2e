"""The benchmarks are not timed in tests (machines are noisy), but what they count and
compare must be right: the FLOPs of a step (against a count by hand), the CPU bench's step,
the GPU bench's variants and arithmetic, and the graph check's script."""
import json
import multiprocessing
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from posinfo.settings import chapter_settings
from posinfo.tools.bench import __main__ as command
from posinfo.tools.bench import cpu, gpu


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


def test_the_timed_step_trains_the_chapter_1_model():
    settings = chapter_settings("gap_keeps_position", "smoke", width=4, image_size=8)
    model = cpu._chapter1_model(settings)
    before = [p.detach().clone() for p in model.parameters()]
    timing = cpu.time_training_step(model, torch.rand(4, 1, 24, 24), torch.tensor([0, 4, 8, 2]),
                                    steps=1)
    assert timing["flops"] > 0 and timing["images_per_s"] > 0
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_the_bare_step_is_one_adam_step_on_the_cross_entropy():
    # cpu.train_step against the step written out: the same weights after one step.
    torch.manual_seed(0)
    model, twin = torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
    twin.load_state_dict(model.state_dict())
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 0])
    opt, twin_opt = (torch.optim.Adam(m.parameters(), lr=0.1) for m in (model, twin))
    loss = cpu.train_step(model, opt, x, y)
    expected = torch.nn.functional.cross_entropy(twin(x), y)
    expected.backward()
    twin_opt.step()
    assert loss.item() == pytest.approx(expected.item())
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(a, b)


def test_library_code_uses_no_bare_assert():
    # python -O removes asserts: a check in library code must raise an error of its own.
    import ast
    from pathlib import Path

    import posinfo
    package = Path(posinfo.__file__).parent
    found = [f"{path.relative_to(package)}:{node.lineno}" for path in sorted(package.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert found == []


# ---- the GPU bench (--gpu): its code path on the CPU, its arithmetic, its refusal ------------
def test_the_gpu_bench_runs_every_variant_on_the_cpu_and_checks_it_against_eager(tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU path, anywhere
    path = tmp_path / "bench_gpu.json"
    command.main(["--gpu", "--quick", "--json", str(path)])
    result = json.loads(path.read_text())
    assert {"device", "torch", "cuda", "date"} <= set(result["header"])
    variants = result["variants"]
    assert list(variants) == ["eager", "graphed", "2 graphed runs at once"]
    assert all(variant["status"] == "ok" for variant in variants.values()), variants
    assert len(variants["eager"]["losses"]) == gpu.QUICK.check_steps
    # Uncaptured on a CPU, the "graphed" loop is eager's loop: the same losses exactly.
    assert variants["graphed"]["captured"] is False
    assert variants["graphed"]["check"] == {"ok": True, "max_abs_diff": 0.0, "tolerance": 0.05}
    several = variants["2 graphed runs at once"]
    assert several["check"]["ok"] is True and several["check"]["max_abs_diff"] == 0.0
    assert several["canvases_per_s"] == pytest.approx(sum(several["per_run_canvases_per_s"]))
    assert 0 <= several["windows_overlap"] <= 1
    assert result["summary"]["best"] == "graphed"
    assert multiprocessing.active_children() == []  # no run outlives its variant
    assert "graphed: " in capsys.readouterr().out
    # Committed as the GPU part's bench, it renders on the GPU page (make html).
    from posinfo.tools.report import gpu_run_markdown

    log = tmp_path / "gpu_book.log"
    log.write_text("08:00:01 environment: machine CPU\n")
    page = gpu_run_markdown(log, path, path, folder=tmp_path)
    assert "`python -m posinfo.tools.bench --gpu` on CPU" in page
    assert "Best: graphed" in page and "2 graphed runs at once" in page


def test_projections_and_the_target():
    # 20 epochs x 50,000 canvases at 10,000 canvases/s: 100 s; two runs at once at 20,000
    # canvases/s in all train each model at 10,000.
    def variant(rate, ok=True, **more):
        return {"status": "ok", "canvases_per_s": rate, "setup_s": 30.0, "check": {"ok": ok},
                **more}

    variants = {"eager": variant(10_000, None), "graphed": variant(20_000),
            "2 graphed runs at once": variant(20_000, runs=2),
            "broken": {"status": "error", "error": "x"}}
    summary = gpu.summarize(variants)
    assert variants["eager"]["projected_min"] == 100 / 60
    assert variants["graphed"]["projected_min"] == 50 / 60 and variants["graphed"]["vs_eager"] == 2
    assert variants["graphed"]["projected_min_with_setup"] == pytest.approx(80 / 60)
    assert variants["2 graphed runs at once"]["projected_min"] == 100 / 60
    assert "projected_min" not in variants["broken"]
    assert summary["best"] == "graphed" and summary["meets_target"] is True
    variants["graphed"]["check"]["ok"] = False  # losses unlike eager's: no speed-up counts
    assert gpu.summarize(variants) == {"best": "eager", "meets_target": False}


def test_runs_at_once_that_fail_raise_and_leave_no_process_behind():
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        gpu.runs_at_once(replace(gpu.QUICK, batch_size=0), "cpu", False, 2)
    assert multiprocessing.active_children() == []


def test_the_gpu_bench_refuses_without_cuda_before_any_work(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu, "gpu_bench", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SystemExit) as stop:
        command.main(["--gpu"])
    assert stop.value.code == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    with pytest.raises(ValueError, match="concurrency must be"):
        gpu.GpuBenchConfig(concurrency=(1,))


def test_the_bench_runs_as_a_module_with_its_flags():
    done = subprocess.run([sys.executable, "-m", "posinfo.tools.bench", "--quick"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--json, --quick and --concurrency go with --gpu" in done.stderr
    done = subprocess.run([sys.executable, "-m", "posinfo.tools.bench", "--gpu",
                           "--concurrency", "1"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "whole numbers of runs >= 2" in done.stderr
    done = subprocess.run([sys.executable, "-m", "posinfo.tools.bench", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for flag in ("--chapters", "--keep", "--gpu", "--json", "--quick", "--concurrency"):
        assert flag in done.stdout


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
