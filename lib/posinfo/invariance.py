"""How much a network's output and GAP latent change when its input shifts (claim 3).

Measurements of a trained model on a ``shifts.ShiftTask``'s test images, each at shifts
drawn from a fixed seed (``EVAL_SEED``) so that every model is measured on the same views:
``consistency`` (Zhang 2019) with the accuracy on the same shifted views,
``cut_consistency``, ``accuracy_vs_shift``, ``latent_distance`` and
``position_probe_accuracy``. Each docstring gives the metric's definition.

**Whole-digit views.** Translation invariance asks whether the answer changes when the
*same* object moves. A view that pushes part of the digit off the canvas also changes what
is shown, and no network, however shift-invariant, can be sure to answer alike for two
different contents. So every metric but ``cut_consistency`` draws its views within
``whole_digit_reach`` (shifts of at most the margin), where both views hold the whole
digit; ``cut_consistency`` is the separate, labelled measure of pairs in which a view cuts.

Used by chapter 3 (and chapter 1's exercise answers).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .probes import linear_probe, logits_and_latents
from .shifts import ShiftTask, random_offsets, shift_views

EVAL_SEED = 2021  # every model is measured on the same shifts


def _outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 512):
    """(logits, GAP latents) in batches, in full precision on the model's device; latents
    are None for a model without a backbone."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    batches = (x[start:start + batch_size] for start in range(0, len(x), batch_size))
    return logits_and_latents(model, batches, device)


def whole_digit_reach(task: ShiftTask) -> int:
    """The largest shift that keeps the whole image on the canvas: min(margin, max_shift)."""
    return min(task.margin, task.max_shift)


def cut_reach(task: ShiftTask) -> int:
    """How far ``cut_consistency`` moves a view: a quarter of the image beyond the margin
    (at least one pixel), so that a view may cut up to that much of it."""
    return task.margin + max(1, task.train.images.shape[-1] // 4)


def _pairs(task: ShiftTask, images: torch.Tensor, n_pairs: int, seed: int,
           reach: int | None = None):
    """Two views of every image at independent random offsets up to ``reach`` (default
    ``whole_digit_reach``: both views hold the whole image), n_pairs times over."""
    reach = whole_digit_reach(task) if reach is None else reach
    generator = torch.Generator().manual_seed(seed)
    images = images.repeat(n_pairs, 1, 1, 1)
    canvas = task.canvases(images, generator)
    (dy1, dx1), (dy2, dx2) = random_offsets(len(images), reach, generator), \
        random_offsets(len(images), reach, generator)
    return (shift_views(canvas, dy1, dx1, task.protocol),
            shift_views(canvas, dy2, dx2, task.protocol), (dy1, dx1, dy2, dx2))


def consistency_and_accuracy(model: nn.Module, task: ShiftTask, n_pairs: int = 1,
                             seed: int = EVAL_SEED) -> tuple[float, float]:
    """(consistency, shifted-view accuracy) on whole-digit pairs: Zhang (2019)'s fraction of
    test images whose predicted class is the same for two random shifts (each of the
    n_pairs pairs of every test image counts once; 1.0 means the prediction never depends
    on where the image is), and the accuracy over the same views."""
    view1, view2, _ = _pairs(task, task.test.images, n_pairs, seed)
    pred1, pred2 = _outputs(model, view1)[0].argmax(1), _outputs(model, view2)[0].argmax(1)
    labels = task.test.labels.cpu().repeat(n_pairs)
    return (float((pred1 == pred2).float().mean()),
            float(torch.cat([pred1 == labels, pred2 == labels]).float().mean()))


def consistency(model: nn.Module, task: ShiftTask, n_pairs: int = 1,
                seed: int = EVAL_SEED) -> float:
    """Consistency on whole-digit pairs (``consistency_and_accuracy``'s first number)."""
    return consistency_and_accuracy(model, task, n_pairs, seed)[0]


def cut_consistency(model: nn.Module, task: ShiftTask, n_pairs: int = 1,
                    seed: int = EVAL_SEED) -> float:
    """Consistency over *cut* pairs: views shifted up to ``cut_reach``, keeping the pairs in
    which at least one view moves beyond the margin and so loses part of the image. Two
    such views show different content; this measure mixes translation with lost content
    (the second edition's statistic was mostly this) and is reported beside the whole-digit
    consistency, never instead of it."""
    view1, view2, (dy1, dx1, dy2, dx2) = _pairs(task, task.test.images, n_pairs, seed,
                                                cut_reach(task))
    cut = torch.stack([dy1, dx1, dy2, dx2]).abs().amax(0) > task.margin
    same = _outputs(model, view1)[0].argmax(1) == _outputs(model, view2)[0].argmax(1)
    return float(same[cut].float().mean())


def accuracy_vs_shift(model: nn.Module, task: ShiftTask, shifts=None, seed: int = EVAL_SEED):
    """Test accuracy with the image moved d pixels down *and* right from the centre (the
    diagonal shift), for d = 0..max_shift. Returns (shifts, accuracies)."""
    shifts = list(range(task.max_shift + 1)) if shifts is None else list(shifts)
    images, labels = task.test.images, task.test.labels.cpu()
    canvas = task.canvases(images, torch.Generator().manual_seed(seed))
    accuracies = []
    for d in shifts:
        offset = torch.full((len(images),), d, dtype=torch.long)
        pred = _outputs(model, shift_views(canvas, offset, offset, task.protocol))[0].argmax(1)
        accuracies.append(float((pred == labels).float().mean()))
    return shifts, accuracies


def latent_distance(model: nn.Module, task: ShiftTask, n_pairs: int = 1,
                    seed: int = EVAL_SEED) -> float:
    """Latent stability as a normalised distance (lower = more stable):

        mean ||z(view1) - z(view2)|| / mean ||z(x_i) - z(x_j)||

    two random shifts of one test image in the numerator, two *different* test images (each at
    its own random shift) in the denominator. Dividing by the typical distance between images
    makes the number blind to the latent's scale, so a network cannot look stable by
    shrinking its latents; 0 means the shift leaves the latent unchanged, 1 means a shift
    moves it as far as swapping the image for another one."""
    view1, view2, _ = _pairs(task, task.test.images, n_pairs, seed)
    z1, z2 = _outputs(model, view1)[1], _outputs(model, view2)[1]
    other = torch.roll(torch.arange(len(z2)), 1)  # a different image (the test set is shuffled)
    return float((z1 - z2).norm(dim=1).mean() / (z1 - z2[other]).norm(dim=1).mean())


def position_bins(dy: torch.Tensor, dx: torch.Tensor, max_shift: int,
                  bins: int = 3) -> torch.Tensor:
    """The image's position as one of bins x bins regions of the offset square (row-major)."""
    def one(d):
        return torch.clamp((d + max_shift) * bins // (2 * max_shift + 1), 0, bins - 1)
    return one(dy) * bins + one(dx)


def position_probe_accuracy(model: nn.Module, task: ShiftTask, bins: int = 3, n_views: int = 4,
                            seed: int = EVAL_SEED) -> float:
    """Position decodability: held-out accuracy of a linear probe (``probes.linear_probe``,
    a ridge classifier) that reads the image's position, one of bins x bins regions of the
    whole-digit shift range, from the frozen GAP latent. Every test image is seen at n_views random
    shifts; the probe trains on half the images and is scored on the other half, so it cannot
    score by recognising an image. Chance is 1 / bins^2; lower means the latent carries less
    position."""
    view, _, (dy, dx, _, _) = _pairs(task, task.test.images, n_views, seed)
    latents = _outputs(model, view)[1].numpy()
    regions = position_bins(dy, dx, whole_digit_reach(task), bins).numpy()
    images = np.tile(np.arange(len(task.test)), n_views)
    return linear_probe(latents, regions, images, seed=seed)


@torch.no_grad()
def cell_spread(model: nn.Module, images: torch.Tensor, grid: int, cell: int) -> float:
    """How much a location network's logits move when one image moves between the cells of
    a blank grid x grid canvas of ``cell``-pixel cells (chapter 1, exercise 1).

    Each image is resized to ``cell`` pixels (as ``image_size`` would) and put in every
    cell; per image, the largest change of any logit from its value with the image in cell
    0, over the largest logit's size; the mean over images. 0: the network sees the same
    thing in every cell (circular padding when the cell is a multiple of its stride).
    """
    from .canvas import place_on_canvas

    if images.shape[-1] != cell:
        images = torch.nn.functional.interpolate(images, size=(cell, cell),
                                                 mode="bilinear", align_corners=False)
    k = grid * grid
    n = len(images)
    cells = torch.arange(k).repeat(n)
    canvases = place_on_canvas(images.repeat_interleave(k, 0), cells, grid)
    logits = _outputs(model.eval(), canvases)[0].reshape(n, k, -1)
    change = (logits - logits[:, :1]).abs().amax(dim=(1, 2))
    return float((change / logits.abs().amax(dim=(1, 2)).clamp(min=1e-12)).mean())
