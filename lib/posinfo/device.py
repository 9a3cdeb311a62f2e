"""Where tensors and models live: the device, bf16 autocast and cuDNN's channels_last layout
on CUDA. Shared by the eager loop (``train``) and the graphed one (``graphed``), which
``train`` chooses between, so it sits below both.

Used by every chapter, through ``train`` (which re-exports these names).

Used by every chapter, through ``train``, ``probes`` and ``attack``.
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.nn as nn


def pick_device(device: str | None = None) -> torch.device:
    """cuda when present (or when asked for), else cpu."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device):
    """bf16 autocast on cuda (no loss scaling needed); full precision on cpu."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on ``device``; on cuda, image batches in channels_last (cuDNN's fast layout).

    Not on CPU: it measured 1.1-1.6x faster per epoch there too, but with torch 2.14.1 the
    weight gradient of a channels_last 1x1 stride-2 convolution (the ResNet shortcut) at
    small widths sometimes hangs or corrupts the heap ("malloc(): unaligned tcache chunk
    detected"), which no speed-up is worth.
    """
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``, in place; channels_last on cuda (see ``to_device``)."""
    if device.type == "cuda":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def env_choice(env: str, allowed: tuple, default: str, value: str | None = None,
               name: str | None = None) -> str:
    """A speed switch: ``value`` when given, else $``env``, else ``default``; refused unless
    one of ``allowed``. The error names what was read: ``name`` for a value given in code or
    on a command line, the variable for one read from the environment."""
    shown = env if value is None else (name or env)
    value = (os.environ.get(env) or default) if value is None else value
    if value not in allowed:
        raise ValueError(f"{shown} must be one of {allowed}, got {value!r}")
    return value
