"""Training budgets in words: optimiser steps, with epochs beside them.

A budget is how long a network trained, and the book counts it in optimiser steps (one step,
one batch): epochs mean different amounts of training at different dataset sizes and batch
sizes, steps do not. A reader meets a budget as "360 steps (8 epochs)" (``budget_label``); a
budget curve (the verdict's statistic re-judged at shorter budgets) as a table
(``budget_table``) and a sentence saying where the claim holds (``where_it_holds``); and a
chapter that stops short of the paper's length says why, in numbers computed from the run
(``budget_at_ceiling``).

Used by chapters 1, 2, 3, 4 and 5 (their budget curves and training lengths).
"""
from __future__ import annotations

import numpy as np

from .interval import Rule, decide
from .settings import PAPER_STEPS

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
