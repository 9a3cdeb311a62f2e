"""A small on-disk cache of trained models, keyed by a hash of their full configuration.

Writes are atomic (a temporary file, then a rename), and a file that fails to load or whose
stored configuration differs from the one asked for is ignored and recomputed, never used.
The cache lives in $POSINFO_CACHE, else ~/.cache/posinfo: never under data/ or book/.

Used by every chapter, through ``train``.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

CACHE_ENV = "POSINFO_CACHE"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "posinfo")


def probe_writable(folder: Path) -> None:
    """Create ``folder`` if need be and write and remove a probe file in it; OSError if it
    cannot be written. A probe, not a permission test: root passes every permission test
    but cannot write under /proc."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".writable-", suffix=".tmp")
    os.close(fd)
    os.remove(probe)


def check_writable() -> Path | None:
    """Refuse, before any training, a cache folder that cannot be written: otherwise the
    first model would train for minutes and then fail to be stored, and the work is lost.
    Returns the folder (None when the cache is off)."""
    if os.environ.get(CACHE_ENV) == "off":
        return None
    folder = cache_dir()
    try:
        probe_writable(folder)
    except OSError as err:
        given = (f"{CACHE_ENV}={os.environ[CACHE_ENV]!r}" if os.environ.get(CACHE_ENV)
                 else f"{CACHE_ENV} (unset, so the default {folder})")
        raise ValueError(f"{given}: the model cache folder {folder} cannot be written "
                         f"({type(err).__name__}: {err.strerror or err}); set {CACHE_ENV} to "
                         f"a writable folder, or to 'off' to train without a cache") from None
    return folder


def describe(config: dict) -> str:
    """A cache entry in a few words, for messages: its target, padding, epochs and seed when
    the config has them (the full config is in the file's key)."""
    shown = [f"{k}={config[k]}" for k in ("target", "padding", "grid", "epochs", "seed",
                                          "permute_at") if k in config]
    return " ".join(shown) or "model"


# Modules that only draw, launch, judge or evaluate trained models: editing them must not
# invalidate trained models (the cache stores weights and loss histories, nothing they compute).
# A new module is fingerprinted unless it is named here (tests pin the fingerprinted set).
_NOT_AFFECTING_WEIGHTS = {"figures.py", "run.py", "cache.py", "__init__.py", "verdict.py",
                          "interval.py", "power.py", "budgets.py", "tables.py", "attack.py",
                          "sides.py", "probes.py", "invariance.py", "machine.py", "pilots.py",
                          "parameters.py", "exercises.py", "lockfile.py", "execution.py"}


def fingerprinted_modules() -> list[Path]:
    """The library modules whose code is part of every cache key, sorted by name."""
    return [path for path in sorted(Path(__file__).parent.glob("*.py"))
            if path.name not in _NOT_AFFECTING_WEIGHTS]


def code_digest(source: str) -> str:
    """A hash of what a module *does*: its syntax tree with every docstring removed.

    Comments never reach the tree, so neither comments nor docstrings change the digest; any
    change to the code itself does.
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the library code that decides what training produces.

    Keying on this (besides the version) means a change to the loop or the models retrains,
    while a change to a figure, to the prose of the book, or to a docstring or comment in
    the library does not.
    """
    digest = hashlib.sha256()
    for path in fingerprinted_modules():
        digest.update(path.name.encode() + code_digest(path.read_text()).encode())
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
    except Exception as err:  # truncated or corrupt: recompute rather than trust it
        # said out loud: at the paper profile a silent retraining is a long surprise
        print(f"retraining {describe(config)}: cached file unreadable ({path}: "
              f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})",
              file=sys.stderr, flush=True)
        return None
    if not isinstance(stored, dict) or stored.get("key") != _canonical(config):
        print(f"retraining {describe(config)}: cached file {path} holds another configuration",
              file=sys.stderr, flush=True)
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
