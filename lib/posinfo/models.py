"""ResNet-style backbones with a selectable padding mode, and the two GAP heads.

The backbone follows the reference code's CIFAR ResNet-18: a 7x7 stride-2 stem, *no*
max-pool, then stages of BasicBlocks (the first stage at stride 1, later ones at stride 2).
``width`` is the first stage's channel count (64 in ResNet-18) and ``blocks`` the number of
BasicBlocks per stage ((2, 2, 2, 2) in ResNet-18), so CPU profiles can use a small net.

Padding is the knob the paper's story turns on: zero padding gives every layer a border
it can see; circular padding removes the border; "none" (valid convolution) removes
padding altogether and crops the residual shortcut to match.

``blurpool`` (a binomial filter size, off by default) makes every stride-2 step anti-aliased
as in Zhang (2019): the strided convolution runs at stride 1, then ReLU, then a blur-pool of
stride 2. Output sizes are the same as without it, so ``feature_size`` holds for both.

The blur pads its border the way the network does (``BLUR_PADDING``): zeros with zeros,
circular circularly, reflect and replicate alike. A blur that padded otherwise would put
back the border the padding mode took away: with circular padding and a reflect-padded blur,
shifting the input by a multiple of the total stride no longer shifts the latent exactly
(in a small test network the pooled latents differed by 1e-3 to 1e-2 instead of 1e-8). With ``padding="none"`` (valid
convolution) the blur reflect-pads, as antialiased-cnns does by default: a valid blur would
shrink every stride-2 step by ``filter_size - 1`` more rows and break ``feature_size``, and a
reflected border adds no constant value a network could read as "edge".
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .settings import BLUR_SIZES, HEADS, PADDINGS


def _check_padding(padding):
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


# How BlurPool pads its border under each network padding mode (see the module docstring).
BLUR_PADDING = {"zeros": "constant", "circular": "circular", "reflect": "reflect",
                "replicate": "replicate", "none": "reflect"}


def _check_blurpool(blurpool):
    if blurpool is not None and (isinstance(blurpool, bool) or blurpool not in BLUR_SIZES):
        raise ValueError(f"blurpool must be None (off) or a filter size in {BLUR_SIZES}, "
                         f"got {blurpool!r}")


class BlurPool(nn.Module):
    """Zhang's anti-aliased downsampling: a fixed binomial low-pass per channel, then stride 2.

    The filter is kornia's ``BlurPool2D`` kernel (normalised Pascal coefficients). ``padding``
    is the *network's* padding mode (see PADDINGS) and the blur pads as it does (BLUR_PADDING):
    kornia always zero-pads and antialiased-cnns reflect-pads by default, and either would
    leave a circular network with a border, or a zero-padded one with a different border in
    its blur than in its convolutions. The default ``"reflect"`` is antialiased-cnns', under
    which a constant map stays constant.
    """

    def __init__(self, filter_size: int, stride: int = 2, padding: str = "reflect"):
        super().__init__()
        from kornia.filters import BlurPool2D

        _check_blurpool(filter_size)
        _check_padding(padding)
        self.blur = BlurPool2D(filter_size, stride)
        self.mode = BLUR_PADDING[padding]
        # Padding as antialiased-cnns: (k - 1) // 2 before, k // 2 after, so the output keeps
        # ceil(size / stride) rows, the size a padded stride-2 convolution gives.
        self.pad = ((filter_size - 1) // 2, filter_size // 2) * 2

    def forward(self, x):
        channels = x.shape[1]
        kernel = self.blur.kernel.to(x.dtype).repeat(channels, 1, 1, 1)
        x = F.pad(x, self.pad, mode=self.mode) if max(self.pad) > 0 else x
        return F.conv2d(x, kernel, stride=self.blur.stride, groups=channels)


def conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: str = "zeros",
         bias: bool = False) -> nn.Conv2d:
    """A square convolution whose border handling is ``padding`` (see PADDINGS)."""
    _check_padding(padding)
    if padding == "none":
        return nn.Conv2d(cin, cout, kernel, stride, padding=0, bias=bias)
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, padding_mode=padding, bias=bias)


def _out_size(size: int, kernel: int, stride: int, padding: str) -> int:
    pad = 0 if padding == "none" else kernel // 2
    return (size + 2 * pad - kernel) // stride + 1


def feature_size(input_size: int, blocks, padding: str) -> int:
    """Side of the backbone's last feature map for a square input (pure arithmetic)."""
    size = _out_size(input_size, 7, 2, padding)
    for stage in range(len(blocks)):
        for b in range(blocks[stage]):
            size = _out_size(size, 3, 2 if (stage > 0 and b == 0) else 1, padding)
            size = _out_size(size, 3, 1, padding)
    return size


def check_input_size(input_size: int, blocks, padding: str) -> None:
    """Raise a clear error when the network would shrink the canvas to nothing."""
    _check_padding(padding)
    size = feature_size(input_size, blocks, padding)
    # A valid 3x3 (head) convolution needs a 3x3 map; reflect padding of one row needs a map
    # of at least 2 rows (torch refuses to reflect a 1x1 map), which the last stage's 3x3
    # convolutions and GAPNet's head see.
    needed = {"none": 3, "reflect": 2}.get(padding, 1)
    if size < needed:
        raise ValueError(f"padding={padding!r} shrinks a {input_size}px canvas to a {size}x{size} "
                         f"map with blocks={tuple(blocks)} (at least {needed}x{needed} is needed); use a larger canvas "
                         f"(image_size or grid), fewer blocks, or another padding")


def backbone_channels(width: int, blocks) -> int:
    """Channels of the backbone's output: each stage after the first doubles ``width``."""
    return width * 2 ** (len(blocks) - 1)


def blur_input_sizes(input_size: int, blocks, padding: str) -> list[int]:
    """Sides of the maps the BlurPools of ``build_backbone(..., blurpool=k)`` receive, in order
    (stem, then per downsampling block its main path and its shortcut): pure arithmetic."""
    valid = 2 if padding == "none" else 0  # rows a valid 3x3 convolution loses
    size = input_size - (6 if padding == "none" else 0)  # the stem conv runs at stride 1
    sizes = [size]
    size = -(-size // 2)
    for stage in range(len(blocks)):
        for b in range(blocks[stage]):
            if stage > 0 and b == 0:
                # conv1 at stride 1, then the blur; the shortcut blurs the block's input
                main = size - valid
                sizes += [main, size]
                size = -(-main // 2)
            else:
                size -= valid
            size -= valid  # conv2
    return sizes


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


def _center_crop(x: torch.Tensor, size) -> torch.Tensor:
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut (1x1 conv when the shape changes).

    With ``blurpool`` and stride 2, as antialiased-cnns: conv1 at stride 1, ReLU, blur-pool;
    the shortcut blur-pools before its 1x1 convolution.
    """

    def __init__(self, cin: int, cout: int, stride: int, padding: str, blurpool=None):
        super().__init__()
        blurred = blurpool is not None and stride != 1
        self.conv1 = conv(cin, cout, 3, 1 if blurred else stride, padding)
        self.bn1 = nn.BatchNorm2d(cout)
        self.blur = BlurPool(blurpool, stride, padding) if blurred else nn.Identity()
        self.conv2 = conv(cout, cout, 3, 1, padding)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if blurred:
            self.shortcut = nn.Sequential(BlurPool(blurpool, stride, padding),
                                          nn.Conv2d(cin, cout, 1, 1, bias=False),
                                          nn.BatchNorm2d(cout))
        elif stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.blur(F.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(out))
        short = self.shortcut(x)
        if short.shape[-2:] != out.shape[-2:]:  # valid convolution shrank the main path
            short = _center_crop(short, out.shape[-2:])
        return F.relu(out + short)


def build_backbone(in_channels: int = 3, width: int = 64, blocks=(2, 2, 2, 2),
                   padding: str = "zeros", blurpool: int | None = None) -> nn.Sequential:
    """stem, stage1..stageN as a Sequential, so modules can be inserted between stages.

    ``blurpool``: None, or the binomial filter size of anti-aliased downsampling at every
    stride-2 step, the stem's included (see BlurPool); the blur pads as ``padding`` says
    (BLUR_PADDING: "none" reflect-pads).
    """
    _check_padding(padding)
    _check_blurpool(blurpool)
    stem = [conv(in_channels, width, 7, 2 if blurpool is None else 1, padding),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    if blurpool is not None:
        stem.append(BlurPool(blurpool, padding=padding))
    layers = OrderedDict(stem=nn.Sequential(*stem))
    cin = width
    for stage, n_blocks in enumerate(blocks):
        cout = width * 2 ** stage
        stage_blocks = [BasicBlock(cin if b == 0 else cout, cout,
                                   2 if (stage > 0 and b == 0) else 1, padding, blurpool)
                        for b in range(n_blocks)]
        layers[f"stage{stage + 1}"] = nn.Sequential(*stage_blocks)
        cin = cout
    backbone = nn.Sequential(layers)
    backbone.out_channels = cin
    return backbone


def global_average_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C): the mean over all spatial positions."""
    return x.mean(dim=(-2, -1))


class GAPLinear(nn.Module):
    """GAP, then a linear classifier: the GAP vector is the latent probes read."""

    def __init__(self, channels: int, num_outputs: int, padding: str = "zeros"):
        super().__init__()
        self.fc = nn.Linear(channels, num_outputs)

    def forward(self, features):
        return self.fc(global_average_pool(features))


class GAPNet(nn.Module):
    """The reference GAPNet head: a 3x3 conv to one map per output, then GAP gives the logits.

    Nothing follows the pooling, so whatever the logits know about position had to survive
    global averaging.
    """

    def __init__(self, channels: int, num_outputs: int, padding: str = "zeros"):
        super().__init__()
        self.conv = conv(channels, num_outputs, 3, 1, padding, bias=True)

    def forward(self, features):
        return global_average_pool(self.conv(features))


class Classifier(nn.Module):
    """backbone -> head; ``latent`` is the GAP of the backbone's last feature map."""

    def __init__(self, backbone: nn.Sequential, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        return self.head(self.backbone(x))

    def latent(self, x):
        return global_average_pool(self.backbone(x))


def build_classifier(in_channels: int, num_outputs: int, width: int = 64, blocks=(2, 2, 2, 2),
                     padding: str = "zeros", head: str = "gapnet",
                     blurpool: int | None = None) -> Classifier:
    """A backbone with one of the GAP heads (see HEADS), optionally anti-aliased (``blurpool``)."""
    heads = {"gapnet": GAPNet, "gap_linear": GAPLinear}
    if head not in heads:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    backbone = build_backbone(in_channels, width, blocks, padding, blurpool)
    return Classifier(backbone, heads[head](backbone.out_channels, num_outputs, padding))
