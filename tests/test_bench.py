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
