"""Every knob's allowed values and its check: one home, at the bottom of the import graph.

``CHECKS`` validates one value of a chapter's settings (``check_value``); ``cross_check``
runs the checks that need several values at once (image fits a cell, network fits the
canvas, one batch fits the profile's memory). The library's own entry points check their
arguments with the same functions (``check_padding``, ``check_lambda``, ``check_shift``...),
so a knob is refused with one message wherever it is given. The profile tables that use
these values are ``settings``'s; this module imports only ``geometry`` (map-size arithmetic),
and every module that needs a check imports it from here.

Used by every chapter, through ``settings``, and the runner.
"""
from __future__ import annotations

from numbers import Integral, Real

from .geometry import backbone_channels, blur_input_sizes, ceil_div, feature_size

# ---- allowed values --------------------------------------------------------------------------
PROFILES = ("smoke", "default", "gpu", "paper")
PADDINGS = ("zeros", "circular", "reflect", "replicate", "none")
BACKGROUNDS = ("zeros", "noise", "texture")
DATASETS = ("digits", "cifar10", "cifar100")
HEADS = ("gapnet", "gap_linear")
# Binomial filter sizes of BlurPool (Zhang 2019 and antialiased-cnns offer 1 to 7; 1 = no blur).
BLUR_SIZES = (1, 2, 3, 4, 5, 6, 7)
# How a view is shifted: a crop of the zero-padded canvas, or a circular shift (torch.roll).
SHIFT_PROTOCOLS = ("crop", "roll")
SEG_DATA = ("scenes", "cityscapes")
# The street scenes' variants (scenes.make_scenes).
SCENE_MODES = ("asymmetric", "symmetric", "distinct")
# How claim 5 finds each side's channels (attack.side_ranking): blanking one half at a time
# (the same property for both sides) or the reference code's signed flip difference.
SIDE_RANKINGS = ("blank", "flip")
# Claim 5's control: segmenters trained on scenes of this mode ("none": no control).
CONTROL_MODES = (*SCENE_MODES, "none")
# Output channels of the paper's segmenter (ResNet-50's layer4, segment.load_paper_segmenter).
PAPER_SEGMENTER_CHANNELS = 2048


# ---- validators: each returns the (normalised) value or raises a ValueError naming the knob --
def _same_kind(value, option) -> bool:
    """Whether ``value`` may stand for ``option``: ``in`` alone would let True stand for 1 and
    3.0 for 3 (they compare equal), and fail later, after training started."""
    if isinstance(value, bool) or isinstance(option, bool):
        return isinstance(value, bool) and isinstance(option, bool)
    if isinstance(option, Integral):
        return isinstance(value, Integral)  # numpy integers too; floats never
    return isinstance(value, type(option))


def _choice(options):
    def check(name, value):
        for option in options:
            if _same_kind(value, option) and value == option:
                return option
        kind = "" if value not in options else f" ({type(value).__name__})"
        raise ValueError(f"{name} must be one of {options}, got {value!r}{kind}")
    check.allowed = f"one of {options}"
    return check


def _int_range(low, high=None):
    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ValueError(f"{name} must be an integer {bound}, got {value!r}")
        return int(value)
    check.allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    return check


def _positive_float(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


_positive_float.allowed = "a number > 0"


def _nonnegative(meaning: str = ""):
    """A number >= 0; ``meaning`` (e.g. what 0 stands for) goes into the error message."""
    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0{meaning}, got {value!r}")
        return float(value)
    check.allowed = "a number >= 0"
    return check


_nonnegative_float = _nonnegative()


def _fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


_fraction.allowed = "a number in [0, 1]"


def _betas(name, value):
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(b, Real) and 0 <= b < 1 for b in value)):
        raise ValueError(f"{name} must be two numbers in [0, 1), got {value!r}")
    return tuple(float(b) for b in value)


_betas.allowed = "two numbers in [0, 1), e.g. (0.9, 0.999)"


def _list_of(item_check, min_len=1):
    def check(name, value):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(f"{name} must be {check.allowed}, got {value!r}")
        if len(value) < min_len:
            raise ValueError(f"{name} must hold at least {min_len} value(s), got {value!r}")
        return tuple(item_check(f"{name}[{i}]", v) for i, v in enumerate(value))
    check.allowed = f"a list, each {item_check.allowed}"
    return check


# ---- validators of the segmentation chapters -----------------------------------------------
def _positive_fraction(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


_positive_fraction.allowed = "a number in (0, 1]"


def _fraction_range(name, value):
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, Real) and not isinstance(v, bool) and 0 < v <= 1
                       for v in value)
            or value[0] > value[1]):
        raise ValueError(f"{name} must be two numbers (low, high) with 0 < low <= high <= 1, "
                         f"got {value!r}")
    return tuple(float(v) for v in value)


_fraction_range.allowed = "two numbers (low, high) with 0 < low <= high <= 1"


def _confidence(name, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), e.g. 0.95, got {value!r}")
    return float(value)


_confidence.allowed = "a number in (0, 1)"


def _minimal_effect(name, value):
    # Every claim predicts a positive effect; a negative minimal effect would let "holds"
    # mean less than "no effect at all".
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1] (a difference of accuracies, "
                         f"consistencies or mIoUs the claim predicts), got {value!r}")
    return float(value)


_minimal_effect.allowed = "a number in [0, 1]"


def _path(name, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a file path (a non-empty string), got {value!r}")
    return value


_path.allowed = "a file path (a non-empty string)"


CHECKS = {
    "profile": _choice(PROFILES),
    "seed": _int_range(0, 2**32 - 1),
    "dataset": _choice(DATASETS),
    "image_size": _int_range(4, 512),
    # The reference code's input pipeline: per-channel normalisation before pasting (so a
    # blank canvas is the mean colour) and random horizontal flips of training images.
    "normalize": _choice((False, True)),
    "hflip": _choice((False, True)),
    "grid": _int_range(1, 16),
    "background": _choice(BACKGROUNDS),
    "padding": _choice(PADDINGS),
    "head": _choice(HEADS),
    "width": _int_range(1, 1024),
    "blocks": _list_of(_int_range(1, 8)),
    "epochs": _int_range(1, 1000),
    "batch_size": _int_range(1, 4096),
    "lr": _positive_float,
    "betas": _betas,
    "n_train": _int_range(1),
    "n_test": _int_range(1),
    "paddings": _list_of(_choice(PADDINGS)),
    "backgrounds": _list_of(_choice(BACKGROUNDS)),
    "grids": _list_of(_int_range(1, 16)),
    # Channel-order chapter (claim 2): 1..S before backbone stage k, S + 1 after GAP
    "placements": _list_of(_int_range(1, 5)),  # every profile has S = 4 stages
    "class_fraction": _fraction,
    # the paper's rule for claim 2: shuffled channels bring location to within this of chance
    "chance_tolerance": _fraction,
    # AugShift chapter
    "margin": _int_range(0, 256),
    "max_shift": _int_range(0, 256),
    "shift_protocol": _choice(SHIFT_PROTOCOLS),
    "blur_size": _choice(BLUR_SIZES),
    "augshift_lambda": _positive_float,  # 0 is the baseline arm, always trained
    "lambdas": _list_of(_nonnegative_float),
    "n_seeds": _int_range(1, 100),
    "n_pairs": _int_range(1, 100),
    "accuracy_margin": _fraction,
    # BatchNorm statistics recomputed over one pass of training views after training
    # ("precise BN", train.recalibrate_batchnorm)
    "precise_bn": _choice((False, True)),
    # Segmentation chapters (claims 4 and 5)
    "data": _choice(SEG_DATA),
    "scene_height": _int_range(16, 2048),
    "scene_width": _int_range(16, 4096),
    "scene_mode": _choice(SCENE_MODES),
    "n_val": _int_range(1),
    "atrous_rates": _list_of(_int_range(1, 64)),
    "head_channels": _int_range(1, 1024),
    "channel_fractions": _list_of(_positive_fraction),
    "verdict_fractions": _fraction_range,
    "n_random": _int_range(2, 100),
    "region_channels": _int_range(1, 4096),
    "region_ranking": _choice(SIDE_RANKINGS),
    "control_mode": _choice(CONTROL_MODES),
    "checkpoint": _path,
    # Verdicts (posinfo.verdict): the interval's confidence level and each chapter's
    # minimal effect, the value its primary statistic must clear.
    "confidence": _confidence,
    "min_effect": _minimal_effect,
    # Budget curves: the training budgets (epochs) at which the primary statistic is shown;
    # every one is a snapshot of the verdict's run, so each must be <= epochs.
    "budgets": _list_of(_int_range(1, 1000)),
    # Seeds for the arms the verdict does not read (ablations): fewer than n_seeds.
    "ablation_seeds": _int_range(1, 100),
    # The budget (epochs) of those arms and of the exercises' answers: at most epochs; the
    # verdict's arms are measured there too, for free (a snapshot of their runs). A table's
    # None means epochs.
    "ablation_epochs": _int_range(1, 1000),
}


def check_value(name: str, value):
    """Validate one knob; unknown names are an error too (a misspelt parameter must not
    be ignored)."""
    if name not in CHECKS:
        raise ValueError(f"unknown parameter {name!r}; known parameters: {sorted(CHECKS)}")
    return CHECKS[name](name, value)


# ---- checks of the library's own arguments ---------------------------------------------------
def check_padding(padding: str) -> str:
    """A network padding mode (PADDINGS)."""
    return check_value("padding", padding)


def check_head(head: str) -> str:
    """A GAP head (HEADS)."""
    return check_value("head", head)


def check_scene_mode(mode: str) -> str:
    """A street-scene variant (SCENE_MODES)."""
    return check_value("scene_mode", mode)


def check_protocol(protocol: str) -> str:
    """How a view is shifted (SHIFT_PROTOCOLS)."""
    return check_value("shift_protocol", protocol)


def check_blurpool(blurpool) -> None:
    """BlurPool off (None) or one of its filter sizes."""
    if blurpool is not None and (isinstance(blurpool, bool) or blurpool not in BLUR_SIZES):
        raise ValueError(f"blurpool must be None (off) or a filter size in {BLUR_SIZES}, "
                         f"got {blurpool!r}")


_consistency_weight = _nonnegative(" (0 = no consistency term)")


def check_lambda(value, name: str = "augshift_lambda") -> float:
    """AugShift's consistency weight: a number >= 0 (0 is the baseline)."""
    return _consistency_weight(name, value)


def check_shift(max_shift: int, margin: int, image_size: int) -> None:
    """A view moves the image by up to ``max_shift`` pixels each way. Beyond the blank
    ``margin`` the image is cut at the canvas edge, as a crop of a photo cuts its object;
    at most half the image may leave the view, so every view keeps most of its object."""
    most = margin + image_size // 2
    if isinstance(max_shift, bool) or not isinstance(max_shift, int) or not 0 <= max_shift <= most:
        raise ValueError(f"max_shift must be an integer in [0, {most}] (margin + image_size // 2"
                         f" with margin={margin}, image_size={image_size}: at most half the image"
                         f" may leave the view), got {max_shift!r}")


def check_placement(placement: int, stages: int, name: str = "permute_at") -> int:
    """Placements 1..stages (before that stage) or stages + 1 (after GAP)."""
    if isinstance(placement, bool) or not isinstance(placement, int) \
            or not 1 <= placement <= stages + 1:
        raise ValueError(f"{name} must be an integer in 1..{stages + 1} (1..{stages}: before "
                         f"that backbone stage, {stages + 1}: after GAP), got {placement!r}")
    return placement


# ---- geometry: the canvas fits the grid, the network fits the canvas -------------------------
def check_geometry(image_size: int, grid: int, canvas_size: int | None = None) -> int:
    """Validate a grid layout and return the canvas side in pixels."""
    if grid < 1:
        raise ValueError(f"grid must be an integer >= 1, got {grid!r}")
    canvas_size = image_size * grid if canvas_size is None else canvas_size
    cell = canvas_size // grid
    if image_size > cell:
        raise ValueError(f"image_size={image_size} is larger than a cell of the {grid}x{grid} "
                         f"grid on a {canvas_size}px canvas (cell {cell}px); use image_size <= "
                         f"{cell} or a larger canvas_size")
    return canvas_size


def check_input_size(input_size: int, blocks, padding: str) -> None:
    """Raise a clear error when the network would shrink the canvas to nothing."""
    check_padding(padding)
    size = feature_size(input_size, blocks, padding)
    # A valid 3x3 (head) convolution needs a 3x3 map; reflect padding of one row needs a map
    # of at least 2 rows (torch refuses to reflect a 1x1 map), which the last stage's 3x3
    # convolutions and GAPNet's head see.
    needed = {"none": 3, "reflect": 2}.get(padding, 1)
    if size < needed:
        raise ValueError(f"padding={padding!r} shrinks a {input_size}px canvas to a {size}x{size} "
                         f"map with blocks={tuple(blocks)} (at least {needed}x{needed} is "
                         f"needed); use a larger canvas (image_size or grid), fewer blocks, or "
                         f"another padding")


def check_blur_size(blur_size: int, input_size: int, blocks, padding: str) -> None:
    """Refuse a blur wider than the smallest map it must filter.

    A blur of size k pads k // 2 rows on a side. Reflect padding (BlurPool's under "reflect"
    and "none") cannot pad a map by as many rows as it has, circular padding would wrap it more
    than once, and zero padding would mostly average the border; so every padding mode gets the
    same rule: k // 2 must be smaller than the smallest map's side.
    """
    smallest = min(blur_input_sizes(input_size, blocks, padding))
    allowed = [k for k in BLUR_SIZES if k // 2 < smallest]
    if blur_size // 2 >= smallest:
        span = f"in [1, {max(allowed)}]" if allowed else "impossible (use a larger canvas)"
        raise ValueError(f"blur_size must be {span} for a canvas of {input_size}px with "
                         f"blocks={tuple(blocks)} and padding={padding!r}: the smallest map "
                         f"BlurPool filters is {smallest}x{smallest} and a blur of size k pads "
                         f"k // 2 rows, fewer than the map has; got {blur_size!r}")


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
