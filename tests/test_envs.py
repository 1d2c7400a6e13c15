"""The conda envs (envs/*.yaml) against the lock, pyproject's runtime dependencies and the
rules' code.

zsar goes into each env without its dependencies (envs/*.post-deploy.sh), so an env file
alone supplies every third-party package its jobs import. For each rule this reads its env
(`conda:`) and its `script:`, follows the code the script runs into src/zsar
(helpers.code_imports) and maps what that code imports to distributions through the
metadata of the Python running the tests. Every pin must also be a runtime dependency of
pyproject.toml, within its range, and exactly the version requirements.lock holds, which is
what `make` installs into .venv and so what the tests run with: the check reads files only,
never the versions installed, so it gives the same answer on any day. No network, no conda.
"""

from __future__ import annotations

import functools
import sys
from importlib import metadata
from pathlib import Path

import lockfile
import pytest
from helpers.code_imports import script_imports
from helpers.envs import (
    EnvFile,
    Rule,
    missing_problems,
    normalize,
    pin_problems,
    python_problems,
    read_env_file,
    read_pyproject,
    read_rules,
    unclaimed_problems,
)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
LOCK = REPO / "requirements.lock"

# What a rule's code needs without an import statement of zsar's showing it: a library
# imports it on a path that a model's files choose (its config names a processor class).
# env file -> distribution -> why.
EXTRA_NEEDS = {
    "torch.yaml": {
        "num2words": "transformers' SmolVLM2 processor (captioner smolvlm2-2.2b) spells frame "
        "counts with it and raises ImportError without it",
        "torchvision": "transformers' video processors (captioners with visual_input: video) "
        "require it",
        "pillow": "transformers' image and video processors (its captioners) require it",
    },
}


def string_imports():
    """Functions that import modules named by strings, and which modules: a rule's code that
    reaches one imports them (their module-level code runs)."""
    from zsar.models.registry import SECTION_BACKENDS

    return {("zsar.models.registry", "backends"): tuple(SECTION_BACKENDS.values())}


def env_files(folder: Path = REPO / "envs") -> dict[str, EnvFile]:
    return {
        path.name: read_env_file(path, f"envs/{path.name}")
        for path in sorted(folder.glob("*.yaml"))
    }


def report(problems: list[str]) -> str:
    return f"{len(problems)} drift problem(s):\n  " + "\n  ".join(problems)


def lock_problems(envs: dict[str, EnvFile]) -> list[str]:
    """Each env's Python and pins against pyproject and the lock."""
    pyproject = read_pyproject(REPO / "pyproject.toml")
    locked = lockfile.pins(LOCK.read_text())
    tested_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    problems = []
    for env in envs.values():
        problems += env.problems
        problems += python_problems(env, pyproject.requires_python, tested_python)
        problems += pin_problems(env, pyproject.dependencies, locked, LOCK.name)
    return problems


@functools.cache
def rules_code_imports():
    """(every rule, the rules with an env and a script, what their code imports, the installed
    modules' distributions): what import_problems reads besides the env files. They depend on
    the repository only, so they are worked out once per process (several seconds: every
    rule file, every module its scripts reach, all installed metadata). Read-only."""
    every_rule = read_rules((REPO / "workflow" / "rules").glob("*.smk"), REPO)
    rules = [rule for rule in every_rule if rule.script is not None and rule.conda is not None]
    assert rules, "no rule with a conda: env and a script: found in workflow/rules"
    found = script_imports(
        sorted({rule.script for rule in rules}), SRC, string_imports(), root=REPO
    )
    return every_rule, rules, found, metadata.packages_distributions()


def import_problems(envs: dict[str, EnvFile]) -> list[str]:
    """Each env installs what the code of its rules imports (and EXTRA_NEEDS)."""
    every_rule, rules, found, distributions = rules_code_imports()
    problems = [problem for rule in every_rule for problem in rule.problems]
    # env file -> distribution -> the rules whose code imports it: (rule, module, chain)
    users: dict[str, dict[str, list[tuple[str, str, str]]]] = {}
    for rule in rules:
        code = found[rule.script]
        problems += [
            f"rule {rule.name}: an import from a string that this test cannot follow "
            f"(add it to string_imports): {where}"
            for where in code.unlisted_dynamic
        ]
        for module, (_, *steps) in sorted(code.imports.items()):
            chain = " -> ".join(steps)
            dists = distributions.get(module)
            if not dists:
                problems.append(
                    f"rule {rule.name} imports {module}, which is not installed in the Python "
                    f"running the tests, so its distribution is unknown ({chain})"
                )
                continue
            dist = normalize(sorted(dists)[0])
            env_users = users.setdefault(rule.conda.name, {})
            env_users.setdefault(dist, []).append((rule.name, module, chain))
    needs = {name: dict(extra) for name, extra in EXTRA_NEEDS.items()}
    for name, env_users in users.items():
        for dist, found_in in env_users.items():
            rule, module, chain = found_in[0]
            names = ", ".join(sorted({user[0] for user in found_in}))
            needs.setdefault(name, {})[dist] = (
                f"imported by rule(s) {names}; e.g. rule {rule} imports {module} via {chain}"
            )
    for name, env_needs in sorted(needs.items()):
        if name not in envs:
            problems.append(f"envs/{name}: named by a rule or EXTRA_NEEDS, but no such file")
            continue
        problems += missing_problems(envs[name], env_needs)
    return problems


# --- the repository's env files -------------------------------------------------------------


def test_env_pins_are_runtime_dependencies_at_the_locked_versions():
    problems = lock_problems(env_files())
    if problems:
        pytest.fail(report(problems), pytrace=False)


def test_every_runtime_dependency_is_in_an_env():
    pyproject = read_pyproject(REPO / "pyproject.toml")
    problems = unclaimed_problems(pyproject.dependencies, env_files().values())
    if problems:
        pytest.fail(report(problems), pytrace=False)


def test_each_env_installs_what_its_rules_code_imports():
    problems = import_problems(env_files())
    if problems:
        pytest.fail(report(problems), pytrace=False)


# --- the same checks on the repository's env files, each with one edit ---------------------


def edited_envs(tmp_path: Path, name: str, old: str, new: str) -> dict[str, EnvFile]:
    folder = tmp_path / "envs"
    folder.mkdir()
    for path in (REPO / "envs").glob("*.yaml"):
        text = path.read_text()
        if path.name == name:
            assert old in text, f"envs/{name} has no line {old!r} to edit"
            text = text.replace(old, new)
        (folder / path.name).write_text(text)
    return env_files(folder)


@pytest.mark.parametrize(
    "package, reason",
    [("httpx", "imported by rule(s)"), ("num2words", "transformers' SmolVLM2 processor")],
)
def test_a_package_removed_from_an_env_is_named_with_the_file(tmp_path, package, reason):
    locked = lockfile.pins(LOCK.read_text())
    line = f"      - {package}=={locked[package]}\n"

    problems = import_problems(edited_envs(tmp_path, "torch.yaml", line, ""))

    assert [p for p in problems if p.startswith(f"envs/torch.yaml: {package} is missing: ")]
    assert any(reason in p for p in problems), problems


def test_a_pin_changed_in_an_env_is_named_with_both_versions(tmp_path):
    locked = lockfile.pins(LOCK.read_text())["pyarrow"]
    envs = edited_envs(tmp_path, "cpu.yaml", f"pyarrow=={locked}", "pyarrow==16.0.0")

    assert lock_problems(envs) == [
        f"envs/cpu.yaml: pyarrow==16.0.0 differs from the lock's pyarrow=={locked} "
        "(requirements.lock; `make lock` writes the lock's versions into envs/*.yaml)"
    ]


# --- the checks themselves, on made-up drift -----------------------------------------------


def test_pin_problems_name_the_env_the_package_and_the_drift():
    env = EnvFile(
        "envs/x.yaml",
        "3.11",
        {"numpy": "2.4.6", "av": "11.0", "tqdm": "4.70.1", "extra": "1.0", "ghost": "1.0"},
    )
    deps = {
        normalize(r.name): r for r in map(Requirement, ("numpy>=1.26", "av>=12", "tqdm", "ghost"))
    }
    locked = {"numpy": "2.4.6", "av": "11.0", "tqdm": "4.70.0", "extra": "1.0"}

    problems = pin_problems(env, deps, locked, "x.lock")

    assert problems == [
        "envs/x.yaml: av==11.0 is outside pyproject's range '>=12'",
        "envs/x.yaml: extra==1.0 is not a runtime dependency of pyproject.toml "
        "([project].dependencies): add it there or drop it here",
        "envs/x.yaml: ghost==1.0: x.lock holds no ghost (run `make lock`)",
        "envs/x.yaml: tqdm==4.70.1 differs from the lock's tqdm==4.70.0 (x.lock; `make lock` "
        "writes the lock's versions into envs/*.yaml)",
    ]


def test_missing_and_unclaimed_dependencies_are_named():
    env = EnvFile("envs/x.yaml", "3.11", {"numpy": "2.4.6"})
    assert missing_problems(env, {"numpy": "rule a imports numpy", "av": "rule b imports av"}) == [
        "envs/x.yaml: av is missing: rule b imports av"
    ]
    assert unclaimed_problems(["numpy", "num2words"], [env]) == [
        "pyproject.toml: runtime dependency num2words is in no env file (envs/x.yaml)"
    ]


def test_env_file_entries_that_are_no_exact_pin(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(
        "dependencies:\n  - python=3.11\n  - pip:\n"
        "      - numpy==2.4.6\n      - av>=12\n      - PyYAML==6.0.4\n"
    )
    env = read_env_file(path, "envs/x.yaml")
    assert env.python == "3.11"
    assert env.pins == {"numpy": "2.4.6", "pyyaml": "6.0.4"}
    assert env.problems == [
        "envs/x.yaml: av is not pinned to one version ('av>=12'; want NAME==VERSION)"
    ]
    assert python_problems(env, SpecifierSet(">=3.12"), "3.11") == [
        "envs/x.yaml: python=3.11 is outside requires-python '>=3.12'"
    ]
    assert python_problems(env, SpecifierSet(">=3.11"), "3.12") == [
        "envs/x.yaml: python=3.11, but the tests run on Python 3.12"
    ]


def test_rules_are_read_with_their_env_and_script(tmp_path):
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "cpu.yaml").write_text("dependencies: []\n")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "a.py").write_text("")
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "a.smk").write_text(
        'rule a:\n    output:\n        "x",\n    conda:\n        "../envs/cpu.yaml"\n'
        '    script:\n        "../scripts/a.py"\n\n\n'
        'checkpoint b:\n    script: "../scripts/a.py"\n\n\n'
        'rule c:\n    conda:\n        "../envs/gpu.yaml"\n    shell:\n        "true"\n'
    )

    a, b, c = read_rules([rules_dir / "a.smk"], tmp_path)

    envs, scripts = (tmp_path / "envs").resolve(), (tmp_path / "scripts").resolve()
    assert (a.name, a.conda, a.script, a.problems) == ("a", envs / "cpu.yaml", scripts / "a.py", [])
    assert (b.conda, b.script) == (None, scripts / "a.py")
    assert b.problems == ["rules/a.smk, rule b: runs a script without a conda: env"]
    assert c.problems == [
        f"rules/a.smk, rule c: conda: {envs / 'gpu.yaml'} does not exist",
        "rules/a.smk, rule c: a shell: directive; this test reads only script: files, so it "
        "cannot tell what this rule's env must hold",
    ]
    assert isinstance(c, Rule) and c.script is None


# A made-up package: what a script reaches through it, and what it does not.
PACKAGE = {
    "pkg/__init__.py": "",
    "pkg/core.py": """
import json
import importlib

import numpy

from pkg import loaders


def run():
    import PIL

    return loaders.LOADERS["a"]()


def unused():
    import matplotlib


def dynamic(name):
    return importlib.import_module(name)
""",
    "pkg/loaders.py": """
def _load_a():
    import torch


def _load_b():
    import av


LOADERS = {"a": _load_a}
NOT_REFERENCED = {"b": _load_b}
""",
    "pkg/plugin.py": "import yaml\n",
}


def write_package(root: Path) -> Path:
    for name, text in PACKAGE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_code_imports_follow_what_runs_not_what_is_imported(tmp_path):
    src = write_package(tmp_path / "src")
    script = tmp_path / "job.py"
    script.write_text("from pkg.core import run\n\nif __name__ == '__main__':\n    run()\n")

    code = script_imports([script], src)[script]

    # numpy: core's top; PIL: in run; torch: in the loader that run's registry holds. Not
    # matplotlib (unused is never called), av (a registry nothing refers to), json (stdlib).
    assert sorted(code.imports) == ["PIL", "numpy", "torch"]
    assert code.imports["torch"] == [
        str(script),
        "pkg.core:run",
        "pkg.loaders:LOADERS",
        "pkg.loaders:_load_a",
    ]
    assert code.unlisted_dynamic == []


def test_code_imports_of_a_name_that_is_never_called(tmp_path):
    src = write_package(tmp_path / "src")
    script = tmp_path / "job.py"
    script.write_text("from pkg.core import run\n")  # imports core, runs nothing of it

    assert sorted(script_imports([script], src)[script].imports) == ["numpy"]


def test_code_imports_report_imports_from_strings_unless_listed(tmp_path):
    src = write_package(tmp_path / "src")
    script = tmp_path / "job.py"
    script.write_text("from pkg.core import dynamic\n\ndynamic('pkg.plugin')\n")

    unlisted = script_imports([script], src)[script]
    listed = script_imports([script], src, {("pkg.core", "dynamic"): ["pkg.plugin"]})[script]

    assert "yaml" not in unlisted.imports
    assert len(unlisted.unlisted_dynamic) == 1
    assert "-> pkg.core:dynamic (line " in unlisted.unlisted_dynamic[0]
    assert "yaml" in listed.imports and listed.unlisted_dynamic == []
