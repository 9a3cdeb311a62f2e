"""Checks that need several of a chapter's settings at once, run after every knob passed its
own (``checks``): the image fits a cell and the network fits the canvas, one training step
fits the profile's memory, the attacked channels exist, the judged arm lies in its sweep,
budgets and seeds stay inside the run they are snapshots of. ``settings.chapter_settings``
calls ``cross_check`` on every resolved chapter, before any data is built.

Used by every chapter, through ``settings``, and the runner.
"""
from __future__ import annotations

from .checks import (CONTROL_MODES, PAPER_SEGMENTER_CHANNELS, check_blur_size, check_geometry,
                     check_input_size, check_placement, check_shift)
from .geometry import backbone_channels, ceil_div


# ---- memory: a canvas the profile's machine could not train on is refused before training ----
# Budget, per profile, for the largest activation map of one training batch: the first
# stage's input, batch_size x views x width x (canvas side / stem stride)^2 float32 values.
# The backward pass keeps about ten maps of that size per first-stage block, so each budget is
# a tenth of the memory the profile expects: a laptop for smoke and default, one GPU for paper.
MEMORY_BUDGET_MIB = {"smoke": 256, "default": 512, "gpu": 4096, "paper": 4096}


def _check_memory(s) -> None:
    if "batch_size" not in s or "width" not in s or s.get("data", "scenes") != "scenes":
        return  # data="cityscapes" evaluates given weights: nothing is trained
    budget_mib = MEMORY_BUDGET_MIB[s.profile]
    budget = budget_mib * 2**20
    # AugShift trains both views in one batch, and its BlurPool arms run the stem at stride 1.
    views, stride = (2, 1) if "margin" in s else (1, 2)
    per_pixel = s.batch_size * views * s.width * 4  # bytes per pixel of the first-stage map
    area = ("(scene_height / 2) x (scene_width / 2)" if "scene_height" in s
            else "side^2" if stride == 1 else "(side / 2)^2")
    formula = (f"batch_size {s.batch_size}{' x 2 views' if views == 2 else ''} x width "
               f"{s.width} x {area} x 4 bytes")

    def refuse(what: str, need: int):
        raise ValueError(f"{what} at the {s.profile} profile: one training batch's first-stage "
                         f"activations ({formula}) would need {need / 2**20:.0f} MiB, over the "
                         f"profile's memory budget of {budget_mib} MiB (lower batch_size or "
                         f"width to allow more)")

    if "scene_height" in s:
        rows = ceil_div(s.scene_height, stride)
        need = per_pixel * rows * ceil_div(s.scene_width, stride)
        if need > budget:
            most = stride * (budget // (per_pixel * rows))
            refuse(f"scene_width must be at most {most} with scene_height={s.scene_height}, "
                   f"got {s.scene_width}", need)
        return
    side_max = stride * int((budget // per_pixel) ** 0.5)  # the largest square canvas
    while per_pixel * ceil_div(side_max, stride) ** 2 > budget:  # float rounding
        side_max -= 1
    if "margin" in s:
        side = s.image_size + 2 * s.margin
        if side > side_max:
            refuse(f"image_size + 2 * margin (the canvas) must be at most {side_max}px, got "
                   f"{side}px (image_size={s.image_size}, margin={s.margin})",
                   per_pixel * side ** 2)
    elif "grid" in s and "image_size" in s:
        for grid in dict.fromkeys((s.grid, *s.get("grids", ()))):
            side = s.image_size * grid
            if side > side_max:
                refuse(f"image_size must be at most {side_max // grid} with grid={grid} (a "
                       f"canvas of at most {side_max}px), got {s.image_size} (a {side}px "
                       f"canvas)", per_pixel * ceil_div(side, stride) ** 2)


def _check_channels(s) -> None:
    """Channel counts the attack chapters take must exist in the segmenter's backbone."""
    if "region_channels" not in s:
        return
    if s.data == "scenes":
        channels = backbone_channels(s.width, s.blocks)
        source = f"width={s.width} x 2^(len(blocks) - 1) with blocks={tuple(s.blocks)}"
    else:
        channels, source = PAPER_SEGMENTER_CHANNELS, "ResNet-50's layer4"
    if s.region_channels > channels:
        raise ValueError(f"region_channels must be an integer in [1, {channels}] (the "
                         f"backbone's output channels with data={s.data!r}: {source}), "
                         f"got {s.region_channels}")


def _check_augshift(s) -> None:
    """AugShift: the shift keeps most of the image in view, lambda is not the baseline's,
    the network fits the canvas."""
    check_shift(s.max_shift, s.margin, s.image_size)
    if s.augshift_lambda == 0:
        # lambda 0 *is* the baseline arm; the chapter compares AugShift against it
        raise ValueError("augshift_lambda must be a number > 0 (lambda 0 is the baseline arm, "
                         "always trained), got 0")
    check_input_size(s.image_size + 2 * s.margin, s.blocks, s.padding)
    # The BlurPool arms always train: a blur wider than the last stage's map would fail in
    # its padding after the baseline arms had trained.
    check_blur_size(s.blur_size, s.image_size + 2 * s.margin, s.blocks, s.padding)


def _check_control(s) -> None:
    """Claim 5's control trains its own segmenters on scenes of another mode."""
    if s.control_mode == "none":
        return
    if s.data != "scenes":
        raise ValueError(f"control_mode must be 'none' with data={s.data!r} (the control "
                         f"trains segmenters on procedural scenes), got {s.control_mode!r}")
    if s.control_mode == s.scene_mode:
        others = [m for m in CONTROL_MODES if m != s.scene_mode]
        raise ValueError(f"control_mode must be one of {tuple(others)} with "
                         f"scene_mode={s.scene_mode!r} (the control runs on other scenes), "
                         f"got {s.control_mode!r}")


def _check_compared_padding(s, padding: str) -> None:
    """A padding of the chapter's comparison (``paddings``) must fit the canvas too; the
    refusal names the canvas the user set (image_size, grid), not only a padding the
    chapter compares on its own."""
    try:
        check_input_size(s.image_size * s.grid, s.blocks, padding)
    except ValueError as err:
        def fits(n):
            try:
                check_input_size(n * s.grid, s.blocks, padding)
                return True
            except ValueError:
                return False
        smallest = next((n for n in range(s.image_size + 1, 513) if fits(n)), None)
        hint = f"use image_size >= {smallest}" if smallest else "use a larger grid"
        raise ValueError(f"image_size={s.image_size} with grid={s.grid} (a "
                         f"{s.image_size * s.grid}px canvas) is too small for the chapter's "
                         f"padding comparison, paddings={tuple(s.paddings)}: "
                         f"{str(err).split('; use ')[0]}; {hint}") from None


def cross_check(s) -> None:
    """The checks that need several of a chapter's resolved settings ``s`` at once (image
    fits a cell, network fits the canvas, memory, budgets, seeds), in a fixed order."""
    _check_memory(s)
    _check_channels(s)
    if s.get("hflip") and s.get("dataset") == "digits":
        raise ValueError("hflip must be False with dataset='digits': a mirrored digit is "
                         "another shape (or none), not the same digit, got hflip=True")

    if "grid" in s and "image_size" in s:
        # The main run uses (grid, padding); ablations vary one of them with the other fixed.
        for grid in dict.fromkeys((s.grid, *s.get("grids", ()))):
            check_geometry(s.image_size, grid)
        if "blocks" in s:
            for grid in dict.fromkeys((s.grid, *s.get("grids", ()))):
                check_input_size(s.image_size * grid, s.blocks, s.get("padding", "zeros"))
            for padding in dict.fromkeys(s.get("paddings", ())):
                _check_compared_padding(s, padding)
    if "placements" in s:
        for placement in s.placements:
            check_placement(placement, len(s.blocks), "placements")
        if len(s.blocks) + 1 in s.placements and s.head != "gap_linear":
            raise ValueError(f"placements include {len(s.blocks) + 1} (after GAP), which needs "
                             f"head='gap_linear', got head={s.head!r}")
    if s.get("budgets") and max(s.budgets) > s.epochs:
        raise ValueError(f"budgets must each be at most epochs={s.epochs} (they are snapshots "
                         f"of the verdict's {s.epochs}-epoch run), got {s.budgets}")
    if "ablation_epochs" in s and s.ablation_epochs > s.epochs:
        raise ValueError(f"ablation_epochs must be at most epochs={s.epochs} (the verdict's "
                         f"arms are measured there as snapshots), got {s.ablation_epochs}")
    if "ablation_seeds" in s and s.ablation_seeds > s.n_seeds:
        raise ValueError(f"ablation_seeds must be an integer in [1, n_seeds={s.n_seeds}], "
                         f"got {s.ablation_seeds}")
    if s.get("data") == "cityscapes" and s.get("n_seeds", 1) != 1:
        raise ValueError(f"n_seeds must be 1 with data='cityscapes' (one checkpoint is one "
                         f"trained model), got {s.n_seeds}")
    if "max_shift" in s:
        _check_augshift(s)
    if "control_mode" in s:
        _check_control(s)
