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


def grouped_bars(table: dict, chance: float | dict, ax=None, ylabel="accuracy", title=""):
    """Bars for {group: {series: value}} with a dashed chance line (one value or per group)."""
    ax = ax or plt.subplots(figsize=(6, 2.8))[1]
    groups = list(table)
    series = list(dict.fromkeys(s for g in groups for s in table[g]))
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        vals = [table[g].get(s, np.nan) for g in groups]
        ax.bar(np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width, vals, width, label=s)
    for j, g in enumerate(groups):
        level = chance[g] if isinstance(chance, dict) else chance
        ax.hlines(level, j - 0.45, j + 0.45, colors="k", linestyles="--", lw=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False, ncols=len(series))
    return ax
