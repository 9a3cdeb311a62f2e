"""A small on-disk cache of trained models, keyed by a hash of their full configuration.

Writes are atomic (a temporary file, then a rename), and a file that fails to load or whose
stored configuration differs from the one asked for is ignored and recomputed, never used.
The cache lives in $POSINFO_CACHE, else ~/.cache/posinfo: never under data/ or book/.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

CACHE_ENV = "POSINFO_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "posinfo")


# Modules that only draw or launch: editing them must not invalidate trained models.
_NOT_AFFECTING_WEIGHTS = {"figures.py", "run.py", "cache.py", "__init__.py", "report.py", "bench.py",
                          "distributed.py"}


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the library code that decides what training produces.

    Keying on this (besides the version) means a change to the loop or the models retrains,
    while a change to a figure or to the prose of the book does not.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name not in _NOT_AFFECTING_WEIGHTS:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _canonical(config: dict) -> dict:
    from . import __version__
    return json.loads(json.dumps({"config": config, "version": __version__,
                                  "code": code_fingerprint()}, sort_keys=True, default=list))


def key(config: dict) -> str:
    text = json.dumps(_canonical(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def path_for(config: dict) -> Path:
    return cache_dir() / f"{key(config)}.pt"


def load(config: dict):
    """The stored payload for this config, or None when absent, corrupt or mismatched."""
    if os.environ.get(CACHE_ENV) == "off":
        return None
    path = path_for(config)
    if not path.exists():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated or corrupt: recompute rather than trust it
        return None
    if not isinstance(stored, dict) or stored.get("key") != _canonical(config):
        return None
    return stored["payload"]


def store(config: dict, payload) -> Path | None:
    if os.environ.get(CACHE_ENV) == "off":
        return None
    path = path_for(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"key": _canonical(config), "payload": payload}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
