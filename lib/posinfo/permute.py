"""PermuteNet: shuffle the order of the channels at random on every forward pass.

If position is carried by *which* channel fires, a fresh random channel order at every pass
(in training and in evaluation alike) leaves the layers after it nothing stable to read
position from, while information carried by the *values* regardless of order survives.

Placements follow the reference code: k in 1..S shuffles the input of backbone stage k;
S + 1 (5 for a four-stage ResNet-18) shuffles the pooled vector after GAP, before the
linear classifier.

Used by chapter 2.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .checks import check_placement
from .models import Classifier, GAPLinear


def permute_channels(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, ...) with its channels reordered: ``out[:, c] = x[:, order[c]]`` for one
    order of shape (C,) shared by the batch (the reference code's shuffle), or
    ``out[n, c] = x[n, order[n, c]]`` for one order per sample, shape (N, C)."""
    if order.dim() == 1:
        return x[:, order]
    if tuple(order.shape) != tuple(x.shape[:2]):
        raise ValueError(f"order must have shape (C,) or (N, C) = {tuple(x.shape[:2])}, "
                         f"got {tuple(order.shape)}")
    return x[torch.arange(len(x), device=x.device)[:, None], order]


class ChannelPermutation(nn.Module):
    """Reorders dim 1 with a new random permutation at every call, training or not.

    It draws from its own seeded generator so that a run repeats exactly; the same
    permutation is used for the whole batch, as in the reference code.
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x):
        order = torch.randperm(x.shape[1], generator=self.generator).to(x.device)
        return permute_channels(x, order)


def num_stages(model: Classifier) -> int:
    return sum(1 for name in model.backbone._modules if name.startswith("stage"))


def add_channel_permutation(model: Classifier, placement: int, seed: int = 0) -> Classifier:
    """Insert a ChannelPermutation into ``model`` in place and return it."""
    stages = num_stages(model)
    check_placement(placement, stages)
    shuffle = ChannelPermutation(seed)
    if placement <= stages:
        name = f"stage{placement}"
        model.backbone._modules[name] = nn.Sequential(shuffle, model.backbone._modules[name])
    else:
        if not isinstance(model.head, GAPLinear):
            raise ValueError(f"permute_at={placement} (after GAP) needs head='gap_linear': the "
                             f"GAPNet head has no pooled vector before its logits")
        model.head.fc = nn.Sequential(shuffle, model.head.fc)
    return model


def reseed_permutations(model: nn.Module, seed: int) -> None:
    """Restart every ChannelPermutation's generator, so evaluation draws the same shuffles
    whether the model was just trained or loaded from the cache."""
    for module in model.modules():
        if isinstance(module, ChannelPermutation):
            module.generator.manual_seed(seed)


# A baseline less than this share of the way from chance to perfect has not learnt the task:
# dividing by its margin over chance would turn noise into any number at all.
LEARNT_FLOOR = 0.1


def retention(shuffled, baseline, chance: float):
    """Share of the above-chance accuracy a network keeps under the shuffle:
    (shuffled - chance) / (baseline - chance), elementwise over paired seeds. 1 means the
    shuffle cost nothing, 0 means it fell to chance. Location and class have different
    chance levels; on this scale the two tasks can be compared (the paper's asymmetry).

    The denominator is at least LEARNT_FLOOR * (1 - chance): a baseline still at chance
    (after one epoch, say) has nothing to keep, and its share stays near 0 instead of
    exploding."""
    shuffled, baseline = np.asarray(shuffled, float), np.asarray(baseline, float)
    floor = LEARNT_FLOOR * (1 - chance)
    return (shuffled - chance) / np.maximum(baseline - chance, floor)
