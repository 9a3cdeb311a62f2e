"""Where a run ran: the line every chapter prints under its settings.

Numbers from a 2-core CPU and from an H100 are both "the book's results", so every executed
chapter says which machine, which torch and which day produced it.

Used by every chapter (the line that says where it ran).
"""
from __future__ import annotations

import datetime
import platform

import torch

from .train import pick_device


def describe(device: torch.device | str | None = None) -> str:
    """e.g. 'ran on NVIDIA H200 (cuda), torch 2.11.0+cu130, Python 3.12.3, 2026-11-26'."""
    device = pick_device(device)
    if device.type == "cuda":
        hardware = f"{torch.cuda.get_device_name(device)} (cuda)"
    else:
        hardware = f"{platform.processor() or platform.machine()} CPU, " \
                   f"{torch.get_num_threads()} threads"
    return (f"ran on {hardware}, torch {torch.__version__}, Python {platform.python_version()}, "
            f"{datetime.date.today().isoformat()}")
