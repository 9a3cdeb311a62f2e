"""Pilots: the seed count rule on known answers, and the committed records agree with the
settings they fixed (a profile's n_seeds and task are the pilot's, never tuned afterwards)."""

import pytest

from posinfo import pilots, power
from posinfo.checks import PROFILES
from posinfo.settings import chapter_settings


# The sample size by power (power.outcome_probabilities, seeds_for_power, sample_size):
# tests/test_power.py.


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
        assert len(record["pilot_seeds"]) >= power.MIN_PILOT_SEEDS
    assert record["previous_edition"]  # the chapter quotes the edition it replaces


# ---- chapter 3's pilot in stages (a GPU session holds a stage or two) ------------------------
class _Run:
    def __init__(self, consistency, accuracy):
        self.consistency, self.shifted_accuracy = consistency, accuracy


@pytest.fixture
def fake_measure(monkeypatch):
    """augshift.measure stood in for by known answers: baselines meet the criterion on a
    textured canvas (consistency 0.90), not on a blank or noisy one (0.97); AugShift gains
    0.02 + 0.001 x seed offset."""
    from posinfo import augshift
    calls = []

    def measure(name, config, n_pairs, budgets=()):
        calls.append((name, config["background"], config["seed"]))
        base = 0.90 if config["background"] == "texture" else 0.97
        gain = 0.02 + 0.001 * (config["seed"] - 200) if config["augshift_lambda"] > 0 else 0.0
        return _Run(base + gain, 0.95)

    monkeypatch.setattr(augshift, "measure", measure)
    return calls


def test_the_staged_pilot_takes_the_steps_the_whole_pilot_takes(fake_measure):
    whole = pilots.augshift_pilot("default")
    assert pilots.finished(whole)
    assert whole["chosen"] == pilots.augshift_candidates("default")[2]  # the first texture
    fake_measure.clear()
    staged, stages = None, []
    while staged is None or not pilots.finished(staged):
        staged = pilots.augshift_pilot("default", previous=staged, stages=1)
        stages.append({(name, background) for name, background, _ in fake_measure})
        fake_measure.clear()
    # one stage a call: zeros, noise, texture (meets), then AugShift on the chosen task
    assert stages == [{("baseline", "zeros")}, {("baseline", "noise")},
                      {("baseline", "texture")}, {("aug", "texture")}]
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
