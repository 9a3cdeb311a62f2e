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
# # Segmentation leans on position channels
#
# **Claim 4.** Mirror an image and compare the global average pool (GAP) of the backbone's
# output before and after: the channels that change most are the ones that encode position.
# A semantic segmentation network relies on them, so zeroing the top-$N$ of these channels
# hurts mIoU far more than zeroing $N$ random channels.
#
# The reference code does this with DeepLabv3-ResNet50 {cite}`chen2017rethinking` on Cityscapes
# {cite}`cordts2016cityscapes`: GAP of the 2048-channel
# backbone output for each validation image $x$ and its horizontal flip, channels ranked by
# the mean of $|z(x) - z(\mathrm{flip}\,x)|$, the top-$N$ set to zero before the ASPP head.
# This chapter runs the same recipe on a DeepLabv3-style network small enough for a CPU,
# trained on procedural street scenes (the `paper` profile runs the real thing).

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from myst_nb import glue

import posinfo
from posinfo import figures
from posinfo.attack import random_channels, rank_position_channels, region_miou
from posinfo.scenes import CLASSES, PALETTE, colorize, make_scenes
from posinfo.segment import backbone_features, segmentation_setup

figures.setup()

# %% [markdown]
# ## Parameters
#
# `profile` picks a size: `smoke` (seconds, for tests), `default` (this page, a 2-core CPU),
# `paper` (DeepLabv3-ResNet50, your Cityscapes checkpoint and the dataset in `data/`). Any
# other parameter left at `None` takes the profile's value.

# %% tags=["parameters"]
profile = posinfo.default_profile()  # "default" unless POSINFO_PROFILE says otherwise
seed = 0
scene_mode = None  # asymmetric | symmetric (mirrored at random) | distinct (own texture per class)
padding = None  # zeros | circular | reflect | replicate | none
width = None  # channels of the first backbone stage; the backbone output has 4x as many
epochs = None
channel_fractions = None  # the sweep: N as fractions of the backbone's channels
verdict_fractions = None  # (low, high): the N range the verdict looks at
n_random = None  # random channel sets drawn per N
checkpoint = None  # paper profile: the DeepLabv3-ResNet50 weights

# %%
settings = posinfo.chapter_settings(
    "position_channels", profile, seed=seed, scene_mode=scene_mode, padding=padding,
    width=width, epochs=epochs, channel_fractions=channel_fractions,
    verdict_fractions=verdict_fractions, n_random=n_random, checkpoint=checkpoint)
print(settings.table())

# %% [markdown]
# ## Street scenes that need position
#
# Cityscapes cannot be downloaded here, so a generator in `posinfo.scenes` copies on purpose
# what makes the paper's effect possible there. Several classes share a look and differ
# mainly in *where* they are: road and sidewalk are the same gravel (a thin curb between
# them), building and wall the same brick (the building on the right reaching up, the wall
# low on the left), sky and a puddle on the road the same clouds. And the scenes are
# left-right asymmetric, as in right-hand traffic: sidewalk, buildings and parked objects
# (photos) on the right, a grass verge and trees on the left. Black in the label maps is
# the ego vehicle's bonnet, ignored in scoring as in Cityscapes.

# %%
examples = make_scenes(4, settings.scene_height, settings.scene_width, settings.scene_mode,
                       torch.Generator().manual_seed(seed))
figures.image_grid({"image": [im.permute(1, 2, 0).numpy() for im in examples.images],
                    "labels": [colorize(lab) for lab in examples.labels]})
handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE[k]) for k in range(len(CLASSES))]
plt.figlegend(handles, CLASSES, loc="lower center", ncols=len(CLASSES), fontsize=7, frameon=False,
              bbox_to_anchor=(0.5, -0.06));

# %% [markdown]
# *Figure 1. Four generated scenes (top) and their label maps (bottom).* Road and sidewalk,
# building and wall, sky and puddle are painted with the same texture; only where they sit
# (and a curb) tells them apart.
#
# ## Train the segmenter
#
# The network is the project's ResNet backbone (zero padding unless changed) with
# torchvision's DeepLabv3 head (ASPP with atrous rates scaled to the small feature map, and
# its image-pooling branch), trained with per-pixel cross-entropy through the project's one
# training loop. No flip augmentation: it would make the data symmetric. The trained model is
# cached, and the next chapter reuses it.

# %%
setup = segmentation_setup(settings)
model, images, labels, K = setup.model, setup.images, setup.labels, setup.num_classes
features = backbone_features(model, images)  # computed once: every attack reruns only the head
clean = region_miou(model, images, labels, K, features=features)
C = model.channels
print(f"backbone output: {C} channels; validation images: {len(images)}")
print("clean mIoU  " + "  ".join(f"{k} {v:.3f}" for k, v in clean.items()))
glue("ch4_clean", f"{clean['whole']:.3f}", display=False)
glue("ch4_channels", str(C), display=False)

# %% [markdown]
# The clean model reaches mIoU {glue:text}`ch4_clean` on held-out scenes; its backbone output
# has {glue:text}`ch4_channels` channels.
#
# ## Rank channels by what a mirror changes
#
# For each validation image, $d = z(x) - z(\mathrm{flip}\,x)$ with $z$ the GAP of the backbone
# output. The overall ranking sorts channels by the mean of $|d|$.

# %%
ranking = rank_position_channels(model, images)
order = ranking.abs_diff[ranking.overall]
plt.figure(figsize=(5.5, 2.4))
plt.bar(np.arange(C), order.numpy(), width=1.0)
plt.xlabel("channel, by rank"), plt.ylabel("mean |z(x) - z(flip x)|");

# %% [markdown]
# *Figure 2. Flip sensitivity of every backbone channel, sorted.* A few channels change a lot
# under mirroring; most change little.
#
# ## Zero the top-$N$, the bottom-$N$, or $N$ random channels
#
# For each $N$ in the sweep the attack zeroes the top-$N$ (most flip-sensitive), the
# bottom-$N$ (least) and `n_random` random sets of $N$ channels of the backbone output, and
# scores whole-frame mIoU.

# %%
ns = sorted({max(1, round(f * C)) for f in settings.channel_fractions})
draws = torch.Generator().manual_seed(seed)
sweep = {"top-N": [], "bottom-N": [], "random-N": [], "random std": [], "random min": []}
for n in ns:
    sweep["top-N"].append(region_miou(model, images, labels, K, ranking.top("overall", n, model),
                                      features=features)["whole"])
    sweep["bottom-N"].append(region_miou(model, images, labels, K, ranking.top("bottom", n, model),
                                         features=features)["whole"])
    rnd = torch.tensor([region_miou(model, images, labels, K, random_channels(C, n, draws),
                                    features=features)["whole"] for _ in range(settings.n_random)])
    sweep["random-N"].append(rnd.mean().item())
    sweep["random std"].append(rnd.std().item())
    sweep["random min"].append(rnd.min().item())
print(f"{'N':>5}" + "".join(f"{k:>12}" for k in sweep))
for i, n in enumerate(ns):
    print(f"{n:>5}" + "".join(f"{sweep[k][i]:>12.3f}" for k in sweep))

# %%
figures.attack_curves(ns, {k: sweep[k] for k in ("top-N", "bottom-N", "random-N")},
                      spread={"random-N": sweep["random std"]}, clean=clean["whole"],
                      title=f"zeroing N of {C} backbone channels");

# %% [markdown]
# *Figure 3. Whole-frame mIoU after zeroing $N$ channels: the most flip-sensitive ones
# (top-$N$), the least (bottom-$N$), and random sets (mean, band = one standard deviation over
# draws); dashed: no attack.* If segmentation leaned on the flip-sensitive channels, the
# top-$N$ curve would fall well below the random band.
#
# ## Verdict
#
# The rule, fixed before the run: **Claim 4 holds** when, at every swept $N$ whose fraction
# of the channels lies in `verdict_fractions`, zeroing the top-$N$ lowers mIoU below the
# random-$N$ mean by more than two standard deviations of the random draws.

# %%
low, high = settings.verdict_fractions
in_range = [i for i, n in enumerate(ns) if low * C - 1e-9 <= n <= high * C + 1e-9]
gaps = [sweep["random-N"][i] - sweep["top-N"][i] for i in in_range]
bars = [2 * sweep["random std"][i] for i in in_range]
print(f"{'N':>5}{'random - top':>14}{'needed':>9}")
for i, gap, bar in zip(in_range, gaps, bars):
    print(f"{ns[i]:>5}{gap:>14.3f}{bar:>9.3f}")
glue("ch4_gap_range", f"{min(gaps):.3f} to {max(gaps):.3f}", display=False)
bottom_gaps = [sweep["random-N"][i] - sweep["bottom-N"][i] for i in in_range]
glue("ch4_bottom_gap_range", f"{min(bottom_gaps):.3f} to {max(bottom_gaps):.3f}", display=False)

# %%
# NBVAL_CHECK_OUTPUT
holds = bool(in_range) and all(gap > bar for gap, bar in zip(gaps, bars))
print(f"Claim 4: {'holds' if holds else 'does not hold'}")

# %% [markdown]
# On this run the top-$N$ attack's extra damage over random-$N$ in the verdict's range was
# {glue:text}`ch4_gap_range` (a negative value means top-$N$ hurt *less* than random). The
# same quantity for the *bottom*-$N$, the least flip-sensitive channels, was
# {glue:text}`ch4_bottom_gap_range`.
#
# ## What the effect depends on
#
# Why can the flip ranking miss what segmentation needs? A channel that encodes *pure*
# position (say, "near the right border", whatever the content) has the same GAP for an
# image and its mirror: mirroring moves content, not the border. So $|d|$ ranks channels
# that tie content to a place (gravel on the right, brick up high): they are
# flip-sensitive only as far as the data's content is asymmetric. Channels that carry
# position for every content alike are flip-*insensitive* and land at the bottom of the
# ranking, so a bottom-$N$ attack that hurts more than random (as it did in our exploration
# runs) is no contradiction of position coding, only of the flip as a way to find it. Exploring before sizing
# this chapter (48x96 and 32x64 scenes, 6 to 8 epochs, a 3- and a 4-stage backbone), the
# top-$N$ curve never fell below the random band: the small network spreads what it needs
# over many channels, and the channels mirroring moves most are not the ones it leans on
# hardest. On the symmetric control (`scene_mode="symmetric"`) the signed mean difference
# per channel shrank about tenfold, as it must: there E[d] = 0. The paper's effect on
# Cityscapes comes from a 2048-channel ResNet-50 trained for a long time on real street
# scenes; the `paper` profile wires that up, and this chapter does not reproduce it at CPU
# scale.
#
# ## Exercises
#
# 1. Remove the look-alikes: with every class on its own texture, does anything change?
#    `python -m posinfo.run position_channels --out runs/ex1 -p scene_mode distinct`
# 2. Remove the asymmetry and compare Figure 2:
#    `python -m posinfo.run position_channels --out runs/ex2 -p scene_mode symmetric`
# 3. Circular padding removes the border the network could read position from:
#    `python -m posinfo.run position_channels --out runs/ex3 -p padding circular`
# 4. Train longer: `python -m posinfo.run position_channels --out runs/ex4 -p epochs 20`
