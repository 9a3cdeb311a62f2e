"""AugShift (claim 3): two shifted views of each image, and a penalty on their GAP latents.

The training objective for one batch of images and labels ``y`` is

    CE(f(view1), y) + CE(f(view2), y) + lambda * MSE(z(view1), z(view2))

where ``z`` is the global average pool of the backbone's last feature map. ``lambda = 0``
is the fair baseline: the very same views and the same two classification losses, only the
consistency term is missing. The authors did not release this code; the definitions here
are the reference implementation of the book. The views are ``shifts``'s, the metrics
``invariance``'s (each metric's docstring gives its definition); this module holds the loss,
the training of one arm and the chapter's experiment over every arm and seed.

Used by chapter 3.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_blur_filter, check_lambda
from .invariance import (accuracy_vs_shift, consistency, consistency_and_accuracy,
                         cut_consistency, latent_distance, position_probe_accuracy)
from .models import build_classifier, global_average_pool
from .settings import Settings
from .shifts import make_shift_task
from .train import (TrainedModel, cached_fit, evaluate, pick_device, plannable,
                    recalibrate_batchnorm, seed_everything, train_budgets)


# ---- the loss ------------------------------------------------------------------------------
def augshift_penalty(features1: torch.Tensor, features2: torch.Tensor) -> torch.Tensor:
    """The consistency term: the mean squared difference between the two views' GAP
    latents, each the global average of a (B, C, H, W) feature map over H and W."""
    return F.mse_loss(global_average_pool(features1), global_average_pool(features2))


def augshift_terms(model: nn.Module, view1: torch.Tensor, view2: torch.Tensor, y: torch.Tensor):
    """(CE of view 1, CE of view 2, the penalty), one forward pass.

    Both views go through the backbone as one batch, so BatchNorm sees them together.
    """
    features = model.backbone(torch.cat([view1, view2]))
    logits1, logits2 = model.head(features).chunk(2)
    return (F.cross_entropy(logits1, y), F.cross_entropy(logits2, y),
            augshift_penalty(*features.chunk(2)))


class AugShiftLoss:
    """CE(view 1) + CE(view 2) + lambda * MSE(latent 1, latent 2), as ``train.fit``'s loss_fn.

    ``x`` holds the two views stacked (ShiftTask.train_batches).
    """

    def __init__(self, augshift_lambda: float):
        self.augshift_lambda = check_lambda(augshift_lambda)

    def __call__(self, model, x, y):
        ce1, ce2, mse = augshift_terms(model, *x.chunk(2), y)
        return (ce1 + ce2 + self.augshift_lambda * mse if self.augshift_lambda
                else ce1 + ce2)


# ---- training ------------------------------------------------------------------------------
def augshift_config(settings, augshift_lambda: float, blur_size: int | None, seed: int) -> dict:
    """Everything that changes one run's weights (the cache key); ``blur_size``: the BlurPool
    filter size of a BlurPool arm, None without BlurPool."""
    keys = ("dataset", "image_size", "normalize", "hflip", "margin", "max_shift",
            "shift_protocol", "background", "padding", "head", "width", "blocks", "epochs",
            "batch_size", "lr", "betas", "n_train", "n_test",
            "recalibrate_batchnorm")
    config = {k: settings[k] for k in keys}
    config.update(augshift_lambda=check_lambda(augshift_lambda),
                  blur_size=check_blur_filter(blur_size), seed=seed)
    return config


# Recomputing BatchNorm's statistics after training changes no weight: the cache entry of
# a run is the same with and without it, so this key is left out of the cache's key.
_NOT_IN_WEIGHTS = ("recalibrate_batchnorm",)


@plannable
def train_augshift(config: dict, device=None, use_cache: bool = True,
                   snapshots=()) -> TrainedModel:
    """Train (or load from the cache) one AugShift run and evaluate its clean accuracy;
    ``snapshots``: shorter budgets to cache on the way (see ``train.cached_fit``)."""
    device = pick_device(device)
    task = make_shift_task(Settings(config), device=device)
    seed_everything(config["seed"])  # the weight init
    model = build_classifier(task.in_channels, task.num_outputs, config["width"], config["blocks"],
                             config["padding"], config["head"], config["blur_size"])
    desc = (f"AugShift lambda {config['augshift_lambda']:g} blur {config['blur_size'] or 'off'} "
            f"{config['padding']} {config['background']} {config['shift_protocol']}")
    weights_config = {k: v for k, v in config.items() if k not in _NOT_IN_WEIGHTS}
    history, from_cache = cached_fit(weights_config, model, task,
                                     loss_fn=AugShiftLoss(config["augshift_lambda"]),
                                     device=device, desc=desc, use_cache=use_cache,
                                     snapshots=snapshots)
    if config.get("recalibrate_batchnorm"):
        recalibrate_batchnorm(model, task, config["batch_size"], config["seed"], device)
    return TrainedModel(model, task, history, evaluate(model, task, device), from_cache)


# ---- the chapter's experiment ----------------------------------------------------------------
@dataclass
class RunResult:
    """One trained arm at one seed, with every metric of the chapter. ``consistency``,
    ``shifted_accuracy``, ``latent_distance`` and ``position_probe`` are measured on views
    that hold the whole digit; ``cut_consistency`` on pairs in which a view cuts it."""
    arm: str
    augshift_lambda: float
    blur_size: int | None  # None: no BlurPool
    seed: int
    clean_accuracy: float
    consistency: float
    shifted_accuracy: float
    cut_consistency: float
    latent_distance: float
    position_probe: float
    shift_curve: list
    from_cache: bool
    # consistency at each training budget (epochs) of the budget curve
    by_budget: dict = field(default_factory=dict)
    epochs: int | None = None  # the budget every metric above was measured at


def measure(arm: str, config: dict, n_pairs: int, budgets=()) -> RunResult:
    """Every metric of one arm at config["epochs"]; with ``budgets``, also its consistency
    at each budget (snapshots of the same run, see ``train.train_budgets``)."""
    runs = train_budgets(train_augshift, config, {*budgets, config["epochs"]})
    run = runs[config["epochs"]]
    model, task = run.model, run.task
    # consistency draws its shifts from a fixed seed: computed once per budget, the final
    # budget's with the accuracy on the same views
    whole, shifted = consistency_and_accuracy(model, task, n_pairs)
    by_budget = {k: whole if k == config["epochs"] else consistency(r.model, r.task, n_pairs)
                 for k, r in runs.items()}
    cut = cut_consistency(model, task, n_pairs)
    return RunResult(arm, config["augshift_lambda"], config["blur_size"],
                     config["seed"], run.evaluation.accuracy, whole, shifted, cut,
                     latent_distance(model, task, n_pairs), position_probe_accuracy(model, task),
                     accuracy_vs_shift(model, task)[1], run.from_cache, by_budget,
                     config["epochs"])


def arms(settings) -> dict:
    """{arm name: (augshift_lambda, blur_size)}: baseline, the lambda sweep, BlurPool, and
    both; blur_size None without BlurPool."""
    judged = settings.augshift_lambda
    table = {"baseline": (0.0, None)}
    for augshift_lambda in sorted(set(settings.lambdas) | {judged}):
        if augshift_lambda > 0:
            table[f"AugShift λ={augshift_lambda:g}"] = (augshift_lambda, None)
    table["BlurPool"] = (0.0, settings.blur_size)
    table[f"AugShift λ={judged:g} + BlurPool"] = (judged, settings.blur_size)
    return table


def verdict_arms(settings) -> tuple[str, str]:
    """(baseline, AugShift at augshift_lambda): the two arms the verdict compares."""
    return "baseline", f"AugShift λ={settings.augshift_lambda:g}"


def run_experiment(settings, progress=print) -> list[RunResult]:
    """The verdict's two arms at every seed, trained for ``epochs`` and carrying the budget
    curve; every arm at the first ``n_ablation_seeds`` seeds at the sweep's budget,
    ``ablation_epochs`` (for the verdict's arms a snapshot of the same runs, measured
    again). When the two budgets are one (every profile but gpu), each run is measured
    once. ``at_budget`` picks either view."""
    results = []
    judged = verdict_arms(settings)
    sweep = settings.ablation_epochs
    for name, (augshift_lambda, blur_size) in arms(settings).items():
        seeds = settings.seeds if name in judged else settings.ablation_seeds
        for seed in seeds:
            config = augshift_config(settings, augshift_lambda, blur_size, seed)
            if name in judged:
                results.append(measure(name, config, settings.n_pairs, settings.budget_epochs))
            if name not in judged or (sweep != settings.epochs
                                      and seed in settings.ablation_seeds):
                results.append(measure(name, {**config, "epochs": sweep}, settings.n_pairs))
        if progress:
            progress(f"{name:<28} done")
    return results


def at_budget(results: list[RunResult], epochs: int) -> list[RunResult]:
    """The runs measured after ``epochs`` of training: the verdict's (``epochs``) or the
    sweep's (``ablation_epochs``, every arm at one budget)."""
    return [r for r in results if r.epochs == epochs]


METRICS = ("clean_accuracy", "consistency", "cut_consistency", "latent_distance",
           "position_probe")


def summarise(results: list[RunResult]) -> dict:
    """{arm: {metric: (mean, std over seeds)}}; std is the sample standard deviation (0 for
    one seed)."""
    summary = {}
    for r in results:
        summary.setdefault(r.arm, {m: [] for m in METRICS + ("shift_curve",)})
        for m in METRICS + ("shift_curve",):
            summary[r.arm][m].append(getattr(r, m))
    def stats(values):
        values = np.asarray(values, dtype=float)
        std = values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros_like(values[0])
        return values.mean(axis=0), std
    return {arm: {m: stats(v) for m, v in row.items()} for arm, row in summary.items()}


def per_seed(results: list[RunResult], arm: str, metric: str, budget=None) -> dict:
    """One arm's metric at each seed, {seed: value}: ``verdict.paired_difference`` pairs
    two such arms seed by seed and refuses arms whose seeds differ. With ``budget``, the
    metric (consistency) at that many epochs of training."""
    found = {r.seed: float(getattr(r, metric) if budget is None else r.by_budget[budget])
             for r in results if r.arm == arm}
    if not found:
        raise ValueError(f"arm must be one of {sorted({r.arm for r in results})}, got {arm!r}")
    return dict(sorted(found.items()))


def consistency_gain(results: list[RunResult], settings, budget=None) -> dict:
    """Claim 3's per-seed statistic, {seed: gain}: AugShift's whole-digit consistency (at
    ``augshift_lambda``, no BlurPool) minus the baseline's at the same seed, from the runs
    trained for the verdict's ``epochs`` (``run_experiment``'s results, whole or
    ``at_budget``); with ``budget``, both after that many epochs of those runs. Arms whose
    seeds differ are refused."""
    from .interval import paired_by_seed

    results = [r for r in results if r.epochs in (None, settings.epochs)]
    baseline, aug = verdict_arms(settings)
    seeds, treated, control = paired_by_seed(
        per_seed(results, aug, "consistency", budget),
        per_seed(results, baseline, "consistency", budget), names=(aug, baseline))
    return {seed: t - c for seed, t, c in zip(seeds, treated, control)}


def at_shared_seeds(results: list[RunResult]) -> list[RunResult]:
    """The runs at the seeds every arm ran: Table 2 compares arms on the same seeds, never
    a 12-seed mean against a 2-seed one."""
    by_arm = {}
    for r in results:
        by_arm.setdefault(r.arm, set()).add(r.seed)
    shared = set.intersection(*by_arm.values()) if by_arm else set()
    return [r for r in results if r.seed in shared]


def inconsistency_removed(gain: float, baseline_consistency: float) -> float:
    """The share of the baseline's inconsistency that AugShift removed,
    (c_aug - c_base) / (1 - c_base): 1 when AugShift is perfectly consistent, 0 when it
    changed nothing. Beside the gain it says how much of the room the baseline left was used."""
    room = 1.0 - baseline_consistency
    return float("nan") if room <= 0 else gain / room


def variant_runs(settings, seeds, names=None, **changes) -> dict:
    """The exercises' answers: {arm: [RunResult at each seed]} for the arms ``names`` (of
    ``arms(settings)``; default the verdict's two) trained with some settings changed
    (``changes``, checked like the chapter's parameters), at a few seeds: a hint of what
    the exercise's full run shows, for the price of a few short trainings."""
    from .settings import chapter_settings

    given = {k: v for k, v in settings.items() if k != "profile"}
    varied = chapter_settings("augshift", settings.profile, **{**given, **changes})
    table = arms(varied)
    names = verdict_arms(varied) if names is None else names
    # at the ablations' budget: a hint costs what an ablation costs
    return {name: [measure(name, {**augshift_config(varied, *table[name], seed),
                                  "epochs": varied.ablation_epochs}, varied.n_pairs)
                   for seed in seeds] for name in names}


def running_bn_accuracy(settings, seeds, augshift_lambda: float = 0.0) -> dict:
    """{seed: clean accuracy} of already trained runs (cache hits) evaluated with
    BatchNorm's running statistics instead of recomputed ones: what ``recalibrate_batchnorm``
    changes, for the price of an evaluation."""
    out = {}
    for seed in seeds:
        config = dict(augshift_config(settings, augshift_lambda, None, seed),
                      recalibrate_batchnorm=False)
        out[seed] = train_augshift(config).evaluation.accuracy
    return out


def reading_values(settings, summary: dict, two_arms: dict, verdict, changes: dict) -> dict:
    """The numbers the chapter's "Reading the results" quotes, {glue key: value}: the
    verdict's two arms at every verdict seed (``two_arms``, ``summarise`` of them) with
    their paired changes (``changes``, {metric: Estimate}); every arm at the seeds all
    share (``summary``, Table 2's) for the comparisons with the other arms."""
    baseline, aug = verdict_arms(settings)
    base, augshift = two_arms[baseline], two_arms[aug]
    values = {"ch3_base_clean_accuracy": base["clean_accuracy"][0],
              "ch3_base_consistency": base["consistency"][0],
              "ch3_base_latent_distance": base["latent_distance"][0],
              "ch3_base_position_probe": base["position_probe"][0],
              "ch3_aug_clean_accuracy": augshift["clean_accuracy"][0],
              "ch3_aug_consistency": augshift["consistency"][0],
              "ch3_aug_latent_distance": augshift["latent_distance"][0],
              "ch3_aug_position_probe": augshift["position_probe"][0],
              "ch3_shared_base_consistency": summary[baseline]["consistency"][0],
              "ch3_shared_aug_consistency": summary[aug]["consistency"][0],
              "ch3_shared_blur_consistency": summary["BlurPool"]["consistency"][0],
              "ch3_shared_both_consistency": summary[f"{aug} + BlurPool"]["consistency"][0]}
    sweep = {augshift_lambda: name
             for name, (augshift_lambda, blur_size) in arms(settings).items() if blur_size is None}
    best = {m: max(sweep, key=lambda augshift_lambda: summary[sweep[augshift_lambda]][m][0])
            for m in ("consistency", "clean_accuracy")}
    removed = inconsistency_removed(verdict.estimate.value, values["ch3_base_consistency"])
    return {**values, "ch3_n": verdict.estimate.n, "ch3_lambda": f"{settings.augshift_lambda:g}",
            "ch3_gain": verdict.estimate.text(), "ch3_gain_sd": verdict.estimate.sd,
            "ch3_removed": f"{removed:.0%}", "ch3_cut_change": changes["cut_consistency"].text(),
            "ch3_distance_change": changes["latent_distance"].text(),
            "ch3_probe_change": changes["position_probe"].text(),
            "ch3_shared_blur_position_probe": summary["BlurPool"]["position_probe"][0],
            "ch3_most_consistent": f"{best['consistency']:g}",
            "ch3_most_accurate": f"{best['clean_accuracy']:g}"}


def exercise_answers(settings, results: list[RunResult], record: dict | None) -> dict:
    """The chapter's exercise answers, {glue key: value}, from this run (``results``, every
    arm) and a few short runs at the first ``n_ablation_seeds`` seeds (``variant_runs``: a
    hint of what each exercise's full run shows, not a verdict). Also "ch3_ex_table3":
    the baseline's clean accuracy per seed with running and recomputed BatchNorm
    statistics (the same weights)."""
    seeds = settings.ablation_seeds
    summary = summarise(at_budget(at_shared_seeds(results), settings.ablation_epochs))
    baseline, aug = verdict_arms(settings)
    running = running_bn_accuracy(settings, seeds)
    recalibrated = per_seed(at_budget(results, settings.epochs), baseline, "clean_accuracy")
    recalibrated = {s: recalibrated[s] for s in seeds}
    strongest = summary[f"AugShift λ={max(settings.lambdas):g}"]
    answers = {"ch3_ex_running_range": f"{min(running.values()):.3f}-{max(running.values()):.3f}",
               "ch3_ex_recalibrated_range": (f"{min(recalibrated.values()):.3f}-"
                                             f"{max(recalibrated.values()):.3f}"),
               "ch3_ex_lambda_max": f"{max(settings.lambdas):g}",
               "ch3_ex_lambda_max_consistency": strongest["consistency"][0],
               "ch3_ex_lambda_max_accuracy": strongest["clean_accuracy"][0],
               "ch3_ex_lambda_max_probe": strongest["position_probe"][0],
               "ch3_ex_n_hint": len(seeds)}
    if record is not None:
        blank = float(np.mean(record["candidates"][0]["consistency"]))
        answers.update(ch3_ex_blank=blank, ch3_ex_blank_room=1 - blank)

    def means(runs, metric):
        return float(np.mean([getattr(r, metric) for r in runs]))

    roll = variant_runs(settings, seeds, background="texture", shift_protocol="roll")
    circular = variant_runs(settings, seeds, padding="circular")
    noise = variant_runs(settings, seeds, background="noise")

    def gain(runs):
        return f"{means(runs[aug], 'consistency') - means(runs[baseline], 'consistency'):+.3f}"

    blur5 = variant_runs(settings, seeds, ["BlurPool"], blur_size=5)["BlurPool"]
    blur3 = [r for r in results if r.arm == "BlurPool" and r.seed in seeds
             and r.epochs == settings.ablation_epochs]
    answers.update({
        "ch3_ex_roll_base_consistency": means(roll[baseline], "consistency"),
        "ch3_ex_roll_aug_consistency": means(roll[aug], "consistency"),
        "ch3_ex_roll_gain": gain(roll),
        "ch3_ex_circ_base_consistency": means(circular[baseline], "consistency"),
        "ch3_ex_circ_aug_consistency": means(circular[aug], "consistency"),
        "ch3_ex_circ_base_position_probe": means(circular[baseline], "position_probe"),
        "ch3_ex_circ_gain": gain(circular),
        "ch3_ex_noise_base_consistency": means(noise[baseline], "consistency"),
        "ch3_ex_noise_aug_consistency": means(noise[aug], "consistency"),
        "ch3_ex_noise_gain": gain(noise),
        "ch3_ex_blur5_consistency": means(blur5, "consistency"),
        "ch3_ex_blur5_clean_accuracy": means(blur5, "clean_accuracy"),
        "ch3_ex_blur3_consistency": means(blur3, "consistency"),
        "ch3_ex_blur3_clean_accuracy": means(blur3, "clean_accuracy")})
    answers["ch3_ex_table3"] = {"running statistics": running,
                                "recalibrated": recalibrated}
    return answers


def markdown_table(summary: dict) -> str:
    """The chapter's table: mean ± std over seeds of every metric, one row per arm."""
    header = ("| arm | clean accuracy ↑ | consistency, whole digit ↑ | consistency, cut pairs ↑ "
              "| latent distance ↓ | position probe ↓ |\n|---|---|---|---|---|---|")
    rows = [f"| {arm} | " + " | ".join(f"{row[m][0]:.3f} ± {row[m][1]:.3f}" for m in METRICS)
            + " |" for arm, row in summary.items()]
    return "\n".join([header, *rows])
