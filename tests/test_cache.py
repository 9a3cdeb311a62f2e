"""What the cache of trained models keys on, and when it refuses a stored entry."""
import shutil
from pathlib import Path

import pytest
import torch

import posinfo
from posinfo import cache

# The modules whose code decides what training produces (data, models, losses, the loop).
# A new module must be placed on one side on purpose: fingerprinted (editing it retrains
# every model) or listed in cache._NOT_AFFECTING_WEIGHTS (editing it retrains nothing).
# permutenet.py only assembles configs of trained models, but it decides which models chapter
# 2 trains, so it is keyed like augshift.py, which does the same for chapter 3.
FINGERPRINTED = ["augshift.py", "canvas.py", "checks.py", "cross_checks.py", "datasets.py",
                 "device.py", "geometry.py", "graphed.py", "models.py", "permute.py",
                 "permutenet.py", "scenes.py", "segment.py", "settings.py", "shifts.py",
                 "train.py"]


def test_the_fingerprint_covers_exactly_the_modules_that_shape_training():
    assert [p.name for p in cache.fingerprinted_modules()] == FINGERPRINTED
    package = Path(posinfo.__file__).parent
    every = {p.name for p in package.glob("*.py")}
    assert every == set(FINGERPRINTED) | (cache._NOT_AFFECTING_WEIGHTS & every)


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """The library's modules copied to tmp_path, with the fingerprint reading them there."""
    copy = tmp_path / "posinfo"
    shutil.copytree(Path(posinfo.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "__file__", str(copy / "cache.py"))
    cache.code_fingerprint.cache_clear()
    yield copy
    cache.code_fingerprint.cache_clear()


def _fingerprint_after(copy, module, edit):
    path = copy / module
    original = path.read_text()
    path.write_text(edit(original))
    cache.code_fingerprint.cache_clear()
    try:
        return cache.code_fingerprint()
    finally:
        path.write_text(original)


def test_editing_a_training_module_changes_the_key_and_a_figure_module_does_not(package_copy):
    base = cache.code_fingerprint()
    config = {"seed": 0}
    base_key = cache.key(config)
    assert _fingerprint_after(package_copy, "models.py", lambda s: s + "\nX = 1\n") != base
    assert _fingerprint_after(package_copy, "train.py",
                              lambda s: s + "\ndef f():\n    pass\n") != base
    # comments, and every module that draws, launches or judges, leave trained models valid
    assert _fingerprint_after(package_copy, "models.py", lambda s: s + "\n# a comment\n") == base
    for module in ("figures.py", "run.py", "verdict.py", "interval.py", "power.py",
                   "budgets.py", "pilots.py", "tools/report.py",
                   "tools/bench/cpu.py"):
        assert (package_copy / module).exists(), module  # a moved module must be named here
        assert _fingerprint_after(package_copy, module, lambda s: s + "\nX = 1\n") == base
    cache.code_fingerprint.cache_clear()
    (package_copy / "models.py").write_text((package_copy / "models.py").read_text() + "\nX = 2\n")
    assert cache.key(config) != base_key  # the key follows the fingerprint


def test_a_stored_entry_whose_key_does_not_match_is_ignored(fresh_cache):
    a, b = {"seed": 0, "width": 4}, {"seed": 0, "width": 8}
    path = cache.store(a, {"weights": torch.ones(2)})
    assert torch.equal(cache.load(a)["weights"], torch.ones(2))
    # the same file under b's name (a hash collision, or a file copied by hand): b's stored
    # configuration differs from the one asked for, so it is refused, not used
    shutil.copy(path, cache.path_for(b))
    assert cache.load(b) is None
    # an entry written by another version of the code: same config, another stored key
    stored = torch.load(path, weights_only=True)
    stored["key"]["code"] = "0" * 16
    torch.save(stored, path)
    assert cache.load(a) is None
    # a bare payload without the key wrapper
    torch.save({"weights": torch.ones(2)}, path)
    assert cache.load(a) is None


def test_posinfo_cache_off_neither_reads_nor_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "cache"))
    config = {"seed": 0}
    cache.store(config, {"weights": torch.ones(1)})
    assert cache.load(config) is not None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POSINFO_CACHE", "off")
    assert cache.load(config) is None  # the stored entry is not read...
    assert cache.store(config, {"weights": torch.zeros(1)}) is None  # ...nor is a new one written
    assert not (tmp_path / "off").exists()
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "cache"))
    assert torch.equal(cache.load(config)["weights"], torch.ones(1))  # untouched


def test_a_corrupt_entry_is_reported_before_it_is_recomputed(fresh_cache, capsys):
    # At the paper profile a silent retraining is a long surprise: the reader is told which
    # model and which file, on stderr (a chapter's kernel shows it in the notebook).
    config = {"target": "location", "padding": "zeros", "epochs": 4, "seed": 3, "width": 4}
    path = cache.store(config, {"weights": torch.ones(2)})
    path.write_bytes(path.read_bytes()[:50])  # truncated
    assert cache.load(config) is None
    err = capsys.readouterr().err
    assert err.startswith("retraining target=location padding=zeros epochs=4 seed=3: cached "
                          f"file unreadable ({path}: "), err
    # a file holding another configuration is reported too
    other = cache.store({**config, "width": 8}, {"weights": torch.ones(2)})
    shutil.copy(other, path)
    assert cache.load(config) is None
    assert f"cached file {path} holds another configuration" in capsys.readouterr().err
    # an absent entry is the normal first run: nothing to report
    assert cache.load({**config, "seed": 4}) is None and capsys.readouterr().err == ""


def test_an_unwritable_cache_folder_is_refused_naming_the_variable(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("POSINFO_CACHE", str(blocker / "sub"))
    with pytest.raises(ValueError, match=r"POSINFO_CACHE='.*file/sub': the model cache folder "
                                         r".* cannot be written \(NotADirectoryError"):
        cache.check_writable()
    monkeypatch.setenv("POSINFO_CACHE", "off")
    assert cache.check_writable() is None  # no cache, nothing to write
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "fine"))
    assert cache.check_writable() == tmp_path / "fine"
    assert list((tmp_path / "fine").iterdir()) == []


def test_a_segmenter_loaded_from_the_cache_ranks_and_scores_like_the_fresh_one(fresh_cache):
    """Chapters 4 and 5 read cached segmenters in a warm build and fresh ones in an empty
    one: both must give the same weights, the same flip ranking and the same claim-4
    statistic, or a warm build would print other verdicts."""
    from posinfo.attack import extra_damage, flip_attack, rank_position_channels
    from posinfo.segment import segmentation_budgets
    from posinfo.settings import Settings, chapter_settings
    s = Settings(chapter_settings("position_channels", "smoke"), n_train=96, n_val=16,
                 epochs=2)
    fresh, loaded = (segmentation_budgets(s, 3, [1, 2])[2] for _ in range(2))
    assert not fresh.trained.from_cache and loaded.trained.from_cache
    a, b = fresh.model.state_dict(), loaded.model.state_dict()
    assert all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)
    assert torch.equal(rank_position_channels(fresh.model, fresh.images).overall,
                       rank_position_channels(loaded.model, loaded.images).overall)
    assert extra_damage(flip_attack(fresh, s, 3)) == extra_damage(flip_attack(loaded, s, 3))
