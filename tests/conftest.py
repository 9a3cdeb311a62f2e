import os

import pytest

# Unit tests never touch the user's model cache.
os.environ.setdefault("POSINFO_CACHE", "off")
os.environ.setdefault("POSINFO_PROGRESS", "off")


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSINFO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
