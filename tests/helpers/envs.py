"""The conda env files, pyproject's runtime dependencies and the workflow's rules, read for
tests/test_envs.py; and the checks between them, as pure functions that return every
problem found (one line each, naming the env file and the package)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


def normalize(name: str) -> str:
    """A distribution's name as PEP 503 compares them: `PyYAML` and `pyyaml`, `open_clip_torch`
    and `open-clip-torch` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


# --- pyproject ------------------------------------------------------------------------------


@dataclass
class Pyproject:
    requires_python: SpecifierSet
    dependencies: dict[str, Requirement]  # normalised name -> requirement


def read_pyproject(path: Path) -> Pyproject:
    project = tomllib.loads(path.read_text())["project"]
    deps = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        deps[normalize(req.name)] = req
    return Pyproject(SpecifierSet(project.get("requires-python", "")), deps)


# --- env files ------------------------------------------------------------------------------


@dataclass
class EnvFile:
    label: str  # how messages name it: envs/cpu.yaml
    python: str | None = None  # the conda `python=X.Y` pin
    pins: dict[str, str] = field(default_factory=dict)  # normalised name -> exact version
    problems: list[str] = field(default_factory=list)  # entries that are no exact pin


def read_env_file(path: Path, label: str) -> EnvFile:
    """An env file's Python pin and the exact versions of its pip section."""
    env = EnvFile(label)
    data = yaml.safe_load(path.read_text()) or {}
    for dep in data.get("dependencies") or []:
        if isinstance(dep, str) and re.fullmatch(r"python\s*[=<>!~].*", dep):
            env.python = re.sub(r"^python\s*=*", "", dep).strip()
        elif isinstance(dep, dict) and "pip" in dep:
            for line in dep["pip"] or []:
                _add_pin(env, str(line))
    return env


def _add_pin(env: EnvFile, line: str) -> None:
    try:
        req = Requirement(line)
    except InvalidRequirement:
        env.problems.append(f"{env.label}: pip entry '{line}' is not a requirement")
        return
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
        env.problems.append(
            f"{env.label}: {req.name} is not pinned to one version ('{line}'; want NAME==VERSION)"
        )
        return
    env.pins[normalize(req.name)] = specs[0].version


# --- rules ----------------------------------------------------------------------------------

RULE_START = re.compile(r"^(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
DIRECTIVE = re.compile(r"^[ \t]+(conda|script|shell|run|wrapper|notebook|cwl)\s*:(.*)$")
STRING = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)')\s*,?\s*""")


@dataclass
class Rule:
    name: str
    smk: Path
    conda: Path | None = None
    script: Path | None = None
    problems: list[str] = field(default_factory=list)


def rule_bodies(rule_files: Iterable[Path]) -> Iterator[tuple[str, Path, str]]:
    """(rule name, file, the text of its body) for every rule in the files."""
    for smk in sorted(rule_files):
        text = smk.read_text()
        starts = list(RULE_START.finditer(text))
        for i, start in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
            yield start.group(1), smk, text[start.end() : end]


def read_rules(rule_files: Iterable[Path], repo: Path) -> list[Rule]:
    """Each rule's conda env file and script, resolved against the file that holds it."""
    return [_read_rule(name, smk, body, repo) for name, smk, body in rule_bodies(rule_files)]


def _read_rule(name: str, smk: Path, body: str, repo: Path) -> Rule:
    rule = Rule(name, smk)
    where = f"{smk.relative_to(repo)}, rule {name}"
    lines = body.splitlines()
    for i, line in enumerate(lines):
        found = DIRECTIVE.match(line)
        if not found:
            continue
        key, inline = found.group(1), found.group(2).strip()
        if key not in ("conda", "script"):
            rule.problems.append(
                f"{where}: a {key}: directive; this test reads only script: files, so it "
                "cannot tell what this rule's env must hold"
            )
            continue
        value = inline or next((x for x in lines[i + 1 :] if x.strip()), "")
        literal = STRING.fullmatch(value)
        if literal is None:
            rule.problems.append(f"{where}: {key}: is not one string literal ({value.strip()!r})")
            continue
        path = (smk.parent / (literal.group(1) or literal.group(2) or "")).resolve()
        if not path.is_file():
            rule.problems.append(f"{where}: {key}: {path} does not exist")
            continue
        setattr(rule, key, path)
    if rule.script is not None and rule.conda is None:
        rule.problems.append(f"{where}: runs a script without a conda: env")
    return rule


# --- checks ---------------------------------------------------------------------------------


def pin_problems(
    env: EnvFile, deps: Mapping[str, Requirement], locked: Mapping[str, str], lock_name: str
) -> list[str]:
    """Each pin is a runtime dependency, within pyproject's range, at the lock's version.

    locked: normalised name -> the version the lock holds (what .venv, and so the tests,
    run with); never the versions of whatever Python runs the check.
    """
    problems = []
    for name, pinned in sorted(env.pins.items()):
        req = deps.get(name)
        if req is None:
            problems.append(
                f"{env.label}: {name}=={pinned} is not a runtime dependency of pyproject.toml "
                "([project].dependencies): add it there or drop it here"
            )
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(
                f"{env.label}: {name}=={pinned} is outside pyproject's range '{req.specifier}'"
            )
        version = locked.get(name)
        if version is None:
            problems.append(
                f"{env.label}: {name}=={pinned}: {lock_name} holds no {name} (run `make lock`)"
            )
        elif not _same_version(pinned, version):
            problems.append(
                f"{env.label}: {name}=={pinned} differs from the lock's {name}=={version} "
                f"({lock_name}; `make lock` writes the lock's versions into envs/*.yaml)"
            )
    return problems


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def python_problems(env: EnvFile, requires_python: SpecifierSet, tested: str) -> list[str]:
    """The env's `python=X.Y` is allowed by requires-python and is the tested X.Y."""
    if env.python is None:
        return [f"{env.label}: no python=X.Y among the conda dependencies"]
    problems = []
    if not requires_python.contains(env.python, prereleases=True):
        problems.append(
            f"{env.label}: python={env.python} is outside requires-python '{requires_python}'"
        )
    if env.python != tested:
        problems.append(f"{env.label}: python={env.python}, but the tests run on Python {tested}")
    return problems


def missing_problems(env: EnvFile, needed: Mapping[str, str]) -> list[str]:
    """needed: normalised distribution -> why this env needs it (which rule imports it)."""
    return [
        f"{env.label}: {name} is missing: {why}"
        for name, why in sorted(needed.items())
        if name not in env.pins
    ]


def unclaimed_problems(deps: Iterable[str], envs: Iterable[EnvFile]) -> list[str]:
    """Every runtime dependency is installed by at least one env."""
    envs = list(envs)
    claimed = {name for env in envs for name in env.pins}
    return [
        f"pyproject.toml: runtime dependency {name} is in no env file "
        f"({', '.join(env.label for env in envs)})"
        for name in sorted(set(deps) - claimed)
    ]
