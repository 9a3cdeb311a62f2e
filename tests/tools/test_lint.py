"""The code passes the linter configured in pyproject.toml ([tool.ruff]: pycodestyle and
pyflakes at 99 columns): the library, the tests and the chapters' jupytext sources."""
import subprocess
import sys

import pytest

from posinfo.run import REPO

LINTED = ["lib", "tests", *sorted(str(p.relative_to(REPO)) for p in (REPO / "book").glob("*.py"))]


def ruff(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_ruff_is_installed():
    done = ruff("--version")
    assert done.returncode == 0, ("ruff is in the test extras (pip install -e '.[test]'): "
                                  + done.stderr)


def test_the_linter_uses_the_projects_settings_and_finds_a_planted_problem(tmp_path):
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (tmp_path / "bad.py").write_text("import os\n\nx = 1 + " + "1 + " * 30 + "1\n")
    done = ruff("check", "--no-cache", "--output-format", "concise", "bad.py", cwd=tmp_path)
    assert done.returncode == 1
    assert "F401" in done.stdout and "E501" in done.stdout  # unused import, over 99 columns


def test_library_tests_and_chapters_pass_the_linter():
    done = ruff("check", "--no-cache", "--output-format", "concise", *LINTED)
    if done.returncode == 2:
        pytest.fail(done.stderr)
    assert done.returncode == 0, "ruff check " + " ".join(LINTED) + ":\n" + done.stdout
