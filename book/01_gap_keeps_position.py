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
# # Global average pooling keeps position
#
# **Claim 1.** Global average pooling (GAP) averages a feature map over all positions, so it
# looks as if it must throw away *where* things are. It does not: a CNN whose only route to
# the output is GAP can still say in which cell of a larger canvas an object sits, far above
# chance {cite}`islam2021global`.
#
# The experiment is the paper's *location classification*: paste an image into one cell of a
# $g \times g$ grid on an otherwise blank canvas and train a network to name the cell. The
# network is GAPNet from the reference code: a ResNet {cite}`he2016deep` backbone, a $3\times3$ convolution to
# one map per cell, and GAP of each map *is* the logit. Nothing after the pooling can
# recover position, so whatever position the logits know, the pooled channels carried.

# %%
import torch
from myst_nb import glue

import posinfo
from posinfo import figures
from posinfo.canvas import make_task
from posinfo.train import epochs_for_grid, model_config, train_classifier

figures.setup()

# %% [markdown]
# ## Parameters
#
# `profile` picks a size: `smoke` (seconds, for tests), `default` (this page, a 2-core CPU),
# `paper` (CIFAR-10, ResNet-18, 20 epochs: a GPU and the dataset in `data/`). Any other
# parameter left at `None` takes the profile's value; set it to change the run.

# %% tags=["parameters"]
profile = posinfo.default_profile()  # "default" unless POSINFO_PROFILE says otherwise
seed = None  # 0; the reference code's 627937 at the paper profile
grid = None  # cells per side of the canvas
padding = None  # zeros | circular | reflect | replicate | none
background = None  # zeros | noise | texture
image_size = None  # side of each pasted image, pixels
width = None  # channels of the first backbone stage (64 in ResNet-18)
epochs = None
chance_margin = None  # how far above chance the verdict asks accuracy to be

# %%
settings = posinfo.chapter_settings(
    "gap_keeps_position", profile, seed=seed, grid=grid, padding=padding,
    background=background, image_size=image_size, width=width, epochs=epochs,
    chance_margin=chance_margin)
print(settings.table())

# %% [markdown]
# ## The task
#
# Each canvas holds one image in one cell; the label is the cell index, row by row. The
# default images are scikit-learn's bundled handwritten digits, upsampled; the `paper`
# profile uses CIFAR-10 {cite}`krizhevsky2009learning` on the paper's $96\times96$ canvas.

# %%
task = make_task(settings, target="location")
x, y, _ = next(task.train_batches(6, torch.Generator().manual_seed(settings.seed)))
figures.show_canvases(x, y, task.grid, title_fmt="cell {}");

# %% [markdown]
# ## Train GAPNet to name the cell
#
# Training canvases draw a fresh random cell for every image in every epoch. The test set is
# exhaustive: every held-out image in every cell, so each cell's accuracy rests on the same
# images.

# %%
main = train_classifier(model_config(settings))
accuracy, chance = main.evaluation.accuracy, task.chance
print(f"location accuracy {accuracy:.3f} (chance {chance:.3f}), "
      f"worst cell {main.evaluation.per_cell.min():.3f}")
glue("ch1_accuracy", f"{accuracy:.3f}", display=False)
glue("ch1_chance", f"{chance:.3f}", display=False)

# %%
figures.cell_heatmap(main.evaluation.per_cell, chance,
                     title=f"GAPNet, {settings.padding} padding, {settings.grid}x{settings.grid}");

# %% [markdown]
# *Figure 1. Held-out location accuracy of each cell.* Chance is $1/g^2$; every cell sits far
# above it, though the only path from image to logit is a global average. On this run the
# overall accuracy is {glue:text}`ch1_accuracy` against chance {glue:text}`ch1_chance`.
#
# ## Where does the position come from?
#
# Averaging a translation-*equivariant* feature map is translation-*invariant*, so the
# position must enter where equivariance breaks: at the canvas border. Padding decides what
# the border looks like to each layer. The ablation trains the same network with each
# padding mode, on a blank canvas and on one filled with noise (so that the canvas itself is
# no longer the same as the zero padding around it).

# %%
ablation = {}
for pad in settings.paddings:
    for bg in settings.backgrounds:
        run = train_classifier(model_config(settings, padding=pad, background=bg))
        ablation.setdefault(pad, {})[bg] = run.evaluation.accuracy
for pad, row in ablation.items():
    print(f"{pad:>10}: " + "  ".join(f"{bg} {acc:.3f}" for bg, acc in row.items()))
# Which paddings stay within 0.1 of chance on every background (computed, for the prose below).
at_chance = [pad for pad, row in ablation.items() if max(row.values()) < chance + 0.1]
glue("ch1_at_chance", ", ".join(at_chance) or "none of them", display=False)

# %%
figures.grouped_bars(ablation, chance, title="location accuracy by padding and background");

# %% [markdown]
# *Figure 2. Location accuracy for each padding mode (groups) and canvas background
# (bars); the dashed line is chance.* In this run the paddings that stayed at chance on every
# background were: **{glue:text}`ch1_at_chance`**.
#
# Why circular padding should sit at chance: it makes every convolution commute with
# circular shifts, and moving an image by one cell is a shift by a multiple of the network's
# total stride (8 here), so the pooled features of one image in two cells are *identical*.
# No border, no position. Zero, reflect and replicate padding and valid convolution (`none`)
# all let the border show, each in its own way. Position in a GAP network is a border
# effect, and the padding is how the border gets in, as earlier work on zero padding
# found {cite}`islam2020position,kayhan2020translation`.
#
# ## Larger grids
#
# More cells means finer position. To compare grids fairly each one is trained on as many
# canvases *per cell* as the main run (more epochs for larger grids).

# %%
by_grid = {}
for g in settings.grids:
    run = train_classifier(model_config(
        settings, grid=g, epochs=epochs_for_grid(settings.epochs, g, settings.grid)))
    by_grid[f"{g}x{g}"] = {"GAPNet": run.evaluation.accuracy}
    print(f"grid {g}x{g}: accuracy {run.evaluation.accuracy:.3f} (chance {1 / g**2:.3f})")
figures.grouped_bars(by_grid, {f"{g}x{g}": 1 / g**2 for g in settings.grids},
                     title="location accuracy by grid size");

# %% [markdown]
# *Figure 3. Location accuracy for each grid size, chance dashed.*
#
# ## Verdict
#
# The rule, fixed before the run: **Claim 1 holds** when the main GAPNet (zero padding, the
# paper's setting) reaches held-out location accuracy of at least chance + `chance_margin`
# overall, and every single cell beats chance by at least half that margin.

# %%
worst = float(main.evaluation.per_cell.min())
print(f"{'':<22}{'value':>8}{'needed':>9}")
print(f"{'overall accuracy':<22}{accuracy:>8.3f}{chance + settings.chance_margin:>9.3f}")
print(f"{'worst cell':<22}{worst:>8.3f}{chance + settings.chance_margin / 2:>9.3f}")
glue("ch1_worst_cell", f"{worst:.3f}", display=False)

# %%
# NBVAL_CHECK_OUTPUT
holds = (accuracy >= chance + settings.chance_margin
         and worst >= chance + settings.chance_margin / 2)
print(f"Claim 1: {'holds' if holds else 'does not hold'}")

# %% [markdown]
# ## Exercises
#
# 1. Circular padding gave chance. Predict what happens with circular padding on a canvas
#    whose cells are *not* a multiple of the stride, then run it:
#    `python -m posinfo.run gap_keeps_position --out runs/ex1 -p padding circular -p image_size 20`
# 2. Does a textured background change the picture for zero padding?
#    `python -m posinfo.run gap_keeps_position --out runs/ex2 -p background texture`
# 3. How few channels are enough? `python -m posinfo.run gap_keeps_position --out runs/ex3 -p width 4`
