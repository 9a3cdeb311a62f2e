"""``train.fit`` on CUDA: each epoch drawn on the device, the training step replayed as a CUDA
graph. The CPU path of ``fit`` never imports this module.

On a GPU the eager loop waits for the host at every step (the batch's indices come from a
CPU generator and each copy waits), and launching a ResNet-18 step kernel by kernel costs
more than the kernels at batch 48. Here, and only on CUDA:

- **Batches.** The task's ``epoch_draws`` (order, cells, flips, shift offsets) are drawn once
  an epoch with a device generator seeded with the run's seed (the seed of fit's
  generator); ``step_draws`` (noise or texture backgrounds, nothing for blank canvases)
  before each step; ``device_batch`` gathers a step's batch at positions held on the
  device. Every batch has batch_size canvases: the epoch's last partial batch is completed
  with the epoch's first images again (``canvas.whole_batches``), so an epoch has
  ceil(n / batch_size) steps, as on the CPU, and a few images are seen twice in it.
- **The step.** The batch, forward and loss (any loss_fn: cross-entropy, AugShift's two
  views, the segmenter's), backward, Adam (fused, ``capturable=True``) and the loss summed
  on the device: captured once as a CUDA graph after a warm-up that is then undone
  (weights, BatchNorm statistics and Adam's state are put back to where they started), and
  replayed. No host sync inside an epoch: the loss is read once at its end, where
  ``on_epoch_end`` (the budget snapshots) runs.
- **PermuteNet.** A ChannelPermutation draws its channel order on the host at every forward,
  which a graph would freeze. Its orders for a whole epoch are drawn up front, from its own
  generator in the same sequence as the eager loop's forwards (one a step), copied to the
  device once, and read at the step's row.

The data order differs from the eager loop's (a device generator is not the CPU one), so a
graphed and an eager run with one seed see different batches; ``POSINFO_GRAPH=off`` trains
with the eager loop on CUDA too, and torch.compile (POSINFO_COMPILE) also takes it. A task
this module cannot batch on the device (anything but CanvasTask, ShiftTask and SceneTask,
e.g. the distributed tool's shards) takes the eager loop.

Used by every chapter run on a GPU, through ``train.fit``, and by the GPU bench.

Used by every chapter's training on a GPU (through ``train.fit``).
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.nn as nn
from tqdm import tqdm

from .canvas import whole_batches
from .device import env_choice, prepare_model, to_device
from .permute import ChannelPermutation
from .scenes import SceneTask

GRAPH_ENV = "POSINFO_GRAPH"
GRAPH_VALUES = ("on", "off")


def graph_mode(value: str | None = None) -> str:
    """``value``, else $POSINFO_GRAPH, else on; refused unless one of GRAPH_VALUES."""
    return env_choice(GRAPH_ENV, GRAPH_VALUES, "on", value, name="graph")


def supports(task) -> bool:
    """Whether the graphed loop can batch ``task`` on the device."""
    return hasattr(task, "epoch_draws") or isinstance(task, SceneTask)


def use_graph(device: torch.device, task, backend: str = "off") -> bool:
    """fit's choice: graphed on CUDA, for a task it can batch on the device, without
    torch.compile, unless POSINFO_GRAPH=off."""
    return (device.type == "cuda" and backend == "off" and graph_mode() == "on"
            and supports(task))


class SceneBatches:
    """SceneTask's batches in the device-batch form of CanvasTask's (epoch_draws,
    step_draws, device_batch): a random order, nothing else drawn. The scenes are copied to
    the device once."""

    def __init__(self, task: SceneTask, device):
        self.images = task.train.images.to(device)
        self.labels = task.train.labels.to(device)

    def epoch_draws(self, batch_size: int, generator: torch.Generator) -> dict:
        order = torch.randperm(len(self.labels), generator=generator, device=generator.device)
        return {"order": whole_batches(order, batch_size)}

    def step_draws(self, batch_size: int, generator: torch.Generator) -> dict:
        return {}

    def device_batch(self, epoch: dict, positions: torch.Tensor, step: dict):
        idx = epoch["order"].index_select(0, positions)
        return self.images.index_select(0, idx), self.labels.index_select(0, idx), None


class DeviceBatches:
    """A task's batches read from static tensors: the epoch's draws and the step's draws are
    copied into them (``new_epoch``, ``draw_step``), and ``batch`` gathers the batch at the
    positions ``counter * batch_size + arange(batch_size)``, with the counter on the device,
    so that one captured graph reads a new batch at every replay."""

    def __init__(self, task, batch_size: int, device):
        self.task = task if hasattr(task, "epoch_draws") else SceneBatches(task, device)
        self.batch_size = batch_size
        shapes = torch.Generator(device=device).manual_seed(0)  # the shapes, not the data
        self.epoch = self.task.epoch_draws(batch_size, shapes)
        self.step = self.task.step_draws(batch_size, shapes)
        self.steps = len(self.epoch["order"]) // batch_size
        self.counter = torch.zeros((), dtype=torch.long, device=device)
        self.offsets = torch.arange(batch_size, device=device)

    def new_epoch(self, generator: torch.Generator) -> None:
        for key, value in self.task.epoch_draws(self.batch_size, generator).items():
            self.epoch[key].copy_(value)
        self.counter.zero_()

    def draw_step(self, generator: torch.Generator) -> None:
        for key, value in self.task.step_draws(self.batch_size, generator).items():
            self.step[key].copy_(value)

    def batch(self):
        """(x, y) of the counter's step; the counter is advanced by the step (``Loop``)."""
        positions = self.counter * self.batch_size + self.offsets
        x, y, _ = self.task.device_batch(self.epoch, positions, self.step)
        return x, y


class Permutations(contextlib.AbstractContextManager):
    """Inside the ``with``: every ChannelPermutation of ``model`` reads its channel order
    from a table of one row a step, filled by ``new_epoch`` from its own generator (the
    eager loop's draws, in the same order), at the row of the batches' step counter."""

    def __init__(self, model: nn.Module, batches: DeviceBatches):
        self.batches = batches
        self.modules = [m for m in model.modules() if isinstance(m, ChannelPermutation)]
        self.tables: dict[int, torch.Tensor] = {}
        self.in_step = False  # the table only inside the step (Loop's body): any other
        # forward (an on_epoch_end evaluation) draws as the class does, as in the eager loop

    def _forward(self, module):
        def forward(x):
            if not self.in_step:
                return ChannelPermutation.forward(module, x)
            table = self.tables.get(id(module))
            if table is None:  # the first (warm-up) call: its width, no draw
                table = torch.arange(x.shape[1], device=x.device).repeat(self.batches.steps, 1)
                self.tables[id(module)] = table
            row = table.index_select(0, self.batches.counter.view(1)).view(-1)  # no .item()
            return x.index_select(1, row)
        return forward

    def __enter__(self):
        for module in self.modules:
            module.forward = self._forward(module)
        return self

    def new_epoch(self) -> None:
        """Each module's channel orders for one epoch, one a step (a single copy)."""
        for module in self.modules:
            table = self.tables[id(module)]
            rows = [torch.randperm(table.shape[1], generator=module.generator)
                    for _ in range(len(table))]
            table.copy_(torch.stack(rows))

    def __exit__(self, *exc):
        for module in self.modules:
            del module.forward  # back to the class's forward
        return None


class Loop:
    """The graphed training of one model on one task: ``new_epoch(generator)``, then
    ``step()`` ``steps`` times; ``loss`` holds the last step's loss and ``total`` the sum of
    batch_size x loss over the epoch's steps, both on the device.

    ``capture=False`` runs the same body, warm-up and reset eagerly, with a plain Adam: what
    a CPU test can check (it trains exactly as the eager loop would on the same batches)."""

    WARMUP_STEPS = 3

    def __init__(self, model: nn.Module, task, *, batch_size: int, lr: float, betas,
                 loss_fn, device, capture: bool = True):
        self.device, self.capture = torch.device(device), capture
        self.model = prepare_model(model, self.device)
        adam = {"capturable": True, "fused": True} if capture else {}
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, **adam)
        self.batches = DeviceBatches(task, batch_size, self.device)
        self.steps = self.batches.steps
        self.permutations = Permutations(model, self.batches)
        self.total = torch.zeros((), dtype=torch.float64, device=self.device)
        self.loss = None
        cuda = self.device.type == "cuda"

        def amp():  # autocast's weight-cast cache must be off under capture (torch's docs)
            if cuda:
                return torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=not capture)
            return contextlib.nullcontext()

        def body():
            x, y = self.batches.batch()
            self.permutations.in_step = True
            try:
                with amp():
                    loss = loss_fn(model, to_device(x, self.device), y)
            finally:
                self.permutations.in_step = False
            loss.backward()
            self.optimizer.step()
            self.total.add_(loss.detach().double() * batch_size)
            self.batches.counter.add_(1)
            return loss

        self._body = body
        self._replay = None

    def __enter__(self):
        self.permutations.__enter__()
        self._prepare()
        return self

    def __exit__(self, *exc):
        # The graph, and what lives in its private memory pool (the gradients, the static
        # loss), go with the loop: a chapter keeps dozens of trained models, and each one's
        # gradients would otherwise hold on to its step's whole pool.
        self._replay = self.loss = None
        self.optimizer.zero_grad(set_to_none=True)
        self.permutations.__exit__(*exc)
        return None

    def _prepare(self) -> None:
        """Warm up (cuDNN's choices, Adam's state), capture, then undo the warm-up."""
        model, optimizer, body = self.model, self.optimizer, self._body
        model.train()
        initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        side = torch.cuda.Stream() if self.capture else None
        if side is not None:
            side.wait_stream(torch.cuda.current_stream())
        # The warm-up's draws from the global generators (dropout, in the segmenter's head)
        # are undone too: the first real step draws what the eager loop's first step draws.
        cuda = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), \
                torch.cuda.stream(side) if side is not None else contextlib.nullcontext():
            for _ in range(self.WARMUP_STEPS):  # off the default stream, as capture requires
                self.batches.counter.zero_()
                optimizer.zero_grad(set_to_none=True)
                body()
        if side is not None:
            torch.cuda.current_stream().wait_stream(side)
            optimizer.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.loss = body()  # replays write new values into these same tensors
            self._replay = graph.replay
        else:
            def replay():
                optimizer.zero_grad(set_to_none=True)
                self.loss = body()
            self._replay = replay
        restore_start(model, optimizer, initial)
        self.total.zero_()
        self.batches.counter.zero_()

    def new_epoch(self, generator: torch.Generator) -> None:
        self.batches.new_epoch(generator)
        self.permutations.new_epoch()
        self.total.zero_()

    def step(self, generator: torch.Generator) -> None:
        self.batches.draw_step(generator)
        self._replay()


@torch.no_grad()
def restore_start(model: nn.Module, optimizer: torch.optim.Optimizer, initial: dict) -> None:
    """Undo a warm-up in place (a captured graph keeps pointing at these same tensors): the
    weights and BatchNorm statistics back to ``initial`` (a state-dict copy), Adam's state
    back to zero."""
    for k, v in model.state_dict().items():
        v.copy_(initial[k])
    for state in optimizer.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                v.zero_()


def device_generator(generator: torch.Generator, device) -> torch.Generator:
    """The graphed loop's generator on ``device``, seeded with the seed of fit's (CPU)
    generator: one seed drives both loops, each with its own generator."""
    return torch.Generator(device=device).manual_seed(generator.initial_seed())


def fit_graphed(model: nn.Module, task, *, epochs: int, batch_size: int, lr: float, betas,
                generator: torch.Generator, loss_fn, device, desc: str = "train",
                on_epoch_end=None, capture: bool = True) -> list[float]:
    """``train.fit`` through ``Loop``: the mean training loss of each epoch (over its
    ceil(n / batch_size) x batch_size canvases), ``on_epoch_end`` after each epoch."""
    device = torch.device(device)
    draws = device_generator(generator, device)
    quiet = os.environ.get("POSINFO_PROGRESS") == "off"
    history = []
    with Loop(model, task, batch_size=batch_size, lr=lr, betas=betas, loss_fn=loss_fn,
              device=device, capture=capture) as loop:
        steps = loop.steps
        with tqdm(total=epochs * steps, desc=desc, leave=False, mininterval=1.0,
                  disable=quiet) as bar:
            for _ in range(epochs):
                model.train()
                loop.new_epoch(draws)
                for _ in range(steps):
                    loop.step(draws)
                    bar.update(1)
                history.append(float(loop.total) / (steps * batch_size))  # the epoch's one sync
                bar.set_postfix(loss=f"{history[-1]:.3f}")
                if on_epoch_end is not None:
                    on_epoch_end(len(history), model, history)
    return history
