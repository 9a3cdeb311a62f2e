"""Power: the chances of each verdict outcome over n seeds, and the seeds that buy a decision.

If a pilot's mean and sd per seed were the truth, the verdict's outcome over n seeds
(``interval.decide`` on a Student-t interval) is a random variable: its t statistic has a
noncentral t distribution, so each outcome (holds / does not hold / inconclusive) has a
probability (``outcome_probabilities``). A verdict is sized for the fewest seeds, at least
``MIN_SEEDS``, whose outcome is *decided* (holds or does not hold) with probability at least
``POWER`` (0.8), saying which outcome is the likelier and how likely (``seeds_for_power``).
Sizing instead for an *expected* half-width equal to the gap between the mean and the
minimal effect, as earlier editions did, decides only about half the time, and does not say
which way.

``sample_size`` is what a pilot's per-seed values ask for; an inconclusive verdict's
explanation (``verdict.Verdict.explanation``) asks the same question at its observed mean
and spread.

Used by the pilots (chapters 3 and 5) and by every verdict's explanation.
"""
from __future__ import annotations

import math

from scipy import stats

from .interval import Rule, check_level, t_interval

# How many seeds ``seeds_for_power`` will consider before calling an effect out of reach.
MAX_SEEDS = 1000
MIN_SEEDS = 3  # fewer leaves a t interval too wide to mean anything
# A verdict is sized for at least this chance of a decided outcome (holds or does not hold).
POWER = 0.8
# A pilot's sd from fewer seeds is a guess: chapter 5's five pilot seeds understated the
# spread its verdict then showed (issue 26).
MIN_PILOT_SEEDS = 8


def outcome_probabilities(mean: float, sd: float, n: int, rule: Rule,
                          level: float = 0.95) -> dict:
    """{outcome: probability} of the t-interval verdict (``verdict.decide``) over ``n`` seeds
    whose per-seed values are normal with this ``mean`` and ``sd``.

    The interval's low end clears the threshold exactly when the t statistic
    T = (xbar - threshold) / (s / sqrt(n)) exceeds the t quantile q of the interval; T has a
    noncentral t distribution, n - 1 degrees of freedom and noncentrality
    (mean - threshold) sqrt(n) / sd. So P(low > threshold) = 1 - F(q) and
    P(high < threshold) = F(-q): for "> threshold" the first is "holds" (the power of a
    one-sided t test at (1 - level) / 2) and the second "does not hold"; for "<" the
    reverse. The rest is "inconclusive"."""
    level = check_level(level)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (one seed has no interval), got {n!r}")
    if not (math.isfinite(mean) and math.isfinite(sd) and sd >= 0):
        raise ValueError(f"mean and sd must be finite numbers, sd >= 0; got {mean!r}, {sd!r}")
    gap = mean - rule.threshold
    if sd == 0:  # every seed the same value: the interval is that point
        above, below = float(gap > 0), float(gap < 0)
    else:
        q, df, nc = stats.t.ppf((1 + level) / 2, n - 1), n - 1, gap * math.sqrt(n) / sd
        above, below = float(stats.nct.sf(q, df, nc)), float(stats.nct.cdf(-q, df, nc))
    holds, short = (above, below) if rule.direction == ">" else (below, above)
    return {"holds": holds, "does not hold": short,
            "inconclusive": max(0.0, 1.0 - holds - short)}


def seeds_for_power(mean: float, sd: float, rule: Rule, level: float = 0.95, cap: int = 12,
                    power: float = POWER, smallest: int | None = None) -> dict:
    """The fewest verdict seeds, from ``smallest`` (MIN_SEEDS) to ``cap``, whose verdict is
    decided (holds or does not hold) with probability at least ``power`` if the pilot's
    ``mean`` and ``sd`` were the truth (``outcome_probabilities``); where none is, the cap,
    with the power the cap buys.

    Returns {"n", "capped", "p_decided", "expected", "p_expected", "probabilities",
    "needed"}: ``expected`` is the more likely decided outcome at n and ``p_expected`` its
    probability; ``needed`` the fewest seeds (up to MAX_SEEDS) that would reach ``power``,
    None when none does (a mean on the threshold never decides more often than 1 - level)."""
    smallest = MIN_SEEDS if smallest is None else smallest
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < smallest:
        raise ValueError(f"cap must be an integer >= {smallest}, got {cap!r}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power!r}")

    def decided(n):
        p = outcome_probabilities(mean, sd, n, rule, level)
        return p["holds"] + p["does not hold"], p

    needed = next((n for n in range(2, MAX_SEEDS + 1) if decided(n)[0] >= power), None)
    # The fewest from ``smallest`` to the cap is ``needed`` itself when it lies there, the
    # cap when ``needed`` lies beyond it (or is None); only a ``needed`` below ``smallest``
    # leaves the range to be searched again.
    if needed is None or needed > cap:
        n = cap
    elif needed >= smallest:
        n = needed
    else:
        n = next((n for n in range(smallest, cap + 1) if decided(n)[0] >= power), cap)
    p_decided, probabilities = decided(n)
    expected = max(("holds", "does not hold"), key=probabilities.get)
    return {"n": n, "capped": p_decided < power, "p_decided": p_decided,
            "expected": expected, "p_expected": probabilities[expected],
            "probabilities": probabilities, "needed": needed}


def sample_size(values, min_effect: float, confidence: float, cap: int,
                direction: str = ">") -> dict:
    """The verdict seeds a pilot's per-seed statistic asks for: ``seeds_for_power`` at the
    pilot's mean and sd, with a reason in words, and the pilot's own interval and values."""
    if len(values) < MIN_PILOT_SEEDS:
        raise ValueError(f"a pilot needs at least {MIN_PILOT_SEEDS} seeds for its sd to mean "
                         f"something, got {len(values)} values")
    estimate = t_interval(values, confidence)
    size = seeds_for_power(estimate.value, estimate.sd, Rule("pilot", min_effect, direction),
                           confidence, cap)
    chance = (f"P(decided) = {size['p_decided']:.2f}, most likely "
              f"{size['expected']!r} (P = {size['p_expected']:.2f})")
    if size["capped"]:
        beyond = (f"{size['needed']} seeds would reach {POWER:.0%}" if size["needed"]
                  else f"no number of seeds up to {MAX_SEEDS} reaches {POWER:.0%}")
        reason = (f"the profile affords {cap} seeds, at which {chance}: likely "
                  f"inconclusive ({beyond})")
    else:
        reason = f"the fewest seeds (at least {MIN_SEEDS}) with {chance}"
    return {**size, "reason": reason, "mean": estimate.value, "sd": estimate.sd,
            "low": estimate.low, "high": estimate.high,
            "values": [float(v) for v in values]}
