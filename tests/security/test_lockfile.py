"""The lock files pin the whole tree with hashes and agree with the direct requirements.

scripts/setup.sh (and so CI) installs requirements.lock / requirements-dev.lock with
--require-hashes; a requirement added to requirements*.txt without running ./scripts/lock.sh, or a
dev lock whose runtime packages drift from the runtime lock, fails here with the fix to make.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]+)\])?==([^\s;\\]+)")
RELOCK = "run ./scripts/lock.sh and commit requirements*.lock"


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _direct(path: Path) -> dict[str, str]:
    """name -> version of each pin in a requirements file, following ``-r``; an extra
    (``psycopg[binary]``) also names the package that provides it (``psycopg-binary``)."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins.update(_direct(path.parent / line[3:].strip()))
            continue
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: {line!r} is not pinned with =="
        name, extras, version = match.groups()
        pins[_name(name)] = version
        for extra in (extras or "").split(","):
            if extra.strip():
                pins[f"{_name(name)}-{extra.strip()}"] = version
    return pins


def _locked(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes) of every package in a pip-compile lock."""
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", path.read_text()):
        if block.startswith("#") or not block.strip():
            continue
        match = PIN.match(block)
        assert match, f"{path.name}: an entry that is not pinned with ==: {block.splitlines()[0]!r}"
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
        assert hashes, f"{path.name}: {match.group(1)} has no sha256 hash"
        entries[_name(match.group(1))] = (match.group(3), hashes)
    return entries


@pytest.mark.parametrize(
    ("direct", "lock"), [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")]
)
def test_every_direct_requirement_is_locked_at_its_pinned_version(direct: str, lock: str):
    locked = _locked(ROOT / lock)
    for name, version in _direct(ROOT / direct).items():
        assert name in locked, f"{name} is in {direct} but not in {lock}: {RELOCK}"
        assert locked[name][0] == version, f"{name}: {direct} pins {version}, {lock} has {locked[name][0]}: {RELOCK}"


def test_the_dev_lock_installs_exactly_the_runtime_lock_beside_the_test_tools():
    runtime, dev = _locked(ROOT / "requirements.lock"), _locked(ROOT / "requirements-dev.lock")
    for name, (version, hashes) in runtime.items():
        assert name in dev, f"{name} is in requirements.lock but not in requirements-dev.lock: {RELOCK}"
        assert dev[name] == (version, hashes), f"{name} differs between the two locks: {RELOCK}"


def test_setup_installs_the_locks_requiring_hashes():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    install = [line for line in setup.splitlines() if "pip install" in line]
    assert install and all("--require-hashes" in line and '-r "$lock"' in line for line in install), install
    assert "lock=requirements.lock" in setup and "lock=requirements-dev.lock" in setup
