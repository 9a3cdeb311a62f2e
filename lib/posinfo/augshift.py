"""AugShift (claim 3): two shifted views of each image, and a penalty on their GAP latents.

The training objective for one batch of images and labels ``y`` is

    CE(f(view1), y) + CE(f(view2), y) + lambda * MSE(z(view1), z(view2))

where ``z`` is the global average pool of the backbone's last feature map. ``lambda = 0``
is the fair baseline: the very same views and the same two classification losses, only the
consistency term is missing. The authors did not release this code; the definitions here
are the reference implementation of the book, and each metric's docstring gives its
definition.

Geometry: an image of side ``s`` sits in the middle of a canvas of side ``s + 2 * margin``.
A *view* shifts the canvas content by (dy, dx) with |dy|, |dx| <= max_shift <= margin, so no
pixel of the image ever leaves the canvas. Two protocols shift it: ``crop`` reads the view as
a crop of the zero-padded canvas (fresh zeros come in at the edge), ``roll`` shifts the
canvas circularly (what leaves one edge comes back at the other, as ``torch.roll``). On a
blank canvas the two give identical pixels; on a textured one they differ at the edges.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .canvas import ImageSet, load_split, make_background, paste
from .models import build_classifier, check_blur_size, check_input_size, global_average_pool
from .probes import linear_probe
from .settings import SHIFT_PROTOCOLS, Settings
from .train import (TrainedModel, cached_fit, evaluate, pick_device, seeded_generator,
                    to_device, train_budgets)


# ---- parameters checked before any work ----------------------------------------------------
def check_lambda(value, name: str = "augshift_lambda") -> float:
    """The consistency weight: a number >= 0 (0 is the baseline)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0 (0 = no consistency term), got {value!r}")
    return float(value)


def check_shift(max_shift: int, margin: int) -> None:
    """A view may move the image by at most the blank margin around it, else pixels are lost."""
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or not 0 <= max_shift <= margin:
        raise ValueError(f"max_shift must be an integer in [0, {margin}] (the canvas margin, "
                         f"margin={margin}), got {max_shift!r}")


def check_protocol(protocol: str) -> None:
    if protocol not in SHIFT_PROTOCOLS:
        raise ValueError(f"shift_protocol must be one of {SHIFT_PROTOCOLS}, got {protocol!r}")


# ---- views ---------------------------------------------------------------------------------
def centred_canvases(images: torch.Tensor, margin: int, background: torch.Tensor | None = None):
    """Each image in the middle of its own canvas of side s + 2 * margin (zeros or ``background``)."""
    n, c, h, w = images.shape
    canvas = (images.new_zeros(n, c, h + 2 * margin, w + 2 * margin) if background is None
              else background.clone())
    offset = torch.full((n,), margin, dtype=torch.long)
    return paste(images, canvas, offset, offset)


def shift_views(canvases: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                protocol: str = "crop") -> torch.Tensor:
    """Canvas i with its content moved down dy[i] and right dx[i] pixels, the whole batch at once.

    ``crop``: out[r, c] = in[r - dy, c - dx], zero where that falls outside the canvas (a crop
    of the zero-padded canvas). ``roll``: the same indices taken modulo the side, which is
    ``torch.roll(canvas, (dy, dx), dims=(-2, -1))`` for every image with its own shift.
    """
    check_protocol(protocol)
    n, c, h, w = canvases.shape
    dev = canvases.device
    rows = torch.arange(h, device=dev)[None, :] - dy.to(dev)[:, None]  # n, h: source rows
    cols = torch.arange(w, device=dev)[None, :] - dx.to(dev)[:, None]  # n, w
    if protocol == "roll":
        rows, cols = rows % h, cols % w
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    batch = torch.arange(n, device=dev)[:, None, None]
    out = canvases[batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
    return (out * inside[..., None]).permute(0, 3, 1, 2).contiguous()  # n,h,w,c -> n,c,h,w


def random_offsets(n: int, max_shift: int, generator: torch.Generator):
    """(dy, dx), each uniform over the integers in [-max_shift, max_shift]."""
    offsets = torch.randint(-max_shift, max_shift + 1, (2, n), generator=generator)
    return offsets[0], offsets[1]


@dataclass
class ShiftTask:
    """Classify images that sit at a random position on a larger canvas.

    ``train_batches`` yields both views stacked, (2B, C, S, S), the B labels, and the (dy, dx)
    offsets of the two views, for ``AugShiftLoss``. ``test_batches`` yields the unshifted
    (centred) test canvases, so ``train.evaluate`` measures clean accuracy.
    """
    train: ImageSet
    test: ImageSet
    margin: int
    max_shift: int
    protocol: str = "crop"
    background: str = "zeros"
    grid = 1  # one "cell": train.evaluate reports a single accuracy

    def __post_init__(self):
        check_shift(self.max_shift, self.margin)
        check_protocol(self.protocol)

    @property
    def canvas_size(self) -> int:
        return self.train.images.shape[-1] + 2 * self.margin

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def num_outputs(self) -> int:
        return self.train.num_classes

    def canvases(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        background = make_background(self.background, len(images), images.shape[1],
                                     self.canvas_size, generator, images.device)
        return centred_canvases(images, self.margin, background)

    def views(self, images, dy, dx, generator) -> torch.Tensor:
        return shift_views(self.canvases(images, generator), dy, dx, self.protocol)

    def train_batches(self, batch_size: int, generator: torch.Generator):
        """One epoch: for each image two views at independent random offsets."""
        n = len(self.train)
        order = torch.randperm(n, generator=generator)
        dy1, dx1 = random_offsets(n, self.max_shift, generator)
        dy2, dx2 = random_offsets(n, self.max_shift, generator)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            images = self.train.images[idx.to(self.train.images.device)]
            # One canvas (one background draw) for both views: they differ only by the shift.
            canvas = self.canvases(images, generator)
            both = shift_views(canvas.repeat(2, 1, 1, 1), torch.cat([dy1[idx], dy2[idx]]),
                               torch.cat([dx1[idx], dx2[idx]]), self.protocol)
            offsets = torch.stack([dy1[idx], dx1[idx], dy2[idx], dx2[idx]], 1)
            yield both, self.train.labels[idx.to(self.train.labels.device)], offsets

    def test_batches(self, batch_size: int = 512):
        """Every test image once, unshifted; backgrounds from a fixed seed."""
        g = torch.Generator().manual_seed(12345)
        for start in range(0, len(self.test), batch_size):
            images = self.test.images[start:start + batch_size]
            yield (self.canvases(images, g), self.test.labels[start:start + batch_size],
                   torch.zeros(len(images), dtype=torch.long))


def make_shift_task(settings, device=None) -> ShiftTask:
    train, test = load_split(settings, device)
    return ShiftTask(train, test, settings.margin, settings.max_shift, settings.shift_protocol,
                     settings.background)


# ---- the loss ------------------------------------------------------------------------------
def augshift_terms(model: nn.Module, view1: torch.Tensor, view2: torch.Tensor, y: torch.Tensor):
    """(CE of view 1, CE of view 2, MSE between the two views' GAP latents), one forward pass.

    Both views go through the backbone as one batch, so BatchNorm sees them together.
    """
    features = model.backbone(torch.cat([view1, view2]))
    logits1, logits2 = model.head(features).chunk(2)
    latent1, latent2 = global_average_pool(features).chunk(2)
    return (F.cross_entropy(logits1, y), F.cross_entropy(logits2, y),
            F.mse_loss(latent1, latent2))


class AugShiftLoss:
    """CE(view 1) + CE(view 2) + lambda * MSE(latent 1, latent 2), as ``train.fit``'s loss_fn.

    ``x`` holds the two views stacked (ShiftTask.train_batches).
    """

    def __init__(self, lam: float):
        self.lam = check_lambda(lam, "lam")

    def __call__(self, model, x, y):
        ce1, ce2, mse = augshift_terms(model, *x.chunk(2), y)
        return ce1 + ce2 + self.lam * mse if self.lam else ce1 + ce2


# ---- training ------------------------------------------------------------------------------
def augshift_config(settings, lam: float, blurpool: bool, seed: int) -> dict:
    """Everything that changes one run's weights (the cache key)."""
    keys = ("dataset", "image_size", "margin", "max_shift", "shift_protocol", "background",
            "padding", "head", "width", "blocks", "epochs", "batch_size", "lr", "betas",
            "n_train", "n_test")
    config = {k: settings[k] for k in keys}
    config.update(lam=check_lambda(lam), blurpool=settings.blur_size if blurpool else None,
                  seed=seed)
    return config


def train_augshift(config: dict, device=None, use_cache: bool = True,
                   snapshots=()) -> TrainedModel:
    """Train (or load from the cache) one AugShift run and evaluate its clean accuracy;
    ``snapshots``: shorter budgets to cache on the way (see ``train.cached_fit``)."""
    device = pick_device(device)
    task = make_shift_task(Settings(config), device=device)
    seeded_generator(config["seed"])  # seeds the weight init
    model = build_classifier(task.in_channels, task.num_outputs, config["width"], config["blocks"],
                             config["padding"], config["head"], config["blurpool"])
    desc = f"lambda {config['lam']:g} blur {config['blurpool']} seed {config['seed']}"
    history, from_cache = cached_fit(config, model, task, loss_fn=AugShiftLoss(config["lam"]),
                                     device=device, desc=desc, use_cache=use_cache,
                                     snapshots=snapshots)
    return TrainedModel(model, task, history, evaluate(model, task, device), from_cache)


# ---- invariance metrics --------------------------------------------------------------------
EVAL_SEED = 2021  # every model is measured on the same shifts


@torch.no_grad()
def _outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 512):
    """(logits, GAP latents) in batches; latents are None for a model without a backbone."""
    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    logits, latents = [], []
    for start in range(0, len(x), batch_size):
        xb = to_device(x[start:start + batch_size], device)
        if hasattr(model, "backbone"):
            features = model.backbone(xb)
            logits.append(model.head(features).float().cpu())
            latents.append(global_average_pool(features).float().cpu())
        else:
            logits.append(model(xb).float().cpu())
    return torch.cat(logits), (torch.cat(latents) if latents else None)


def _pairs(task: ShiftTask, images: torch.Tensor, n_pairs: int, seed: int):
    """Two views of every image at independent random offsets, n_pairs times over."""
    g = torch.Generator().manual_seed(seed)
    images = images.repeat(n_pairs, 1, 1, 1)
    canvas = task.canvases(images, g)
    (dy1, dx1), (dy2, dx2) = random_offsets(len(images), task.max_shift, g), \
        random_offsets(len(images), task.max_shift, g)
    return (shift_views(canvas, dy1, dx1, task.protocol), shift_views(canvas, dy2, dx2, task.protocol),
            (dy1, dx1, dy2, dx2))


def consistency(model: nn.Module, task: ShiftTask, n_pairs: int = 1, seed: int = EVAL_SEED) -> float:
    """Zhang (2019): the fraction of test images whose predicted class is the same for two
    random shifts (each of the n_pairs pairs of every test image counts once). 1.0 means the
    prediction never depends on where the image is."""
    view1, view2, _ = _pairs(task, task.test.images, n_pairs, seed)
    return float((_outputs(model, view1)[0].argmax(1) == _outputs(model, view2)[0].argmax(1))
                 .float().mean())


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


def latent_distance(model: nn.Module, task: ShiftTask, n_pairs: int = 1, seed: int = EVAL_SEED) -> float:
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


def position_bins(dy: torch.Tensor, dx: torch.Tensor, max_shift: int, bins: int = 3) -> torch.Tensor:
    """The image's position as one of bins x bins regions of the offset square (row-major)."""
    def one(d):
        return torch.clamp((d + max_shift) * bins // (2 * max_shift + 1), 0, bins - 1)
    return one(dy) * bins + one(dx)


def position_probe_accuracy(model: nn.Module, task: ShiftTask, bins: int = 3, n_views: int = 4,
                            seed: int = EVAL_SEED) -> float:
    """Position decodability: held-out accuracy of a linear probe (``probes.linear_probe``,
    a ridge classifier) that reads the image's position, one of bins x bins regions of the
    shift range, from the frozen GAP latent. Every test image is seen at n_views random
    shifts; the probe trains on half the images and is scored on the other half, so it cannot
    score by recognising an image. Chance is 1 / bins^2; lower means the latent carries less
    position."""
    view, _, (dy, dx, _, _) = _pairs(task, task.test.images, n_views, seed)
    latents = _outputs(model, view)[1].numpy()
    regions = position_bins(dy, dx, task.max_shift, bins).numpy()
    images = np.tile(np.arange(len(task.test)), n_views)
    return linear_probe(latents, regions, images, seed=seed)


# ---- the chapter's experiment ----------------------------------------------------------------
@dataclass
class RunResult:
    """One trained arm at one seed, with every metric of the chapter."""
    arm: str
    lam: float
    blurpool: bool
    seed: int
    clean_accuracy: float
    consistency: float
    latent_distance: float
    position_probe: float
    shift_curve: list
    from_cache: bool
    # consistency at each training budget (epochs) of the budget curve
    by_budget: dict = field(default_factory=dict)


def measure(arm: str, config: dict, n_pairs: int, budgets=()) -> RunResult:
    """Every metric of one arm at config["epochs"]; with ``budgets``, also its consistency
    at each budget (snapshots of the same run, see ``train.train_budgets``)."""
    runs = train_budgets(train_augshift, config, {*budgets, config["epochs"]})
    run = runs[config["epochs"]]
    model, task = run.model, run.task
    return RunResult(arm, config["lam"], config["blurpool"] is not None, config["seed"],
                     run.evaluation.accuracy, consistency(model, task, n_pairs),
                     latent_distance(model, task, n_pairs), position_probe_accuracy(model, task),
                     accuracy_vs_shift(model, task)[1], run.from_cache,
                     {k: consistency(r.model, r.task, n_pairs) for k, r in runs.items()})


def arms(settings) -> dict:
    """{arm name: (lambda, blurpool)}: baseline, the lambda sweep, BlurPool, and both."""
    lam = settings.augshift_lambda
    table = {"baseline": (0.0, False)}
    for sweep_lam in sorted(set(settings.lambdas) | {lam}):
        if sweep_lam > 0:
            table[f"AugShift λ={sweep_lam:g}"] = (sweep_lam, False)
    table["BlurPool"] = (0.0, True)
    table[f"AugShift λ={lam:g} + BlurPool"] = (lam, True)
    return table


def verdict_arms(settings) -> tuple[str, str]:
    """(baseline, AugShift at augshift_lambda): the two arms the verdict compares."""
    return "baseline", f"AugShift λ={settings.augshift_lambda:g}"


def run_experiment(settings, progress=print) -> list[RunResult]:
    """Every arm trained with the same budget (epochs). The verdict's two arms run at every
    seed and carry the budget curve; the others (ablations) at the first ablation_seeds."""
    results = []
    judged = verdict_arms(settings)
    for name, (lam, blur) in arms(settings).items():
        seeds = settings.seeds if name in judged else settings.ablations
        budgets = settings.budget_epochs if name in judged else ()
        for seed in seeds:
            config = augshift_config(settings, lam, blur, seed)
            results.append(measure(name, config, settings.n_pairs, budgets))
        if progress:
            progress(f"{name:<28} done")
    return results


METRICS = ("clean_accuracy", "consistency", "latent_distance", "position_probe")


def summarise(results: list[RunResult]) -> dict:
    """{arm: {metric: (mean, std over seeds)}}; std is the sample standard deviation (0 for one seed)."""
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


def per_seed(results: list[RunResult], arm: str, metric: str, budget=None) -> np.ndarray:
    """One arm's metric at each seed, in seed order: arms that share seeds line up, so
    two such arrays can be compared seed by seed (paired). With ``budget``, the metric
    (consistency) at that many epochs of training."""
    found = sorted((r.seed, getattr(r, metric) if budget is None else r.by_budget[budget])
                   for r in results if r.arm == arm)
    if not found:
        raise ValueError(f"arm must be one of {sorted({r.arm for r in results})}, got {arm!r}")
    return np.array([value for _, value in found], dtype=float)


def markdown_table(summary: dict) -> str:
    """The chapter's table: mean ± std over seeds of every metric, one row per arm."""
    header = ("| arm | clean accuracy ↑ | consistency ↑ | latent distance ↓ | position probe ↓ |\n"
              "|---|---|---|---|---|")
    rows = [f"| {arm} | " + " | ".join(f"{row[m][0]:.3f} ± {row[m][1]:.3f}" for m in METRICS) + " |"
            for arm, row in summary.items()]
    return "\n".join([header, *rows])


def check_settings(settings) -> None:
    """Cross-checks that need several values: the shift fits the margin, the net fits the canvas."""
    check_shift(settings.max_shift, settings.margin)
    if settings.augshift_lambda == 0:
        # lambda 0 *is* the baseline arm; the chapter compares AugShift against it
        raise ValueError("augshift_lambda must be a number > 0 (lambda 0 is the baseline arm, "
                         "always trained), got 0")
    check_input_size(settings.image_size + 2 * settings.margin, settings.blocks, settings.padding)
    # The BlurPool arms always train: a blur wider than the last stage's map would fail in
    # its padding after the baseline arms had trained.
    check_blur_size(settings.blur_size, settings.image_size + 2 * settings.margin,
                    settings.blocks, settings.padding)
