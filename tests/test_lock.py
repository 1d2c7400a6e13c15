"""requirements.lock: made from pyproject.toml's requirements, pinning each within its range,
installed as it is into .venv, and refused by `make` once pyproject.toml's requirements move
on without it (tools/lockfile.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import lockfile
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PYPROJECT = REPO / "pyproject.toml"


def every_requirement(pyproject_text: str) -> list[Requirement]:
    inputs = lockfile.requirement_inputs(pyproject_text)
    lines = inputs["dependencies"] + inputs["build-system"]
    lines += [line for extra in inputs["optional-dependencies"].values() for line in extra]
    return [Requirement(line) for line in lines]


# --- the repository's lock -------------------------------------------------------------------


def test_the_lock_is_made_from_pyprojects_requirements():
    assert lockfile.staleness(PYPROJECT.read_text(), LOCK.read_text(), LOCK.name) is None


def test_the_lock_pins_every_requirement_within_its_range():
    locked = lockfile.pins(LOCK.read_text())
    problems = []
    for req in every_requirement(PYPROJECT.read_text()):
        version = locked.get(lockfile.normalize(req.name))
        if version is None:
            problems.append(f"{req}: not in {LOCK.name}")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req}: {LOCK.name} holds {version}, outside the range")
    assert not problems, problems


def test_every_pin_of_the_lock_carries_hashes():
    unhashed = [lines[0] for lines in lockfile.entries(LOCK.read_text()).values() if len(lines) < 2]
    assert not unhashed, (
        f"entries without --hash lines (make installs with --require-hashes): {unhashed}"
    )


def test_the_python_running_the_tests_has_the_locked_versions():
    """`make` syncs .venv to the lock; a venv that drifted from it (a hand-installed package)
    would test other code than a fresh clone gets."""
    drift = []
    for name, version in sorted(lockfile.pins(LOCK.read_text()).items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift.append(f"{name}=={version} is not installed")
            continue
        if Version(installed) != Version(version):
            drift.append(f"{name}=={version} is installed at {installed}")
    assert not drift, "run `make venv`: " + "; ".join(drift)


# --- staleness ---------------------------------------------------------------------------------


def test_an_edited_range_makes_the_lock_stale_with_one_line():
    pyproject, lock = PYPROJECT.read_text(), LOCK.read_text()
    assert '"httpx>=0.27"' in pyproject
    edited = pyproject.replace('"httpx>=0.27"', '"httpx>=0.28"')

    problem = lockfile.staleness(edited, lock, "requirements.lock")

    assert problem is not None and "\n" not in problem
    assert problem.startswith("requirements.lock is out of date") and "`make lock`" in problem


@pytest.mark.parametrize(
    "old, new",
    [
        ('"setuptools>=70.1"', '"setuptools>=71"'),  # the build backend is locked too
        ('"uv>=0.9",', '"uv>=0.9",\n    "rich",'),  # a new test extra
        ('requires-python = ">=3.11"', 'requires-python = ">=3.12"'),
    ],
)
def test_each_requirement_input_is_in_the_digest(old, new):
    pyproject = PYPROJECT.read_text()
    assert old in pyproject
    assert lockfile.inputs_digest(pyproject.replace(old, new)) != lockfile.inputs_digest(pyproject)


def test_settings_that_resolve_nothing_leave_the_lock_fresh():
    pyproject = PYPROJECT.read_text()
    edited = pyproject.replace("line-length = 100", "line-length = 99").replace(
        'version = "0.1.0"', 'version = "0.1.1"'
    )
    assert edited != pyproject
    assert lockfile.staleness(edited, LOCK.read_text(), LOCK.name) is None


def test_a_lock_without_its_digest_or_missing_is_refused():
    pyproject = PYPROJECT.read_text()
    no_digest = "".join(
        line
        for line in LOCK.read_text().splitlines(keepends=True)
        if not line.startswith(lockfile.DIGEST_LINE)
    )
    assert "`make lock`" in lockfile.staleness(pyproject, no_digest, "x.lock")
    assert lockfile.staleness(pyproject, None, "x.lock").startswith("x.lock is missing")


def copy_for_make(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / "tools").mkdir(parents=True)
    for name in ("Makefile", "pyproject.toml", "requirements.lock", "tools/lockfile.py"):
        shutil.copy(REPO / name, root / name)
    return root


def test_make_test_stops_at_once_when_pyproject_changed_without_make_lock(tmp_path):
    root = copy_for_make(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"httpx>=0.27"', '"httpx>=0.28"'))
    # Offline: were the check not to stop make, the venv build would fail fast, not download.
    env = {**os.environ, "PIP_NO_INDEX": "1", "UV_OFFLINE": "1"}

    done = subprocess.run(
        ["make", "test"], cwd=root, capture_output=True, text=True, timeout=120, env=env
    )

    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make")]
    assert ours == [
        "requirements.lock is out of date: the requirements in pyproject.toml changed since "
        "it was made; run `make lock` (then `make test`) and commit both"
    ], done.stderr
    assert not (root / ".venv").exists(), "make built a venv from a stale lock"


def test_make_passes_the_check_on_the_committed_files(tmp_path):
    root = copy_for_make(tmp_path)
    done = subprocess.run(["make", "lock-check"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --- the lock's text ----------------------------------------------------------------------------

LOCK_TEXT = """\
# This file was autogenerated by uv via the following command:
#    make lock
numpy==2.4.6 \\
    --hash=sha256:aaa \\
    --hash=sha256:bbb
    # via zsar (pyproject.toml)
PyYAML==6.0.4 \\
    --hash=sha256:ccc
    # via zsar (pyproject.toml)
"""


def test_entries_and_pins_are_read_with_their_hashes():
    assert lockfile.entries(LOCK_TEXT) == {
        "numpy": ["numpy==2.4.6 \\", "    --hash=sha256:aaa \\", "    --hash=sha256:bbb"],
        "pyyaml": ["PyYAML==6.0.4 \\", "    --hash=sha256:ccc"],
    }
    assert lockfile.pins(LOCK_TEXT) == {"numpy": "2.4.6", "pyyaml": "6.0.4"}


def test_the_digest_line_goes_after_the_header_and_replaces_an_old_one():
    once = lockfile.stamp(LOCK_TEXT, "d1")
    twice = lockfile.stamp(once, "d2")

    assert once.splitlines()[2] == f"{lockfile.DIGEST_LINE}d1"
    assert twice == once.replace("d1", "d2")
    assert lockfile.recorded_digest(twice) == "d2"


def test_env_files_get_the_locks_versions_and_unknown_pins_are_named():
    env = (
        "dependencies:\n  - python=3.11\n  - pip=24.2\n  - pip:\n"
        "      - numpy==1.0  # why\n      - pyyaml==6.0.1\n      - ghost==1.0\n"
    )
    text, unknown = lockfile.pin_env_text(env, lockfile.pins(LOCK_TEXT), "envs/x.yaml")

    assert text == env.replace("numpy==1.0", "numpy==2.4.6").replace("6.0.1", "6.0.4")
    assert unknown == ["envs/x.yaml: ghost is not in requirements.lock: add it to pyproject.toml"]


def test_the_repositorys_env_files_already_hold_the_locks_versions():
    """What `make lock` would write into envs/*.yaml is what they hold."""
    locked = lockfile.pins(LOCK.read_text())
    for path in sorted((REPO / "envs").glob("*.yaml")):
        text, unknown = lockfile.pin_env_text(path.read_text(), locked, path.name)
        assert unknown == [] and text == path.read_text(), path.name
