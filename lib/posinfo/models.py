"""ResNet-style backbones with a selectable padding mode, and the two GAP heads.

The backbone follows the reference code's CIFAR ResNet-18: a 7x7 stride-2 stem, *no*
max-pool, then stages of BasicBlocks (the first stage at stride 1, later ones at stride 2).
``width`` is the first stage's channel count (64 in ResNet-18) and ``blocks`` the number of
BasicBlocks per stage ((2, 2, 2, 2) in ResNet-18), so CPU profiles can use a small net.

Padding is the knob the paper's story turns on: zero padding gives every layer a border
it can see; circular padding removes the border; "none" (valid convolution) removes
padding altogether and crops the residual shortcut to match.

``blur_size`` (a binomial filter size, None by default: off) makes every stride-2 step anti-aliased
as in Zhang (2019): the strided convolution runs at stride 1, then ReLU, then a blur-pool of
stride 2. Output sizes are the same as without it, so ``geometry.feature_size`` holds for both.

The blur pads its border the way the network does (``BLUR_PADDING``): zeros with zeros,
circular circularly, reflect and replicate alike. A blur that padded otherwise would put
back the border the padding mode took away: with circular padding and a reflect-padded blur,
shifting the input by a multiple of the total stride no longer shifts the latent exactly
(in a small test network the pooled latents differed by 1e-3 to 1e-2 instead of 1e-8). With
``padding="none"`` (valid convolution) the blur reflect-pads, as antialiased-cnns does by
default: a valid blur would shrink every stride-2 step by ``filter_size - 1`` more rows and
break ``geometry.feature_size``, and a reflected border adds no constant value a network
could read as "edge".

Used by every chapter.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_blur_filter, check_head, check_padding


# How BlurPool pads its border under each network padding mode (see the module docstring).
BLUR_PADDING = {"zeros": "constant", "circular": "circular", "reflect": "reflect",
                "replicate": "replicate", "none": "reflect"}


class BlurPool(nn.Module):
    """Zhang's anti-aliased downsampling: a fixed binomial low-pass per channel, then stride 2.

    The filter is kornia's ``BlurPool2D`` kernel (normalised Pascal coefficients). ``padding``
    is the *network's* padding mode (checks.PADDINGS) and the blur pads as it does (BLUR_PADDING):
    kornia always zero-pads and antialiased-cnns reflect-pads by default, and either would
    leave a circular network with a border, or a zero-padded one with a different border in
    its blur than in its convolutions. The default ``"reflect"`` is antialiased-cnns', under
    which a constant map stays constant.
    """

    def __init__(self, filter_size: int, stride: int = 2, padding: str = "reflect"):
        super().__init__()
        from kornia.filters import BlurPool2D

        check_blur_filter(filter_size)
        check_padding(padding)
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
    """A square convolution whose border handling is ``padding`` (see checks.PADDINGS)."""
    check_padding(padding)
    if padding == "none":
        return nn.Conv2d(cin, cout, kernel, stride, padding=0, bias=bias)
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, padding_mode=padding,
                     bias=bias)


def _center_crop(x: torch.Tensor, size) -> torch.Tensor:
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut (1x1 conv when the shape changes).

    With ``blur_size`` and stride 2, as antialiased-cnns: conv1 at stride 1, ReLU, blur-pool;
    the shortcut blur-pools before its 1x1 convolution.
    """

    def __init__(self, cin: int, cout: int, stride: int, padding: str, blur_size=None):
        super().__init__()
        blurred = blur_size is not None and stride != 1
        self.conv1 = conv(cin, cout, 3, 1 if blurred else stride, padding)
        self.bn1 = nn.BatchNorm2d(cout)
        self.blur = BlurPool(blur_size, stride, padding) if blurred else nn.Identity()
        self.conv2 = conv(cout, cout, 3, 1, padding)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if blurred:
            self.shortcut = nn.Sequential(BlurPool(blur_size, stride, padding),
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
                   padding: str = "zeros", blur_size: int | None = None) -> nn.Sequential:
    """stem, stage1..stageN as a Sequential, so modules can be inserted between stages.

    ``blur_size``: None, or the binomial filter size of anti-aliased downsampling at every
    stride-2 step, the stem's included (see BlurPool); the blur pads as ``padding`` says
    (BLUR_PADDING: "none" reflect-pads).
    """
    check_padding(padding)
    check_blur_filter(blur_size)
    stem = [conv(in_channels, width, 7, 2 if blur_size is None else 1, padding),
            nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    if blur_size is not None:
        stem.append(BlurPool(blur_size, padding=padding))
    layers = OrderedDict(stem=nn.Sequential(*stem))
    cin = width
    for stage, n_blocks in enumerate(blocks):
        cout = width * 2 ** stage
        stage_blocks = [BasicBlock(cin if b == 0 else cout, cout,
                                   2 if (stage > 0 and b == 0) else 1, padding, blur_size)
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

    def __init__(self, channels: int, num_outputs: int):
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
                     blur_size: int | None = None) -> Classifier:
    """A backbone with one of the GAP heads (see checks.HEADS), optionally anti-aliased
    (``blur_size``)."""
    check_head(head)
    backbone = build_backbone(in_channels, width, blocks, padding, blur_size)
    if head == "gapnet":
        return Classifier(backbone, GAPNet(backbone.out_channels, num_outputs, padding))
    return Classifier(backbone, GAPLinear(backbone.out_channels, num_outputs))
