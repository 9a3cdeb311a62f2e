"""The locked environment: every package ``make setup`` installs, at one exact version each.

A number in the book depends on more than the code: numpy's sums, scikit-learn's solvers,
torch's kernels. ``requirements.lock`` pins every distribution of the environment that
executed the book, each with the sha256 of the file pip installed, and ``make setup``
installs from it alone (``pip install --require-hashes``), so the stack a reader builds next
year is the one that ran. ``make lock`` refreshes it: a fresh virtual environment resolves
pyproject.toml's ranges to their newest releases, and this module writes what pip installed
(``python -m posinfo.lockfile REPORT``, REPORT being ``pip install --dry-run --report``).

The runner records the lock's sha256 in every notebook it executes, with the installed
distributions that differ from it (``recorded``), so each executed chapter names the stack
that produced it.

Used by the runner (posinfo.run) and ``make lock``.
"""
from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

# a distribution's name as pip compares it (PEP 503): 'Jinja2' and 'jinja2' are one
from packaging.utils import canonicalize_name as canonical

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"
# Distributions a lock never holds: the project itself (installed editable from the work tree).
UNLOCKED = {"posinfo"}


def pins(lock: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} of every ``name==version`` line of the lock."""
    found = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            found[canonical(name)] = version.split()[0]
    return found


def installed() -> dict[str, str]:
    """{canonical name: version} of every distribution this interpreter sees."""
    return {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()
            if d.metadata["Name"]}


def differences(lock: Path = LOCK) -> list[str]:
    """How the running environment departs from the lock: a distribution missing, at another
    version, or installed without being locked; empty when it is exactly the lock."""
    locked, present = pins(lock), installed()
    found = [f"{name}: {present.get(name, 'missing')} (lock: {version})"
             for name, version in sorted(locked.items()) if present.get(name) != version]
    found += [f"{name}: {version} (not in the lock)" for name, version in sorted(present.items())
              if name not in locked and name not in UNLOCKED]
    return found


def sha256(lock: Path = LOCK) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def recorded(lock: Path = LOCK) -> dict:
    """What an executed notebook records of its environment (the runner's metadata)."""
    if not lock.is_file():
        return {"lock": None, "differences": ["no requirements.lock in the work tree"]}
    return {"lock": lock.name, "lock_sha256": sha256(lock), "differences": differences(lock)}


def from_report(report: dict) -> str:
    """A lock file's text from pip's installation report: one ``name==version`` line per
    distribution with the sha256 of the file pip chose, sorted by name."""
    lines = ["# Every distribution `make setup` installs, with the sha256 of its file (CPython",
             "# 3.11, x86-64 Linux: the machines that executed the book). Written by",
             "# `make lock`; edit pyproject.toml's ranges, not this file.", ""]
    for item in sorted(report["install"], key=lambda i: canonical(i["metadata"]["name"])):
        name, version = canonical(item["metadata"]["name"]), item["metadata"]["version"]
        if name in UNLOCKED:
            continue
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        lines.append(f"{name}=={version} \\\n    --hash=sha256:{digest}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(from_report(json.loads(Path(sys.argv[1]).read_text())))
