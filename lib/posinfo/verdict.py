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

**Every verdict carries its record.** A chapter never hands this module an interval: it hands
it the per-seed values, and the line, the interval and the front page are all computed from
them, so every printed number can be re-derived from what the notebook keeps. The API a
chapter uses, two calls:

    verdict = judge(claim, rule, per_seed, label="", level=settings.confidence)
    show(verdict)    # in the NBVAL_CHECK_OUTPUT cell: prints the line, stores the record

- ``per_seed`` is ``{seed: value}`` of the primary statistic, one value per verdict seed,
  computed by the claim's one library function (e.g. ``attack.extra_damage`` per segmenter,
  ``permutenet.asymmetry``); or, for two arms sharing seeds, ``per_seed`` is the treated arm
  ``{seed: value}`` and ``control={seed: value}`` the other, ``arms=(treated name, control
  name)``: the statistic is then the per-seed difference ``treated[s] - control[s]`` and the
  record keeps both arms (arms whose seeds differ are refused).
- ``label`` names a second verdict on one claim ("Claim 5 (control): ..."); ``level`` is the
  interval's confidence (``settings.confidence``).
- ``verdict.estimate`` (an ``Estimate``) is what a chapter's "(primary)" table row prints:
  at most one "(primary)" interval row per verdict, in the order the verdicts are shown
  (the tests pair them by order); ``verdict.explanation()`` is printed after ``show``.
- The chapter's per-seed values come from its claim's one library function, which
  ``tests/test_verdict_statistics.py``'s ``CLAIM_STATISTICS`` names (a chapter fills its
  row there); that test recomputes them from the cached models at the smoke profile.
- ``show(verdict)`` prints ``verdict.line()`` to stdout and, under IPython, displays a
  ``display_data`` output beside it whose ``metadata[RECORD_MIME]`` is ``verdict.record()``
  (``data[RECORD_MIME]`` holds only the claim, label and statistic, which do not change with
  the profile, so nbval's comparison of that cell still holds across profiles; nbval skips
  output metadata). Outside IPython it only prints.
- ``verdict.record()``: a JSON-able dict, ``RECORD_VERSION`` 1: ``claim``, ``label``,
  ``statistic``, ``direction``, ``threshold``, ``level``, ``n``, ``per_seed`` (``{"seed":
  value}``, seeds as strings, JSON's keys), ``arms`` (``null`` or ``{"names": [treated,
  control], "treated": {...}, "control": {...}}``), and the derived ``estimate``, ``low``,
  ``high``, ``sd`` (null where not finite: one seed), ``outcome`` and ``line``.
  ``Verdict.from_record(record)`` re-judges it from its per-seed values;
  ``records(notebook)`` reads every record an executed notebook holds.

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


# Where ``show`` keeps a verdict's record in the notebook: the key of the display_data
# output's data and metadata (a custom JSON mimetype: the book's renderer skips it).
RECORD_MIME = "application/vnd.posinfo.verdict+json"
RECORD_VERSION = 1


def _per_seed(values, name: str) -> dict[int, float]:
    """``values`` as {seed (int): value (float)}, every value finite; else ValueError naming
    ``name``. Sequences are refused: a value without its seed cannot be paired or checked."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{name} must be a mapping {{seed: value}}, got "
                         f"{type(values).__name__}")
    if not values:
        raise ValueError(f"{name} needs at least one seed, got none")
    out = {}
    for seed, value in values.items():
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"{name}'s seeds must be integers, got {seed!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{name} needs finite values, got {value} at seed {seed}")
        out[int(seed)] = value
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Verdict:
    claim: int
    rule: Rule
    estimate: Estimate
    # A second verdict on the same claim (chapter 5's control) names itself: "Claim 5
    # (symmetric control): ...". The main verdict has none.
    label: str = ""
    # ((seed, value), ...) of the primary statistic, in seed order: what the estimate was
    # computed from (``judge``). None only for a verdict built from a bare Estimate, which
    # has no record to keep.
    per_seed: tuple | None = None
    # For paired arms: ((treated name, ((seed, value), ...)), (control name, (...))).
    arms: tuple | None = None

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

    def record(self) -> dict:
        """What the notebook keeps (see the module docstring): the per-seed values, the rule,
        the level and n, and what they give. Refused for a verdict without per-seed values."""
        if self.per_seed is None:
            raise ValueError(f"Claim {self.claim}'s verdict was built from an interval, not "
                             f"per-seed values: it has no record (use judge(claim, rule, "
                             f"{{seed: value}}))")
        est = self.estimate
        arms = None
        if self.arms is not None:
            (treated, t_values), (control, c_values) = self.arms
            arms = {"names": [treated, control],
                    "treated": {str(s): v for s, v in t_values},
                    "control": {str(s): v for s, v in c_values}}
        return {"version": RECORD_VERSION, "claim": self.claim, "label": self.label,
                "statistic": self.rule.statistic, "direction": self.rule.direction,
                "threshold": self.rule.threshold, "level": est.level, "n": est.n,
                "per_seed": {str(s): v for s, v in self.per_seed}, "arms": arms,
                # strict JSON: an unbounded end (one seed) and its missing sd are null
                **{k: (x if math.isfinite(x) else None) for k, x in
                   (("estimate", est.value), ("low", est.low), ("high", est.high),
                    ("sd", est.sd))},
                "outcome": self.outcome, "line": self.line()}

    @classmethod
    def from_record(cls, record: Mapping) -> Verdict:
        """The verdict a record's per-seed values give (its stored estimate and line are not
        read: they are what this re-derives)."""
        if record.get("version") != RECORD_VERSION:
            raise ValueError(f"verdict record version must be {RECORD_VERSION}, got "
                             f"{record.get('version')!r}")
        rule = Rule(record["statistic"], record["threshold"], record["direction"])
        per_seed = {int(s): v for s, v in record["per_seed"].items()}
        arms = record.get("arms")
        if arms:
            treated = {int(s): v for s, v in arms["treated"].items()}
            control = {int(s): v for s, v in arms["control"].items()}
            return judge(record["claim"], rule, treated, control=control,
                         arms=tuple(arms["names"]), label=record["label"],
                         level=record["level"])
        return judge(record["claim"], rule, per_seed, label=record["label"],
                     level=record["level"])


def judge(claim: int, rule: Rule, per_seed, *, control: Mapping | None = None,
          arms: tuple[str, str] = ("treated", "control"), label: str = "",
          level: float = 0.95) -> Verdict:
    """Claim ``claim``'s verdict from the primary statistic's per-seed values (see the
    module docstring): ``per_seed`` = {seed: value}; with ``control`` = {seed: value}, the
    two paired arms and the statistic their per-seed difference ``per_seed - control``.

    A bare ``Estimate`` in place of ``per_seed`` still gives a verdict (chapters that have
    not moved to per-seed values), but one without a record: ``show`` then prints the line
    and stores nothing, which the tests of the committed book report as a missing record."""
    if isinstance(per_seed, Estimate):
        if control is not None:
            raise ValueError("control needs per-seed values {seed: value}, not an Estimate")
        return Verdict(claim, rule, per_seed, label)
    level = check_level(level)
    if control is None:
        values = _per_seed(per_seed, "per_seed")
        paired = None
    else:
        if len(arms) != 2 or not all(isinstance(a, str) and a for a in arms):
            raise ValueError(f"arms must be two names (treated, control), got {arms!r}")
        treated = _per_seed(per_seed, f"arm {arms[0]!r}")
        other = _per_seed(control, f"arm {arms[1]!r}")
        seeds, t_values, c_values = paired_by_seed(treated, other, tuple(arms))
        values = {s: t - c for s, t, c in zip(seeds, t_values, c_values)}
        paired = ((arms[0], tuple(treated.items())), (arms[1], tuple(other.items())))
    estimate = t_interval(list(values.values()), level)
    return Verdict(claim, rule, estimate, label, tuple(values.items()), paired)


def show(verdict: Verdict) -> None:
    """Print the verdict's line and, in a notebook, keep its record beside it (a
    display_data output: ``metadata[RECORD_MIME]`` is the record). A verdict without
    per-seed values prints its line only."""
    print(verdict.line())
    if verdict.per_seed is None:
        return
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nowhere to keep a record
        return
    if get_ipython() is None:
        return
    from IPython.display import display

    identity = {"claim": verdict.claim, "label": verdict.label,
                "statistic": verdict.rule.statistic}
    display({RECORD_MIME: identity}, raw=True, metadata={RECORD_MIME: verdict.record()})


def records(notebook) -> list[dict]:
    """Every verdict record an executed notebook (a path or a parsed nbformat/JSON dict)
    holds, in the order its cells printed them."""
    if not isinstance(notebook, Mapping):
        import json
        from pathlib import Path

        notebook = json.loads(Path(notebook).read_text())
    return [out["metadata"][RECORD_MIME] for cell in notebook.get("cells", [])
            if cell.get("cell_type") == "code" for out in cell.get("outputs", [])
            if out.get("output_type") == "display_data"
            and RECORD_MIME in out.get("metadata", {})]


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
