"""Claim 5's side sets, attacks and statistic: which channels follow one half of the image,
and what zeroing them does to each half's segmentation.

Signed flip differences define the two sides by *different* properties (right: responds to
the scene as it is; left: responds to its mirror), so on scenes whose halves hold different
classes the two sets are not comparable. ``rank_side_channels`` defines both sides by the
same property of each half: how much a channel's pooled value changes when that half alone is
blanked (set to the images' mean colour). A left-specific channel changes more when the left
half is blanked than when the right half is; the right-specific set is the mirror rule. On
scenes whose two halves draw from one class distribution (``scene_mode="symmetric"``) a
channel can only score by where it responds, not by which classes live on which side.

Each side's attack zeroes its ``region_channels`` channels in the backbone output
(``attack.zero_channels``); the per-segmenter statistic is the mean over both attacks of the
own half's drop minus the size of the other half's change (``side_specificity``).

Used by chapter 5.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .attack import (PositionRanking, predict, rank_position_channels, region_masks,
                     region_miou, top_channels)
from .checks import SIDE_RANKINGS
from .models import global_average_pool
from .segment import backbone_features, class_iou, confusion_matrix
from .train import pick_device, prepare_model, to_device


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
        if kind not in ("left", "right"):
            raise ValueError(f"side must be one of ('left', 'right'), got {kind!r}")
        return top_channels(getattr(self, kind), n, self.channels, model)


def blank_half(images: torch.Tensor, side: str, fill: torch.Tensor) -> torch.Tensor:
    """A copy of (N, C, H, W) images with the left or right half (W // 2 columns) set to
    ``fill`` (per channel, broadcast): the other half and the middle column, for odd W,
    keep their pixels."""
    half = images.shape[-1] // 2
    out = images.clone()
    cols = slice(0, half) if side == "left" else slice(images.shape[-1] - half, None)
    out[..., cols] = fill.reshape(1, -1, 1, 1).to(out)
    return out


@torch.no_grad()
def rank_side_channels(model: nn.Module, images: torch.Tensor, batch_size: int = 64,
                       device=None) -> SideRanking:
    """Rank the backbone's channels by how much more their GAP changes when the left half
    of the image is blanked than when the right half is (see ``SideRanking``). The blank is
    the images' mean colour, so blanking adds no new brightness, only removes content."""
    device = pick_device(device)
    prepare_model(model, device).eval()
    fill = images.mean(dim=(0, 2, 3))
    change = {"left": 0.0, "right": 0.0}
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size]
        z = global_average_pool(model.features(to_device(x, device))).float()
        for side in change:
            blanked = to_device(blank_half(x, side, fill), device)
            zb = global_average_pool(model.features(blanked)).float()
            change[side] = change[side] + (z - zb).abs().sum(0).cpu()
    score = (change["left"] - change["right"]) / len(images)
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


SIDE_ATTACKS = {"left attack": ("left", "right"), "right attack": ("right", "left")}


def side_attacks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 num_classes: int, ranking: SideRanking | PositionRanking, n: int,
                 features=None) -> dict[str, dict[str, float]]:
    """Region mIoU clean and after zeroing the n most left- and most right-specific channels."""
    return {name: region_miou(model, images, labels, num_classes, chans, features)
            for name, chans in attack_sets(ranking, n, model).items()}


def attack_sets(ranking, n: int, model: nn.Module) -> dict:
    """{"clean": None, "left attack": ..., "right attack": ...}: the channels each of
    claim 5's runs zeroes (None: none)."""
    return {"clean": None, "left attack": ranking.top("left", n, model),
            "right attack": ranking.top("right", n, model)}


def side_drops(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """For each side attack, the mIoU it took from its own half and from the other half,
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


@torch.no_grad()
def region_class_iou(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     num_classes: int, channels=None, features=None,
                     regions=("left", "right")) -> dict[str, torch.Tensor]:
    """{region: (K,) IoU of each class on that region} with ``channels`` zeroed (None:
    clean): which classes carry a region's change in mIoU."""
    pred = predict(model, images, channels, features)
    masks = region_masks(*labels.shape[-2:])
    return {r: class_iou(confusion_matrix(pred[:, masks[r]], labels[:, masks[r]], num_classes))
            for r in regions}


def side_experiment(setup, ranking_kind: str, n: int, class_iou: bool = False) -> dict:
    """Claim 5 on one segmenter: rank its channels by side (``side_ranking``), score its
    regions clean and under each side's attack of n channels; with ``class_iou``, each
    class's IoU on each half too. The backbone runs once; every attack reruns the head."""
    model, images, labels = setup.model, setup.images, setup.labels
    features = backbone_features(model, images)
    ranking = side_ranking(ranking_kind, model, images)
    out = {"ranking": ranking, "scores": side_attacks(model, images, labels, setup.num_classes,
                                                      ranking, n, features)}
    if class_iou:
        out["class_iou"] = {name: region_class_iou(model, images, labels, setup.num_classes,
                                                   chans, features)
                            for name, chans in attack_sets(ranking, n, model).items()}
    return out


def side_experiments(settings, scene_mode: str, budgets, class_iou_at=None) -> dict:
    """``side_experiment`` for every seed's segmenter trained on ``scene_mode`` scenes, at
    every budget (snapshots of one run per seed): {(seed, epochs): result}, class IoU at
    the ``class_iou_at`` budget only."""
    from .segment import segmentation_budgets
    from .settings import Settings

    s = Settings(settings, scene_mode=scene_mode)
    results = {}
    for seed in s.seeds:
        for k, setup in segmentation_budgets(s, seed, budgets).items():
            results[seed, k] = side_experiment(setup, s.region_ranking, s.region_channels,
                                               class_iou=k == class_iou_at)
            results[seed, k]["setup"] = setup if k == class_iou_at else None
    return results


def side_statistics(runs: dict, seeds, epochs: int, ranking_kind: str, n: int) -> list:
    """Claim 5's statistic on segmenters ``side_experiments`` already trained (its results
    at ``epochs`` hold their setups), with another ranking or another N: the exercises'
    answers, for the price of the attacks alone."""
    return [side_statistic(side_experiment(runs[seed, epochs]["setup"], ranking_kind,
                                           n)["scores"]) for seed in seeds]


def side_table(scores_by_seed: list, confidence: float) -> dict:
    """Claim 5's numbers over segmenters, each with its interval: every attack's own-half
    drop and other-half change on their own, then the primary statistic. Rows for
    ``tables.format_table``."""
    from .verdict import t_interval

    drops = [side_drops(scores) for scores in scores_by_seed]
    rows = {}
    for name, (own, other) in SIDE_ATTACKS.items():
        rows[f"{name}: own ({own}) half drop"] = [d[name]["own"] for d in drops]
        rows[f"{name}: other ({other}) half change"] = [d[name]["other"] for d in drops]
    rows["own - |other|, both attacks (primary)"] = [side_statistic(scores)
                                                     for scores in scores_by_seed]
    return {label: {"mean over segmenters [CI]": t_interval(values, confidence)}
            for label, values in rows.items()}


def class_iou_table(class_ious: list, class_names) -> dict:
    """Each class's IoU on each half, clean and under each attack, mean over segmenters
    (classes absent from a half in every scene are left blank): which classes carry a
    half's change in mIoU. ``class_ious``: one ``side_experiment(...)["class_iou"]`` per
    segmenter. Rows for ``tables.format_table``."""
    rows = {}
    for k, name in enumerate(class_names):
        row = {}
        for half in ("left", "right"):
            for attack in ("clean", "left attack", "right attack"):
                values = torch.stack([c[attack][half][k] for c in class_ious])
                mean = None if values.isnan().all() else values.nanmean().item()
                row[f"{half} half, {attack}"] = mean
        rows[name] = row
    return rows
