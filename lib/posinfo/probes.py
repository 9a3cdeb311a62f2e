"""Read what a trained network's GAP latent holds: linear probes and channel selectivity.

The sorted-latent probe is the chapter-2 control: sorting each latent vector keeps the
multiset of activation values and destroys only the order of the channels. A probe that
reads location from the ordered latent but not from the sorted one shows that location is
carried by *which* channel is active, not by how the activations are distributed.

Used by chapters 1 and 2, and chapter 3 through ``invariance``.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .canvas import CanvasTask
from .models import global_average_pool
from .train import autocast, pick_device, prepare_model, to_device

LABELS = ("cell", "class")


@torch.no_grad()
def logits_and_latents(model, batches, device: torch.device, *, logits: bool = True,
                       mixed_precision: bool = False):
    """Run ``model`` (in eval mode) over ``batches`` of inputs on ``device``: its logits and
    the GAP of its backbone's last feature map, each one float32 CPU tensor over all batches.

    ``logits=False`` stops at the latents: the head never runs (a head that draws random
    numbers, PermuteNet's shuffle after GAP, draws none). A model without a ``backbone``
    gives logits only (latents None). ``mixed_precision``: under ``train.autocast``.
    """
    model.eval()
    all_logits, all_latents = [], []
    for x in batches:
        x = to_device(x, device)
        with autocast(device) if mixed_precision else contextlib.nullcontext():
            if hasattr(model, "backbone"):
                features = model.backbone(x)
                if logits:
                    all_logits.append(model.head(features).float().cpu())
                all_latents.append(global_average_pool(features).float().cpu())
            else:
                all_logits.append(model(x).float().cpu())
    return (torch.cat(all_logits) if all_logits else None,
            torch.cat(all_latents) if all_latents else None)


def gap_latents(model, task: CanvasTask, device=None, batch_size: int = 512) -> np.ndarray:
    """GAP of the backbone's last feature map for every test canvas, (N, C) float array.

    Rows follow ``task.test_labels()``: every held-out image in every cell.
    """
    if not hasattr(model, "latent"):
        raise ValueError(f"probes need a model with GAP latents (a posinfo Classifier with a "
                         f"`latent` method), got {type(model).__name__}")
    device = pick_device(device)
    prepare_model(model, device)
    batches = (x for x, _, _ in task.test_batches(batch_size))
    return logits_and_latents(model, batches, device, logits=False,
                              mixed_precision=True)[1].numpy()


def sorted_latent(z: np.ndarray) -> np.ndarray:
    """Each row sorted in ascending order: same values, channel order destroyed."""
    return np.sort(z, axis=1)


def linear_probe(features: np.ndarray, labels, groups, seed: int = 0) -> float:
    """Held-out accuracy of a linear probe (ridge classifier on standardised features).

    Ridge is closed-form: fast and deterministic, and as linear as logistic regression.
    The split is by ``groups`` (the source image): half the images train the probe, the
    other half test it, so the probe cannot score by recognising an image it has seen in
    another cell.
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    rng = np.random.default_rng(seed)
    unique = np.unique(groups)
    held_out = np.isin(groups, rng.permutation(unique)[: len(unique) // 2])
    probe = make_pipeline(StandardScaler(), RidgeClassifier(alpha=1.0))
    probe.fit(features[~held_out], labels[~held_out])
    return float(probe.score(features[held_out], labels[held_out]))


def probe_table(z: np.ndarray, labels: dict, seed: int = 0) -> dict:
    """{(latent order, label): accuracy} for ordered vs sorted latents, cell vs class."""
    table = {}
    for order, features in (("ordered", z), ("sorted", sorted_latent(z))):
        for name in LABELS:
            table[(order, name)] = linear_probe(features, labels[name], labels["image"], seed)
    return table


def probe_rows(tables: dict, chance: dict) -> dict:
    """Rows for ``tables.format_table``: for each network, ``{trained for: probe_table}``,
    the probes' accuracy for each label from the ordered and the sorted latent; a last row,
    each label's chance (the cell's is the location task's, ``chance["location"]``)."""
    task_of = {"cell": "location", "class": "class"}
    columns = [(label, order) for label in LABELS for order in ("ordered", "sorted")]
    rows = {name: {f"{label}, {order}": table[(order, label)] for label, order in columns}
            for name, table in tables.items()}
    rows["chance"] = {f"{label}, {order}": chance[task_of[label]] for label, order in columns}
    return rows


def selectivity(z: np.ndarray, labels) -> np.ndarray:
    """Per channel, the share of its variance explained by the label (eta squared, 0..1).

    1 means the channel's value is fixed by the label (e.g. it is high in one cell and low
    in the others); 0 means the label tells nothing about it.
    """
    labels = np.asarray(labels)
    total = z.var(axis=0)
    means = np.stack([z[labels == v].mean(axis=0) for v in np.unique(labels)])
    counts = np.array([(labels == v).sum() for v in np.unique(labels)])
    between = (counts[:, None] * (means - z.mean(axis=0)) ** 2).sum(axis=0) / len(labels)
    return np.divide(between, total, out=np.zeros_like(total), where=total > 1e-12)


def cell_means(z: np.ndarray, cells, grid: int) -> np.ndarray:
    """(C, g*g): mean latent of each channel for canvases with the object in each cell."""
    cells = np.asarray(cells)
    return np.stack([z[cells == k].mean(axis=0) for k in range(grid * grid)], axis=1)


def with_padding(model: torch.nn.Module, padding: str) -> torch.nn.Module:
    """A copy of ``model`` whose padded convolutions pad as ``padding`` says ("zeros",
    "circular", "reflect", "replicate"); the weights are untouched (chapter 2, exercise 3:
    the chapter's classifier with circular padding, no retraining)."""
    import copy

    allowed = ("zeros", "circular", "reflect", "replicate")
    if padding not in allowed:
        raise ValueError(f"padding must be one of {allowed}, got {padding!r}")
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d) and any(module.padding):
            module.padding_mode = padding
    return model


@torch.no_grad()
def accuracy_with_channels(model, task: CanvasTask, keep, device=None) -> float:
    """Accuracy on ``task``'s test set with every channel of the backbone's output zeroed
    except the ``keep`` indices, before the head (chapter 1, exercise 3: how many of a
    trained network's channels its answer needs)."""
    from .train import evaluate

    keep = torch.as_tensor(keep, dtype=torch.long).flatten()
    channels = model.backbone.out_channels
    if len(keep) and (keep.min() < 0 or keep.max() >= channels):
        raise ValueError(f"keep must lie in [0, {channels - 1}] for a backbone of "
                         f"{channels} channels, got {keep.tolist()}")

    def only_kept(_module, _inputs, output):
        mask = torch.zeros(output.shape[1], dtype=output.dtype, device=output.device)
        mask[keep.to(output.device)] = 1
        return output * mask[:, None, None]

    handle = model.backbone.register_forward_hook(only_kept)
    try:
        return evaluate(model, task, device).accuracy
    finally:
        handle.remove()
