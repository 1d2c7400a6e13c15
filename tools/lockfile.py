"""The lock, requirements.lock: the exact version and hashes of every package that `make`
installs into .venv (zsar's runtime dependencies, all its extras and the build backend), for
Linux x86_64 and Python 3.11, as `uv pip compile` resolves pyproject.toml's ranges.

Standard library only: it runs with the system python3, before .venv exists.

    python3 tools/lockfile.py check
        exit 1 with one line when pyproject.toml's requirements changed since the lock was
        made (the lock records a digest of them); Makefile runs it before every venv use
    python3 tools/lockfile.py requirement NAME
        NAME's entry of the lock (pin and hashes), for pip to install uv itself from it
    python3 tools/lockfile.py lock --uv PATH [--upgrade]
        regenerate the lock from pyproject.toml (`make lock`), then write its versions into
        envs/*.yaml
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PYPROJECT = REPO / "pyproject.toml"
ENVS = REPO / "envs"
# The machine every lock is resolved for: CI's, the demo's and the usual GPU node's.
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_28"
DIGEST_LINE = "# pyproject.toml requirements sha256: "
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
ENV_PIN = re.compile(r"^(\s*-\s*)([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(.*)$")


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares them (PyYAML = pyyaml)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- the lock's inputs ------------------------------------------------------------------------


def requirement_inputs(pyproject_text: str) -> dict:
    """Everything in pyproject.toml that the resolution depends on; nothing else (editing the
    description or ruff's settings does not make the lock stale)."""
    data = tomllib.loads(pyproject_text)
    project = data.get("project", {})
    return {
        "requires-python": project.get("requires-python", ""),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system": data.get("build-system", {}).get("requires", []),
    }


def inputs_digest(pyproject_text: str) -> str:
    canonical = json.dumps(requirement_inputs(pyproject_text), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def recorded_digest(lock_text: str) -> str | None:
    for line in lock_text.splitlines():
        if line.startswith(DIGEST_LINE):
            return line[len(DIGEST_LINE) :].strip()
    return None


def staleness(pyproject_text: str, lock_text: str | None, lock_name: str) -> str | None:
    """None when the lock was made from these requirements, else the one line to print."""
    if lock_text is None:
        return f"{lock_name} is missing: run `make lock` to make it from pyproject.toml"
    recorded = recorded_digest(lock_text)
    if recorded is None:
        return f"{lock_name} has no '{DIGEST_LINE.strip()}' line: run `make lock`"
    if recorded != inputs_digest(pyproject_text):
        return (
            f"{lock_name} is out of date: the requirements in pyproject.toml changed since it "
            "was made; run `make lock` (then `make test`) and commit both"
        )
    return None


def stamp(lock_text: str, digest: str) -> str:
    """The lock with the digest line at the end of its comment header (in place of any old
    one), where `check` reads it."""
    lines = [
        line for line in lock_text.splitlines(keepends=True) if not line.startswith(DIGEST_LINE)
    ]
    end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    lines.insert(end, f"{DIGEST_LINE}{digest}\n")
    return "".join(lines)


# --- reading the lock ---------------------------------------------------------------------------


def entries(lock_text: str) -> dict[str, list[str]]:
    """normalised name -> the lines of its entry (the `name==version \\` line, its hashes)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lock_text.splitlines():
        pin = PIN.match(line)
        if pin:
            current = found.setdefault(normalize(pin.group(1)), [])
            current.append(line)
        elif current is not None and line.strip().startswith("--hash="):
            current.append(line)
        else:
            current = None
    return found


def pins(lock_text: str) -> dict[str, str]:
    """normalised name -> the exact version the lock holds."""
    return {
        name: PIN.match(lines[0]).group(2).rstrip("\\").strip()
        for name, lines in entries(lock_text).items()
    }


# --- env files ------------------------------------------------------------------------------------


def pin_env_text(text: str, locked: dict[str, str], label: str) -> tuple[str, list[str]]:
    """The env file with each `name==version` of its pip section set to the lock's version,
    and the packages it pins that the lock does not hold (which `make lock` refuses)."""
    lines, unknown = [], []
    for line in text.splitlines(keepends=True):
        found = ENV_PIN.match(line.rstrip("\n"))
        if found:
            lead, name, _, rest = found.groups()
            version = locked.get(normalize(name))
            if version is None:
                unknown.append(f"{label}: {name} is not in {LOCK.name}: add it to pyproject.toml")
            else:
                line = f"{lead}{name}=={version}{rest}\n"
        lines.append(line)
    return "".join(lines), unknown


# --- the commands ---------------------------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def check(_: argparse.Namespace) -> int:
    lock_text = LOCK.read_text() if LOCK.is_file() else None
    problem = staleness(PYPROJECT.read_text(), lock_text, LOCK.name)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


def requirement(args: argparse.Namespace) -> int:
    lines = entries(LOCK.read_text()).get(normalize(args.name))
    if not lines:
        print(f"{LOCK.name} holds no {args.name}: run `make lock`", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def lock(args: argparse.Namespace) -> int:
    pyproject_text = PYPROJECT.read_text()
    build = "\n".join(requirement_inputs(pyproject_text)["build-system"]) + "\n"
    # uv writes a scratch copy (it reads the old pins from it as preferences); the lock is
    # replaced only when its text changes, so an unchanged lock does not re-sync .venv.
    scratch = LOCK.with_name(f".{LOCK.name}.new")
    scratch.write_text(LOCK.read_text() if LOCK.is_file() else "")
    command = [
        args.uv, "pip", "compile", "pyproject.toml", "-",  # stdin: the build backend
        "--all-extras", "--generate-hashes", "--quiet",
        "--python-version", PYTHON_VERSION, "--python-platform", PLATFORM,
        "--custom-compile-command", "make lock",
        "--output-file", scratch.name,
        # Resolved against the registry itself, never a machine's mirror or uv settings, so
        # that the lock is the same file wherever `make lock` runs.
        "--no-config",
    ]  # fmt: skip
    if args.upgrade:
        command.append("--upgrade")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_")}
    try:
        done = subprocess.run(command, cwd=REPO, input=build, text=True, env=env)
        if done.returncode != 0:
            print(f"make lock: uv pip compile failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
        stamped = stamp(scratch.read_text(), inputs_digest(pyproject_text))
    finally:
        scratch.unlink(missing_ok=True)
    if not LOCK.is_file() or stamped != LOCK.read_text():
        write_atomically(LOCK, stamped)
        print(f"make lock: {LOCK.name} written")
    else:
        print(f"make lock: {LOCK.name} unchanged")
    return pin_envs(pins(stamped))


def pin_envs(locked: dict[str, str]) -> int:
    problems = []
    for path in sorted(ENVS.glob("*.yaml")):
        label = str(path.relative_to(REPO))
        text, unknown = pin_env_text(path.read_text(), locked, label)
        problems += unknown
        if text != path.read_text():
            write_atomically(path, text)
            print(f"make lock: {label} now pins the lock's versions")
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check").set_defaults(run=check)
    one = commands.add_parser("requirement")
    one.add_argument("name")
    one.set_defaults(run=requirement)
    make = commands.add_parser("lock")
    make.add_argument("--uv", required=True, help="the uv executable")
    make.add_argument("--upgrade", action="store_true", help="newest versions within the ranges")
    make.set_defaults(run=lock)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
