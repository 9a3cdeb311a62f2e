"""Chapter 2's experiment (PermuteNet at every placement, for location and for class).

Each placement of the channel shuffle (``permute``: before backbone stage k, or after GAP)
is trained for both tasks on the same canvases, and so is the unshuffled baseline. A seed
fixes the initial weights and the canvases, so the arms of one seed are paired. The two
arms the verdict reads, the baseline and the shuffle after GAP, run at every verdict seed
and keep their shorter budgets (snapshots of the same runs); the shuffles inside the
backbone are ablations at the first ``n_ablation_seeds`` seeds, trained for
``ablation_epochs``, one of those budgets, where the sweep compares every arm (the gpu
profile stops them at 600 steps while the verdict's arms go on to the paper's 20,833).

The statistic (``asymmetry``) puts both tasks on one scale, the share of above-chance
accuracy a network keeps under the shuffle (``permute.retention``), and asks how much more
of it class keeps than location: about 1 if the paper is right, about 0 if the shuffle
treats both tasks alike.

Used by chapter 2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets import NUM_CLASSES
from .permute import retention
from .train import model_config, train_budgets, train_classifier
from .interval import paired_by_seed, t_interval

TASKS = ("location", "class")
JUDGED = ("baseline", "after GAP")  # the verdict's two arms


def placement_arms(settings) -> dict[str, int]:
    """{arm: placement}: the baseline (0), each placement inside the backbone ("stage k")
    and the shuffle after GAP (the reference code's "layer 5", always run)."""
    after_gap = len(settings.blocks) + 1
    arms = {"baseline": 0}
    for placement in sorted(set(settings.placements) | {after_gap}):
        arms["after GAP" if placement == after_gap else f"stage {placement}"] = placement
    return arms


@dataclass
class PlacementRuns:
    """Test accuracy of every arm and task: ``accuracy[task][arm]``, one value per seed at
    the sweep's budget (``ablation_epochs``: every arm at one budget, comparable);
    ``by_budget[task, arm, epochs]`` {seed: value} for the judged arms at every budget, the
    verdict's ``epochs`` included; each task's chance level."""
    arms: dict
    accuracy: dict
    by_budget: dict
    chance: dict


def run_placements(settings) -> PlacementRuns:
    """Train (or load) every arm for both tasks at its seeds (see the module docstring)."""
    arms = placement_arms(settings)
    accuracy = {t: {arm: [] for arm in arms} for t in TASKS}
    by_budget = {(t, arm, k): {} for t in TASKS for arm in JUDGED
                 for k in settings.budget_epochs}
    for target in TASKS:
        for arm, placement in arms.items():
            judged = arm in JUDGED
            seeds = settings.seeds if judged else settings.ablation_seeds
            # the ablations stop at ablation_epochs, one of the judged arms' budgets
            budgets = settings.budget_epochs if judged else [settings.ablation_epochs]
            for seed in seeds:
                config = model_config(settings, target, permute_at=placement, seed=seed)
                runs = train_budgets(train_classifier, config, budgets)
                if judged:
                    for k, run in runs.items():
                        by_budget[target, arm, k][seed] = run.evaluation.accuracy
                accuracy[target][arm].append(runs[settings.ablation_epochs].evaluation.accuracy)
    accuracy = {t: {arm: np.array(v) for arm, v in row.items()} for t, row in accuracy.items()}
    chance = {"location": 1 / settings.grid ** 2, "class": 1 / NUM_CLASSES[settings.dataset]}
    return PlacementRuns(arms, accuracy, by_budget, chance)


def placement_table(runs: PlacementRuns) -> dict:
    """Rows for ``tables.format_table``, one per arm: each task's mean accuracy over the
    arm's seeds and its standard deviation, at the sweep's budget; a last row, chance."""
    rows = {arm: {f"{t} {name}": stat(runs.accuracy[t][arm]) for t in TASKS
                  for name, stat in (("mean", np.mean), ("sd", np.std))}
            for arm in runs.arms}
    rows["chance"] = {f"{t} mean": runs.chance[t] for t in TASKS}
    return rows


def kept(shuffled: dict, baseline: dict, chance: float) -> dict:
    """{seed: share of above-chance accuracy kept under the shuffle}, the two arms paired
    by seed (``permute.retention``); arms whose seeds differ are refused."""
    seeds, shuffled, baseline = paired_by_seed(shuffled, baseline, ("shuffled", "baseline"))
    shares = retention(shuffled, baseline, chance)
    return dict(zip(seeds, shares.tolist()))


def judged_accuracy(runs: PlacementRuns, task: str, arm: str, epochs: int) -> np.ndarray:
    """A judged arm's accuracy at one budget, one value per seed in seed order."""
    by_seed = runs.by_budget[task, arm, epochs]
    return np.array([by_seed[s] for s in sorted(by_seed)])


def asymmetry(runs: PlacementRuns, epochs: int) -> dict:
    """Claim 2's per-seed statistic at a budget: class kept minus location kept under the
    shuffle after GAP, {seed: value}, with each task's share kept beside it."""
    shares = {t: kept(runs.by_budget[t, "after GAP", epochs],
                      runs.by_budget[t, "baseline", epochs], runs.chance[t]) for t in TASKS}
    return {"location kept": shares["location"], "class kept": shares["class"],
            "class kept - location kept": {s: shares["class"][s] - shares["location"][s]
                                           for s in shares["class"]}}


def verdict_rows(runs: PlacementRuns, settings, primary) -> dict:
    """Rows for ``tables.format_table`` of claim 2's verdict, all at the verdict's budget
    (``settings.epochs``): the primary statistic (``primary``, the verdict's estimate)
    against ``min_effect``; each task's share kept; and the paper's own two-part rule,
    location minus chance against ``chance_tolerance`` and class over the baseline's class
    accuracy against ``class_fraction``, each a Student-t interval over the seeds."""
    level, epochs = settings.confidence, settings.epochs
    shares = asymmetry(runs, epochs)
    acc = {(t, arm): judged_accuracy(runs, t, arm, epochs) for t in TASKS for arm in JUDGED}

    def interval(values, needs=None):
        row = {"estimate [CI]": t_interval(list(values), level)}
        return row if needs is None else dict(row, needs=needs)

    return {
        "class kept - location kept (primary)": {
            "estimate [CI]": primary, "needs": f"> {settings.min_effect:.3f}"},
        "location kept": interval(shares["location kept"].values()),
        "class kept": interval(shares["class kept"].values()),
        "paper: location - chance": interval(
            acc["location", "after GAP"] - runs.chance["location"],
            f"< {settings.chance_tolerance:.3f}"),
        "paper: class / baseline class": interval(
            acc["class", "after GAP"] / acc["class", "baseline"],
            f"> {settings.class_fraction:.3f}")}


# ---- chapter 2's exercises: the computation behind a worked answer -------------------------
def stem_shares(accuracy: dict, chance: dict) -> dict:
    """{task: share of above-chance accuracy kept under the shuffle} from
    ``accuracy[task] = {"baseline": acc, "shuffled": acc}`` of one seed
    (``permute.retention``); chance per task."""
    return {t: float(retention(a["shuffled"], a["baseline"], chance[t]))
            for t, a in accuracy.items()}


def narrow_stem(settings, width: int, placement: int = 1, seed: int | None = None) -> dict:
    """Chapter 2, exercise 2: the baseline and the shuffle before backbone stage
    ``placement``, for both tasks, at one seed (the first verdict seed unless given), at the
    chapter's width and at ``width``. The chapter's width is a cache hit of its own run; the
    other trains four classifiers (or loads them). Returns {"chapter": ..., "narrow": ...},
    each {"accuracy": {task: {"baseline": acc, "shuffled": acc}}, "kept": {task: share}}."""
    seed = settings.seed if seed is None else seed
    chance = {"location": 1 / settings.grid ** 2, "class": 1 / NUM_CLASSES[settings.dataset]}

    def at(w):  # at the ablations' budget, like the placement sweep
        accuracy = {t: {arm: train_classifier(model_config(
                            settings, t, width=w, permute_at=p, seed=seed,
                            epochs=settings.ablation_epochs)).evaluation.accuracy
                        for arm, p in (("baseline", 0), ("shuffled", placement))}
                    for t in TASKS}
        return {"accuracy": accuracy, "kept": stem_shares(accuracy, chance)}

    chapter = at(settings.width)
    return {"chapter": chapter, "narrow": chapter if width == settings.width else at(width)}
