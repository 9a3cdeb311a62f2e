"""Pilots: the seed count rule on known answers, and the committed records agree with the
settings they fixed (a profile's n_seeds and task are the pilot's, never tuned afterwards)."""
import math

import pytest
from scipy import stats

from posinfo import pilots
from posinfo.checks import PROFILES
from posinfo.settings import chapter_settings


def test_sample_size_is_the_fewest_seeds_whose_interval_clears_the_minimal_effect():
    values = [0.05, 0.07, 0.03, 0.06, 0.04]  # mean 0.05, sd 0.0158
    size = pilots.sample_size(values, min_effect=0.01, confidence=0.95, cap=12)
    sd = math.sqrt(sum((v - 0.05) ** 2 for v in values) / 4)
    assert size["mean"] == pytest.approx(0.05) and size["sd"] == pytest.approx(sd)

    def half(n):
        return stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    # by hand: the first n whose half-width is under the distance 0.04
    n = next(n for n in range(2, 100) if half(n) < 0.04)
    assert size["needed"] == n and size["n"] == max(n, pilots.MIN_SEEDS)
    assert half(size["needed"] - 1) >= 0.04 if size["needed"] > 2 else True


def test_sample_size_is_capped_and_floored_and_says_why():
    near = pilots.sample_size([0.011, 0.009, 0.012, 0.008], 0.01, 0.95, cap=7)
    assert near["n"] == 7 and "cap" in near["reason"] or "affords 7" in near["reason"]
    far = pilots.sample_size([0.5, 0.51, 0.49], 0.01, 0.95, cap=7)
    assert far["needed"] == 2 and far["n"] == pilots.MIN_SEEDS
    assert f"at least {pilots.MIN_SEEDS}" in far["reason"]


@pytest.mark.parametrize("chapter", sorted(pilots.PILOTS))
@pytest.mark.parametrize("profile", PROFILES)
def test_a_committed_pilot_record_fixed_its_profiles_settings(chapter, profile):
    record = pilots.load_record(chapter, profile)
    if record is None:
        pytest.skip(f"no pilot of {chapter} at {profile}: `python -m posinfo.pilots {chapter} "
                    f"--profile {profile}` writes book/pilots/{chapter}-{profile}.json, "
                    f"which un-skips this check of that profile's n_seeds")
    if not pilots.finished(record):  # a staged pilot between GPU sessions fixes nothing yet
        pytest.skip(f"the pilot of {chapter} at {profile} has not finished: `python -m "
                    f"posinfo.pilots {chapter} --profile {profile}` takes it up")
    s = chapter_settings(chapter, profile)
    # the verdict seeds never reach back into the pilot seeds
    assert not set(s.seeds) & set(record["pilot_seeds"])
    if chapter == "augshift":
        met = [c for c in record["candidates"] if c["meets"]]
        assert len(met) == 1 and record["candidates"][-1] is met[0]  # the mildest that met
        assert (s.margin, s.max_shift) == (met[0]["margin"], met[0]["max_shift"])
        assert s.n_seeds == record["sample_size"]["n"]
    else:
        assert s.n_seeds == record["sample_size"]["n"]
        assert s.half_score == record["half_score"]  # the criterion's choice
        assert len(record["pilot_seeds"]) >= pilots.MIN_PILOT_SEEDS
    assert record["previous_edition"]  # the chapter quotes the edition it replaces


# ---- chapter 3's pilot in stages (a GPU session holds a stage or two) ------------------------
class _Run:
    def __init__(self, consistency, accuracy):
        self.consistency, self.clean_accuracy = consistency, accuracy


@pytest.fixture
def fake_measure(monkeypatch):
    """augshift.measure stood in for by known answers: baselines meet the criterion from a
    cut of 4 px on (consistency 0.85), AugShift gains 0.02 + 0.001 x seed offset."""
    from posinfo import augshift
    calls = []

    def measure(name, config, n_pairs, budgets=()):
        calls.append((name, config["max_shift"] - config["margin"], config["seed"]))
        cut = config["max_shift"] - config["margin"]
        base = 0.85 if cut >= 4 else 0.97
        gain = 0.02 + 0.001 * (config["seed"] - 100) if config["lam"] > 0 else 0.0
        return _Run(base + gain, 0.95)

    monkeypatch.setattr(augshift, "measure", measure)
    return calls


def test_the_staged_pilot_takes_the_steps_the_whole_pilot_takes(fake_measure):
    whole = pilots.augshift_pilot("default")
    assert pilots.finished(whole) and whole["chosen"] == {"margin": 2, "max_shift": 6}
    fake_measure.clear()
    staged, stages = None, []
    while staged is None or not pilots.finished(staged):
        staged = pilots.augshift_pilot("default", previous=staged, stages=1)
        stages.append({(name, cut) for name, cut, _ in fake_measure})
        fake_measure.clear()
    # one stage a call: cut 0, cut 2, cut 4 (meets), then AugShift on the chosen task
    assert stages == [{("baseline", 0)}, {("baseline", 2)}, {("baseline", 4)}, {("aug", 4)}]
    assert staged == whole
    assert pilots.sample_size_text(None, 0.01).startswith("the pilot has not finished")


def test_a_pilot_takes_up_only_its_own_unfinished_record(fake_measure):
    partial = pilots.augshift_pilot("default", stages=1)
    assert not pilots.finished(partial)
    with pytest.raises(ValueError, match="previous must be this pilot's own unfinished "
                                         "record"):
        pilots.augshift_pilot("smoke", previous=partial, stages=1)


def test_stages_are_for_the_augshift_pilot_only():
    with pytest.raises(SystemExit):
        pilots.main(["region_attack", "--stages", "1"])
