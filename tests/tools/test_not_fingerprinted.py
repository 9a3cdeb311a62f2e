"""Editing a tool retrains nothing: posinfo.tools lies outside the model cache's key, which
hashes only the science modules that shape training (posinfo.cache.fingerprinted_modules)."""
import shutil
from pathlib import Path

import posinfo
from posinfo import cache


def test_editing_a_tool_leaves_the_cache_key_and_editing_training_code_does_not(tmp_path,
                                                                                monkeypatch):
    copy = tmp_path / "posinfo"
    shutil.copytree(Path(posinfo.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "__file__", str(copy / "cache.py"))

    def fingerprint():
        cache.code_fingerprint.cache_clear()
        return cache.code_fingerprint()

    try:
        before = fingerprint()
        assert not any("tools" in p.parts for p in cache.fingerprinted_modules())
        for tool in ("report.py", "distributed.py", "gpu_book.py", "prefetch.py",
                     "bench/gpu.py", "bench/gpu_check.py", "bench/cpu.py"):
            path = copy / "tools" / tool
            path.write_text(path.read_text() + "\nX = 1\n")
        assert fingerprint() == before
        train = copy / "train.py"  # the check can fail: training code is in the key
        train.write_text(train.read_text() + "\nX = 1\n")
        assert fingerprint() != before
    finally:
        cache.code_fingerprint.cache_clear()
