"""The two worked answers that train a model of their own: chapter 2's narrow network
(``permutenet.narrow_stem``) and chapter 4's circular segmenter
(``attack.padded_flip_attack``), on hand-made accuracies and a tiny segmenter."""
import math
from types import SimpleNamespace

import pytest
import torch.nn as nn

from posinfo import permutenet
from posinfo.attack import padded_flip_attack
from posinfo.permutenet import stem_shares
from posinfo.settings import chapter_settings


def test_stem_shares_hand_worked():
    # location (chance 1/9) keeps half its above-chance accuracy, class (chance 0.1) all.
    nine = 1 / 9
    shares = stem_shares({"location": {"baseline": 1.0, "shuffled": (1 + nine) / 2},
                          "class": {"baseline": 0.9, "shuffled": 0.9}},
                         {"location": nine, "class": 0.1})
    assert shares == pytest.approx({"location": 0.5, "class": 1.0})


def _fake_training(monkeypatch):
    """train_classifier replaced by a table: accuracy from (target, width, permute_at)."""
    calls = []

    def train(config):
        calls.append(config)
        accuracy = {("location", 0): 1.0, ("location", 1): 1.0,
                    ("class", 0): 0.9, ("class", 1): 0.5}[config["target"],
                                                          config["permute_at"]]
        if config["width"] == 2:
            accuracy = accuracy * 0.8
        return SimpleNamespace(evaluation=SimpleNamespace(accuracy=accuracy))

    monkeypatch.setattr(permutenet, "train_classifier", train)
    return calls


def test_narrow_stem_trains_both_arms_and_tasks_at_both_widths_at_one_seed(monkeypatch):
    calls = _fake_training(monkeypatch)
    s = chapter_settings("channel_order", "smoke")  # width 8, seed 100
    out = permutenet.narrow_stem(s, 2)
    assert {(c["target"], c["width"], c["permute_at"], c["seed"]) for c in calls} == {
        (t, w, p, s.seed) for t in ("location", "class") for w in (8, 2) for p in (0, 1)}
    assert len(calls) == 8
    assert out["chapter"]["accuracy"]["class"] == {"baseline": 0.9, "shuffled": 0.5}
    assert out["narrow"]["accuracy"]["class"] == pytest.approx(
        {"baseline": 0.72, "shuffled": 0.4})
    assert out["chapter"]["kept"] == pytest.approx({"location": 1.0, "class": 0.5})
    assert out["narrow"]["kept"]["class"] == pytest.approx((0.4 - 0.1) / (0.72 - 0.1))


def test_narrow_stem_at_the_chapters_own_width_trains_nothing_twice(monkeypatch):
    calls = _fake_training(monkeypatch)
    s = chapter_settings("channel_order", "smoke")
    out = permutenet.narrow_stem(s, s.width, seed=7)
    assert len(calls) == 4 and {c["seed"] for c in calls} == {7}
    assert out["narrow"] is out["chapter"]


def test_a_circular_segmenter_is_trained_and_scored_on_the_chapters_scenes():
    s = chapter_settings("position_channels", "smoke", epochs=1)
    s.update(n_train=32, n_val=8)
    result = padded_flip_attack(s, "circular")
    assert set(result) == {"clean", "extra damage"}
    assert 0.0 <= result["clean"] <= 1.0 and math.isfinite(result["extra damage"])


def test_the_padding_reaches_the_trained_segmenter(monkeypatch):
    from posinfo import segment

    seen = []
    real = segment.train_segmenter

    def spy(config, *args, **kwargs):
        seen.append(config)
        run = real(config, *args, **kwargs)
        modes = {m.padding_mode for m in run.model.backbone.modules()
                 if isinstance(m, nn.Conv2d) and m.padding != (0, 0)}
        seen.append(modes)
        return run

    monkeypatch.setattr(segment, "train_segmenter", spy)
    s = chapter_settings("position_channels", "smoke", epochs=1)
    s.update(n_train=32, n_val=8)
    padded_flip_attack(s, "circular", seed=3)
    assert seen[0]["padding"] == "circular" and seen[0]["seed"] == 3
    assert seen[1] == {"circular"}


def test_a_checkpoint_has_no_other_padding_to_train():
    s = chapter_settings("position_channels", "paper")
    with pytest.raises(ValueError, match="scenes only"):
        padded_flip_attack(s, "circular")
