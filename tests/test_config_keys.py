"""Every knob that reaches training is in the model cache's key.

A model is cached under the key of its configuration (``train.model_config``,
``augshift.augshift_config``, ``segment.segmenter_config``), built from the chapter's
settings. A knob that changes the weights but is left out of the configuration makes a run
load another run's model: the paper profile's flipped CIFAR run would load the unflipped
one. So, for every chapter at every profile, every knob of its settings is changed through
the settings (``chapter_settings(chapter, profile, knob=other)``, never by hand in the
configuration), and the key of the chapter's configuration must change, unless the knob is
declared below as one that does not reach the configuration, with the reason.
"""
import pytest

from posinfo import cache, checks
from posinfo.augshift import augshift_config
from posinfo.segment import segmenter_config
from posinfo.settings import CHAPTERS, chapter_settings
from posinfo.train import model_config

# Each chapter's configurations, as its runs build them from the settings alone.
CONFIGS = {
    "gap_keeps_position": [lambda s: model_config(s)],
    "channel_order": [lambda s: model_config(s), lambda s: model_config(s, "class")],
    # both arms: the baseline, and AugShift with BlurPool (the ablation's, which reads blur_size)
    "augshift": [lambda s: augshift_config(s, 0.0, None, s.seed),
                 lambda s: augshift_config(s, s.augshift_lambda, s.blur_size, s.seed)],
    "position_channels": [lambda s: segmenter_config(s, seed=s.seed)],
    "region_attack": [lambda s: segmenter_config(s, seed=s.seed)],
}
# Knobs of the verdict and of the analysis after training: in no key at any profile.
JUDGING = {"n_seeds": "how many runs, each keyed by its own seed",
           "confidence": "the verdict's interval", "min_effect": "the verdict's rule"}
# The segmentation chapters' attacks, after training.
ATTACK = {"channel_fractions": "the attack, after training", "verdict_fractions": "the verdict",
          "n_random": "the attack's random draws", "region_channels": "the attack",
          "budgets": "snapshots of the same runs",
          "data": "the paper profile's one real dataset (no alternative trains there)"}
NOT_IN_KEY = {
    "gap_keeps_position": {
        "paddings": "the ablation's list: each entry reaches its run as padding=",
        "backgrounds": "the ablation's list: each entry reaches its run as background=",
        "grids": "the grid sweep's list: each reaches its run as grid= (and epochs=)"},
    "channel_order": {
        "placements": "the sweep's list: each reaches its run as permute_at=",
        "class_fraction": "the paper's rule", "chance_tolerance": "the paper's rule",
        "budgets": "snapshots of the same runs",
        "n_ablation_seeds": "how many ablation runs, each keyed by its seed",
        "ablation_epochs": "reaches the ablation runs as epochs="},
    "augshift": {
        "augshift_lambda": "reaches each run as augshift_lambda=",
        "lambdas": "the sweep's list of augshift_lambda=",
        "n_pairs": "views measured after training", "accuracy_margin": "the verdict's margin",
        "budgets": "snapshots of the same runs",
        "n_ablation_seeds": "how many ablation runs, each keyed by its seed",
        "ablation_epochs": "reaches the ablation runs as epochs=",
        "blur_size": "in the key of the BlurPool arm only, as blur_size="},
    "position_channels": ATTACK,
    "region_attack": {**ATTACK, "region_ranking": "the ranking, after training",
                      "half_score": "the score",
                      "control_mode": "reaches the control's runs as scene mode="},
}
CHOICES = [v for v in vars(checks).values()
           if isinstance(v, tuple) and v and all(isinstance(x, str) for x in v)]


def alternatives(value) -> list:
    """Values to try in place of ``value``; the first the settings accept is used."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, str):
        return [o for options in CHOICES if value in options for o in options if o != value]
    if isinstance(value, int):
        return [value + 1, value - 1, 2 * value, value + 2]
    if isinstance(value, float):
        return [2 * value, value / 2, value + 0.1]
    if isinstance(value, (tuple, list)):
        changed = [type(value)([*value[:i], a, *value[i + 1:]])
                   for i, x in enumerate(value) for a in alternatives(x)[:2]]
        return changed + ([type(value)(value[:-1])] if len(value) > 1 else [])
    return []


def accepted_variants(chapter: str, profile: str, knob: str):
    """The chapter's settings with ``knob`` changed to each other value the checks accept,
    in the order of ``alternatives``."""
    for other in alternatives(chapter_settings(chapter, profile)[knob]):
        try:
            yield chapter_settings(chapter, profile, **{knob: other})
        except ValueError:
            continue


def changed_settings(chapter: str, profile: str, knob: str):
    """The chapter's settings with ``knob`` changed to the first other value they accept;
    None where no candidate passes the checks (a knob fixed at that profile)."""
    return next(accepted_variants(chapter, profile, knob), None)


def keys(chapter: str, settings) -> list[str]:
    return [cache.key(config(settings)) for config in CONFIGS[chapter]]


def knobs_left_out(chapter: str, profile: str) -> tuple[list, list]:
    """(knobs whose change leaves every key of the chapter's configurations unchanged,
    knobs that were changed)."""
    base = chapter_settings(chapter, profile)
    before, left_out, changed = keys(chapter, base), [], []
    for knob in (k for k in base.keys() if k != "profile"):  # profile: each table in turn
        varied = changed_settings(chapter, profile, knob)
        if varied is None:
            continue
        changed.append(knob)
        after = keys(chapter, varied)
        if all(a == b for a, b in zip(before, after)):
            left_out.append(knob)
    return left_out, changed


@pytest.mark.parametrize("profile", checks.PROFILES)
@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_every_knob_that_reaches_training_changes_the_cache_key(chapter, profile):
    left_out, changed = knobs_left_out(chapter, profile)
    declared = {**JUDGING, **NOT_IN_KEY[chapter]}
    assert [k for k in left_out if k not in declared] == []
    # the test changed the knobs that matter: at least the padding and the seed
    assert {"padding", "seed"} <= set(changed), changed


def test_a_knob_left_out_of_model_config_is_caught(monkeypatch):
    """The issue's bug: hflip dropped from model_config's key. The paper profile flips
    CIFAR; a changed hflip must then change the key."""
    from posinfo import train

    def without_hflip(settings, target="location", **changes):
        config = {k: v for k, v in train_model_config(settings, target, **changes).items()
                  if k != "hflip"}
        return config

    train_model_config = train.model_config
    monkeypatch.setitem(CONFIGS, "gap_keeps_position", [without_hflip])
    left_out, changed = knobs_left_out("gap_keeps_position", "paper")
    assert "hflip" in changed and "hflip" in left_out


# ---- ... and every key of model_config reaches the task or the network it trains -----------
# The recipe keys reach the training loop itself (cached_fit reads them from the config).
RECIPE = {"epochs", "batch_size", "lr", "betas", "seed", "target"}
# Every other dataset is a real one, which needs files in data/ (data/README.md).
NEEDS_DATA = {"dataset"}


def built(config: dict) -> tuple:
    """What a classifier run builds from its config alone (as train_classifier does): the
    task's first training batch and test set, and the untrained network."""
    import torch

    from posinfo.canvas import make_task
    from posinfo.settings import Settings
    from posinfo.train import build_model, seed_everything

    task = make_task(Settings(config), config["target"], device="cpu")
    x, y, cells = next(task.train_batches(8, torch.Generator().manual_seed(0)))
    seed_everything(0)
    model = build_model(config, task)
    return (x.sum().item(), y.tolist(), cells.tolist(), len(task.test), repr(model),
            sum(p.sum().item() for p in model.parameters()))


def dead_keys(profile: str) -> list[str]:
    """Keys of chapter 1's model_config at ``profile`` that no accepted change of their
    knob carries into the built task or network."""
    chapter = "gap_keeps_position"
    base = chapter_settings(chapter, profile)
    config = model_config(base)
    before = built(config)
    dead = []
    for knob in sorted(set(config) - RECIPE - NEEDS_DATA):
        # any accepted other value will do: n_train + 1 is no change where n_train already
        # takes every image (the default profile's digits), n_train - 1 is
        tried = []
        for varied in accepted_variants(chapter, profile, knob):
            tried.append(built(model_config(varied)) != before)
            if tried[-1]:
                break
        if tried and not any(tried):
            dead.append(knob)
    return dead


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_every_key_of_model_config_reaches_the_built_task_or_network(profile):
    assert dead_keys(profile) == []


def test_a_key_the_network_ignores_is_caught(monkeypatch):
    from posinfo import train
    build = train.build_model
    monkeypatch.setattr(train, "build_model",
                        lambda config, task: build({**config, "padding": "zeros"}, task))
    assert dead_keys("smoke") == ["padding"]
