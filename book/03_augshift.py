# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # AugShift: teaching the pooled latent to forget where the object is
#
# **Claim 3.** If position reaches the pooled latent through the border (chapter 1), a
# network can be *trained* not to carry it. AugShift shows the network two shifted views of
# every image and adds a penalty on the difference of their global-average-pooled (GAP)
# latents to the two classification losses:
#
# $$\mathcal{L} = \mathrm{CE}(f(x_1), y) + \mathrm{CE}(f(x_2), y)
#   + \lambda\,\mathrm{MSE}\big(z(x_1), z(x_2)\big),$$
#
# where $x_1, x_2$ are the same image at two positions and $z$ is the GAP latent. The claim
# is that this improves translation invariance. The authors did not release their code, so
# this chapter is the reference implementation, and it is built to be fair: the baseline
# is the same loss with $\lambda = 0$, so it sees *exactly the same views* and differs only
# by the consistency term. The peer baseline is BlurPool {cite}`zhang2019making` (anti-aliased downsampling, Zhang
# 2019), and AugShift + BlurPool combines the two.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from myst_nb import glue

import posinfo
from posinfo import augshift, figures

figures.setup()

# %% [markdown]
# ## Parameters
#
# `profile` picks a size: `smoke` (seconds, for tests), `default` (this page, a 2-core CPU),
# `paper` (CIFAR-10, ResNet-18, a GPU and the dataset in `data/`). A parameter left at `None`
# takes the profile's value.

# %% tags=["parameters"]
profile = posinfo.default_profile()  # "default" unless POSINFO_PROFILE says otherwise
seed = 0  # first seed; the runs use seed .. seed + n_seeds - 1
augshift_lambda = None  # weight of the consistency term in the AugShift arms the verdict judges
lambdas = None  # the lambda sweep of Figure 3, e.g. (0.1, 1.0, 10.0)
shift_protocol = None  # crop (zero-padded canvas) | roll (circular shift)
margin = None  # blank pixels around the centred image on each side of the canvas
max_shift = None  # largest shift of a view, pixels (at most margin)
background = None  # zeros | noise | texture
padding = None  # zeros | circular | reflect | replicate | none
blur_size = None  # BlurPool's binomial filter size, 1..7
epochs = None
width = None
n_seeds = None
accuracy_margin = None  # how much clean accuracy AugShift may lose and still "hold"

# %%
# Every knob of the profile table that is set here (or injected by the runner, e.g.
# `-p n_pairs 8`) overrides the profile; all are validated before any training.
knobs = posinfo.settings.CHAPTERS["augshift"][profile]
settings = posinfo.chapter_settings("augshift", profile, seed=seed,
                                    **{k: v for k, v in globals().items() if k in knobs})
print(settings.table())

# %% [markdown]
# ## The task and the two views
#
# A digit sits in the middle of a canvas with `margin` blank pixels on each side. A *view*
# moves it by a random $(\Delta y, \Delta x)$, each up to `max_shift` pixels, so training
# images appear anywhere on the canvas and the task is to name the digit wherever it is.
# Each training image is shown as two views at independent random offsets. The `crop`
# protocol reads a view as a crop of the zero-padded canvas; `roll` shifts circularly
# (`torch.roll`). On a blank canvas the two give the same pixels (a unit test checks it);
# they part ways on a textured background, where `crop` lets a band of zeros in at the edge.

# %%
task = augshift.make_shift_task(settings)
views, labels, _ = next(task.train_batches(4, torch.Generator().manual_seed(seed)))
first, second = views.chunk(2)
pairs = torch.stack([first, second], 1).flatten(0, 1)  # view 1, view 2 of each digit, in turn
figures.show_canvases(pairs, labels.repeat_interleave(2), grid=1, n=8, title_fmt="digit {}");

# %% [markdown]
# *Figure 1. Training pairs: each digit twice, at two random positions.* Both views go
# through the network in one batch; the baseline's loss is the two cross-entropies, AugShift
# adds $\lambda$ times the mean squared difference of the two GAP latents.
#
# ## Train every arm with the same budget
#
# Baseline ($\lambda = 0$), AugShift at each $\lambda$ of the sweep, BlurPool, and AugShift +
# BlurPool: the same data, views, epochs, optimiser and seeds (a seed fixes the weight
# initialisation and the order and offsets of the views, so arms are compared pairwise).

# %%
results = augshift.run_experiment(settings)
summary = augshift.summarise(results)
print(f"{len(results)} runs, {sum(r.from_cache for r in results)} loaded from the cache")

# %% [markdown]
# ## What the metrics mean
#
# - **clean accuracy**: test digits in the middle of the canvas (no shift).
# - **consistency** (Zhang 2019): the fraction of test images whose predicted class is the
#   same for two random shifts. 1 means the answer never depends on where the digit is.
# - **latent distance**: how far a shift moves the GAP latent, as a fraction of the typical
#   distance between two *different* test digits (so no network looks stable by shrinking
#   its latents). 0 is perfectly stable.
# - **position probe**: a linear classifier trained on frozen GAP latents to say which of
#   $3\times3$ regions the digit sits in (chance 0.111). Lower means the latent carries
#   less position.
#
# Each cell is the mean ± standard deviation over the seeds.

# %% mystnb={"markdown_format": "gfm"}
display(Markdown(augshift.markdown_table(summary)))

# %% [markdown]
# *Table 1. Invariance of every arm (mean ± standard deviation over seeds; arrows say which
# direction is better).*

# %%
main_arms = {"baseline": "tab:gray", f"AugShift λ={settings.augshift_lambda:g}": "tab:blue",
             "BlurPool": "tab:orange",
             f"AugShift λ={settings.augshift_lambda:g} + BlurPool": "tab:green"}
fig, ax = plt.subplots(figsize=(5.5, 3.2))
shifts = list(range(settings.max_shift + 1))
for arm, colour in main_arms.items():
    mean, std = summary[arm]["shift_curve"]
    ax.plot(shifts, mean, marker="o", ms=3, color=colour, label=arm)
    ax.fill_between(shifts, mean - std, mean + std, color=colour, alpha=0.15)
ax.set_xlabel("diagonal shift from the centre (pixels down and right)")
ax.set_ylabel("test accuracy")
ax.legend(fontsize=8, frameon=False)
fig.tight_layout()

# %% [markdown]
# *Figure 2. Accuracy as the test digit slides from the centre of the canvas towards its
# bottom-right corner (mean over seeds, band ± one standard deviation).* A shift-invariant
# classifier draws a flat line; the height of the line is its accuracy.

# %%
sweep = sorted({r.lam for r in results if not r.blurpool})
zero_at = sweep[1] / 10 if len(sweep) > 1 else 0.01  # where λ = 0 sits on the log axis
fig, ax = plt.subplots(figsize=(5.5, 3.0))
for blur, colour, label in ((False, "tab:blue", "AugShift"), (True, "tab:green", "AugShift + BlurPool")):
    lams = sorted({r.lam for r in results if r.blurpool == blur})
    per_lam = [[r.consistency for r in results if r.blurpool == blur and r.lam == lam] for lam in lams]
    x = [lam or zero_at for lam in lams]
    ax.errorbar(x, [np.mean(v) for v in per_lam], yerr=[np.std(v, ddof=1) if len(v) > 1 else 0
                for v in per_lam], marker="o", capsize=3, color=colour, label=label)
ax.set_xscale("log")
ax.set_xticks([lam or zero_at for lam in sweep], [f"{lam:g}" for lam in sweep])
ax.minorticks_off()
ax.set_xlabel("λ, weight of the latent-consistency term")
ax.set_ylabel("consistency")
ax.legend(fontsize=8, frameon=False)
fig.tight_layout()

# %% [markdown]
# *Figure 3. Consistency against the weight $\lambda$ of the latent-consistency term (mean ±
# one standard deviation over seeds).* The leftmost blue point is the baseline and the
# leftmost green one is BlurPool alone.

# %%
base, aug = summary["baseline"], summary[f"AugShift λ={settings.augshift_lambda:g}"]
blur, both = summary["BlurPool"], summary[f"AugShift λ={settings.augshift_lambda:g} + BlurPool"]
gain = aug["consistency"][0] - base["consistency"][0]
# Two standard errors of the difference of two means over n_seeds runs each: the noise a
# gain must clear (with 2 or 3 seeds, one standard deviation is no test at all).
spread = 2 * ((aug["consistency"][1] ** 2 + base["consistency"][1] ** 2) / settings.n_seeds) ** 0.5
accuracy_change = aug["clean_accuracy"][0] - base["clean_accuracy"][0]
for name, value in {"base_consistency": base["consistency"][0], "aug_consistency": aug["consistency"][0],
                    "gain": gain, "spread": spread, "accuracy_change": accuracy_change,
                    "base_accuracy": base["clean_accuracy"][0], "aug_accuracy": aug["clean_accuracy"][0],
                    "blur_consistency": blur["consistency"][0], "both_consistency": both["consistency"][0],
                    "base_probe": base["position_probe"][0], "aug_probe": aug["position_probe"][0],
                    "base_distance": base["latent_distance"][0], "aug_distance": aug["latent_distance"][0],
                    }.items():
    glue(f"ch3_{name}", f"{value:+.3f}" if name in ("gain", "accuracy_change") else f"{value:.3f}",
         display=False)
glue("ch3_lambda", f"{settings.augshift_lambda:g}", display=False)
# The two ends of the trade-off within the sweep (no BlurPool), for the prose below.
sweep_arms = {lam: name for name, (lam, blur_on) in augshift.arms(settings).items() if not blur_on}
most_consistent = max(sweep_arms, key=lambda lam: summary[sweep_arms[lam]]["consistency"][0])
most_accurate = max(sweep_arms, key=lambda lam: summary[sweep_arms[lam]]["clean_accuracy"][0])
glue("ch3_most_consistent", f"{most_consistent:g}", display=False)
glue("ch3_most_accurate", f"{most_accurate:g}", display=False)
glue("ch3_blur_probe", f"{blur['position_probe'][0]:.3f}", display=False)
# How much single runs disagree: the largest spread over seeds of any arm (for the prose).
glue("ch3_max_acc_std", f"{max(r['clean_accuracy'][1] for r in summary.values()):.3f}", display=False)
glue("ch3_max_cons_std", f"{max(r['consistency'][1] for r in summary.values()):.3f}", display=False)
print(f"consistency: baseline {base['consistency'][0]:.3f}, AugShift {aug['consistency'][0]:.3f}, "
      f"BlurPool {blur['consistency'][0]:.3f}, both {both['consistency'][0]:.3f}")

# %% [markdown]
# ## Reading the results
#
# In this run AugShift at $\lambda =$ {glue:text}`ch3_lambda` moved consistency from
# {glue:text}`ch3_base_consistency` (baseline) to {glue:text}`ch3_aug_consistency`
# ({glue:text}`ch3_gain`, against a noise level of {glue:text}`ch3_spread`), while clean
# accuracy went from {glue:text}`ch3_base_accuracy` to {glue:text}`ch3_aug_accuracy`. The
# latent itself moved less under a shift (latent distance {glue:text}`ch3_base_distance` →
# {glue:text}`ch3_aug_distance`), and the linear probe read the digit's region less well
# ({glue:text}`ch3_base_probe` → {glue:text}`ch3_aug_probe`, chance 0.111): the consistency
# term removes position from the pooled latent, the very information chapter 1 showed a GAP
# network keeps. BlurPool alone reached {glue:text}`ch3_blur_consistency`, and the two
# together {glue:text}`ch3_both_consistency`.
#
# **The trade-off.** The consistency term asks for something the classification loss does
# not: a latent that does not move. In this sweep the most consistent network came from
# $\lambda =$ {glue:text}`ch3_most_consistent` and the most accurate one from
# $\lambda =$ {glue:text}`ch3_most_accurate`. A large weight competes with the
# cross-entropies for the same weights, and what it buys shows first in the latent (latent
# distance and position probe, the quantities the penalty acts on) and only then, if at all,
# in the predictions. BlurPool works differently: it removes aliasing when a stride-2 step
# samples a shifted map, but leaves the border that carries position, so position stays
# readable in its latent (probe {glue:text}`ch3_blur_probe`). And position is information: a
# network that must also *locate* things (segmentation, detection) pays for invariance that
# a classifier gets for free.
#
# **How much to trust the verdict at this scale.** Single training runs disagree a lot
# here: the largest spread over seeds is {glue:text}`ch3_max_acc_std` in clean accuracy and
# {glue:text}`ch3_max_cons_std` in consistency, the same order as the effect being measured.
# While this chapter was written with 3 seeds, a run of the identical code that differed
# only in the number of CPU threads (which changes the order of floating-point sums, and so
# every trajectory after the first steps) came out with the opposite verdict. The
# latent-side effects of AugShift (smaller latent distance, lower position probe) held in
# both runs; the prediction-side consistency gain did not. The default profile has run 8
# seeds since (the noise level below shrinks as one over the square root of the number of
# seeds); longer training or the `paper` profile would say more.
#
# ## Verdict
#
# The rule (`augshift_lambda` fixed after a pilot run of the sweep; the noise level tightened
# once, from one seed standard deviation to two standard errors, after the two runs of
# identical code described above disagreed): **Claim 3 holds** when AugShift at $\lambda$ =
# `augshift_lambda` (no BlurPool) beats the baseline's mean consistency by more than the
# noise level, two standard errors of the difference of the two means
# ($2\sqrt{(s_\text{AugShift}^2 + s_\text{baseline}^2)/n}$ with $s$ the standard deviation
# over the $n$ seeds), *and* its mean
# clean accuracy is no more than `accuracy_margin` below the baseline's.

# %%
accuracy_ok = accuracy_change >= -settings.accuracy_margin
print(f"{'':<30}{'value':>8}{'needed':>10}")
print(f"{'consistency gain':<30}{gain:>8.3f}{'> ' + format(spread, '.3f'):>10}")
print(f"{'clean accuracy change':<30}{accuracy_change:>8.3f}{'>= ' + format(-settings.accuracy_margin, '.3f'):>10}")

# %%
# NBVAL_CHECK_OUTPUT
holds = gain > spread and accuracy_ok
print(f"Claim 3: {'holds' if holds else 'does not hold'}")

# %% [markdown]
# ## Exercises
#
# 1. Rerun with another consistency weight and watch the trade-off:
#    `python -m posinfo.run augshift --out runs/lam30 -p augshift_lambda 30.0`
# 2. On a textured canvas the two shift protocols differ. Does AugShift still help when
#    the view is a circular shift?
#    `python -m posinfo.run augshift --out runs/roll -p background texture -p shift_protocol roll`
# 3. Circular padding removes the border as a source of position (chapter 1). How much is
#    left for AugShift to fix? `python -m posinfo.run augshift --out runs/circ -p padding circular`
# 4. A wider blur: `python -m posinfo.run augshift --out runs/blur5 -p blur_size 5`
