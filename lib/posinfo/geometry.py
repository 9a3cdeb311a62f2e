"""Sizes of the maps a backbone makes: pure arithmetic, no tensors and no checks.

The bottom of the import graph beside ``checks``: the checks that refuse a canvas the network
would shrink to nothing (``checks.check_input_size``, ``checks.check_blur_size``) and the
models themselves (``models.build_backbone``) rest on these numbers. Stride and kernel sizes
are ``models.build_backbone``'s: a 7x7 stride-2 stem, then stages of BasicBlocks (two 3x3
convolutions, the first at stride 2 in every stage but the first).

Used by every chapter, through ``checks`` and ``models``.
"""
from __future__ import annotations


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


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


def backbone_channels(width: int, blocks) -> int:
    """Channels of the backbone's output: each stage after the first doubles ``width``."""
    return width * 2 ** (len(blocks) - 1)


def blur_input_sizes(input_size: int, blocks, padding: str) -> list[int]:
    """Sides of the maps the BlurPools of ``build_backbone(..., blur_size=k)`` receive, in order
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
