"""Intervals and decisions: one statistic, its 95% interval over seeds, and three outcomes.

A chapter tests its claim with one *primary statistic*, named in the chapter before the run,
and a *minimal effect*: the value the statistic must clear for the claim to hold (a
``Rule``). Both are fixed before the seeds that decide are run (the settings were chosen on
other, pilot seeds).

**The unit is the training run.** Every statistic here is computed once per seed, and a seed
fixes a whole experiment: weight initialisation, data order, views, scenes. What varies from
seed to seed is exactly what would vary on a reader's machine, where another CPU sums floats
in another order and every trajectory parts after the first steps. So the interval is a
Student-t interval over seeds (``t_interval``), not a bootstrap over test images: images are
a unit only for a *fixed* network, and the fixed network is the thing that does not
reproduce.

**Pairing.** Arms that share a seed (baseline and AugShift trained from the same initial
weights on the same views) are compared seed by seed (``paired_difference``): the statistic
is the per-seed difference, and the interval is over those differences. Most of the
seed-to-seed spread is common to both arms and cancels.

**Three outcomes** (``decide``). With the claim needing the statistic above the minimal
effect: ``holds`` when the whole interval lies above it, ``does not hold`` when the whole
interval lies below it, ``inconclusive`` when the interval straddles it. One seed has no
spread, so its interval is unbounded and its verdict is inconclusive, never a coin toss
called a result.

The verdict a chapter prints and keeps is ``verdict``'s; how many seeds a verdict needs is
``power``'s; training budgets in words are ``budgets``'.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

OUTCOMES = ("holds", "does not hold", "inconclusive")
# ">": the claim needs the statistic above the minimal effect; "<": below it.
DIRECTIONS = (">", "<")


@dataclass(frozen=True)
class Rule:
    """What "holds" means in numbers: ``statistic`` must lie ``direction`` ``threshold``."""
    statistic: str
    threshold: float
    direction: str = ">"

    def __post_init__(self):
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        # A NaN minimal effect would make every comparison False: "inconclusive" forever,
        # whatever the seeds say. Refuse it (and inf, and non-numbers) where the rule is made.
        if (isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float))
                or not math.isfinite(self.threshold)):
            raise ValueError(f"the minimal effect (threshold) of rule {self.statistic!r} must "
                             f"be a finite number, got {self.threshold!r}")

    def text(self) -> str:
        return f"{self.direction} {signed(self.threshold)}"


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` units with its confidence interval [low, high] at ``level``.

    ``sd`` is the standard deviation of one unit (one seed, or one seed's paired
    difference): ``half_width`` scales the interval with it, ``power`` the chances of a
    decided outcome."""
    value: float
    low: float
    high: float
    n: int
    level: float
    sd: float

    def text(self) -> str:
        return (f"{signed(self.value)} [{self.level:.0%} CI {signed(self.low)}, "
                f"{signed(self.high)}]")


def signed(x: float) -> str:
    """+0.011, -0.020, +inf: one format for every number in a verdict."""
    return f"{x:+.3f}" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def check_level(level) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"confidence must be a number in (0, 1), got {level!r}")
    return float(level)


def t_quantile(level: float, n: int) -> float:
    """The two-sided ``level`` quantile of Student's t over ``n`` seeds (n - 1 degrees)."""
    return float(stats.t.ppf((1 + level) / 2, n - 1))


def t_interval(values, level: float = 0.95) -> Estimate:
    """Student-t interval for the mean of per-seed values (unbounded for a single seed)."""
    level = check_level(level)
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ValueError("t_interval needs at least one value, got none")
    if not np.isfinite(x).all():
        raise ValueError(f"t_interval needs finite values, got {x.tolist()}")
    mean = float(x.mean())
    if x.size < 2:
        return Estimate(mean, -math.inf, math.inf, 1, level, math.nan)
    if (x == x[0]).all():
        # Identical values (chapter 1's every seed at 8/9 above chance): the spread is exactly
        # 0 and the mean exactly the value; summing in floats would leave an sd of ~1e-16
        # and a mean one ulp off, an interval that does not contain the value itself.
        return Estimate(float(x[0]), float(x[0]), float(x[0]), int(x.size), level, 0.0)
    sd = float(x.std(ddof=1))
    half = t_quantile(level, x.size) * sd / math.sqrt(x.size)
    return Estimate(mean, mean - half, mean + half, int(x.size), level, sd)


def paired_by_seed(first: Mapping, second: Mapping,
                   names: tuple[str, str] = ("treated", "control")) -> tuple[list, list, list]:
    """(seeds, first's values, second's values), both in seed order, of two arms given as
    {seed: value}; arms whose seed sets differ are refused, each named by ``names``."""
    if set(first) != set(second):
        raise ValueError(f"paired arms must share their seeds, got {names[0]} seeds "
                         f"{sorted(first)} and {names[1]} seeds {sorted(second)}")
    seeds = sorted(first)
    return seeds, [first[s] for s in seeds], [second[s] for s in seeds]


def paired_difference(treated, control, level: float = 0.95) -> Estimate:
    """t interval of the per-seed differences ``treated[seed] - control[seed]``.

    Each arm is a mapping {seed: value}: the differences are taken seed by seed, and arms
    whose seed sets differ are refused (two arms run at seeds 100-102 and 101-103 have the
    same count, and pairing them by position would compare different initialisations
    without a word). Plain sequences are still accepted, paired by position, for callers
    that have not switched to mappings yet; the two arms must then be of one kind."""
    if isinstance(treated, Mapping) or isinstance(control, Mapping):
        if not (isinstance(treated, Mapping) and isinstance(control, Mapping)):
            raise ValueError("paired arms must both be mappings {seed: value} (or both "
                             f"sequences), got {type(treated).__name__} and "
                             f"{type(control).__name__}")
        _, treated, control = paired_by_seed(treated, control)
    a, b = np.asarray(treated, dtype=float), np.asarray(control, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired arms need one value per shared seed each, got {a.shape} "
                         f"and {b.shape}")
    return t_interval(a - b, level)


def decide(estimate: Estimate, rule: Rule) -> str:
    """holds / does not hold / inconclusive: where the interval lies against the rule.

    The comparisons are strict: an interval whose end *equals* the minimal effect has not
    cleared it (the minimal effect itself is among the values it cannot exclude), so
    [0.5, 0.7] against "> 0.5" is inconclusive, not holds."""
    if math.isnan(estimate.low) or math.isnan(estimate.high):
        raise ValueError(f"the interval of {rule.statistic!r} must have numbers at both ends, "
                         f"got [{estimate.low}, {estimate.high}]")
    beyond, short = ((estimate.low > rule.threshold, estimate.high < rule.threshold)
                     if rule.direction == ">" else
                     (estimate.high < rule.threshold, estimate.low > rule.threshold))
    return "holds" if beyond else "does not hold" if short else "inconclusive"


def half_width(sd: float, n: int, level: float = 0.95) -> float:
    """Half the width of a Student-t interval over ``n`` seeds whose values spread with
    standard deviation ``sd`` (an Estimate's): how the interval shrinks with more seeds
    (chapter 1, exercise 4). Infinite for one seed, as ``t_interval`` gives."""
    level = check_level(level)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if n == 1:
        return math.inf
    return t_quantile(level, n) * float(sd) / math.sqrt(n)
