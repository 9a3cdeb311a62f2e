"""Claim 5's side sets, attacks and statistic: which channels follow one half of the image,
and what zeroing them does to each half's segmentation.

**Both sides by one property.** Signed flip differences define the two sides by
*different* properties (right: responds to the scene as it is; left: to its mirror), so on
scenes whose halves hold different classes the two sets are not comparable.
``rank_side_channels`` defines both sides by the same property of each half: how much a
channel's pooled value changes when that half alone is blanked. A left-specific channel
changes more when the left half is blanked than when the right half is (``side_scores``);
the right-specific set is the mirror rule. Each half is blanked with *its own* mean colour
(``half_means``): the two halves of a street scene differ in brightness (sky and verge on
the left, buildings on the right), and a blank of the global mean would add a brightness
change to one half that the other does not get.

**Ranked on scenes that are not scored.** Channels ranked on the scenes they are then
scored on are picked partly for that sample's own left/right imbalance, which inflates the
own-side drop (a selection scored on the data it was selected on). ``ranking_scenes``
ranks on the segmenter's training scenes (as many as it scores) and scores on the
validation scenes; a checkpoint, which comes without its training scenes, ranks on one half
of the validation scenes and is scored on the other.

**A per-half score a stray pixel cannot swing.** mIoU averages over classes present in
truth *or* prediction, so one spurious pixel of a class absent from a half adds a class of
IoU 0 to that half's mean. The candidates in ``checks.HALF_SCORES`` cannot be swung so:
pixel accuracy, and mIoU over the classes of the half's ground truth. Which of them the
chapter uses (``half_score``) the pilot fixed by how far one relabelled pixel can move the
clean score (``stray_pixel_swing``), a criterion blind to the attacks.

Each side's attack zeroes its ``region_channels`` channels in the backbone output
(``attack.zero_channels``); the per-segmenter statistic (``side_statistic``) is the mean
over both attacks of the own half's drop minus the size of the other half's change. Its
class-matched control (``class_matched``) applies the same rule class by class, over the
classes that cover both halves: a half's drop cannot then come from which classes live on
which side.

Used by chapter 5.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .attack import predict, rank_position_channels, region_confusions, top_channels
from .checks import HALF_SCORES, SIDE_RANKINGS
from .models import global_average_pool
from .segment import backbone_features, class_iou, mean_iou
from .train import pick_device, prepare_model, to_device

HALVES = ("left", "right")
SIDE_ATTACKS = {"left attack": ("left", "right"), "right attack": ("right", "left")}
# The class-matched control reads a class on both halves only where its ground truth covers
# at least this share of each half's scored pixels: a class with a handful of pixels on one
# side would carry its noise into the mean. Fixed with the design, before any seed ran.
MIN_CLASS_SHARE = 0.01


# ---- the side ranking ----------------------------------------------------------------------
@dataclass
class SideRanking:
    """Channels ordered by how specific they are to one half of the image (most first).

    ``score[c]`` = mean |z_c(x) - z_c(x, left half blanked)| minus the same for the right
    half: positive for a channel that follows the left half's content, negative for one
    that follows the right half's."""
    left: torch.Tensor  # by score, descending
    right: torch.Tensor  # by -score, descending
    score: torch.Tensor  # (C,)
    channels: int

    def top(self, kind: str, n: int, model: nn.Module | None = None) -> torch.Tensor:
        if kind not in HALVES:
            raise ValueError(f"side must be one of {HALVES}, got {kind!r}")
        return top_channels(getattr(self, kind), n, self.channels, model)


def _half_columns(width: int, side: str) -> slice:
    half = width // 2
    return slice(0, half) if side == "left" else slice(width - half, None)


def half_means(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{side: (C,) mean colour of that half of (N, C, H, W) images}: each half's blank."""
    return {side: images[..., _half_columns(images.shape[-1], side)].mean(dim=(0, 2, 3))
            for side in HALVES}


def blank_half(images: torch.Tensor, side: str, fill: torch.Tensor) -> torch.Tensor:
    """A copy of (N, C, H, W) images with the left or right half (W // 2 columns) set to
    ``fill`` (per channel, broadcast): the other half and the middle column, for odd W,
    keep their pixels."""
    out = images.clone()
    out[..., _half_columns(images.shape[-1], side)] = fill.reshape(1, -1, 1, 1).to(out)
    return out


def side_scores(z: torch.Tensor, z_left: torch.Tensor, z_right: torch.Tensor) -> torch.Tensor:
    """(C,) side score of each channel from (N, C) GAP latents of the scenes as they are
    (``z``), with the left half blanked and with the right half blanked: the mean over
    scenes of |z - z_left| minus the mean of |z - z_right|."""
    return (z - z_left).abs().mean(0) - (z - z_right).abs().mean(0)


@torch.no_grad()
def rank_side_channels(model: nn.Module, images: torch.Tensor, batch_size: int = 64,
                       device=None) -> SideRanking:
    """Rank the backbone's channels by ``side_scores``: each half blanked with its own mean
    colour over ``images`` (``half_means``), so a blank removes that half's content and
    adds no brightness of the other half's."""
    device = pick_device(device)
    prepare_model(model, device).eval()
    fill = half_means(images)
    latents = {"as is": [], "left": [], "right": []}
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        for name in latents:
            view = x if name == "as is" else blank_half(x, name, fill[name])
            latents[name].append(
                global_average_pool(model.features(to_device(view, device))).float().cpu())
    score = side_scores(*(torch.cat(latents[name]) for name in ("as is", "left", "right")))
    return SideRanking(left=score.argsort(descending=True),
                       right=(-score).argsort(descending=True),
                       score=score, channels=len(score))


def side_ranking(kind: str, model: nn.Module, images: torch.Tensor):
    """Claim 5's side sets by ``kind`` (SIDE_RANKINGS): half-blanking or signed flip."""
    if kind == "blank":
        return rank_side_channels(model, images)
    if kind == "flip":
        return rank_position_channels(model, images)
    raise ValueError(f"region_ranking must be one of {SIDE_RANKINGS}, got {kind!r}")


def ranking_scenes(setup) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scenes to rank on, scenes to score, their labels), disjoint: a trained segmenter's
    own training scenes (as many as it is scored on) against its validation scenes; a
    checkpoint's validation scenes split in two (even ones ranked, odd ones scored)."""
    images, labels = setup.images, setup.labels
    trained = getattr(setup, "trained", None)
    if trained is not None:
        return trained.task.train.images[:len(images)], images, labels
    if len(images) < 2:
        raise ValueError(f"ranking and scoring need disjoint scenes: at least 2 validation "
                         f"scenes (n_val), got {len(images)}")
    return images[0::2], images[1::2], labels[1::2]


def attack_sets(ranking, n: int, model: nn.Module) -> dict:
    """{"clean": None, "left attack": ..., "right attack": ...}: the channels each of
    claim 5's runs zeroes (None: none)."""
    return {"clean": None, "left attack": ranking.top("left", n, model),
            "right attack": ranking.top("right", n, model)}


# ---- per-half scores -----------------------------------------------------------------------
def class_scores(confusion: torch.Tensor, kind: str) -> torch.Tensor:
    """(K,) each class's part of a ``kind`` score (HALF_SCORES), NaN for a class absent from
    the ground truth: its IoU for "truth-class mIoU", the share of its pixels labelled
    right for "pixel accuracy"."""
    truth = confusion.sum(1).double()
    if kind == "truth-class mIoU":
        scores = class_iou(confusion)
    elif kind == "pixel accuracy":
        scores = confusion.diag().double() / truth.clamp(min=1)
    else:
        raise ValueError(f"half_score must be one of {HALF_SCORES}, got {kind!r}")
    return torch.where(truth > 0, scores, torch.full_like(scores, float("nan")))


def half_score(confusion: torch.Tensor, kind: str) -> float:
    """A region's score of ``kind`` (HALF_SCORES) from its confusion matrix: the share of
    its scored pixels labelled right, or the mean IoU over the classes of its ground truth
    (a class only predicted there adds nothing)."""
    if kind == "pixel accuracy":
        return float(confusion.diag().sum() / confusion.sum().clamp(min=1))
    scores = class_scores(confusion, kind)
    present = ~scores.isnan()
    return float(scores[present].mean()) if present.any() else float("nan")


def _score(confusion: torch.Tensor, kind: str) -> float:
    """``half_score``, or (kind "mIoU") the usual mIoU over classes in truth or prediction."""
    return mean_iou(confusion) if kind == "mIoU" else half_score(confusion, kind)


def stray_pixel_swing(confusion: torch.Tensor, kind: str) -> float:
    """The most one relabelled pixel moves a region's score of ``kind`` (HALF_SCORES, or
    "mIoU" for the usual mIoU): over every rightly labelled pixel's class a and every other
    class b, the change when one pixel of a is predicted as b instead."""
    base, swing = _score(confusion, kind), 0.0
    k = len(confusion)
    for a in range(k):
        if confusion[a, a] == 0:
            continue
        for b in range(k):
            if b != a:
                moved = confusion.clone()
                moved[a, a] -= 1
                moved[a, b] += 1
                swing = max(swing, abs(_score(moved, kind) - base))
    return swing


# ---- the attacks and the statistic ----------------------------------------------------------
def side_drops(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """For each side attack, the score it took from its own half and from the other half,
    each as clean - attacked (negative: that half got *better*)."""
    clean = scores["clean"]
    return {name: {"own": clean[own] - scores[name][own],
                   "other": clean[other] - scores[name][other]}
            for name, (own, other) in SIDE_ATTACKS.items()}


def side_specificity(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """For each side attack: its own half's drop minus the *size* of the other half's change,
    own - |other|. A change on the other side counts against the attack whichever way it
    goes, so an attack cannot look side-specific by making the other half better."""
    return {name: d["own"] - abs(d["other"]) for name, d in side_drops(scores).items()}


def side_statistic(scores: dict[str, dict[str, float]]) -> float:
    """Claim 5's per-segmenter statistic: the mean of the two attacks' side specificities
    (both sides must carry it; one lucky side cannot decide)."""
    return float(sum(side_specificity(scores).values()) / len(SIDE_ATTACKS))


def shared_classes(clean: dict[str, torch.Tensor]) -> torch.Tensor:
    """(K,) bool: the classes whose ground truth covers at least MIN_CLASS_SHARE of each
    half's scored pixels (``clean``: the clean run's ``region_confusions``)."""
    shared = None
    for half in HALVES:
        truth = clean[half].sum(1).double()
        here = truth >= MIN_CLASS_SHARE * truth.sum()
        shared = here if shared is None else shared & here
    return shared


def class_matched(confusions: dict[str, dict[str, torch.Tensor]], kind: str) -> float:
    """Claim 5's class-matched control on one segmenter: ``side_statistic``'s rule class by
    class. For each attack and each class on both halves (``shared_classes``), the class's
    drop on the attack's own half minus the size of its change on the other half
    (``class_scores`` of ``kind``, clean - attacked); the mean over those classes, then over
    the two attacks. NaN when no class covers both halves. ``confusions``: {run: {region:
    (K, K)}} as ``side_experiment`` returns them."""
    shared = shared_classes(confusions["clean"])
    if not shared.any():
        return float("nan")
    clean = {h: class_scores(confusions["clean"][h], kind)[shared] for h in HALVES}
    per_attack = []
    for name, (own, other) in SIDE_ATTACKS.items():
        hit = {h: class_scores(confusions[name][h], kind)[shared] for h in HALVES}
        drop_own, drop_other = clean[own] - hit[own], clean[other] - hit[other]
        per_attack.append((drop_own - drop_other.abs()).mean())
    return float(sum(per_attack) / len(per_attack))


def side_experiment(setup, ranking_kind: str, n: int, kind: str) -> dict:
    """Claim 5 on one segmenter: rank its channels by side (``side_ranking``) on scenes it
    is not scored on (``ranking_scenes``), then score each region of the other scenes clean
    and under each side's attack of n channels. Returns the ranking, each run's
    ``region_confusions`` and its per-region score of ``kind`` (HALF_SCORES). The backbone
    runs once on the scored scenes; every attack reruns the head."""
    model = setup.model
    rank_on, images, labels = ranking_scenes(setup)
    ranking = side_ranking(ranking_kind, model, rank_on)
    features = backbone_features(model, images)
    confusions = {name: region_confusions(predict(model, images, chans, features), labels,
                                          setup.num_classes)
                  for name, chans in attack_sets(ranking, n, model).items()}
    return {"ranking": ranking, "confusions": confusions,
            "scores": {name: {r: half_score(c, kind) for r, c in conf.items()}
                       for name, conf in confusions.items()}}


def side_experiments(settings, scene_mode: str, budgets, keep_setup_at=None) -> dict:
    """``side_experiment`` for every seed's segmenter trained on ``scene_mode`` scenes, at
    every budget (snapshots of one run per seed): {(seed, epochs): result}, each result
    holding its segmenter's setup at the ``keep_setup_at`` budget only (None elsewhere)."""
    from .segment import segmentation_budgets
    from .settings import Settings

    s = Settings(settings, scene_mode=scene_mode)
    results = {}
    for seed in s.seeds:
        for k, setup in segmentation_budgets(s, seed, budgets).items():
            results[seed, k] = side_experiment(setup, s.region_ranking, s.region_channels,
                                               s.half_score)
            results[seed, k]["setup"] = setup if k == keep_setup_at else None
    return results


def side_statistics(runs: dict, seeds, epochs: int, ranking_kind: str, n: int,
                    kind: str) -> dict[int, float]:
    """{seed: claim 5's statistic} on segmenters ``side_experiments`` already trained (its
    results at ``epochs`` hold their setups), with another ranking or another N: the
    exercises' answers, for the price of the attacks alone."""
    return {seed: side_statistic(side_experiment(runs[seed, epochs]["setup"], ranking_kind,
                                                 n, kind)["scores"]) for seed in seeds}


# ---- tables --------------------------------------------------------------------------------
def region_table(scores_by_seed: list) -> dict:
    """{run: {region: mean over segmenters}} of ``side_experiment(...)["scores"]``, one per
    segmenter: each region's score clean and under each attack. Rows for
    ``tables.format_table``."""
    return {run: {region: sum(s[run][region] for s in scores_by_seed) / len(scores_by_seed)
                  for region in scores_by_seed[0][run]}
            for run in scores_by_seed[0]}


def side_table(scores_by_seed: list, confidence: float) -> dict:
    """Claim 5's numbers over segmenters, each with its interval: every attack's own-half
    drop and other-half change on their own, then the primary statistic. Rows for
    ``tables.format_table``."""
    from .interval import t_interval

    drops = [side_drops(scores) for scores in scores_by_seed]
    rows = {}
    for name, (own, other) in SIDE_ATTACKS.items():
        rows[f"{name}: own ({own}) half drop"] = [d[name]["own"] for d in drops]
        rows[f"{name}: other ({other}) half change"] = [d[name]["other"] for d in drops]
    rows["own - |other|, both attacks (primary)"] = [side_statistic(scores)
                                                     for scores in scores_by_seed]
    return {label: {"mean over segmenters [CI]": t_interval(values, confidence)}
            for label, values in rows.items()}


def class_table(confusions_by_seed: list, class_names, kind: str) -> dict:
    """Each class's score (``class_scores`` of ``kind``) on each half, clean and under each
    attack, mean over segmenters (a class absent from a half's truth in every segmenter's
    scenes is left blank): which classes carry a half's change. ``confusions_by_seed``: one
    ``side_experiment(...)["confusions"]`` per segmenter. Rows for ``tables.format_table``."""
    rows = {}
    for k, name in enumerate(class_names):
        row = {}
        for half in HALVES:
            for attack in ("clean", *SIDE_ATTACKS):
                values = torch.stack([class_scores(c[attack][half], kind)[k]
                                      for c in confusions_by_seed])
                row[f"{half} half, {attack}"] = (None if values.isnan().all()
                                                 else values.nanmean().item())
        rows[name] = row
    return rows
