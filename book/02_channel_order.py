# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Position lives in the order of the channels
#
# **Claim 2.** Chapter 1 showed that a GAP network knows where an object is. The paper
# argues that this knowledge is stored *channel-wise*: which channel is active says where,
# while what the object is does not depend on the channel order in the same way. Its test
# is **PermuteNet** {cite}`islam2021global`: shuffle the channels at random on every
# forward pass, in training and
# at test time. The paper reports that location accuracy then falls to chance while
# semantic classification largely survives.
#
# This chapter runs PermuteNet at every placement the reference code offers, for location
# and for digit class, and adds a test that needs no retraining: linear probes on the
# pooled latent of an ordinary network, with and without the channel order.

# %%
import numpy as np
import torch

import posinfo
from posinfo import figures, machine, permutenet
from posinfo.exercises import check
from posinfo.parameters import settings_from
from posinfo.permute import ChannelPermutation, permute_channels, retention
from posinfo.probes import (cell_means, gap_latents, probe_rows, probe_table,
                            selectivity, with_padding)
from posinfo.tables import compared, format_table, glue_values
from posinfo.train import model_config, train_classifier
from posinfo.budgets import budget_label, budget_table, where_it_holds
from posinfo.interval import Rule, t_interval
from posinfo.settings import PAPER_STEPS
from posinfo.verdict import judge, show

figures.setup()

# %% [markdown]
# ## Parameters

# %% tags=["parameters"]
profile = posinfo.default_profile()  # "default" unless POSINFO_PROFILE says so
seed = None  # first verdict seed: 100 (627937 at paper, the reference code's)
n_seeds = None  # baseline and after-GAP arms at seed, seed + 1, ...
n_ablation_seeds = None  # shuffles inside the backbone at the first few seeds
placements = None  # 1..4: shuffle before that backbone stage; 5: after GAP
epochs = None  # training budget of the verdict's two arms
ablation_epochs = None  # budget of the shuffles inside the backbone
budgets = None  # shorter budgets (epochs) of the budget curve
width = None  # channels of the first backbone stage
image_size = None  # side of each pasted digit, pixels
normalize = None  # normalise per channel before pasting (gpu, paper)
hflip = None  # random horizontal flips in training (CIFAR; never digits)
padding = None  # zeros | circular | reflect | replicate | none
chance_tolerance = None  # paper's rule: location within this of chance
class_fraction = None  # paper's rule: class keeps this share of the baseline
min_effect = None  # minimal effect: class kept minus location kept
confidence = None  # confidence level of the verdict's interval

# %%
# every name of the parameters cell, checked before any work
settings = settings_from("channel_order", globals())
print(settings.table())
print(machine.describe())
# The reference code's default placement ("layer 5"): the verdict's arm.
after_gap = len(settings.blocks) + 1

# %% [markdown]
# ## PermuteNet at every placement
#
# The network is the chapter-1 backbone (four stages, as ResNet-18) with GAP and a linear
# classifier. Placement $k \le 4$ shuffles the channels entering stage $k$; placement
# {glue:text}`ch2_after_gap` shuffles the pooled vector before the linear layer. Each
# configuration is trained for both tasks on the same canvases: *location* (which of the 9
# cells) and *class* (which digit). A seed fixes the initial weights and the canvases,
# so the arms of one seed are paired. The verdict reads two arms, the baseline and the
# shuffle after GAP: they run at all `n_seeds` seeds, and are also kept at the shorter
# budgets of the budget curve (snapshots of the same runs). The shuffles inside the
# backbone are ablations, run at the first `n_ablation_seeds` seeds for `ablation_epochs`
# epochs, one of those budgets: the table and Figure 1 compare every arm there
# ({glue:text}`ch2_sweep_steps` optimiser steps), and the verdict reads its two arms at
# `epochs` ({glue:text}`ch2_verdict_steps` steps). At the `default` profile the two are
# the same; the `gpu` profile stops the ablations early so that the verdict's arms can
# reach the paper's 20,833 steps.
#
# The head is GAP and a linear layer (`lib/posinfo/models.py`); the pooled vector it
# computes is where the reference placement shuffles:
#
# ```{literalinclude} ../lib/posinfo/models.py
# :pyobject: GAPLinear
# ```
#
# The shuffle is the library's own (`lib/posinfo/permute.py`): a module that draws a new
# random order of the channels at every call, in training and evaluation alike, one order
# for the whole batch as in the reference code, and reorders its input by it.
#
# ```{literalinclude} ../lib/posinfo/permute.py
# :pyobject: ChannelPermutation
# ```
#
# ```{literalinclude} ../lib/posinfo/permute.py
# :pyobject: permute_channels
# ```
#
# `add_channel_permutation(model, placement)` puts one in front of backbone stage
# `placement`, or, at placement {glue:text}`ch2_after_gap`, between GAP and the linear
# classifier. Here is one pooled vector of six channels, where channel $c$ holds the value
# $c$, through the shuffle three times:

# %%
shuffle = ChannelPermutation(seed=settings.seed)
pooled = torch.arange(6.0)[None]  # (1, 6): one image's pooled vector
for _ in range(3):
    print(shuffle(pooled).tolist())  # the same values, a new order each call

# %%
runs = permutenet.run_placements(settings)  # every arm, both tasks, its seeds
arms, accuracy, chance = runs.arms, runs.accuracy, runs.chance
tasks = permutenet.TASKS
print(format_table(permutenet.placement_table(runs), index="shuffle"))

# Lowest location accuracy with the shuffle inside the backbone (prose below).
inside = [arm for arm in arms if arm.startswith("stage")]
glue_values(ch2_after_gap=after_gap,
            ch2_sweep_steps=f"{settings.steps(settings.ablation_epochs):,}",
            ch2_verdict_steps=f"{settings.steps(settings.epochs):,}")
if inside:
    lowest = min(accuracy["location"][a].mean() for a in inside)
    glue_values(ch2_inside_location=lowest)

# %% tags=["hide-input"]
means = {arm: {t: accuracy[t][arm].mean() for t in tasks} for arm in arms}
spread = {arm: {t: accuracy[t][arm].std() for t in tasks} for arm in arms}
ax = figures.grouped_bars(
    means, chance["location"], errors=spread,
    title="PermuteNet: accuracy by placement")
ax.axhline(chance["class"], color="tab:orange", ls=":", lw=1);

# %% [markdown]
# *Figure 1. Held-out accuracy for location and class with the channel shuffle at each
# placement, mean over seeds with the spread as error bars (baseline and after GAP:
# `n_seeds` seeds; inside the backbone: `n_ablation_seeds`). Dashed: location chance (1/9);
# dotted: class chance (one over the number of classes).*
#
# Two things to notice. First, shuffling *inside* the backbone hardly touches position: the
# lowest location accuracy over those placements is {glue:text}`ch2_inside_location`. The
# layers before a shuffle can make their channels interchangeable (all carrying the same
# signal), and the layers after it can compute position afresh from the borders, as in
# chapter 1. Second, the reference placement after GAP is a much stronger intervention
# than it looks. A linear layer applied to a randomly permuted vector sees
# $\sum_i w_{ki} z_{\pi(i)}$; averaged over permutations that is $\bar w_k \sum_i z_i$, and
# the rest is noise. Training drives it towards reading *only the sum* of the latent: a
# single number per image. Whatever survives this shuffle, location or class, must be
# coded in the overall magnitude of the pooled vector.

# %% [markdown]
# ## Probes: the channel order without retraining
#
# A gentler test of "position is in the channel order": take the pooled latents of the
# ordinary (baseline) networks, and train linear probes to read the cell and the class,
# once from the latent as it is and once from the latent *sorted* per image. Sorting keeps
# every activation value and destroys only which channel holds it. Probes are trained on
# half the held-out digits and scored on the other half.

# %%
baselines = {t: train_classifier(model_config(settings, t, seed=settings.seed))
             for t in ("class", "location")}  # cache hits: trained above
probes, latents = {}, {}
for target, run in baselines.items():
    latents[target] = gap_latents(run.model, run.task)
    probes[target] = probe_table(latents[target], run.task.test_labels(),
                                 seed=settings.seed)
labels = baselines["class"].task.test_labels()
print(format_table(probe_rows(probes, chance), index="network trained for"))

# %%
# Share of above-chance accuracy a probe keeps when the channel order is gone.
table = probes["class"]
kept_cell = retention(table[("sorted", "cell")], table[("ordered", "cell")],
                      chance["location"])
kept_class = retention(table[("sorted", "class")], table[("ordered", "class")],
                       chance["class"])
glue_values(ch2_kept_cell=f"{kept_cell:.0%}",
            ch2_kept_class=f"{kept_class:.0%}")
print(f"classification network: sorting keeps {kept_cell:.0%} of the "
      f"above-chance cell accuracy and {kept_class:.0%} of the above-chance "
      f"class accuracy")

# %% [markdown]
# In the network trained to recognise digits (it was never asked where they are), a probe
# reads the cell from the ordered latent far above chance: position is there, as in
# chapter 1. Sorting the latent keeps {glue:text}`ch2_kept_cell` of the above-chance cell
# accuracy and {glue:text}`ch2_kept_class` of the class accuracy: the comparison between
# those two shares is the probe's version of the claim. In the network trained for
# location, position can also be coded in the overall pattern of magnitudes, which sorting
# keeps.
#
# ## Which channels carry position?
#
# For the classification network, each channel's *position selectivity* is the share of
# its variance across test canvases that the cell explains ($\eta^2$); class selectivity is
# the same with the digit class.

# %%
z = latents["class"]
pos_sel = selectivity(z, labels["cell"])
cls_sel = selectivity(z, labels["class"])
top = np.argsort(pos_sel)[::-1][:16]  # the most position-selective channels
by_cell = cell_means(z, labels["cell"], settings.grid)[top]
glue_values(ch2_max_pos_sel=pos_sel.max(),
            ch2_median_cls_sel=f"{np.median(cls_sel):.2f}")

# %% tags=["hide-input"]
figures.selectivity_map(by_cell, top, pos_sel, cls_sel);

# %% [markdown]
# *Figure 2. Left: the mean pooled value of the 16 most position-selective channels of the
# digit classifier, for objects in each cell (each row z-scored, which magnifies small
# differences). Right: every channel's position selectivity against its class selectivity.*
#
# In this network, trained only to name digits, the cell explains at most
# {glue:text}`ch2_max_pos_sel` of any channel's variance, while the class explains a median
# {glue:text}`ch2_median_cls_sel`. No channel is a clean detector of a region: position is a
# small signal spread over many class-selective channels, each leaning a little towards
# some cells. Yet together, and only in their order, they let a linear probe name the cell
# (table above). That is the form "position is encoded channel-wise" takes here.
#
# ## Verdict
#
# **The statistic and the rule, fixed before the run.** The paper's claim is an
# *asymmetry*: under the shuffle after GAP, location falls to chance while class largely
# survives. Location and class have different chance levels, so each task's accuracy is
# put on one scale: the share of its above-chance accuracy a network keeps under the
# shuffle, $(\text{shuffled} - \text{chance}) / (\text{baseline} - \text{chance})$, with
# the shuffled and the baseline network of the *same seed* (paired). The primary statistic
# is, per seed, **class kept minus location kept**: about 1 if the paper is right (class
# keeps nearly all, location nothing), about 0 if the shuffle treats both tasks alike. Its
# mean over the seeds gets a 95% Student-t interval (the seed is the unit: a training run).
# **Claim 2 holds** when the whole interval lies above `min_effect` (0.5), **does not
# hold** when it lies below, and is **inconclusive** when it straddles it. The paper's own
# two-part rule (location within `chance_tolerance` of chance, class at least
# `class_fraction` of the baseline) is shown beside it, each part with its interval. The
# network, data and placements were chosen on pilot seeds (0-7, this book's earlier
# editions); the budget of 8 epochs, twice theirs, was set before any verdict seed ran, so
# that the budget curve reaches past the earlier setting; the verdict seeds start at 100.

# %%
def shares_at(k):
    """Per seed: class kept, location kept, and class kept - location kept."""
    return {name: np.array(list(by_seed.values()))
            for name, by_seed in permutenet.asymmetry(runs, k).items()}


# the verdict, from the per-seed values it keeps in the notebook
rule = Rule("class kept minus location kept under the shuffle after GAP",
            settings.min_effect)
verdict = judge(2, rule, permutenet.asymmetry(runs, settings.epochs)[
    "class kept - location kept"], level=settings.confidence)

# %%
# Beside the primary statistic: each task's share kept, and the paper's own
# two-part rule (location near chance, class near its baseline), same budget.
print(format_table(permutenet.verdict_rows(runs, settings, verdict.estimate)))
mean_at_verdict = {
    (t, arm): permutenet.judged_accuracy(runs, t, arm, settings.epochs).mean()
    for t in tasks for arm in permutenet.JUDGED}
glue_values(ch2_loc_shuffled=mean_at_verdict["location", "after GAP"],
            ch2_cls_shuffled=mean_at_verdict["class", "after GAP"],
            ch2_cls_baseline=mean_at_verdict["class", "baseline"])

# %%
# NBVAL_CHECK_OUTPUT
show(verdict)

# %%
print(verdict.explanation())

# %% [markdown]
# ````{note}
# ```{include} _includes/paper_scale.md
# ```
# {doc}`This chapter at the gpu profile </book/gpu/02_channel_order>`.
# ````

# %% [markdown]
# ## How the effect depends on the training budget
#
# The paper trains for 20 epochs on 50,000 images at batch 48; a small network may need
# time to learn to code the class in the total activation. The same statistic at shorter
# budgets, each a snapshot of the verdict's runs (Adam at a constant learning rate, one
# seeded data order: the first $k$ epochs of a long run *are* a $k$-epoch run), beside
# each task's own share kept. Budgets are counted in optimiser steps (one step is one
# batch), with epochs beside them.

# %%
curves = {"class kept - location kept": {}, "location kept": {},
          "class kept": {}}
for k in settings.budget_epochs:
    for name, values in shares_at(k).items():
        curves[name][k] = t_interval(values, settings.confidence)
primary = curves["class kept - location kept"]
per_epoch = settings.steps_per_epoch  # ceil(n_train / batch_size)
print(budget_table(primary, rule, "asymmetry [CI]", steps_per_epoch=per_epoch))
held_at = where_it_holds(primary, rule, steps_per_epoch=per_epoch)
glue_values(ch2_held_at=held_at,
            ch2_longest=budget_label(settings.epochs, per_epoch),
            ch2_paper_steps=f"{PAPER_STEPS:,}")

# %% tags=["budget-curve", "hide-input"]
figures.budget_curve(curves, settings.min_effect,
                     ylabel="share of above-chance accuracy",
                     title="the shuffle after GAP by training budget",
                     steps_per_epoch=settings.steps_per_epoch);

# %% [markdown]
# *Figure 3. The primary statistic (class kept minus location kept, mean over seeds with
# its 95% interval) and each task's share kept, against the training budget in optimiser
# steps (log axis, epochs in brackets); dashed: the minimal effect; dotted: the paper's
# {glue:text}`ch2_paper_steps` steps, where this run stops at
# {glue:text}`ch2_longest`.* The budgets at which the claim held:
# **{glue:text}`ch2_held_at`**.

# %% tags=["hide-input"]
# Exercise 2's numbers: the budget curve's two ends.
first, last = min(settings.budget_epochs), max(settings.budget_epochs)
glue_values(
    ch2_ex_first=budget_label(first, per_epoch),
    ch2_ex_last=budget_label(last, per_epoch),
    ch2_ex_twenty=budget_label(20, per_epoch),
    ch2_ex_cls_first=curves["class kept"][first].value,
    ch2_ex_cls_last=curves["class kept"][last].value,
    ch2_ex_loc_last=curves["location kept"][last].value)

# %% tags=["hide-input"]
# Exercise 3 run small: a width-2 network, baseline and shuffle before stage 1,
# both tasks, first seed only (four trainings; this page's width: cache hits).
stem = permutenet.narrow_stem(settings, 2)  # {"chapter", "narrow"}: one seed
acc, kept, wide = (stem["narrow"]["accuracy"], stem["narrow"]["kept"],
                   stem["chapter"]["kept"])
glue_values(
    ch2_ex_narrow=2, ch2_ex_width=settings.width,
    ch2_ex_n_loc_base=acc["location"]["baseline"],
    ch2_ex_n_loc_stage1=acc["location"]["shuffled"],
    ch2_ex_n_cls_base=acc["class"]["baseline"],
    ch2_ex_n_cls_stage1=acc["class"]["shuffled"])

# %% tags=["hide-input"]
# Exercise 3's shares kept (the verdict's scale), narrow and at this width.
glue_values(
    ch2_ex_n_loc_kept=f"{kept['location']:.0%}",
    ch2_ex_n_cls_kept=f"{kept['class']:.0%}",
    ch2_ex_w_loc_kept=f"{wide['location']:.0%}",
    ch2_ex_w_cls_kept=f"{wide['class']:.0%}",
    ch2_ex_n_cls_vs_loc=compared(kept["class"], kept["location"], (
        "more than", "less than", "as much as"), decimals=2),
    ch2_ex_cls_narrowed=compared(kept["class"], wide["class"], decimals=2),
    ch2_ex_loc_narrowed=compared(kept["location"], wide["location"],
                                 decimals=2))

# %% tags=["hide-input"]
# Exercise 4's numbers: the probes on this page's digit classifier with its
# padding switched to circular (same weights, no training).
circular = with_padding(baselines["class"].model, "circular")
circular_probes = probe_table(gap_latents(circular, baselines["class"].task),
                              labels, seed=settings.seed)
glue_values(
    ch2_ex_cell=settings.image_size, ch2_ex_stride=2 ** len(settings.blocks),
    ch2_ex_circ_cell=circular_probes[("ordered", "cell")],
    ch2_ex_circ_cell_sorted=circular_probes[("sorted", "cell")],
    ch2_ex_circ_class=circular_probes[("ordered", "class")],
    ch2_ex_zero_cell=probes["class"][("ordered", "cell")],
    ch2_ex_chance_cell=chance["location"])

# %% [markdown]
# At this scale the shuffle after GAP leaves location at {glue:text}`ch2_loc_shuffled` and
# class at {glue:text}`ch2_cls_shuffled` (means over seeds), against
# {glue:text}`ch2_cls_baseline` for the unshuffled network. The explanation above says why
# semantics can only survive this shuffle if the network learns to code the class in the
# *total* activation, one number; the paper's ResNet-18 trained for 20 epochs on 50,000
# CIFAR-10 images has far more chance to learn that than a small network on 1,437 digits.
# The `paper` profile runs the reference setting on a GPU.
#
# ## Exercises
#
# Each answer is hidden until you open it; its numbers come from this page's run.
#
# 1. **Write a shuffle with one order per image.** The library's shuffle reorders the
#    channels of the whole batch by one order. Fill in `shuffle_each` below: `features` has
#    shape $(N, C, H, W)$ (or $(N, C)$ after GAP) and `orders` shape $(N, C)$, row $n$ a
#    permutation of the channels; channel $c$ of image $n$'s output is channel
#    `orders[n, c]` of its input. The cell after it compares your function with the
#    library's `permute_channels` on known inputs and prints `matches` or `not yet`.

# %% tags=["exercise-stub"]
def shuffle_each(features, orders):
    """Image n's channels in the order orders[n]:
    out[n, c] = features[n, orders[n, c]]."""
    raise NotImplementedError("your code here")


# %% tags=["exercise-check"]
draw = torch.Generator().manual_seed(0)
maps = torch.randn(3, 5, 2, 2, generator=draw)
orders = torch.stack([torch.randperm(5, generator=draw) for _ in range(3)])
print(check(shuffle_each, permute_channels,
            [(maps, orders), (maps.mean(dim=(2, 3)), orders)]))

# %% [markdown]
#    ````{admonition} Solution
#    :class: dropdown
#    ```python
#    def shuffle_each(features, orders):
#        """Image n's channels in the order orders[n]:
#        out[n, c] = features[n, orders[n, c]]."""
#        return torch.stack([image[order] for image, order in zip(features, orders)])
#    ```
#    Indexing an image's $(C, H, W)$ tensor with a permutation of $0..C-1$ reorders its
#    channels; stacking the images back gives the batch. Without the loop, advanced indexing
#    pairs each row index with its row of `orders`:
#    `features[torch.arange(len(features))[:, None], orders]`, which is what the library
#    does. With one order per image rather than per batch the layers after the shuffle still
#    see the same values in a random order; what changes is only that the images of one
#    batch no longer share it.
#    ````
#
# 2. Does a longer run let the class survive the shuffle after GAP?
#    `python -m posinfo.run channel_order --out runs/long -p epochs 20 -p placements "(5,)"`
#
#    ```{admonition} Answer
#    :class: dropdown
#    Look at the *class kept* line of Figure 3. In this run it went from
#    {glue:text}`ch2_ex_cls_first` at {glue:text}`ch2_ex_first` to {glue:text}`ch2_ex_cls_last`
#    at {glue:text}`ch2_ex_last`, with location kept at {glue:text}`ch2_ex_loc_last` at the end.
#    Behind a random shuffle the linear layer can read only the sum of the latent, so the class
#    survives only as far as the network learns to code it in that one number. A longer run
#    ({glue:text}`ch2_ex_twenty`, still short of the paper's {glue:text}`ch2_paper_steps`
#    steps) can change the answer only if that line is still climbing at its right end; if it
#    is flat there, expect class kept to stay near {glue:text}`ch2_ex_cls_last`.
#    ```
#
# 3. Shuffle before the first stage with a very narrow network, where the channels cannot
#    all be made redundant: `python -m posinfo.run channel_order --out runs/narrow -p width 2`
#
#    ```{admonition} Answer
#    :class: dropdown
#    The shuffle before stage 1 mixes only the stem's channels; the zero-padded stages after it
#    can find the canvas border again, so location need not suffer at any width. What a random
#    order costs a narrow stem is detail: two shuffled channels can pass on only what both carry
#    alike, and the digit's class needs detail where its cell does not. So expect the class to
#    pay for a narrow shuffled stem more than location does. This page ran the exercise small:
#    width {glue:text}`ch2_ex_narrow`, the baseline and the shuffle before stage 1, both tasks, at
#    its first seed. The baseline reached {glue:text}`ch2_ex_n_loc_base` on location and
#    {glue:text}`ch2_ex_n_cls_base` on class; with the shuffle, {glue:text}`ch2_ex_n_loc_stage1`
#    and {glue:text}`ch2_ex_n_cls_stage1`. On the verdict's scale (the share of above-chance
#    accuracy kept, each arm against the width-{glue:text}`ch2_ex_narrow` baseline, narrow
#    too) location kept {glue:text}`ch2_ex_n_loc_kept` and class {glue:text}`ch2_ex_n_cls_kept`:
#    class kept {glue:text}`ch2_ex_n_cls_vs_loc` location. At this page's width
#    ({glue:text}`ch2_ex_width`), same seed, the shares were {glue:text}`ch2_ex_w_loc_kept` and
#    {glue:text}`ch2_ex_w_cls_kept`: narrowing the network, class's share
#    {glue:text}`ch2_ex_cls_narrowed` and location's {glue:text}`ch2_ex_loc_narrowed`. That is
#    one seed, so a hint, not a verdict; your run trains every placement at `n_ablation_seeds`
#    seeds and the verdict's arms at all `n_seeds`.
#    ```
#
# 4. Circular padding (chapter 1) removes position altogether. What should the probes show?
#    `python -m posinfo.run channel_order --out runs/circular -p padding circular`
#
#    ```{admonition} Answer
#    :class: dropdown
#    The cell at chance, from the ordered and the sorted latent alike. With circular padding
#    every layer commutes with circular shifts, and moving a digit one cell
#    ({glue:text}`ch2_ex_cell` px) is a whole number of the network's total stride
#    ({glue:text}`ch2_ex_stride` px), so the pooled latent is the same in every cell, whatever
#    the weights. This page's digit classifier with its padding switched to circular (same
#    weights, no retraining) shows it: the probe reads the cell at {glue:text}`ch2_ex_circ_cell`
#    from the ordered latent and {glue:text}`ch2_ex_circ_cell_sorted` from the sorted one
#    (chance {glue:text}`ch2_ex_chance_cell`), where the zero-padded original reached
#    {glue:text}`ch2_ex_zero_cell`; the class is still read at {glue:text}`ch2_ex_circ_class`.
#    A network trained with circular padding gives the same cell result by the same argument;
#    its class accuracy is for your run. With no position left to store, the probes cannot say
#    anything about *how* it is stored: this control shows the probe is not reading the cell
#    from something else.
#    ```
