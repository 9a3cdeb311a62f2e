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
        pytest.skip(f"no pilot of {chapter} at {profile}")
    s = chapter_settings(chapter, profile)
    # the verdict seeds never reach back into the pilot seeds
    assert not set(s.seeds) & set(record["pilot_seeds"])
    if chapter == "augshift":
        met = [c for c in record["candidates"] if c["meets"]]
        assert len(met) == 1 and record["candidates"][-1] is met[0]  # the mildest that met
        assert (s.margin, s.max_shift) == (met[0]["margin"], met[0]["max_shift"])
        assert s.n_seeds == record["sample_size"]["n"]
    else:
        asks = [record[role]["sample_size"]["n"] for role in ("main", "control")]
        assert s.n_seeds == max(asks)
        assert record["control"]["scene_mode"] == s.control_mode
    assert record["previous_edition"]  # the chapter quotes the edition it replaces
