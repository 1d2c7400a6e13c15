"""Provenance of an artifact: what code, config and models produced it.

Nothing here records wall-clock time, so equal inputs give byte-identical
metrics and tables; timestamps belong in logs.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from zsar import __version__

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/zsar
TRACKED_PACKAGES = ("torch", "open_clip_torch", "transformers", "decord", "pyarrow", "numpy")


def config_hash(obj: Any) -> str:
    """A short, stable hash of a JSON-able object (key order does not matter)."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@functools.cache
def git_commit(start: str | None = None) -> str:
    """The commit of the checkout that holds the workflow, or "unknown" outside git."""
    cwd = Path(start) if start else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def provenance(
    config: Mapping[str, Any] | None = None,
    *,
    model: str | None = None,
    prompt_version: str | None = None,
    seed: int | None = 0,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance block every artifact and metrics record carries (seed None: none)."""
    block: dict[str, Any] = {
        "zsar_version": __version__,
        "git_commit": git_commit(),
        "config_hash": config_hash(config or {}),
        "packages": package_versions(),
    }
    if seed is not None:
        block["seed"] = seed
    if model is not None:
        block["model"] = model
    if prompt_version is not None:
        block["prompt_version"] = prompt_version
    if extra:
        block.update(extra)
    return block


# --- code versions: what a job's result depends on in the code ---------------------------------
#
# A job re-runs when the code that computes its output changes, not when a file's mtime does
# (a `touch`, a `git checkout` that rewrites the same bytes) and not for a reworded comment,
# docstring or a reformatting. A rule's code version is a hash of the syntax tree, docstrings
# removed, of its script and of every zsar module the script imports, followed through the
# modules' own imports. The modules below are not followed: they say where and how a job runs
# and what it records (logs, devices, paths, provenance, config and registry loading), never
# what it computes; the config values and registry entries a job uses are in its cache key as
# params instead.
NOT_IN_CODE_VERSION = frozenset(
    {
        "zsar.cli",
        "zsar.pipeline.config",
        "zsar.models.devices",
        "zsar.pipeline.job",
        "zsar.pipeline.plan",
        "zsar.data.provenance",
        "zsar.models.registry",
    }
)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _imported_zsar_modules(tree: ast.AST) -> set[str]:
    """Every zsar module a module imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("zsar."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module != "zsar" and not node.module.startswith("zsar."):
                continue
            # `from zsar.stages import embed` imports a module of a package, `from
            # zsar.stages.embed import Views` a name of a module: count the module.
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if is_module(name) else node.module)
    found.discard("zsar")
    return found


def is_module(name: str) -> bool:
    """Whether a zsar name is a module or package, read from the files (find_spec would
    import its parent, and with it torch for some)."""
    path = PACKAGE_DIR.joinpath(*name.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@functools.cache
def _module_tree(name: str) -> tuple[str, frozenset[str]]:
    """(normalised syntax tree, zsar modules imported) of an importable zsar module."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:  # e.g. `from zsar import __version__`
        return "", frozenset()
    return _source_tree(Path(spec.origin).read_text())


def _source_tree(source: str) -> tuple[str, frozenset[str]]:
    tree = ast.parse(source)
    imports = frozenset(_imported_zsar_modules(tree))
    return ast.dump(_without_docstrings(tree)), imports


def code_modules(script: str | Path) -> list[str]:
    """The zsar modules whose code enters a script's code version, sorted."""
    _, pending = _source_tree(Path(script).read_text())
    seen: set[str] = set()
    pending = set(pending)
    while pending:
        name = pending.pop()
        if name in seen or name in NOT_IN_CODE_VERSION:
            continue
        seen.add(name)
        pending |= _module_tree(name)[1]
    return sorted(seen)


def code_version(script: str | Path) -> str:
    """A short hash of what a workflow script computes with: its own syntax tree and those
    of the zsar modules it uses (`code_modules`), without comments, docstrings or layout."""
    digest = hashlib.sha256(_source_tree(Path(script).read_text())[0].encode())
    for name in code_modules(script):
        digest.update(f"\0{name}\0{_module_tree(name)[0]}".encode())
    return digest.hexdigest()[:16]
