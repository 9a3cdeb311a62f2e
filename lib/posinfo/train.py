"""One training loop and one evaluation for every chapter; device, seeds and the model cache.

``fit`` knows nothing about the task: it asks the task for batches and a ``loss_fn`` for the
loss, so AugShift's two-view loss and plain cross-entropy share the same loop.

Used by every chapter.
"""
from __future__ import annotations

import contextvars
import functools
import json
import math
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from . import cache
from .canvas import CanvasTask, make_task
# re-exported: the chapters and tools import them from here
from .device import autocast, env_choice, pick_device, prepare_model, to_device  # noqa: F401
from .models import build_classifier
from .permute import add_channel_permutation, reseed_permutations
from .settings import Settings


def seed_everything(seed: int) -> None:
    """Seed every library's global RNG: Python's, numpy's and torch's (the weight init)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def data_generator(seed: int) -> torch.Generator:
    """The run's own generator, seeded with ``seed``.

    It drives everything the run samples (batch order, cells, backgrounds), so two runs
    with one seed see identical data in identical order.
    """
    return torch.Generator().manual_seed(seed)


# torch.compile is a speed knob, like the device: it changes rounding, never the recipe, so it
# is not part of a model's cache key. Off by default: on the 2-core CPU it measured 0.97-1.29x
# eager speed (within noise) after up to 40 s of compilation per model; on a GPU at paper
# scale it should pay. "aot_eager" and "eager" only trace
# (no code generation) and serve to check that a model compiles at all.
COMPILE_ENV = "POSINFO_COMPILE"
COMPILE_BACKENDS = ("off", "inductor", "aot_eager", "eager")


def compile_backend(backend: str | None = None) -> str:
    """The torch.compile backend to train with: ``backend``, else $POSINFO_COMPILE, else off."""
    return env_choice(COMPILE_ENV, COMPILE_BACKENDS, "off", backend, name="compile")


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The default loss: cross-entropy of the model's logits."""
    return F.cross_entropy(model(x), y)


def fit(model: nn.Module, task: CanvasTask, *, epochs: int, batch_size: int, lr: float,
        betas=(0.9, 0.999), generator: torch.Generator, loss_fn=cross_entropy_loss,
        device=None, desc: str = "train", compile: str | None = None,
        on_epoch_end=None) -> list[float]:
    """Train with Adam; returns the mean training loss of each epoch.

    ``on_epoch_end(epoch, model, history)``, if given, runs after each epoch (1-based): the
    hook ``cached_fit`` uses to keep snapshots of a long run at shorter budgets.

    ``compile`` names a torch.compile backend (see ``compile_backend``; default: the
    POSINFO_COMPILE environment variable, else off). The model is compiled in place, so its
    state dict, and hence the cache, is the same as without.

    On CUDA, without compile and unless POSINFO_GRAPH=off, the loop is ``graphed``'s: the
    epoch drawn on the device and the step replayed as a CUDA graph (every batch full: the
    last one is completed with the epoch's first images). On the CPU, this loop.
    """
    backend = compile_backend(compile)
    device = pick_device(device)
    if device.type == "cuda":  # the CPU path never imports the graphed loop
        from . import graphed
        if graphed.use_graph(device, task, backend):
            return graphed.fit_graphed(model, task, epochs=epochs, batch_size=batch_size, lr=lr,
                                       betas=betas, generator=generator, loss_fn=loss_fn,
                                       device=device, desc=desc, on_epoch_end=on_epoch_end)
    prepare_model(model, device)
    if backend != "off":
        model.compile(backend=backend)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    history = []
    steps = epochs * -(-len(task.train) // batch_size)
    quiet = os.environ.get("POSINFO_PROGRESS") == "off"  # executed notebooks: no bar clutter
    with tqdm(total=steps, desc=desc, leave=False, mininterval=1.0, disable=quiet) as bar:
        for _ in range(epochs):
            model.train()
            # Summed on the device: loss.item() every step would make the CPU wait for the GPU
            # once more per step. Not the only wait: the batch's indices still come from a
            # CPU generator, and each copy to the GPU waits too (bench --gpu: 0.92-0.96x of
            # an eager step that builds its batches on the GPU).
            total, count = torch.zeros((), dtype=torch.float64, device=device), 0
            for x, y, _cells in task.train_batches(batch_size, generator):
                x, y = to_device(x, device), y.to(device)
                with autocast(device):
                    loss = loss_fn(model, x, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.detach().double() * len(y)
                count += len(y)
                bar.update(1)
            history.append(float(total) / count)
            bar.set_postfix(loss=f"{history[-1]:.3f}")
            if on_epoch_end is not None:
                on_epoch_end(len(history), model, history)
    return history


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, task, batch_size: int, seed: int,
                          device=None) -> nn.Module:
    """Replace every BatchNorm's running statistics by their average over one pass of the
    training batches (Wu and Johnson 2021's "precise BN"), then leave the model in eval mode.

    Why: a running average with momentum 0.1 remembers the last ten or so batches, while
    Adam keeps moving the weights under it; evaluated with such stale statistics, chapter
    3's networks swung between 0.4 and 0.93 clean accuracy from one epoch to the next (0.97
    with the batch's own statistics). An equal-weight average over a fixed pass of training
    batches (no labels, no test images) is the population the weights were trained for.
    The pass is seeded, so the statistics are a function of the weights alone.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    device = pick_device(device)
    prepare_model(model, device)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative, equal-weight average over the pass
    model.train()
    try:
        for x, _y, _cells in task.train_batches(batch_size, data_generator(seed)):
            with autocast(device):
                model(to_device(x, device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return model.eval()


@dataclass
class Evaluation:
    """Accuracy overall and per grid cell (a grid x grid array, row-major like the cells)."""
    accuracy: float
    per_cell: np.ndarray


@torch.no_grad()
def evaluate(model: nn.Module, task: CanvasTask, device=None, batch_size: int = 512) -> Evaluation:
    """Accuracy on the exhaustive test set (every held-out image in every cell)."""
    device = pick_device(device)
    prepare_model(model, device).eval()
    k = task.grid ** 2
    correct, seen = torch.zeros(k), torch.zeros(k)
    for x, y, cells in task.test_batches(batch_size):
        with autocast(device):
            pred = model(to_device(x, device)).argmax(1)
        hit = (pred == y.to(device)).float().cpu()
        correct.index_add_(0, cells, hit)
        seen.index_add_(0, cells, torch.ones_like(hit))
    per_cell = (correct / seen.clamp(min=1)).reshape(task.grid, task.grid).numpy()
    return Evaluation(float(correct.sum() / seen.sum()), per_cell)


@dataclass
class TrainedModel:
    model: nn.Module
    task: CanvasTask
    history: list
    evaluation: Evaluation
    from_cache: bool


def accuracy_above_chance(runs: dict) -> dict[int, float]:
    """Claim 1's per-seed statistic: each run's held-out accuracy minus its task's chance,
    {seed: value} (``runs``: {seed: TrainedModel}, the main GAPNet at each verdict seed)."""
    return {seed: float(run.evaluation.accuracy - run.task.chance) for seed, run in runs.items()}


def model_config(settings, target: str = "location", **changes) -> dict:
    """The full description of one training run: everything that changes the weights."""
    keys = ("dataset", "image_size", "normalize", "hflip", "grid", "background", "padding",
            "head", "width", "blocks", "epochs", "batch_size", "lr", "betas", "n_train",
            "n_test", "seed")
    config = {k: settings[k] for k in keys}
    config.update(target=target, **changes)
    return config


def epochs_for_grid(epochs: int, grid: int, base_grid: int) -> int:
    """Epochs that give a grid x grid task as many training canvases per cell as base_grid had.

    A 4x4 grid has 16 location classes to 3x3's 9: with the same epochs each cell is seen
    16/9 times less often, which would confound "harder to learn" with "not learned yet".
    """
    return max(1, -(-epochs * grid * grid // (base_grid * base_grid)))


def build_model(config: dict, task) -> nn.Module:
    """The classifier a config describes (with its channel shuffle, if any), untrained."""
    model = build_classifier(task.in_channels, task.num_outputs, config["width"],
                             config["blocks"], config["padding"], config["head"])
    if config.get("permute_at"):
        add_channel_permutation(model, config["permute_at"], seed=config["seed"])
    return model


# ---- planned training ---------------------------------------------------------------------
# A chapter trains its runs one after another, each at batch 48: on a GPU that leaves most of
# the chip idle. With $POSINFO_PLAN naming a file, a chapter executes as a *plan pass*: every
# run it would train is appended to that file as one JSON line (its trainer, config and
# snapshots) instead of being trained, and the chapter goes on with the untrained model, so
# everything after training runs too (and costs what evaluation costs). ``tools.prefetch``
# then trains the planned runs several at once into the model cache, and the chapter's real
# pass finds every one of them there. Each run is the run the chapter would have trained: the
# same trainer called with the same config, so the same cache key.
PLAN_ENV = "POSINFO_PLAN"
_PLANNED_CALL = contextvars.ContextVar("planned_call", default=None)


def plannable(trainer):
    """Mark a trainer, ``trainer(config, device=None, use_cache=True, snapshots=())``, whose
    runs a plan pass records (see PLAN_ENV): ``tools.prefetch`` calls it again by its name
    with the recorded config and snapshots."""
    name = f"{trainer.__module__}:{trainer.__qualname__}"

    @functools.wraps(trainer)
    def wrapper(config: dict, device=None, use_cache: bool = True, snapshots=()):
        token = _PLANNED_CALL.set({"trainer": name, "config": config,
                                   "snapshots": sorted(snapshots)})
        try:
            return trainer(config, device, use_cache, snapshots)
        finally:
            _PLANNED_CALL.reset(token)
    return wrapper


def _record_planned(path: str) -> bool:
    """Append the current trainer call to the plan file; False outside a ``plannable``
    trainer (such a run is trained where it stands, as without a plan)."""
    call = _PLANNED_CALL.get()
    if call is None:
        return False
    with open(path, "a") as plan:  # one line a run: append is whole lines
        plan.write(json.dumps(call, default=list, sort_keys=True) + "\n")
    return True


@plannable
def train_classifier(config: dict, device=None, use_cache: bool = True,
                     snapshots=()) -> TrainedModel:
    """Train (or load from the cache) the classifier one config describes, and evaluate it;
    ``snapshots``: shorter budgets to cache on the way (see ``cached_fit``)."""
    device = pick_device(device)
    task = make_task(Settings(config), config["target"], device=device)
    seed_everything(config["seed"])  # the weight init
    model = build_model(config, task)
    desc = f"{config['target']} {config['padding']} g{config['grid']} {config['background']}"
    if config.get("permute_at"):  # chapter 2's shuffles: where, in the line
        desc += f" shuffled at {config['permute_at']}"
    history, from_cache = cached_fit(config, model, task, device=device, desc=desc,
                                     use_cache=use_cache, snapshots=snapshots)
    reseed_permutations(model, config["seed"] + 1)
    return TrainedModel(model, task, history, evaluate(model, task, device), from_cache)


def cached_fit(config: dict, model: nn.Module, task, *, loss_fn=cross_entropy_loss, device=None,
               desc: str = "train", use_cache: bool = True,
               snapshots=()) -> tuple[list, bool]:
    """``fit`` a model with the recipe in ``config`` unless the cache holds its weights already.

    Any model and task, keyed by the full config (which must hold epochs, batch_size, lr,
    betas and seed); the key also hashes the library's training code, so a prose-only
    rebuild of the book retrains nothing while any change to a knob or to the loop does.
    The data order comes from a generator seeded with config["seed"]. Returns
    (history, from_cache).

    ``snapshots``: budgets (epochs) below config["epochs"] whose weights are cached on the
    way, each under the config of a run of that many epochs. With Adam at a constant
    learning rate and the data order drawn from one seeded generator, the first k epochs of
    a long run *are* a k-epoch run, so a budget curve costs its longest budget only.
    """
    stored = cache.load(config) if use_cache else None
    if stored is not None:
        model.load_state_dict(stored["state_dict"])
        return stored["history"], True
    plan = os.environ.get(PLAN_ENV)
    if plan and use_cache and _record_planned(plan):  # a plan pass: record, train nothing
        return [math.nan] * config["epochs"], False

    def keep_snapshot(epoch, model, history):
        if use_cache and epoch in snapshots and epoch < config["epochs"]:
            store_trained({**config, "epochs": epoch}, model, list(history))

    what = f"{desc} ({config['epochs']} epochs, seed {config['seed']})"
    report_training(f"training {what} ...")
    started = time.monotonic()
    seed_everything(config["seed"])  # the global RNGs too, for whatever the loop draws from them
    history = fit(model, task, epochs=config["epochs"], batch_size=config["batch_size"],
                  lr=config["lr"], betas=config["betas"], generator=data_generator(config["seed"]),
                  loss_fn=loss_fn, device=device, desc=desc, on_epoch_end=keep_snapshot)
    path = store_trained(config, model, history) if use_cache else None
    kept = f"cached at {path}" if path else "not cached"
    report_training(f"trained {what} in {time.monotonic() - started:.0f} s ({kept})")
    return history, False


# A chapter's kernel writes its cells' output into the notebook, where training bars would be
# clutter (POSINFO_PROGRESS=off); the runner (posinfo.execution) names a file here instead,
# whose lines it prints on the terminal the run was started from.
TRAINING_LOG_ENV = "POSINFO_TRAINING_LOG"


def report_training(line: str) -> None:
    """One line about a model being trained, for the user who started the run: appended to
    the file $POSINFO_TRAINING_LOG names (the runner relays it to its terminal), never to
    the notebook; nothing without the variable (a bar shows the training instead)."""
    path = os.environ.get(TRAINING_LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def store_trained(config: dict, model: nn.Module, history: list):
    """Write a trained model into the cache in the form ``cached_fit`` reads back (CPU
    weights and the loss history); returns the file's path."""
    return cache.store(config, {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                                "history": history})


def train_budgets(train, config: dict, budgets) -> dict:
    """``train(config)`` at every budget (epochs) in ``budgets``, for the price of the
    longest: it is trained first and caches the shorter budgets as its snapshots (see
    ``cached_fit``), which the shorter runs then load. Returns {epochs: trained run}."""
    budgets = sorted(set(budgets))
    runs = {}
    for epochs in reversed(budgets):  # longest first
        runs[epochs] = train({**config, "epochs": epochs}, snapshots=budgets)
    return dict(sorted(runs.items()))
