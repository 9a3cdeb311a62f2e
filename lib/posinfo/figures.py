"""Figures every chapter draws the same way: modest DPI PNGs, shared styling."""
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
    fig, axes = plt.subplots(len(names), ncols, figsize=(height * aspect * ncols, height * len(names)),
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
