"""Training budgets shown in optimiser steps, with epochs beside them (issue 20, item 1).

Budgets stay a knob in epochs; what a reader sees is steps. One optimiser step is one batch
of ``batch_size`` training items, so an epoch is ceil(n_train / batch_size) steps: checked
here against the batches ``train.fit`` really draws, and the paper's 20,833 against its
parts. Known answers, worked by hand, pin the table rows, the words and the figure.
"""
import ast
import math

import matplotlib.pyplot as plt
import nbformat
import pytest
import torch
from torch import nn

from posinfo import figures
from posinfo.canvas import make_task
from posinfo.run import chapter_sources
from posinfo.scenes import make_scene_task
from posinfo.settings import Settings, chapter_settings
from posinfo.shifts import make_shift_task
from posinfo.tools.report import chapter_verdict
from posinfo.train import fit
from posinfo.budgets import budget_label, budget_table, where_it_holds
from posinfo.interval import Rule, t_interval
from posinfo.settings import PAPER_BATCH, PAPER_EPOCHS, PAPER_STEPS, PAPER_TRAIN_IMAGES
from posinfo.verdict import judge

GAIN = Rule("gain", 0.02)
HOLDS, DOES_NOT, STRADDLES = (t_interval([0.10, 0.11, 0.12]), t_interval([0.0, 0.001, -0.001]),
                              t_interval([0.0, 0.08, 0.04]))


# ---- the conversion -------------------------------------------------------------------------
def test_steps_per_epoch_is_batches_of_the_training_set_the_last_one_partial():
    assert Settings(n_train=1437, batch_size=64).steps_per_epoch == 23  # 22 full + 1 of 29
    assert Settings(n_train=768, batch_size=32).steps_per_epoch == 24  # exact: no partial
    assert Settings(n_train=1437, batch_size=48).steps_per_epoch == 30  # 29 full + 1 of 45
    assert Settings(n_train=50000, batch_size=48).steps_per_epoch == 1042
    assert Settings(n_train=1, batch_size=4096).steps_per_epoch == 1


@pytest.mark.parametrize("chapter, profile, per_epoch, longest", [
    ("channel_order", "default", 23, 184),      # 1,437 digits at batch 64, 8 epochs
    ("augshift", "default", 45, 360),           # 1,437 digits (two views each) at 32, 8
    ("position_channels", "default", 24, 192),  # 768 scenes at batch 32, 8 epochs
    ("region_attack", "gpu", 24, 4800),         # ten times the "about 480 steps"
    ("channel_order", "gpu", 30, 20850),        # the paper's 20,833, in whole epochs
    ("augshift", "gpu", 30, 20850),
])
def test_the_profiles_budgets_in_steps(chapter, profile, per_epoch, longest):
    s = chapter_settings(chapter, profile)
    assert s.steps_per_epoch == per_epoch
    assert max(s.budget_epochs) * s.steps_per_epoch == longest


def test_the_papers_step_count_from_its_parts():
    # 20 epochs x 50,000 CIFAR-10 images / batch 48 = 20,833.3: 20,833 whole batches
    assert PAPER_STEPS == 20833 == math.floor(20 * 50_000 / 48)
    assert (PAPER_EPOCHS, PAPER_TRAIN_IMAGES, PAPER_BATCH) == (20, 50_000, 48)
    # This library's loader keeps each epoch's partial batch: 20 x 1,042 = 20,840 at the
    # paper profile, within 0.1% of the paper's count (the same place on a log axis).
    paper = chapter_settings("channel_order", "paper")
    assert (paper.epochs, paper.n_train, paper.batch_size) == (20, 50000, 48)
    assert paper.epochs * paper.steps_per_epoch == 20840
    assert abs(20840 / PAPER_STEPS - 1) < 1e-3


# ---- the conversion against what the training loop really does ------------------------------
class _Tiny(nn.Module):
    """One weight: enough for Adam to take a step on any batch."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x.float().mean() * self.w


def _steps_fit_takes(task, epochs, batch_size):
    """How many optimiser steps ``train.fit`` takes: one loss per step, counted."""
    calls = []

    def loss_fn(model, x, y):
        calls.append(len(y))
        return model(x)

    fit(_Tiny(), task, epochs=epochs, batch_size=batch_size, lr=1e-3, device="cpu",
        generator=torch.Generator().manual_seed(0), loss_fn=loss_fn)
    return calls


def _tasks():
    # 100 items at batch 32: 3 full batches and one of 4 (ceil 4, floor 3, round 3).
    digits = chapter_settings("channel_order", "smoke", n_train=100, batch_size=32)
    views = chapter_settings("augshift", "smoke", n_train=100, batch_size=32)
    scenes = chapter_settings("position_channels", "smoke", n_train=100, batch_size=32)
    yield "canvas", digits, make_task(digits)
    yield "shifts (two views a step)", views, make_shift_task(views)
    yield "scenes", scenes, make_scene_task(scenes.n_train, 8, scenes.scene_height,
                                            scenes.scene_width, scenes.scene_mode, seed=1)


@pytest.mark.parametrize("name, settings, task", list(_tasks()), ids=lambda v: str(v)[:24])
def test_an_epoch_is_as_many_steps_as_train_batches_yields_and_fit_takes(name, settings,
                                                                         task):
    per_epoch = settings.steps_per_epoch
    assert per_epoch == 4
    batches = list(task.train_batches(settings.batch_size, torch.Generator().manual_seed(0)))
    assert len(batches) == per_epoch
    # every training item once an epoch, one label per item (two views still one step)
    assert sum(len(y) for _x, y, _ in batches) == settings.n_train
    if name.startswith("shifts"):
        assert all(len(x) == 2 * len(y) for x, y, _ in batches)
    calls = _steps_fit_takes(task, 2, settings.batch_size)
    assert len(calls) == 2 * per_epoch and calls[:per_epoch] == [32, 32, 32, 4]


# ---- what readers see: table rows, words, the figure ----------------------------------------
def test_a_budget_reads_as_steps_with_epochs_beside_them():
    assert budget_label(8, 45) == "360 steps (8 epochs)"
    assert budget_label(1, 23) == "23 steps (1 epoch)"
    assert budget_label(1, 1) == "1 step (1 epoch)"
    assert budget_label(20, 1042) == "20,840 steps (20 epochs)"
    assert budget_label(1, 23, width=3) == " 23 steps (1 epoch)"


def test_the_budget_table_names_each_row_in_steps_and_epochs():
    curve = {8: HOLDS, 1: DOES_NOT, 2: STRADDLES, 4: HOLDS}
    table = budget_table(curve, GAIN, "gain [CI]", steps_per_epoch=23).splitlines()
    assert table[0].startswith("budget") and table[0].split()[-1] == "outcome"
    # sorted by budget, the step counts right-aligned
    assert [row.split("  ")[0] for row in table[1:]] == [
        " 23 steps (1 epoch)", " 46 steps (2 epochs)", " 92 steps (4 epochs)",
        "184 steps (8 epochs)"]
    # (outcomes right-aligned under "does not hold")
    assert table[4] == "184 steps (8 epochs)  +0.110 [95% CI +0.085, +0.135]          holds"
    assert table[1].endswith("does not hold") and table[2].endswith("inconclusive")
    wide = budget_table({20: HOLDS, 2: HOLDS}, GAIN, "gain", steps_per_epoch=1042)
    assert [row.split("  ")[0] for row in wide.splitlines()[1:]] == [
        " 2,084 steps (2 epochs)", "20,840 steps (20 epochs)"]


def test_where_the_claim_holds_in_steps_with_epochs():
    curve = {1: DOES_NOT, 2: STRADDLES, 4: HOLDS, 8: HOLDS}
    assert where_it_holds(curve, GAIN, steps_per_epoch=23) == "92 and 184 steps (4 and 8 epochs)"
    assert where_it_holds({1: HOLDS}, GAIN, steps_per_epoch=23) == "23 steps (1 epoch)"
    assert (where_it_holds({1: HOLDS, 2: DOES_NOT, 5: HOLDS, 20: HOLDS}, GAIN,
                           steps_per_epoch=1042)
            == "1,042, 5,210 and 20,840 steps (1, 5 and 20 epochs)")
    assert where_it_holds({1: DOES_NOT}, GAIN, steps_per_epoch=23) == "none of the budgets tried"


def test_old_calls_still_read_in_epochs():
    curve = {1: DOES_NOT, 4: HOLDS}
    assert budget_table(curve, GAIN, "gain").splitlines()[2].startswith("epochs = 4")
    assert where_it_holds(curve, GAIN) == "4 epochs"


@pytest.mark.parametrize("bad", [0, -23, 2.5, "23", True])
def test_a_bad_steps_per_epoch_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=r"steps_per_epoch must be a positive integer"):
        budget_table({1: HOLDS}, GAIN, "gain", steps_per_epoch=bad)
    with pytest.raises(ValueError, match=r"steps_per_epoch must be a positive integer"):
        figures.budget_curve({"a": {1: HOLDS}}, steps_per_epoch=bad)


def _paper_lines(ax):
    return [line for line in ax.lines if line.get_label() == "paper: 20,833 steps"]


def test_the_budget_curve_is_in_steps_with_the_papers_count_marked():
    ax = figures.budget_curve({"gain": {1: DOES_NOT, 2: STRADDLES, 4: HOLDS, 8: HOLDS}},
                              0.02, steps_per_epoch=23)
    try:
        (paper,) = _paper_lines(ax)
        assert list(paper.get_xdata()) == [20833, 20833]  # a vertical line at x = 20,833
        assert "paper: 20,833 steps" in [t.get_text() for t in ax.get_legend().get_texts()]
        assert ax.get_xscale() == "log"
        low, high = ax.get_xlim()
        assert low < 23 and high > 20833  # both ends in view
        points = ax.containers[0].lines[0].get_xdata()  # one curve: no sideways offset
        assert list(points) == [23, 46, 92, 184]
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        assert ticks == ["23\n(1)", "46\n(2)", "92\n(4)", "184\n(8)", "20,833\n(paper)"]
        assert ax.get_xlabel() == "training budget: optimiser steps (epochs)"
    finally:
        plt.close(ax.figure)
    # at the paper's length the mark sits on the last budget; its tick is not doubled
    ax = figures.budget_curve({"gain": {2: HOLDS, 20: HOLDS}}, steps_per_epoch=1042)
    try:
        assert len(_paper_lines(ax)) == 1
        assert [t.get_text() for t in ax.get_xticklabels()] == ["2,084\n(2)", "20,840\n(20)"]
    finally:
        plt.close(ax.figure)


def test_an_old_budget_curve_call_still_draws_epochs():
    ax = figures.budget_curve({"gain": {1: DOES_NOT, 4: HOLDS}}, 0.02)
    try:
        assert not _paper_lines(ax)
        assert list(ax.containers[0].lines[0].get_xdata()) == [1, 4]
        assert ax.get_xlabel() == "training budget (epochs)"
    finally:
        plt.close(ax.figure)


# ---- the chapters --------------------------------------------------------------------------
BUDGET_CALLS = ("budget_table", "where_it_holds", "budget_curve")


@pytest.mark.parametrize("chapter", [
    "channel_order", "augshift", "position_channels", "region_attack"])
def test_every_budget_call_of_a_chapter_passes_its_steps_per_epoch(chapter):
    tree = ast.parse(chapter_sources()[chapter].read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", getattr(node.func, "attr", "")) in BUDGET_CALLS]
    assert sorted({getattr(c.func, "id", getattr(c.func, "attr", "")) for c in calls}) == \
        sorted(BUDGET_CALLS)
    for call in calls:
        given = {k.arg: ast.unparse(k.value) for k in call.keywords}
        assert given.get("steps_per_epoch") in ("settings.steps_per_epoch", "per_epoch"), \
            ast.unparse(call)


def test_the_front_page_still_reads_a_chapter_that_prints_budgets_in_steps(tmp_path):
    """report.py parses the verdict line and the settings table's ``epochs``; the budget
    table in steps must match neither."""
    settings = chapter_settings("channel_order", "default")
    curve = {k: HOLDS for k in settings.budget_epochs}
    table = budget_table(curve, GAIN, "gain [CI]", steps_per_epoch=settings.steps_per_epoch)
    line = judge(2, GAIN, HOLDS).line()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Claim 2"),
                *(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
                    "stream", name="stdout", text=text + "\n")])
                  for text in (settings.table(), "numbers", line, "why", table))]
    path = tmp_path / "02_channel_order.ipynb"
    nbformat.write(nb, path)
    row = chapter_verdict(path)
    assert row["epochs"] == "8" and row["profile"] == "default"
    assert len(row["verdicts"]) == 1 and row["verdicts"][0]["outcome"] == "holds"
    assert "steps" not in row["evidence"]  # the budget table is not read as evidence
    assert math.isfinite(float(row["verdicts"][0]["estimate"]))


def test_a_budget_at_the_ceiling_is_said_to_be_why_a_chapter_stops_short():
    from posinfo.budgets import budget_at_ceiling
    at = budget_at_ceiling(4, 23, [1.0, 1.0, 0.9995], "location accuracy")
    assert at.startswith("Trained for 92 steps (4 epochs), 0.4% of the paper's 20,833")
    assert "at its ceiling of 1 at every seed" in at and "cannot raise it" in at
    below = budget_at_ceiling(20, 30, [1.0, 0.97], "location accuracy")
    assert "0.970 at the lowest seed, below its ceiling" in below
    assert "cannot" not in below
