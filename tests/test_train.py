import numpy as np
import torch

from posinfo import cache
from posinfo.canvas import CanvasTask, ImageSet
from posinfo.settings import chapter_settings
from posinfo.train import epochs_for_grid, evaluate, model_config, train_classifier

TINY = dict(image_size=8, width=4, epochs=1, n_train=64, n_test=10)


def _config(**changes):
    return model_config(chapter_settings("gap_keeps_position", "smoke", **TINY), **changes)


def test_same_seed_gives_identical_metrics_and_different_seed_does_not():
    a, b = train_classifier(_config()), train_classifier(_config())
    c = train_classifier(_config(seed=1))
    assert a.history == b.history and a.evaluation.accuracy == b.evaluation.accuracy
    assert a.history != c.history


def test_per_cell_accuracy_of_a_model_that_always_answers_cell_zero():
    class Always0(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 4).float()
    images = ImageSet(torch.rand(5, 1, 4, 4), torch.zeros(5, dtype=torch.long), 1)
    result = evaluate(Always0(), CanvasTask(images, images, grid=2), device="cpu")
    assert np.array_equal(result.per_cell, [[1, 0], [0, 0]]) and result.accuracy == 0.25


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
