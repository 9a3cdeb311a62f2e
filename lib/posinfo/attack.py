"""Find position channels by flipping, zero them, and score segmentation by image region.

The reference code's recipe: z = GAP of the backbone output. For each validation image x,
d = z(x) - z(hflip x). Channels with the largest mean |d| are the *overall* position
channels; the signed mean of d splits *region-specific* ones: a channel that responds more
to the scenes as they are than to their mirror images carries the data set's own layout.
In right-hand traffic scenes the layout that flipping moves is the right side's (sidewalk,
buildings, parked cars), so positive mean d is called *right* and negative *left*, as in
the reference. This naming is a convention tied to where the data's asymmetry sits; on a
flip-symmetric data set E[d] = 0 for every channel and the signed ranking is noise.

The attack zeroes a channel set of the backbone output (a forward hook, so it works on any
model whose ``backbone`` returns a tensor or torchvision's {"out": tensor} dict) before the
head, and mIoU is scored over the whole frame and over its left half, right half and centre.

Used by chapter 4 (the flip ranking and the zeroing sweep), and by chapter 5 through
``sides``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn

from .models import global_average_pool
from .segment import backbone_features, confusion_matrix, mean_iou
from .train import pick_device, prepare_model, to_device

RANKINGS = ("overall", "left", "right", "bottom")
REGIONS = ("whole", "left", "right", "centre")


@dataclass
class PositionRanking:
    """Channel orders (most position-coding first) and the per-channel scores behind them."""
    overall: torch.Tensor  # by mean |z(x) - z(flip x)|, descending
    right: torch.Tensor  # by mean z(x) - z(flip x), descending
    left: torch.Tensor  # by mean z(flip x) - z(x), descending
    abs_diff: torch.Tensor  # (C,) mean |d|
    signed_diff: torch.Tensor  # (C,) mean d
    channels: int

    @property
    def bottom(self) -> torch.Tensor:
        """The least flip-sensitive channels first (the control at the other end)."""
        return self.overall.flip(0)

    def top(self, kind: str, n: int, model: nn.Module | None = None) -> torch.Tensor:
        """The first n channels of one ranking (see RANKINGS); with ``model``, also check
        that the ranking was computed on a backbone of that model's width."""
        if kind not in RANKINGS:
            raise ValueError(f"region must be one of {RANKINGS}, got {kind!r}")
        return top_channels(getattr(self, kind), n, self.channels, model)


def top_channels(order: torch.Tensor, n: int, channels: int,
                 model: nn.Module | None = None) -> torch.Tensor:
    """The first n channels of a ranking's ``order`` over a backbone of ``channels``; with
    ``model``, also check that the ranking was computed on a backbone of that model's
    width (every ranking's ``top`` ends here)."""
    if model is not None and _channels_of(model) != channels:
        raise ValueError(f"the ranking was computed on a backbone of {channels} "
                         f"channels, the model has {_channels_of(model)}: rank this "
                         f"model's channels")
    check_n(n, channels)
    return order[:n]


def check_n(n, channels: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= channels:
        raise ValueError(f"N must be an integer in [1, {channels}] (the backbone's channel "
                         f"count), got {n!r}")
    return n


def _channels_of(model) -> int:
    return int(getattr(model, "channels"))


def flip_differences(features: torch.Tensor, mirrored_features: torch.Tensor) -> torch.Tensor:
    """d = GAP(f(x)) - GAP(f(flip x)), one row per image, (N, C): from the backbone's output
    for the images and for their mirror images, (N, C, H, W) each."""
    return global_average_pool(features) - global_average_pool(mirrored_features)


def flip_order(features: torch.Tensor, mirrored_features: torch.Tensor) -> torch.Tensor:
    """The channels by the mean over the images of |d| (``flip_differences``), the most
    flip-sensitive first: ``rank_position_channels``'s *overall* ranking, for features
    already computed."""
    return flip_differences(features, mirrored_features).abs().mean(0).argsort(descending=True)


@torch.no_grad()
def rank_position_channels(model: nn.Module, images: torch.Tensor, batch_size: int = 64,
                           device=None) -> PositionRanking:
    """Rank the backbone's channels by how much GAP changes when the image is mirrored."""
    device = pick_device(device)
    prepare_model(model, device).eval()
    total_abs, total_signed, count = 0.0, 0.0, 0
    for i in range(0, len(images), batch_size):
        x = to_device(images[i:i + batch_size], device)
        d = flip_differences(model.features(x), model.features(x.flip(-1))).float().cpu()
        total_abs = total_abs + d.abs().sum(0)
        total_signed = total_signed + d.sum(0)
        count += len(x)
    abs_diff, signed_diff = total_abs / count, total_signed / count
    return PositionRanking(overall=abs_diff.argsort(descending=True),
                           right=signed_diff.argsort(descending=True),
                           left=(-signed_diff).argsort(descending=True),
                           abs_diff=abs_diff, signed_diff=signed_diff,
                           channels=len(abs_diff))


def random_channels(channels: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """n distinct channels drawn uniformly: the attack's control."""
    check_n(n, channels)
    return torch.randperm(channels, generator=generator)[:n]


def _check_channels(channels: torch.Tensor, width: int) -> torch.Tensor:
    channels = torch.as_tensor(channels, dtype=torch.long).flatten()
    if len(channels) and (channels.min() < 0 or channels.max() >= width):
        raise ValueError(f"channels must lie in [0, {width - 1}] for a backbone of {width} "
                         f"channels, got min {int(channels.min())}, max {int(channels.max())} "
                         f"(a ranking computed on a model of another width?)")
    return channels


def zeroed(features: torch.Tensor, channels) -> torch.Tensor:
    """A copy of (N, C, H, W) features with ``channels`` set to zero."""
    channels = _check_channels(channels, features.shape[1])
    features = features.clone()
    features[:, channels.to(features.device)] = 0
    return features


@contextlib.contextmanager
def zero_channels(model: nn.Module, channels):
    """Within the block, the backbone's output has ``channels`` set to zero before the head."""
    channels = _check_channels(channels, _channels_of(model))

    def hook(_module, _inputs, output):
        if isinstance(output, dict):
            return dict(output, out=zeroed(output["out"], channels))
        return zeroed(output, channels)

    handle = model.backbone.register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


def region_masks(height: int, width: int) -> dict[str, torch.Tensor]:
    """(H, W) boolean masks: the whole frame, left half, right half, centre (middle half)."""
    cols = torch.arange(width)
    masks = {"whole": cols >= 0, "left": cols < width // 2, "right": cols >= width - width // 2,
             "centre": (cols >= width // 4) & (cols < width - width // 4)}
    return {k: m[None, :].expand(height, width) for k, m in masks.items()}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, channels=None, features=None,
            batch_size: int = 64, device=None) -> torch.Tensor:
    """Label maps (N, H, W), with ``channels`` of the backbone output zeroed (None: clean).

    With ``features`` (segment.backbone_features of the same images) only the head runs:
    a sweep of many attacks pays for the backbone once.
    """
    device = pick_device(device)
    prepare_model(model, device).eval()
    size = images.shape[-2:]
    attack = zero_channels(model, channels) if channels is not None else contextlib.nullcontext()
    out = []
    with attack:
        for i in range(0, len(images), batch_size):
            if features is None:
                logits = model(to_device(images[i:i + batch_size], device))
            else:
                f = to_device(features[i:i + batch_size], device)
                logits = model.decode(f if channels is None else zeroed(f, channels), size)
            out.append(logits.argmax(1).cpu())
    return torch.cat(out)


def region_miou(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                channels=None, features=None, batch_size: int = 64,
                device=None) -> dict[str, float]:
    """mIoU on each region of REGIONS with ``channels`` zeroed (None: clean); see ``predict``."""
    pred = predict(model, images, channels, features, batch_size, device)
    return {k: mean_iou(c) for k, c in region_confusions(pred, labels, num_classes).items()}


def region_confusions(pred: torch.Tensor, labels: torch.Tensor,
                      num_classes: int) -> dict[str, torch.Tensor]:
    """{region: (K, K) confusion matrix} of (N, H, W) predictions on each of REGIONS."""
    masks = region_masks(*labels.shape[-2:])
    return {r: confusion_matrix(pred[:, masks[r]], labels[:, masks[r]], num_classes)
            for r in REGIONS}


def check_region(region: str) -> str:
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    return region


# ---- the chapters' experiments: a zeroing sweep, and the two side attacks --------------------
def channel_counts(fractions, channels: int) -> list[int]:
    """The swept N: each fraction of the backbone's channels, rounded, at least 1, distinct."""
    return sorted({max(1, round(f * channels)) for f in fractions})


def verdict_counts(fractions, verdict_range, channels: int) -> list[int]:
    """The N the verdict judges: those of the swept *fractions* that lie in ``verdict_range``.

    Selecting by fraction, before rounding, keeps the range's ends: at 2048 channels the
    fraction 0.01 is N = 20, and 20 < 0.01 * 2048 would drop it if N were compared instead.
    """
    low, high = verdict_range
    return channel_counts([f for f in fractions if low <= f <= high], channels)


def zeroing_sweep(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  num_classes: int, ranking: PositionRanking, ns, n_random: int,
                  generator: torch.Generator, features=None) -> dict[str, list[float]]:
    """Whole-frame mIoU after zeroing N channels, for each N: the top-N flip-sensitive ones,
    the bottom-N, and the mean (and standard deviation) over ``n_random`` random sets."""
    def score(channels):
        return region_miou(model, images, labels, num_classes, channels, features)["whole"]

    sweep = {"top-N": [], "bottom-N": [], "random-N": [], "random std": []}
    for n in ns:
        sweep["top-N"].append(score(ranking.top("overall", n, model)))
        sweep["bottom-N"].append(score(ranking.top("bottom", n, model)))
        draws = torch.tensor([score(random_channels(ranking.channels, n, generator))
                              for _ in range(n_random)])
        sweep["random-N"].append(draws.mean().item())
        sweep["random std"].append(draws.std().item() if n_random > 1 else 0.0)
    return sweep


def flip_attack(setup, settings, seed: int, every_n: bool = True) -> dict:
    """Claim 4's experiment on one segmenter: rank its channels by flipping, score it clean,
    and run the zeroing sweep, at every swept N or (``every_n=False``, for the budget
    curve) only at the N the verdict judges. The backbone runs once per image; every attack
    reruns only the head. Returns clean mIoU, ranking, swept and judged N, and the sweep."""
    model, images, labels = setup.model, setup.images, setup.labels
    ns = channel_counts(settings.channel_fractions, model.channels)
    judged = verdict_counts(settings.channel_fractions, settings.verdict_fractions,
                            model.channels)
    features = backbone_features(model, images)
    ranking = rank_position_channels(model, images)
    swept = ns if every_n else judged
    return {"clean": region_miou(model, images, labels, setup.num_classes,
                                 features=features)["whole"],
            "ranking": ranking, "ns": swept, "judged": judged,
            "sweep": zeroing_sweep(model, images, labels, setup.num_classes, ranking, swept,
                                   settings.n_random, torch.Generator().manual_seed(seed),
                                   features)}


def extra_damage(result: dict) -> float:
    """Claim 4's per-segmenter statistic: random-N minus top-N mIoU, averaged over the
    judged N (``result`` from ``flip_attack``)."""
    missing = [n for n in result["judged"] if n not in result["ns"]]
    if missing or not result["judged"]:
        raise ValueError(f"judged N must be a non-empty subset of the sweep's N "
                         f"{list(result['ns'])}, got {list(result['judged'])}")
    cols = [list(result["ns"]).index(n) for n in result["judged"]]
    sweep = result["sweep"]
    return float(sum(sweep["random-N"][i] - sweep["top-N"][i] for i in cols) / len(cols))


# ---- chapter 4's exercises: the computations behind their worked answers -------------------
def mirror_some(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A copy of (N, C, H, W) images with each mirrored left-right with probability 1/2, as
    ``scene_mode="symmetric"`` draws its scenes: data on which E[d] of the flip ranking is 0."""
    mirror = torch.rand(len(images), generator=generator) < 0.5
    out = images.clone()
    out[mirror] = out[mirror].flip(-1)
    return out


def flip_summary(model: nn.Module, images: torch.Tensor, seed: int) -> dict:
    """Chapter 4, exercise 2: the flip ranking of ``images`` as drawn and with a random half
    mirrored (``mirror_some``), each summarised over channels by the mean of mean |d| (the
    height of the chapter's Figure 2) and the mean of |mean d| (the signed mean's size).
    Mirroring an image only flips the sign of its d: the first stays, the second shrinks.
    Rows for ``tables.format_table``."""
    mirrored = mirror_some(images, torch.Generator().manual_seed(seed))
    rows = {}
    for name, x in (("as drawn", images), ("half mirrored", mirrored)):
        ranking = rank_position_channels(model, x)
        rows[name] = {"mean |d|": float(ranking.abs_diff.mean()),
                      "|mean d|": float(ranking.signed_diff.abs().mean())}
    return rows


def lookalike_pairs(class_names) -> list[tuple[int, int]]:
    """(i, j) class indices painted with the same texture in look-alike street scenes
    (``scenes``: road and sidewalk, building and wall, sky and puddle), both orders."""
    from .scenes import _LOOKALIKE

    index = {name: k for k, name in enumerate(class_names) if name in _LOOKALIKE}
    return [(index[a], index[b]) for a in index for b in index
            if a != b and _LOOKALIKE[a] == _LOOKALIKE[b]]


def lookalike_share(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                    class_names, channels=None, features=None) -> float:
    """Chapter 4, exercise 1: the share of wrongly labelled pixels (``channels`` zeroed;
    None: clean) whose predicted class is the true class's look-alike, the errors that
    ``scene_mode="distinct"`` (every class on its own texture) takes away. NaN when the
    classes have no look-alikes (Cityscapes) or nothing is wrong."""
    pairs = lookalike_pairs(class_names)
    pred = predict(model, images, channels, features)
    conf = confusion_matrix(pred, labels, len(class_names)).double()
    wrong = conf.sum() - conf.diag().sum()
    if not pairs or wrong == 0:
        return float("nan")
    return float(sum(conf[i, j] for i, j in pairs) / wrong)


def padded_flip_attack(settings, padding: str, seed: int | None = None) -> dict:
    """Chapter 4, exercise 3: one segmenter trained (or loaded) with ``padding`` at ``seed``
    (the first verdict seed unless given), on the chapter's scenes and recipe otherwise, and
    claim 4's experiment on it, as the verdict runs it (``flip_attack``). Returns its clean
    whole-frame mIoU and its ``extra_damage`` (random-N minus top-N mIoU)."""
    from .segment import SegmentationSetup, segmenter_config, train_segmenter
    from .scenes import CLASSES

    if settings.data != "scenes":
        raise ValueError(f"a segmenter with another padding is trained on the scenes only, "
                         f"got data={settings.data!r} (a checkpoint has its own padding)")
    seed = settings.seed if seed is None else seed
    run = train_segmenter(segmenter_config(settings, padding=padding, seed=seed))
    setup = SegmentationSetup(run.model, run.task.val.images, run.task.val.labels, CLASSES,
                              run)
    result = flip_attack(setup, settings, seed=seed)  # as the chapter's verdict
    return {"clean": result["clean"], "extra damage": extra_damage(result)}
