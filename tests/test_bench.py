"""The benchmark script is not timed in tests (machines are noisy), but its comparisons must
stay fair: each baseline has to build exactly what the library builds."""
from posinfo import bench
from posinfo.settings import chapter_settings


def test_canvas_baselines_build_the_same_canvases_and_every_method_is_timed():
    # canvas_speedup asserts that both per-sample loops equal place_on_canvas before timing.
    times = bench.canvas_speedup(n=16, image_size=6, grid=3)
    assert set(times) == {"batched", "loop", "reference loop", "zero-fill floor"}
    assert all(t > 0 for t in times.values())


def test_training_throughput_counts_flops_and_restores_the_thread_count():
    import torch

    settings = chapter_settings("gap_keeps_position", "smoke", width=4, image_size=8)
    threads = torch.get_num_threads()
    images_s, gflops, first = bench.training_throughput(settings, batch_size=4, steps=1, threads=1)
    assert images_s > 0 and gflops > 0 and first > 0
    assert torch.get_num_threads() == threads


def test_a_baseline_that_builds_other_canvases_is_an_error_even_under_python_O(monkeypatch):
    import pytest
    import torch

    from posinfo.canvas import place_on_canvas

    # The library "improved" to put every image one pixel off: the loops no longer match it.
    monkeypatch.setattr(bench, "place_on_canvas",
                        lambda images, cells, grid: torch.roll(place_on_canvas(images, cells, grid),
                                                               1, dims=-1))
    with pytest.raises(bench.UnfairBaseline, match="baseline 'loop' does not build what the library"):
        bench.canvas_speedup(n=4, image_size=4, grid=2)
    with pytest.raises(bench.UnfairBaseline, match=r"shapes \(1, 2\) and \(2, 1\)"):
        bench.check_same("x", torch.zeros(1, 2), torch.zeros(2, 1))
    bench.check_same("x", torch.ones(2), torch.ones(2))  # equal: no error


def test_library_code_uses_no_bare_assert():
    # python -O removes asserts: a check in library code must raise an error of its own.
    import ast
    from pathlib import Path

    import posinfo
    found = [f"{path.name}:{node.lineno}" for path in sorted(Path(posinfo.__file__).parent.glob("*.py"))
             for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Assert)]
    assert found == []
