"""Checks that need several of a chapter's settings at once, run after every knob passed its
own (``checks``): the image fits a cell and the network fits the canvas, one training step
fits the profile's memory, the attacked channels exist, the judged arm lies in its sweep,
budgets and seeds stay inside the run they are snapshots of. ``settings.chapter_settings``
calls ``cross_check`` on every resolved chapter, before any data is built.

Used by every chapter, through ``settings``, and the runner.
"""
from __future__ import annotations

from .checks import (CONTROL_MODES, PAPER_SEGMENTER_CHANNELS, SEGMENTER_PADDINGS,
                     check_blur_size, check_geometry, check_input_size, check_placement,
                     check_shift)
from .geometry import backbone_channels, ceil_div


# ---- memory: a canvas the profile's machine could not train on is refused before training ----
# Limit, per profile, for the largest activation map of one training batch: the first
# stage's input, batch_size x views x width x (canvas side / stem stride)^2 float32 values.
# The backward pass keeps about ten maps of that size per first-stage block, so each limit is
# a tenth of the memory the profile expects: a laptop for smoke and default, one GPU for paper.
MEMORY_LIMIT_MIB = {"smoke": 256, "default": 512, "gpu": 4096, "paper": 4096}


def _check_memory(s) -> None:
    if "batch_size" not in s or "width" not in s or s.get("data", "scenes") != "scenes":
        return  # data="cityscapes" evaluates given weights: nothing is trained
    limit_mib = MEMORY_LIMIT_MIB[s.profile]
    limit = limit_mib * 2**20
    # AugShift trains both views in one batch, and its BlurPool arms run the stem at stride 1.
    views, stride = (2, 1) if "margin" in s else (1, 2)
    per_pixel = s.batch_size * views * s.width * 4  # bytes per pixel of the first-stage map
    area = ("(scene_height / 2) x (scene_width / 2)" if "scene_height" in s
            else "side^2" if stride == 1 else "(side / 2)^2")
    formula = (f"batch_size {s.batch_size}{' x 2 views' if views == 2 else ''} x width "
               f"{s.width} x {area} x 4 bytes")

    def refuse(what: str, need: int):
        # batch_size is a profile's, not a chapter parameter: the message names width
        raise ValueError(f"{what} at the {s.profile} profile: one training batch's first-stage "
                         f"activations ({formula}) would need {need / 2**20:.0f} MiB, over the "
                         f"profile's memory limit of {limit_mib} MiB (a smaller width allows "
                         f"more)")

    if "scene_height" in s:
        # the scenes' size is the profile's: the knob a chapter offers is width
        pixels = ceil_div(s.scene_height, stride) * ceil_div(s.scene_width, stride)
        need = per_pixel * pixels
        if need > limit:
            most = limit // (s.batch_size * views * 4 * pixels)
            refuse(f"width must be at most {most} with {s.scene_height}x{s.scene_width} "
                   f"scenes, got {s.width}", need)
        return
    side_max = stride * int((limit // per_pixel) ** 0.5)  # the largest square canvas
    while per_pixel * ceil_div(side_max, stride) ** 2 > limit:  # float rounding
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
                which = (f"grid={grid}" if grid == s.grid else f"grid={grid} (of the "
                         f"chapter's grid comparison, grids={tuple(s.grids)})")
                refuse(f"image_size must be at most {side_max // grid} with {which} (a "
                       f"canvas of at most {side_max}px), got {s.image_size} (a {side}px "
                       f"canvas)", per_pixel * ceil_div(side, stride) ** 2)


def _parameters(width: int, s) -> int:
    """About how many weights the network has at ``width``: the backbone's convolutions
    (stem, two 3x3 per block, a 1x1 shortcut where the shape changes) and, for the
    segmenter, its ASPP head. BatchNorm and the classifier heads add under 1%."""
    total, cin = 3 * width * 49, width
    for stage, blocks in enumerate(s.blocks):
        cout = width * 2 ** stage
        total += 9 * cin * cout + 9 * cout * cout + (cin * cout if cin != cout else 0)
        total += (blocks - 1) * 18 * cout * cout
        cin = cout
    if "atrous_rates" in s:
        head, rates = s.head_channels, len(s.atrous_rates)
        total += cin * head * (2 + 9 * rates) + head * head * (12 + rates)
    return total


def _check_training_state(s) -> None:
    """Weights, their gradients and Adam's two moment estimates: 16 bytes a parameter, held
    all through training, within the memory the profile expects (ten times its activation
    limit)."""
    if "width" not in s or "blocks" not in s or s.get("data", "scenes") != "scenes":
        return
    memory_mib = 10 * MEMORY_LIMIT_MIB[s.profile]
    need = 16 * _parameters(s.width, s)
    if need > memory_mib * 2**20:
        most = s.width
        while most > 1 and 16 * _parameters(most, s) > memory_mib * 2**20:
            most -= 1
        raise ValueError(f"width must be at most {most} at the {s.profile} profile with "
                         f"blocks={tuple(s.blocks)}, got {s.width}: the network's weights, "
                         f"gradients and Adam's two moment estimates (16 bytes x about "
                         f"{need // 16 / 1e6:.0f}M parameters) would need {need / 2**20:.0f} "
                         f"MiB, over the {memory_mib} MiB the profile expects")


def _segmenter_channels(s) -> tuple[int, str]:
    """Output channels of the segmenter's backbone, and where that number comes from."""
    if s.data == "scenes":
        return (backbone_channels(s.width, s.blocks),
                f"width={s.width} x 2^(len(blocks) - 1) with blocks={tuple(s.blocks)}")
    return PAPER_SEGMENTER_CHANNELS, "ResNet-50's layer4"


def _check_channels(s) -> None:
    """Claim 5 zeroes region_channels of the backbone's channels: they must exist, and be
    fewer than all of them (zeroing every channel blanks both sides alike: the attack would
    measure nothing about position)."""
    if "region_ranking" not in s:  # claim 4's settings carry the knob, unused
        return
    channels, source = _segmenter_channels(s)
    if s.region_channels >= channels:
        raise ValueError(f"region_channels must be an integer in [1, {channels - 1}], "
                         f"fewer than the backbone's {channels} output channels with "
                         f"data={s.data!r} ({source}): zeroing every channel is no region "
                         f"attack; got {s.region_channels}")


def _check_judged_fractions(s) -> None:
    """Claim 4 judges the swept fractions inside verdict_fractions: at least one must lie
    there, and each must zero fewer than all channels (with every channel zeroed, the top-N
    and random-N sets are the same: the statistic is 0 by construction)."""
    if "verdict_fractions" not in s or "region_ranking" in s:
        return
    low, high = s.verdict_fractions
    judged = [f for f in s.channel_fractions if low <= f <= high]
    if not judged:
        raise ValueError(f"verdict_fractions={s.verdict_fractions} holds none of "
                         f"channel_fractions={s.channel_fractions}: the verdict would judge "
                         f"no N; choose a range that holds at least one swept fraction")
    channels, source = _segmenter_channels(s)
    whole = [f for f in judged if round(f * channels) >= channels]
    if whole:
        raise ValueError(f"channel_fractions {whole} within verdict_fractions zero all "
                         f"{channels} channels ({source}): top-N and random-N would be the "
                         f"same set; judge fractions below {(channels - 0.5) / channels:.3f}")


def _check_segmenter_padding(s) -> None:
    if "scene_mode" in s and s.padding not in SEGMENTER_PADDINGS:
        raise ValueError(f"padding must be one of {SEGMENTER_PADDINGS} for the segmenter "
                         f"(its atrous convolutions keep the map's size, which a valid "
                         f"convolution cannot), got {s.padding!r}")


def _check_augshift(s) -> None:
    """AugShift: the shift keeps most of the image in view, lambda is not the baseline's,
    the network fits the canvas."""
    check_shift(s.max_shift, s.margin, s.image_size)
    if s.augshift_lambda == 0:
        # lambda 0 *is* the baseline arm; the chapter compares AugShift against it
        raise ValueError("augshift_lambda must be a number > 0 (lambda 0 is the baseline arm, "
                         "always trained), got 0")
    if "lambdas" in s and not max(s.lambdas) > 0:
        raise ValueError(f"lambdas must hold at least one number > 0 (lambda 0 is the baseline "
                         f"arm, always trained; the sweep compares AugShift arms with it), got "
                         f"{s.lambdas}")
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
    _check_training_state(s)
    _check_segmenter_padding(s)
    _check_channels(s)
    _check_judged_fractions(s)
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
    if "n_ablation_seeds" in s and s.n_ablation_seeds > s.n_seeds:
        raise ValueError(f"n_ablation_seeds must be an integer in [1, n_seeds={s.n_seeds}], "
                         f"got {s.n_ablation_seeds}")
    if s.get("data") == "cityscapes" and s.get("n_seeds", 1) != 1:
        raise ValueError(f"n_seeds must be 1 with data='cityscapes' (one checkpoint is one "
                         f"trained model), got {s.n_seeds}")
    if "max_shift" in s:
        _check_augshift(s)
    if "control_mode" in s:
        _check_control(s)
