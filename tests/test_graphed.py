"""The graphed training path (posinfo.graphed), as far as a CPU can check it, and the pin that
keeps the CPU path of train.fit as it was: the default book's cache and verdicts depend on it.

What needs a GPU (the capture and replay themselves, their speed) is checked by
``python -m posinfo.tools.bench.gpu_check`` and the bench's ``graphed`` arm
(``python -m posinfo.tools.bench --gpu``)."""
import contextlib

import pytest
import torch

from posinfo import graphed
from posinfo.augshift import AugShiftLoss
from posinfo.canvas import (CanvasTask, draw_background, make_background, place_on_canvas,
                            whole_batches)
from posinfo.datasets import ImageSet
from posinfo.models import build_classifier
from posinfo.permute import add_channel_permutation
from posinfo.scenes import make_scene_task
from posinfo.segment import build_segmenter, segmentation_loss
from posinfo.shifts import ShiftTask, centred_canvases, shift_views
from posinfo.train import cross_entropy_loss, fit, seed_everything


def todays_fit(model, task, *, epochs, batch_size, lr, betas, generator,
               loss_fn=cross_entropy_loss):
    """train.fit's CPU loop as it was before the graphed path (commit 92c7163), without its
    progress bar and hooks: the reference the CPU path must keep matching bit for bit."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    history = []
    for _ in range(epochs):
        model.train()
        total, count = torch.zeros((), dtype=torch.float64), 0
        for x, y, _cells in task.train_batches(batch_size, generator):
            with contextlib.nullcontext():
                loss = loss_fn(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * len(y)
            count += len(y)
        history.append(float(total) / count)
    return history


def images(n=24, side=6, channels=1, seed=0, normalize=False):
    g = torch.Generator().manual_seed(seed)
    out = ImageSet(torch.rand(n, channels, side, side, generator=g),
                   torch.randint(0, 10, (n,), generator=g), 10)
    return out.normalized((0.4,) * channels, (0.3,) * channels) if normalize else out


def classifier(task, seed=0, **kw):
    seed_everything(seed)
    return build_classifier(task.in_channels, task.num_outputs, 4, (1, 1), "zeros", **kw)


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values()))


# ---- the CPU path of fit is today's -----------------------------------------------------------
def test_cpu_fit_is_todays_loop_bit_for_bit():
    task = CanvasTask(images(26), images(4), grid=2, background="noise", hflip=True)
    recipe = dict(epochs=2, batch_size=8, lr=1e-3, betas=(0.5, 0.999))  # 26 = 3 x 8 + 2
    a, b = classifier(task), classifier(task)
    new = fit(a, task, generator=torch.Generator().manual_seed(3), device="cpu", **recipe)
    old = todays_fit(b, task, generator=torch.Generator().manual_seed(3), **recipe)
    assert new == old and same_weights(a, b)


# Recorded from commit 92c7163's train.fit (before the graphed path), on this test's data.
RECORDED_HISTORY = [2.327747950187096, 2.314796044276311]


def test_cpu_fit_history_pinned_to_values_recorded_from_the_previous_code():
    task = CanvasTask(images(26), images(4), grid=2, target="class")
    history = fit(classifier(task), task, epochs=2, batch_size=8, lr=1e-3, betas=(0.5, 0.999),
                  generator=torch.Generator().manual_seed(3), device="cpu")
    assert history == pytest.approx(RECORDED_HISTORY, rel=1e-6, abs=0)


def test_cpu_fit_never_takes_the_graphed_path(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the CPU path took the graphed loop")
    monkeypatch.setattr(graphed, "fit_graphed", refuse)
    task = CanvasTask(images(8), images(2), grid=2)
    fit(classifier(task), task, epochs=1, batch_size=4, lr=1e-3,
        generator=torch.Generator().manual_seed(0), device="cpu")


def test_the_graphed_path_is_chosen_only_on_cuda_for_tasks_it_can_batch(monkeypatch):
    task = CanvasTask(images(8), images(2), grid=2)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.delenv(graphed.GRAPH_ENV, raising=False)
    assert graphed.use_graph(cuda, task) and not graphed.use_graph(cpu, task)
    assert not graphed.use_graph(cuda, task, backend="inductor")
    assert not graphed.use_graph(cuda, object())  # e.g. distributed's shards: eager loop
    assert graphed.use_graph(cuda, make_scene_task(4, 2, 16, 32))
    monkeypatch.setenv(graphed.GRAPH_ENV, "off")
    assert not graphed.use_graph(cuda, task)
    monkeypatch.setenv(graphed.GRAPH_ENV, "yes")
    with pytest.raises(ValueError, match=r"POSINFO_GRAPH must be one of \('on', 'off'\), "
                                         r"got 'yes'"):
        graphed.use_graph(cuda, task)


# ---- one epoch drawn on the device --------------------------------------------------------
def test_whole_batches_completes_the_last_batch_with_the_first_images():
    order = torch.tensor([4, 2, 0, 1, 3])
    assert whole_batches(order, 5).tolist() == [4, 2, 0, 1, 3]
    assert whole_batches(order, 2).tolist() == [4, 2, 0, 1, 3, 4]
    assert whole_batches(order, 4).tolist() == [4, 2, 0, 1, 3, 4, 2, 0]
    assert whole_batches(order, 8).tolist() == [4, 2, 0, 1, 3, 4, 2, 0]  # fewer than a batch
    assert whole_batches(order, 12).tolist() == [4, 2, 0, 1, 3] * 2 + [4, 2]


@pytest.mark.parametrize("make", ["canvas", "shift"])
def test_device_epoch_has_every_image_once_then_the_first_ones_again(make):
    data = images(10)
    task = (CanvasTask(data, data, grid=3) if make == "canvas"
            else ShiftTask(data, data, margin=2, max_shift=2))
    batches = list(task.device_batches(4, torch.Generator().manual_seed(0)))
    assert len(batches) == 3 and all(len(b[1]) == 4 for b in batches)  # ceil(10 / 4), full
    order = task.epoch_draws(4, torch.Generator().manual_seed(0))["order"]
    assert sorted(order[:10].tolist()) == list(range(10))
    assert order[10:].tolist() == order[:2].tolist()
    side = task.canvas_size
    x = batches[0][0]
    assert x.shape == ((4 if make == "canvas" else 8), 1, side, side)


def test_device_epoch_is_a_function_of_the_seed():
    task = CanvasTask(images(10), images(2), grid=3, background="noise", hflip=True)

    def epoch(seed):
        return list(task.device_batches(4, torch.Generator().manual_seed(seed)))
    a, b, c = epoch(1), epoch(1), epoch(2)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not all(torch.equal(p[0], q[0]) for p, q in zip(a, c))


@pytest.mark.parametrize("background", ["zeros", "noise", "texture"])
@pytest.mark.parametrize("hflip", [False, True])
def test_device_batches_are_train_batches_for_the_same_generator(background, hflip):
    """Drawn by the same calls in the same order: on a CPU generator, the very same batches
    (the last, completed one aside)."""
    data = images(22, side=6, channels=3, normalize=True)
    for task in (CanvasTask(data, data, 3, "class", background, hflip),
                 ShiftTask(data, data, margin=3, max_shift=4, background=background,
                           hflip=hflip)):
        old = list(task.train_batches(5, torch.Generator().manual_seed(7)))
        new = list(task.device_batches(5, torch.Generator().manual_seed(7)))
        assert len(old) == len(new) == 5
        for (x0, y0, c0), (x1, y1, c1) in zip(old[:-1], new[:-1]):
            assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(c0, c1)
        assert len(old[-1][1]) == 2 and len(new[-1][1]) == 5


def test_device_canvases_are_place_on_canvas_and_shift_views_of_the_same_draws():
    data = images(12, channels=3, normalize=True)
    task = CanvasTask(data, data, grid=3, target="location", hflip=True)
    epoch = task.epoch_draws(4, torch.Generator().manual_seed(5))
    positions = torch.arange(4, 8)
    x, y, cells = task.device_batch(epoch, positions, {})
    idx = epoch["order"][4:8]
    flips = epoch["flips"][4:8]
    expected = torch.where(flips[:, None, None, None], data.images[idx].flip(-1),
                           data.images[idx])
    assert torch.equal(x, place_on_canvas(expected, epoch["cells"][4:8], 3))
    assert torch.equal(y, cells) and torch.equal(cells, epoch["cells"][4:8])

    shift = ShiftTask(data, data, margin=2, max_shift=3, protocol="roll")
    epoch = shift.epoch_draws(4, torch.Generator().manual_seed(5))
    noise = torch.rand(4, 3, shift.canvas_size, shift.canvas_size)
    views, labels, offsets = shift.device_batch(epoch, positions, {"background": noise})
    idx = epoch["order"][4:8]
    canvas = centred_canvases(data.images[idx], 2, noise)
    m = len(epoch["order"])
    dy = torch.cat([epoch["dy"][4:8], epoch["dy"][m + 4:m + 8]])
    dx = torch.cat([epoch["dx"][4:8], epoch["dx"][m + 4:m + 8]])
    assert torch.equal(views, shift_views(canvas.repeat(2, 1, 1, 1), dy, dx, "roll"))
    assert torch.equal(labels, data.labels[idx])
    assert torch.equal(offsets, torch.stack([dy[:4], dx[:4], dy[4:], dx[4:]], 1))


@pytest.mark.parametrize("kind", ["zeros", "noise", "texture"])
def test_draw_background_draws_what_make_background_draws(kind):
    data = images(4, channels=3, normalize=True)
    old = make_background(kind, 4, 3, 20, torch.Generator().manual_seed(1), "cpu", data)
    new = draw_background(kind, 4, 3, 20, torch.Generator().manual_seed(1), data)
    assert torch.equal(old, torch.zeros_like(old) if new is None else new)


# ---- the graphed loop, its capture left out ----------------------------------------------------
def graphed_and_eager(task, make_model, loss_fn=cross_entropy_loss, batch_size=4, epochs=2):
    recipe = dict(epochs=epochs, batch_size=batch_size, lr=1e-3, betas=(0.5, 0.999))
    a, b = make_model(), make_model()
    seen = []
    torch.manual_seed(11)  # what the loops draw from the global generator (dropout)
    new = graphed.fit_graphed(a, task, generator=torch.Generator().manual_seed(3),
                              loss_fn=loss_fn, device="cpu", capture=False,
                              on_epoch_end=lambda epoch, m, h: seen.append((epoch, list(h))),
                              **recipe)
    torch.manual_seed(11)
    old = todays_fit(b, task, generator=torch.Generator().manual_seed(3), loss_fn=loss_fn,
                     **recipe)
    assert seen == [(k + 1, new[:k + 1]) for k in range(epochs)]  # budget snapshots work
    return new, old, a, b


@pytest.mark.parametrize("background", ["zeros", "noise"])
def test_graphed_loop_trains_as_the_eager_loop_on_the_same_batches(background):
    """Warm-up undone, then the same arithmetic on the same batches: the same weights, bit
    for bit (whole batches only: the eager loop's last batch is partial)."""
    task = CanvasTask(images(16), images(2), grid=2, background=background, hflip=True)
    new, old, a, b = graphed_and_eager(task, lambda: classifier(task))
    assert new == old and same_weights(a, b)


def test_graphed_loop_trains_augshift_as_the_eager_loop():
    data = images(12, side=8)
    task = ShiftTask(data, data, margin=2, max_shift=2)
    new, old, a, b = graphed_and_eager(task, lambda: classifier(task), AugShiftLoss(1.0))
    assert new == old and same_weights(a, b)


def test_graphed_loop_trains_the_segmenter_as_the_eager_loop():
    task = make_scene_task(8, 2, 16, 32)

    def segmenter():
        seed_everything(0)
        return build_segmenter(task.num_classes, 4, (1, 1), "zeros", (1, 2), 8)
    new, old, a, b = graphed_and_eager(task, segmenter, segmentation_loss, epochs=1)
    assert new == old and same_weights(a, b)


def test_graphed_loop_draws_permutenet_shuffles_as_the_eager_loop():
    task = CanvasTask(images(16), images(2), grid=2)

    def permutenet():
        return add_channel_permutation(classifier(task, head="gap_linear"), 3, seed=4)
    new, old, a, b = graphed_and_eager(task, permutenet)
    assert new == old and same_weights(a, b)
    assert "forward" not in vars(a.head.fc[0])  # the class's forward is back


def test_graphed_loop_completes_the_last_batch():
    task = CanvasTask(images(10), images(2), grid=2, target="class")
    model = classifier(task)
    with graphed.Loop(model, task, batch_size=4, lr=1e-3, betas=(0.9, 0.999),
                      loss_fn=cross_entropy_loss, device="cpu", capture=False) as loop:
        assert loop.steps == 3
        generator = torch.Generator().manual_seed(0)
        loop.new_epoch(generator)
        losses = []
        for _ in range(loop.steps):
            loop.step(generator)
            losses.append(loop.loss.detach().clone())
        assert int(loop.batches.counter) == 3
        assert float(loop.total) == pytest.approx(4 * float(sum(losses)))


def test_permutenet_forwards_outside_the_step_draw_as_in_the_eager_loop():
    """An on_epoch_end that runs the model (an evaluation) draws a shuffle as the eager loop
    does, and the next epoch's shuffles follow it: fit on the CPU and the uncaptured graphed
    loop still train alike."""
    task = CanvasTask(images(16), images(2), grid=2)
    probe = torch.rand(2, 1, 12, 12)
    outputs = {}

    def run(train):
        model = add_channel_permutation(classifier(task, head="gap_linear"), 3, seed=4)
        seen = outputs.setdefault(train, [])
        history = train(model, task, epochs=2, batch_size=4, lr=1e-3, betas=(0.5, 0.999),
                        loss_fn=cross_entropy_loss,
                        generator=torch.Generator().manual_seed(3), device="cpu",
                        on_epoch_end=lambda e, m, h: seen.append(m(probe).detach()))
        return history, model
    (old, a), (new, b) = run(fit), run(lambda *a, **k: graphed.fit_graphed(*a, capture=False,
                                                                           **k))
    assert old == new and same_weights(a, b)
    assert all(torch.equal(p, q) for p, q in zip(*outputs.values()))


def test_the_loop_lets_go_of_its_gradients_at_the_end():
    """On CUDA the gradients live in the graph's private memory pool; a trained model that
    kept them would keep the pool."""
    task = CanvasTask(images(8), images(2), grid=2)
    model = classifier(task)
    graphed.fit_graphed(model, task, epochs=1, batch_size=4, lr=1e-3, betas=(0.9, 0.999),
                        generator=torch.Generator().manual_seed(0), loss_fn=cross_entropy_loss,
                        device="cpu", capture=False)
    assert all(p.grad is None for p in model.parameters())
