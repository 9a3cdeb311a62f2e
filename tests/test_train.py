import numpy as np
import pytest
import torch

from posinfo import cache
from posinfo.canvas import CanvasTask, make_task
from posinfo.datasets import ImageSet
from posinfo.permute import reseed_permutations
from posinfo.settings import chapter_settings
from posinfo.train import (COMPILE_ENV, build_model, compile_backend, epochs_for_grid, evaluate,
                           fit, model_config, prepare_model, seed_everything, to_device,
                           train_classifier)

TINY = dict(image_size=8, width=4, epochs=1, n_train=64, n_test=10)


def _config(**changes):
    return model_config(chapter_settings("gap_keeps_position", "smoke", **TINY), **changes)


def test_same_seed_gives_identical_metrics_and_different_seed_does_not(monkeypatch):
    # Both runs must really train: `make test` points POSINFO_CACHE at a folder, and the
    # second run would then be a cache hit, comparing the cache with itself.
    monkeypatch.setenv("POSINFO_CACHE", "off")
    a, b = train_classifier(_config()), train_classifier(_config())
    c = train_classifier(_config(seed=1))
    assert not a.from_cache and not b.from_cache
    assert a.history == b.history and a.evaluation.accuracy == b.evaluation.accuracy
    assert a.history != c.history


def test_per_cell_accuracy_of_a_model_that_always_answers_cell_zero():
    class Always0(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 4).float()
    images = ImageSet(torch.rand(5, 1, 4, 4), torch.zeros(5, dtype=torch.long), 1)
    result = evaluate(Always0(), CanvasTask(images, images, grid=2), device="cpu")
    assert np.array_equal(result.per_cell, [[1, 0], [0, 0]]) and result.accuracy == 0.25


def test_per_cell_map_is_row_major_like_the_cells():
    """A model that always answers cell 5 of a 3 x 3 grid (row 1, column 2, cells numbered
    row by row) is right only there: the map's 1 sits at [1, 2], not at its mirror [2, 1]."""
    class Always5(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.full((len(x),), 5), 9).float()
    images = ImageSet(torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long), 1)
    result = evaluate(Always5(), CanvasTask(images, images, grid=3), device="cpu")
    expected = np.zeros((3, 3))
    expected[1, 2] = 1
    assert np.array_equal(result.per_cell, expected) and result.accuracy == pytest.approx(1 / 9)


def test_cache_reuses_a_trained_model_and_recomputes_a_corrupt_one(fresh_cache):
    first = train_classifier(_config())
    assert not first.from_cache
    second = train_classifier(_config())
    assert second.from_cache and second.evaluation.accuracy == first.evaluation.accuracy
    path = cache.path_for(_config())
    path.write_bytes(path.read_bytes()[:100])  # a run killed mid-write of a non-atomic file
    third = train_classifier(_config())
    assert not third.from_cache and third.history == first.history
    assert not list(fresh_cache.glob("*.tmp"))


def test_cache_key_changes_with_any_knob():
    assert cache.key(_config()) != cache.key(_config(padding="circular"))
    assert cache.key(_config()) == cache.key(_config())


def test_larger_grids_get_proportionally_more_epochs():
    assert epochs_for_grid(3, 3, 3) == 3
    assert epochs_for_grid(3, 4, 3) == 6  # 3 * 16 / 9 = 5.33, rounded up
    assert epochs_for_grid(3, 2, 3) == 2


def test_cache_fingerprint_ignores_docstrings_and_comments_but_not_code():
    code = 'def f(x):\n    """Doubles."""\n    return 2 * x  # why\n'
    assert cache.code_digest(code) == cache.code_digest(
        'def f(x):\n    """Twice x, reworded."""\n    # a comment\n    return 2 * x\n')
    assert cache.code_digest(code) != cache.code_digest('def f(x):\n    return 3 * x\n')
    assert cache.code_digest('def g():\n    """Only a docstring."""\n') == \
        cache.code_digest('def g():\n    pass\n')


def _permuted_model_and_task():
    settings = chapter_settings("channel_order", "smoke", image_size=8, width=4, n_train=64,
                                n_test=4)
    config = model_config(settings, permute_at=2)
    task = make_task(settings)
    seed_everything(0)
    return build_model(config, task), task


def test_compiled_training_matches_eager_and_keeps_the_models_state_dict():
    # The "eager" backend runs TorchDynamo's graph capture (the shuffle's seeded randperm
    # included) but generates no code, so this takes seconds; the torchrun test traces
    # forward and backward too (aot_eager) under DDP.
    histories, models = {}, {}
    for backend in ("off", "eager"):
        model, task = _permuted_model_and_task()
        histories[backend] = fit(model, task, epochs=1, batch_size=32, lr=1e-3,
                                 generator=torch.Generator().manual_seed(0), device="cpu",
                                 compile=backend)
        models[backend] = model
    assert np.allclose(histories["off"], histories["eager"], rtol=1e-4)
    assert list(models["off"].state_dict()) == list(models["eager"].state_dict())
    # The channel shuffle must stay a fresh draw per call under compile, not a traced constant.
    model = models["eager"].eval()
    x = to_device(next(iter(task.test_batches(4)))[0], torch.device("cpu"))
    with torch.no_grad():
        reseed_permutations(model, 1)
        first, second = model(x), model(x)
        reseed_permutations(model, 1)
        again = model(x)
    assert not torch.allclose(first, second) and torch.allclose(first, again)


def test_compile_backend_is_checked_from_the_argument_and_the_environment(monkeypatch):
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    assert compile_backend() == "off"
    monkeypatch.setenv(COMPILE_ENV, "inductor")
    assert compile_backend() == "inductor" and compile_backend("off") == "off"
    monkeypatch.setenv(COMPILE_ENV, "turbo")
    with pytest.raises(ValueError, match="POSINFO_COMPILE must be one of .*'turbo'"):
        compile_backend()
    with pytest.raises(ValueError, match="compile must be one of"):
        fit(torch.nn.Linear(1, 1), None, epochs=1, batch_size=1, lr=1e-3, generator=None,
            compile="fast")


def test_cpu_keeps_the_default_layout_and_labels_pass_through():
    # channels_last on CPU is unsafe with this torch build (see train.to_device); on cuda
    # both the model and the image batches switch to it.
    model, _ = _permuted_model_and_task()
    cpu = torch.device("cpu")
    prepare_model(model, cpu)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()
    images = torch.rand(2, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    assert to_device(images, cpu) is images
    labels = torch.arange(4)
    assert to_device(labels, cpu) is labels


def test_a_budget_snapshot_is_the_shorter_run_and_costs_no_training(fresh_cache):
    from posinfo.settings import chapter_settings
    from posinfo.train import train_budgets
    settings = chapter_settings("gap_keeps_position", "smoke", image_size=8, width=4,
                                epochs=2, n_train=64, n_test=10)
    config = model_config(settings)
    runs = train_budgets(train_classifier, config, [1, 2])
    # the longest budget trains; the shorter one is read from its snapshot
    assert not runs[2].from_cache and runs[1].from_cache
    assert runs[1].history == runs[2].history[:1]
    direct = train_classifier({**config, "epochs": 1}, use_cache=False)
    snapshot = runs[1].model.state_dict()
    for name, value in direct.model.state_dict().items():
        torch.testing.assert_close(snapshot[name], value, rtol=0, atol=1e-6)
    # a snapshot is only kept for a budget below the run's own
    assert train_budgets(train_classifier, config, [2])[2].from_cache


def test_a_trained_model_is_reported_in_the_training_log_and_a_cache_hit_is_not(tmp_path,
                                                                               monkeypatch):
    from posinfo.train import TRAINING_LOG_ENV, train_classifier

    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "cache"))
    log = tmp_path / "training.log"
    monkeypatch.setenv(TRAINING_LOG_ENV, str(log))
    config = _config(seed=5)
    train_classifier(config)
    started, done = log.read_text().splitlines()
    what = "location zeros g3 zeros (1 epochs, seed 5)"
    assert started == f"training {what} ..."
    assert done.startswith(f"trained {what} in ") and \
        done.endswith(f" s (cached at {cache.path_for(config)})"), done
    train_classifier(config)  # a cache hit trains nothing and says nothing
    assert len(log.read_text().splitlines()) == 2
    monkeypatch.setenv("POSINFO_CACHE", "off")
    train_classifier(config)
    assert log.read_text().splitlines()[-1].endswith(" s (not cached)")
