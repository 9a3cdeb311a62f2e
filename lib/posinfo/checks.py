"""Every knob's allowed values and its check: one home, at the bottom of the import graph.

``CHECKS`` validates one value of a chapter's settings (``check_value``); the checks that
need several values at once are ``cross_checks``'s, built on this module's geometry checks
(image fits a cell, network fits the canvas). The library's own entry points check their
arguments with the same functions (``check_padding``, ``check_lambda``, ``check_shift``...),
so a knob is refused with one message wherever it is given. The profile tables that use
these values are ``settings``'s; this module imports only ``geometry`` (map-size arithmetic),
and every module that needs a check imports it from here.

Used by every chapter, through ``settings``, and the runner.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

from .geometry import blur_input_sizes, feature_size

# ---- allowed values --------------------------------------------------------------------------
PROFILES = ("smoke", "default", "gpu", "paper")
PADDINGS = ("zeros", "circular", "reflect", "replicate", "none")
BACKGROUNDS = ("zeros", "noise", "texture")
DATASETS = ("digits", "cifar10", "cifar100")
HEADS = ("gapnet", "gap_linear")
# Binomial filter sizes of BlurPool (Zhang 2019 and antialiased-cnns offer 1 to 7; 1 subsamples
# without smoothing). A network without BlurPool has blur_size None.
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
# Claim 5's per-half score (sides.half_score): ones a stray pixel cannot swing.
HALF_SCORES = ("pixel accuracy", "truth-class mIoU")
# Output channels of the paper's segmenter (ResNet-50's layer4, segment.load_paper_segmenter).
PAPER_SEGMENTER_CHANNELS = 2048
# Paddings the segmenter takes: its atrous convolutions keep the map's size, which a valid
# ("none") convolution cannot (it fails in the network, at every profile).
SEGMENTER_PADDINGS = tuple(p for p in PADDINGS if p != "none")


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


def _int_range(low, high=None, why: str = ""):
    """An integer in [low, high]; ``why`` (e.g. what a value below ``low`` would mean) goes
    into the error message."""
    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        if value < low or (high is not None and value > high):
            bound = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise ValueError(f"{name} must be an integer {bound}{why}, got {value!r}")
        return int(value)
    check.allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    return check


def _real(value) -> bool:
    """A finite real number: infinity passes "> 0" and NaN every comparison's negation, and
    either fails (or silently poisons a mean) only once training has produced it."""
    return not isinstance(value, bool) and isinstance(value, Real) and math.isfinite(value)


def _positive_float(name, value):
    if not _real(value) or not value > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


_positive_float.allowed = "a finite number > 0"


def _nonnegative(meaning: str = ""):
    """A number >= 0; ``meaning`` (e.g. what 0 stands for) goes into the error message."""
    def check(name, value):
        if not _real(value) or not value >= 0:
            raise ValueError(f"{name} must be a finite number >= 0{meaning}, got {value!r}")
        return float(value)
    check.allowed = "a finite number >= 0"
    return check


_nonnegative_float = _nonnegative()


def _fraction(name, value):
    if not _real(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


_fraction.allowed = "a number in [0, 1]"


def _betas(name, value):
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(_real(b) and 0 <= b < 1 for b in value)):
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
    if not _real(value) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


_positive_fraction.allowed = "a number in (0, 1]"


def _fraction_range(name, value):
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(_real(v) and 0 < v <= 1 for v in value)
            or value[0] > value[1]):
        raise ValueError(f"{name} must be two numbers (low, high) with 0 < low <= high <= 1, "
                         f"got {value!r}")
    return tuple(float(v) for v in value)


_fraction_range.allowed = "two numbers (low, high) with 0 < low <= high <= 1"


def _confidence(name, value):
    if not _real(value) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), e.g. 0.95, got {value!r}")
    return float(value)


_confidence.allowed = "a number in (0, 1)"


def _minimal_effect(name, value):
    # Every claim predicts a positive effect; a negative minimal effect would let "holds"
    # mean less than "no effect at all".
    if not _real(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1] (a difference of accuracies, "
                         f"consistencies or mIoUs the claim predicts), got {value!r}")
    return float(value)


_minimal_effect.allowed = "a number in [0, 1]"


def _path(name, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a file path (a non-empty string), got {value!r}")
    return value


_path.allowed = "a file path (a non-empty string)"


# A location task needs at least two cells: on a 1x1 grid every image sits in the one cell.
_ONE_CELL = " (grid 1 is one cell: every image would sit in the same place)"

CHECKS = {
    "profile": _choice(PROFILES),
    "seed": _int_range(0, 2**32 - 1),
    "dataset": _choice(DATASETS),
    "image_size": _int_range(4, 512),
    # The reference code's input pipeline: per-channel normalisation before pasting (so a
    # blank canvas is the mean colour) and random horizontal flips of training images.
    "normalize": _choice((False, True)),
    "hflip": _choice((False, True)),
    "grid": _int_range(2, 16, _ONE_CELL),
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
    "grids": _list_of(_int_range(2, 16, _ONE_CELL)),
    # Channel-order chapter (claim 2): 1..S before backbone stage k, S + 1 after GAP
    "placements": _list_of(_int_range(1, 5)),  # every profile has S = 4 stages
    "class_fraction": _fraction,
    # the paper's rule for claim 2: shuffled channels bring location to within this of chance
    "chance_tolerance": _fraction,
    # AugShift chapter
    "margin": _int_range(0, 256),
    "max_shift": _int_range(1, 256, " (max_shift 0 gives two identical views: no shift whose "
                                    "invariance could be measured)"),
    "shift_protocol": _choice(SHIFT_PROTOCOLS),
    "blur_size": _choice(BLUR_SIZES),
    "augshift_lambda": _positive_float,  # 0 is the baseline arm, always trained
    "lambdas": _list_of(_nonnegative_float),
    "n_seeds": _int_range(1, 100),
    "n_pairs": _int_range(1, 100),
    "accuracy_margin": _fraction,
    # BatchNorm statistics recomputed over one pass of training views after training
    # (train.recalibrate_batchnorm, Wu and Johnson's "precise BN")
    "recalibrate_batchnorm": _choice((False, True)),
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
    "half_score": _choice(HALF_SCORES),
    "checkpoint": _path,
    # Verdicts (posinfo.verdict): the interval's confidence level and each chapter's
    # minimal effect, the value its primary statistic must clear.
    "confidence": _confidence,
    "min_effect": _minimal_effect,
    # Budget curves: the training budgets (epochs) at which the primary statistic is shown;
    # every one is a snapshot of the verdict's run, so each must be <= epochs.
    "budgets": _list_of(_int_range(1, 1000)),
    # Seeds for the arms the verdict does not read (ablations): fewer than n_seeds.
    "n_ablation_seeds": _int_range(1, 100),
    # The budget (epochs) of those arms and of the exercises' answers: at most epochs; the
    # verdict's arms are measured there too, for free (a snapshot of their runs). A table's
    # None means epochs.
    "ablation_epochs": _int_range(1, 1000),
}


# Knobs an earlier edition named otherwise: {old name: new name}, so that a refusal says so.
RENAMED = {"precise_bn": "recalibrate_batchnorm", "ablation_seeds": "n_ablation_seeds"}


def renamed(names) -> str:
    """" (old was renamed new)" for the names among ``names`` that RENAMED knows, else ""."""
    known = [f"{name} was renamed {RENAMED[name]}" for name in names if name in RENAMED]
    return f" ({'; '.join(known)})" if known else ""


def check_value(name: str, value):
    """Validate one knob; unknown names are an error too (a misspelt parameter must not
    be ignored)."""
    if name not in CHECKS:
        raise ValueError(f"unknown parameter {name!r}{renamed([name])}; "
                         f"known parameters: {sorted(CHECKS)}")
    return CHECKS[name](name, value)


def allowed(name: str, knobs=()) -> str:
    """What ``--list`` offers for ``name`` in a chapter whose settings hold ``knobs``: the
    knob's own range, narrowed where the chapter's network takes less (the segmenter)."""
    if name == "padding" and "scene_mode" in knobs:
        return f"one of {SEGMENTER_PADDINGS}"
    return getattr(CHECKS.get(name), "allowed", "")


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


def check_blur_filter(blur_size):
    """BlurPool off (None) or one of its filter sizes; returns it."""
    if blur_size is not None and (isinstance(blur_size, bool) or blur_size not in BLUR_SIZES):
        raise ValueError(f"blur_size must be None (off) or a filter size in {BLUR_SIZES}, "
                         f"got {blur_size!r}")
    return blur_size


_augshift_lambda = _nonnegative(" (0 = no consistency term)")


def check_lambda(value, name: str = "augshift_lambda") -> float:
    """AugShift's λ (augshift_lambda), the consistency term's weight: >= 0 (0: baseline)."""
    return _augshift_lambda(name, value)


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
                         f"needed); use a larger canvas (a larger image_size, grid or margin) "
                         f"or another padding")


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
