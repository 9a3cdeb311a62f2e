"""Verdicts as the notebook prints and keeps them: the line, the explanation, the record.

A verdict is a measurement (``interval``): the primary statistic's per-seed values, their
Student-t interval, and the outcome the claim's minimal effect (a ``Rule``) gives it: holds,
does not hold, or inconclusive. An inconclusive verdict says, from its observed mean and
spread, how many seeds would give an 80% chance of a decided outcome, and which outcome
that would most likely be (``power``).

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

from .interval import OUTCOMES, Estimate, Rule, check_level, decide, paired_by_seed, signed, \
    t_interval
from .power import MAX_SEEDS, POWER, seeds_for_power


def seeds_to_decide(estimate: Estimate, rule: Rule) -> str:
    """What more seeds would buy an inconclusive verdict, in words: if its observed mean and
    sd were the truth, the fewest seeds (up to ``power.MAX_SEEDS``) whose verdict is decided
    with probability ``power.POWER``, and the likelier decided outcome there; or that no
    practical number of seeds would decide it (a mean on the threshold)."""
    found = seeds_for_power(estimate.value, estimate.sd, rule, estimate.level, cap=MAX_SEEDS,
                            smallest=2)
    spread = f"(mean {signed(estimate.value)}, sd {estimate.sd:.3f} per seed)"
    if found["capped"]:
        return (f"at the observed mean and spread {spread} no practical number of seeds "
                f"(up to {MAX_SEEDS}) would give an {POWER:.0%} chance of a decided outcome")
    return (f"at the observed mean and spread {spread}, about {found['n']} seeds would give "
            f"an {POWER:.0%} chance of a decided outcome, most likely {found['expected']!r}")


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
        return f"the interval straddles {signed(self.rule.threshold)}; " + \
            seeds_to_decide(self.estimate, self.rule) + "."

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
