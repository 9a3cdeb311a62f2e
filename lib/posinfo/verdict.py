"""Verdicts decided by evidence: one statistic, its 95% interval, and three outcomes.

A chapter tests its claim with one *primary statistic*, named in the chapter before the run,
and a *minimal effect*: the value the statistic must clear for the claim to hold. Both are
fixed before the seeds that decide are run (the settings were chosen on other, pilot seeds).

**The unit is the training run.** Every statistic here is computed once per seed, and a seed
fixes a whole experiment: weight initialisation, data order, views, scenes. What varies from
seed to seed is exactly what would vary on a reader's machine, where another CPU sums floats
in another order and every trajectory parts after the first steps. So the interval is a
Student-t interval over seeds, not a bootstrap over test images: images are a unit only for a
*fixed* network, and the fixed network is the thing that does not reproduce.

**Pairing.** Arms that share a seed (baseline and AugShift trained from the same initial
weights on the same views) are compared seed by seed: the statistic is the per-seed
difference, and the interval is over those differences. Most of the seed-to-seed spread is
common to both arms and cancels.

**Three outcomes.** With the claim needing the statistic above the minimal effect:
``holds`` when the whole interval lies above it, ``does not hold`` when the whole interval
lies below it, ``inconclusive`` when the interval straddles it. One seed has no spread, so
its interval is unbounded and its verdict is inconclusive, never a coin toss called a result.
An inconclusive verdict says how many seeds the observed spread would need.

Used by every chapter.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

# re-exported: the budget curves' figures and tables read the paper's length from here
from .settings import PAPER_BATCH, PAPER_EPOCHS, PAPER_STEPS, PAPER_TRAIN_IMAGES  # noqa: F401

OUTCOMES = ("holds", "does not hold", "inconclusive")
# ">": the claim needs the statistic above the minimal effect; "<": below it.
DIRECTIONS = (">", "<")
# How many seeds ``seeds_needed`` will consider before calling an effect out of reach.
MAX_SEEDS = 1000


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
    difference); ``seeds_needed`` scales the interval with it."""
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


def _t_quantile(level: float, n: int) -> float:
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
    half = _t_quantile(level, x.size) * sd / math.sqrt(x.size)
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


def seeds_needed(estimate: Estimate, rule: Rule) -> int | None:
    """How many seeds a t interval with the observed mean and spread would need to lie
    wholly on one side of the threshold; None when no number of seeds would do (a mean on
    the threshold, no spread to scale, or more than MAX_SEEDS)."""
    gap = abs(estimate.value - rule.threshold)
    if not math.isfinite(estimate.sd) or gap == 0:
        return None
    if estimate.sd == 0:
        return 2
    for n in range(2, MAX_SEEDS + 1):
        if _t_quantile(estimate.level, n) * estimate.sd / math.sqrt(n) < gap:
            return n
    return None


# The line ``Verdict.line`` prints, as a pattern: the front page and the tests read it back.
# A second verdict on one claim names itself in parentheses: "Claim 5 (control): ...".
VERDICT_LINE = re.compile(
    r"^Claim (?P<claim>\d+)(?: \((?P<label>[^)]+)\))?: (?P<outcome>" + "|".join(OUTCOMES)
    + r") — (?P<statistic>.+?) = (?P<estimate>\S+) \[(?P<level>\d+)% CI (?P<low>\S+), "
    r"(?P<high>\S+)\]; needs (?P<rule>.+?); n = (?P<n>\d+)$", re.M)


@dataclass(frozen=True)
class Verdict:
    claim: int
    rule: Rule
    estimate: Estimate
    # A second verdict on the same claim (chapter 5's control) names itself: "Claim 5
    # (symmetric control): ...". The main verdict has none.
    label: str = ""

    @property
    def outcome(self) -> str:
        return decide(self.estimate, self.rule)

    def line(self) -> str:
        """The one line every chapter prints and the front page reads."""
        name = f"Claim {self.claim}" + (f" ({self.label})" if self.label else "")
        return (f"{name}: {self.outcome} — {self.rule.statistic} = "
                f"{self.estimate.text()}; needs {self.rule.text()}; n = {self.estimate.n}")

    def explanation(self) -> str:
        """Why this outcome, in words; for an inconclusive one, what would decide it."""
        side = "above" if self.rule.direction == ">" else "below"
        where = {"holds": f"the whole interval lies {side} {signed(self.rule.threshold)}",
                 "does not hold": f"the whole interval lies short of "
                                  f"{signed(self.rule.threshold)}"}
        if self.outcome in where:
            return where[self.outcome] + "."
        if self.estimate.n < 2:
            return "one seed has no spread to measure: run n_seeds >= 2 to decide."
        n = seeds_needed(self.estimate, self.rule)
        if n is None:
            return (f"the interval straddles {signed(self.rule.threshold)} and the mean sits "
                    f"so close to it that no practical number of seeds would decide it.")
        return (f"the interval straddles {signed(self.rule.threshold)}; at the observed spread "
                f"(sd {self.estimate.sd:.3f} per seed) about {n} seeds would decide it.")


def judge(claim: int, rule: Rule, estimate: Estimate, label: str = "") -> Verdict:
    return Verdict(claim, rule, estimate, label)


# ---- training budgets: optimiser steps, with epochs beside them ----------------------------
# The paper's classifier run (settings.PAPER_STEPS, defined with the profile tables that
# train to it): 20 epochs of CIFAR-10's 50,000 training images at batch 48. 20 x 50,000 /
# 48 = 20,833.3, rounded down: 20,833 steps, the count the book (and issue 20) quotes. A
# loader that keeps each epoch's last, partial batch, as this library's does
# (``Settings.steps_per_epoch`` = ceil(n_train / batch_size)), takes 20 x 1,042 = 20,840
# steps; one that drops it, 20 x 1,041 = 20,820. Both are within 0.1% of 20,833: the same
# place on a budget curve's log axis.


def check_steps_per_epoch(steps_per_epoch) -> int:
    """``steps_per_epoch`` itself if it is a whole number of steps >= 1, else ValueError."""
    if (isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int)
            or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be a positive integer (settings."
                         f"steps_per_epoch), got {steps_per_epoch!r}")
    return steps_per_epoch


def _listed(items) -> str:
    """"4", "4 and 8", "2, 4 and 8"."""
    items = list(map(str, items))
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + f" and {items[-1]}"


def _plural(word: str, counts) -> str:
    return word if list(counts) == [1] else word + "s"


def budget_label(epochs: int, steps_per_epoch: int, width: int = 0) -> str:
    """A training budget as a reader sees it: "360 steps (8 epochs)"; ``width`` pads the
    step count on the left (a table's column of budgets lines up)."""
    steps = epochs * check_steps_per_epoch(steps_per_epoch)
    return (f"{steps:>{width},} {_plural('step', [steps])} "
            f"({epochs} {_plural('epoch', [epochs])})")


def budget_at_ceiling(epochs: int, steps_per_epoch: int, values, what: str,
                      ceiling: float = 1.0, tolerance: float = 1e-3) -> str:
    """Why a chapter may stop short of the paper's training length, or why it may not, in
    words computed from the run: the budget, its share of the paper's steps, and whether
    every seed's ``values`` (e.g. location accuracy) already sits at ``ceiling``, where no
    longer run can raise it."""
    steps = epochs * check_steps_per_epoch(steps_per_epoch)
    values = np.asarray(values, dtype=float)
    head = (f"Trained for {budget_label(epochs, steps_per_epoch)}, {steps / PAPER_STEPS:.1%} "
            f"of the paper's {PAPER_STEPS:,}; {what}: {values.min():.3f} at the lowest seed")
    if np.all(values >= ceiling - tolerance):
        return head + (f", at its ceiling of {ceiling:g} at every seed. A longer run cannot "
                       "raise it, which is why this chapter stops short of the paper's length.")
    return head + (f", below its ceiling of {ceiling:g}. A longer run might still raise it: "
                   "this budget is short of the paper's, and the verdict says so much.")


def budget_table(curve: dict, rule: Rule, column: str, *,
                 steps_per_epoch: int | None = None) -> str:
    """A budget curve {epochs: Estimate} as a table: per budget, the estimate with its
    interval (under ``column``) and the outcome the rule gives it.

    With ``steps_per_epoch`` (``settings.steps_per_epoch``) each row names its budget in
    optimiser steps with the epochs beside them, "360 steps (8 epochs)"; without it, in
    epochs only ("epochs = 8"), as before budgets were shown in steps.
    """
    from .tables import format_table

    if steps_per_epoch is None:
        return format_table({f"epochs = {k}": {column: est, "outcome": decide(est, rule)}
                             for k, est in sorted(curve.items())})
    width = len(f"{max(curve) * check_steps_per_epoch(steps_per_epoch):,}")
    return format_table({budget_label(k, steps_per_epoch, width):
                         {column: est, "outcome": decide(est, rule)}
                         for k, est in sorted(curve.items())}, index="budget")


def where_it_holds(curve: dict, rule: Rule, *, steps_per_epoch: int | None = None) -> str:
    """In words, every budget of the curve at which the claim holds, or "none of the budgets
    tried". With ``steps_per_epoch``: "23 steps (1 epoch)", "92 and 184 steps (4 and 8
    epochs)"; without it, epochs only: "1 epoch", "4 and 8 epochs"."""
    held = [k for k in sorted(curve) if decide(curve[k], rule) == "holds"]
    if not held:
        return "none of the budgets tried"
    epochs = f"{_listed(held)} {_plural('epoch', held)}"
    if steps_per_epoch is None:
        return epochs
    steps = [k * check_steps_per_epoch(steps_per_epoch) for k in held]
    return f"{_listed(f'{s:,}' for s in steps)} {_plural('step', steps)} ({epochs})"


def half_width(sd: float, n: int, level: float = 0.95) -> float:
    """Half the width of a Student-t interval over ``n`` seeds whose values spread with
    standard deviation ``sd`` (an Estimate's): how the interval shrinks with more seeds
    (chapter 1, exercise 4). Infinite for one seed, as ``t_interval`` gives."""
    level = check_level(level)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if n == 1:
        return math.inf
    return _t_quantile(level, n) * float(sd) / math.sqrt(n)
