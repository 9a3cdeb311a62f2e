"""Figures every chapter draws the same way: modest DPI PNGs, shared styling.

Used by every chapter.
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np


def setup(dpi: int = 80) -> None:
    """Inline PNGs at a modest DPI keep each executed notebook well under 2 MB."""
    matplotlib.rcParams.update({"figure.dpi": dpi, "savefig.dpi": dpi, "font.size": 10,
                                "axes.spines.top": False, "axes.spines.right": False})


def show_canvases(canvases, labels, grid: int, n: int = 6, title_fmt="cell {}"):
    """A row of example canvases with the grid drawn on and each label as the title."""
    n = min(n, len(canvases))
    fig, axes = plt.subplots(1, n, figsize=(1.8 * n, 2.0))
    axes = np.atleast_1d(axes)
    size = canvases.shape[-1]
    for ax, img, lab in zip(axes, canvases[:n].cpu(), labels[:n].cpu()):
        ax.imshow(img.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
        for k in range(1, grid):
            ax.axhline(k * size / grid - 0.5, color="tab:orange", lw=0.6)
            ax.axvline(k * size / grid - 0.5, color="tab:orange", lw=0.6)
        ax.set_title(title_fmt.format(int(lab)), fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def cell_heatmap(per_cell: np.ndarray, chance: float, ax=None, title: str = ""):
    """Per-cell accuracy as a g x g heatmap, annotated, with chance in the colour bar label."""
    ax = ax or plt.subplots(figsize=(3.2, 2.8))[1]
    im = ax.imshow(per_cell, vmin=0, vmax=1, cmap="viridis")
    for (r, c), v in np.ndenumerate(per_cell):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=8,
                color="black" if v > 0.5 else "white")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label=f"accuracy (chance {chance:.2f})")
    return ax


def grouped_bars(table: dict, chance: float | dict, ax=None, ylabel="accuracy", title="",
                 errors: dict | None = None):
    """Bars for {group: {series: value}} with a dashed chance line (one value or per group).

    ``errors``, shaped like ``table``, draws an error bar on each bar (e.g. the seed spread).
    """
    ax = ax or plt.subplots(figsize=(6, 2.8))[1]
    groups = list(table)
    series = list(dict.fromkeys(s for g in groups for s in table[g]))
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        vals = [table[g].get(s, np.nan) for g in groups]
        err = [errors[g].get(s, 0) for g in groups] if errors else None
        ax.bar(np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width, vals, width, label=s,
               yerr=err, capsize=2 if err else 0)
    for j, g in enumerate(groups):
        level = chance[g] if isinstance(chance, dict) else chance
        ax.hlines(level, j - 0.45, j + 0.45, colors="k", linestyles="--", lw=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if len(series) > 1:  # above the axes: bars near 1.0 would hide an inside legend
        ax.legend(fontsize=8, frameon=False, ncols=len(series), loc="lower center",
                  bbox_to_anchor=(0.5, 1.08))
    return ax


def image_grid(rows: dict, col_titles=(), height: float = 1.3):
    """A grid of images: {row label: [HxWx3 arrays]}, one column per array."""
    names = list(rows)
    ncols = max(len(v) for v in rows.values())
    aspect = rows[names[0]][0].shape[1] / rows[names[0]][0].shape[0]
    fig, axes = plt.subplots(len(names), ncols,
                             figsize=(height * aspect * ncols, height * len(names)),
                             squeeze=False)
    for r, name in enumerate(names):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < len(rows[name]):
                ax.imshow(rows[name][c], interpolation="nearest")
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0 and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=8)
    fig.tight_layout()
    return fig


def attack_curves(ns, curves: dict, spread: dict | None = None, clean: float | None = None,
                  ax=None, xlabel="channels zeroed (N)", ylabel="mIoU", title=""):
    """mIoU against N for several channel choices; ``spread`` {name: std} draws a band."""
    ax = ax or plt.subplots(figsize=(5.5, 3.0))[1]
    for name, values in curves.items():
        ax.plot(ns, values, marker="o", ms=3, label=name)
        if spread and name in spread:
            lo = np.asarray(values) - np.asarray(spread[name])
            hi = np.asarray(values) + np.asarray(spread[name])
            ax.fill_between(ns, lo, hi, alpha=0.25)
    if clean is not None:
        ax.axhline(clean, color="k", ls="--", lw=1, label="no attack")
    ax.set_xlabel(xlabel), ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return ax


def selectivity_map(by_cell: np.ndarray, channels, position: np.ndarray,
                    semantic: np.ndarray):
    """Left: each listed channel's mean pooled value per cell (rows z-scored, which
    magnifies small differences). Right: every channel's position selectivity against its
    class selectivity."""
    normalised = (by_cell - by_cell.mean(1, keepdims=True)) / (
        by_cell.std(1, keepdims=True) + 1e-9)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 3.2),
                               gridspec_kw={"width_ratios": [1.4, 1]})
    im = a.imshow(normalised, aspect="auto", cmap="coolwarm", vmin=-2.5, vmax=2.5)
    a.set_xlabel("cell (row-major)")
    a.set_ylabel(f"channel (top {len(channels)} by position selectivity)")
    a.set_yticks(range(len(channels)), channels, fontsize=7)
    a.set_xticks(range(by_cell.shape[1]))
    fig.colorbar(im, ax=a, label="mean GAP value (z-scored)")
    b.scatter(semantic, position, s=10)
    b.set_xlabel("class selectivity")
    b.set_ylabel("position selectivity")
    # position is a small signal: keep its axis readable
    b.set_xlim(0, 1)
    b.set_ylim(0, max(0.05, 1.2 * float(position.max())))
    fig.tight_layout()
    return fig


def shift_curves(shifts, curves: dict, colours: dict | None = None):
    """Accuracy against shift, one line per arm: {arm: (mean, std)} over seeds, band ± std."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for arm, (mean, std) in curves.items():
        colour = (colours or {}).get(arm)
        ax.plot(shifts, mean, marker="o", ms=3, color=colour, label=arm)
        ax.fill_between(shifts, mean - std, mean + std, color=colour, alpha=0.15)
    ax.set_xlabel("diagonal shift from the centre (pixels down and right)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return ax


def metric_vs_lambda(series: dict, ylabel: str, xlabel: str):
    """{label: {augshift_lambda: [values over seeds]}} as mean ± std against AugShift's λ,
    log axis; λ = 0 sits one decade left of the smallest positive λ."""
    lambdas = sorted({w for points in series.values() for w in points})
    positive = [w for w in lambdas if w > 0]
    zero_at = min(positive) / 10 if positive else 0.01
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    for label, points in series.items():
        ws = sorted(points)
        values = [np.asarray(points[w], dtype=float) for w in ws]
        ax.errorbar([w or zero_at for w in ws], [v.mean() for v in values],
                    yerr=[v.std(ddof=1) if len(v) > 1 else 0 for v in values],
                    marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.set_xticks([w or zero_at for w in lambdas], [f"{w:g}" for w in lambdas])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return ax


def budget_curve(curves: dict, threshold: float | None = None, ylabel: str = "",
                 title: str = "", *, steps_per_epoch: int | None = None):
    """A statistic against training budget: {label: {epochs: Estimate}}, each point its
    estimate with its confidence interval; dashed: the minimal effect the claim needs.

    With ``steps_per_epoch`` (``settings.steps_per_epoch``) the x axis is optimiser steps,
    each budget's epochs under its step count, and a dotted line marks the paper's
    ``verdict.PAPER_STEPS`` (20,833), the axis extended to hold it. The axis is logarithmic:
    budgets double (or nearly), and the paper's count is 30 to 1,000 times the shortest
    budget, so a linear axis would squeeze every CPU budget into its first percent. Without
    ``steps_per_epoch``: epochs only, and no mark (the paper's epochs are of another dataset).
    """
    from .budgets import check_steps_per_epoch
    from .settings import PAPER_STEPS

    per_epoch = 1 if steps_per_epoch is None else check_steps_per_epoch(steps_per_epoch)
    fig, ax = plt.subplots(figsize=(5.5, 3.0))
    for i, (label, points) in enumerate(curves.items()):
        epochs = sorted(points)
        # a small sideways offset keeps several curves' bars apart on the log axis
        x = (np.asarray(epochs, dtype=float) * per_epoch
             * 1.04 ** (i - (len(curves) - 1) / 2))
        est = [points[k] for k in epochs]
        value = np.array([e.value for e in est])
        low = np.array([e.low for e in est])
        high = np.array([e.high for e in est])
        # an unbounded interval (one seed) is drawn as no bar, not as an infinite one
        finite = np.isfinite(low) & np.isfinite(high)
        err = np.where(finite, [value - low, high - value], 0.0)
        ax.errorbar(x, value, yerr=err, marker="o", capsize=3, label=label)
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=1, label="minimal effect")
    ax.axhline(0, color="0.6", lw=0.8)
    budgets = sorted({k for points in curves.values() for k in points})
    if steps_per_epoch is None:
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets, [str(k) for k in budgets])
        ax.set_xlabel("training budget (epochs)")
    else:
        steps = [k * per_epoch for k in budgets]
        ax.axvline(PAPER_STEPS, color="tab:red", ls=":", lw=1.5,
                   label=f"paper: {PAPER_STEPS:,} steps")
        ax.set_xscale("log")
        ticks = dict(zip(steps, [f"{s:,}\n({k})" for s, k in zip(steps, budgets)]))
        if all(abs(np.log10(s / PAPER_STEPS)) > 0.15 for s in steps):
            ticks[PAPER_STEPS] = f"{PAPER_STEPS:,}\n(paper)"  # else a budget's tick is there
        ax.set_xticks(list(ticks), list(ticks.values()), fontsize=8)
        ax.set_xlim(min(steps[0], PAPER_STEPS) / 1.6, max(steps[-1], PAPER_STEPS) * 1.6)
        ax.set_xlabel("training budget: optimiser steps (epochs)")
    ax.minorticks_off()
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return ax


def class_legend(names, colours) -> None:
    """A row of colour patches naming each class, under the current figure."""
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours]
    plt.figlegend(handles, names, loc="lower center", ncols=len(names), fontsize=7,
                  frameon=False, bbox_to_anchor=(0.5, -0.06))


def sorted_profiles(profiles: dict, xlabel: str, ylabel: str):
    """One line per {label: values}, each sorted from largest to smallest."""
    fig, ax = plt.subplots(figsize=(5.5, 2.4))
    for label, values in profiles.items():
        values = np.sort(np.asarray(values, dtype=float))[::-1]
        ax.plot(np.arange(len(values)), values, lw=1, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return ax
