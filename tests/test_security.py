"""Security rules checked on the source itself, with `ast` rather than text search.

- Every `torch.load` (however it is imported or aliased) passes `weights_only=True`: a
  pickle-based checkpoint must never be able to run code.
- `trust_remote_code` is only ever passed a value read from a registry entry (or a literal
  False): code from a model repository runs only when the registry says so.
- Nothing turns data into code: no eval or exec, no pickle or marshal loads, no YAML loader
  that builds Python objects, no shell (`shell=True`, os.system). SECURITY.md lists these
  promises with the test behind each.

That an API key appears in no log, output or report file is checked on a real run with an
openai backend, in test_flaky_endpoints.py, and stage by stage in test_hostile_inputs.py.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.code_imports import dotted_name

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("src", "workflow", "benchmarks")
# Snakemake rule files are not Python; they may not mention either thing at all.
RULE_FILES = ("Snakefile", "workflow/rules/*.smk")
# Functions that unpickle a checkpoint and take weights_only (dotted paths).
TORCH_LOADERS = frozenset(
    {"torch.load", "torch.serialization.load", "torch.hub.load_state_dict_from_url"}
)
# Keyword names through which "run the repository's code" travels (zsar.models.fetch passes it on
# as `remote_code`).
REMOTE_CODE_KEYWORDS = frozenset({"trust_remote_code", "remote_code"})
REGISTRY_KEY = "trust_remote_code"


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}"


def python_files() -> list[Path]:
    files = [p for folder in SCANNED for p in sorted((REPO / folder).rglob("*.py"))]
    return [p for p in files if "__pycache__" not in p.parts]


# ---------------------------------------------------------------- torch.load


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name, for `import torch as t` and `from torch import load as l`."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return aliases


def is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def named_calls(source: str) -> Iterator[tuple[ast.Call, str | None]]:
    """Every call in the source with the dotted name it calls, import aliases resolved."""
    tree = ast.parse(source)
    aliases = import_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, dotted_name(node.func, aliases)


def torch_load_findings(source: str, path: str) -> list[Finding]:
    findings = []
    for node, name in named_calls(source):
        if name not in TORCH_LOADERS:
            continue
        keywords = {k.arg: k.value for k in node.keywords}
        if None in keywords:  # **kwargs: weights_only cannot be seen, so it is not proven
            findings.append(Finding(path, node.lineno, f"{name} with **kwargs"))
        elif not is_true(keywords.get("weights_only")):
            findings.append(Finding(path, node.lineno, f"{name} without weights_only=True"))
    return findings


# ---------------------------------------------------------------- trust_remote_code


def reads_registry_key(node: ast.AST) -> bool:
    """Does the expression read `trust_remote_code` from a mapping, with no True default?

    Accepts `entry["trust_remote_code"]`, `entry.get("trust_remote_code")` and
    `entry.get("trust_remote_code", False)`, possibly wrapped (e.g. in bool()).
    """
    for sub in ast.walk(node):
        if isinstance(sub, ast.Subscript) and _is_key(sub.slice):
            return True
        if (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and sub.func.attr == "get"
            and sub.args
            and _is_key(sub.args[0])
        ):
            default = sub.args[1] if len(sub.args) > 1 else None
            return not (isinstance(default, ast.Constant) and default.value is not False
                        and default.value is not None)
    return False


def _is_key(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == REGISTRY_KEY


class _Scope:
    """Assignments and parameters of one function (or the module), by name."""

    def __init__(self, node: ast.AST):
        self.assigned: dict[str, list[ast.AST]] = {}
        self.params: dict[str, ast.AST | None] = {}
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
            for arg, default in zip(positional, defaults, strict=True):
                self.params[arg.arg] = default
            for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
                self.params[arg.arg] = default
        for sub in ast.walk(node):
            if isinstance(sub, ast.Assign):
                for target in sub.targets:
                    if isinstance(target, ast.Name):
                        self.assigned.setdefault(target.id, []).append(sub.value)
            elif isinstance(sub, ast.AnnAssign | ast.AugAssign) and isinstance(
                sub.target, ast.Name
            ) and sub.value is not None:
                self.assigned.setdefault(sub.target.id, []).append(sub.value)


def value_is_allowed(value: ast.AST, scope: _Scope) -> str | None:
    """None if `value` may be passed as trust_remote_code, else why not."""
    if isinstance(value, ast.Constant):
        return None if value.value is False else f"literal {value.value!r}"
    if reads_registry_key(value):
        return None
    if isinstance(value, ast.Name):
        if value.id in scope.assigned:
            bad = [value_is_allowed(v, _Scope(ast.Module(body=[], type_ignores=[])))
                   for v in scope.assigned[value.id]]
            problems = [b for b in bad if b]
            return f"'{value.id}' = {problems[0]}" if problems else None
        if value.id in scope.params:
            # A parameter passed through: its callers are checked where they pass it by its
            # keyword, so it must be named like one, and its default must be off.
            default = scope.params[value.id]
            if value.id not in REMOTE_CODE_KEYWORDS:
                return f"parameter '{value.id}' is not passed as a remote-code keyword"
            if default is None or (isinstance(default, ast.Constant) and default.value is False):
                return None
            return f"parameter '{value.id}' defaults to {ast.unparse(default)}"
    return f"'{ast.unparse(value)}' is not read from a registry entry"


def remote_code_findings(source: str, path: str) -> list[Finding]:
    tree = ast.parse(source)
    findings = []
    scopes = [tree, *(n for n in ast.walk(tree)
                      if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]
    seen: set[int] = set()
    # Innermost scope first, so that a function's own assignments are the ones used.
    for scope_node in reversed(scopes):
        scope = _Scope(scope_node)
        for node in ast.walk(scope_node):
            if id(node) in seen:
                continue
            passed: list[ast.AST] = []
            if isinstance(node, ast.keyword) and node.arg in REMOTE_CODE_KEYWORDS:
                passed.append(node.value)
            elif isinstance(node, ast.Dict):
                passed += [v for k, v in zip(node.keys, node.values, strict=True)
                           if isinstance(k, ast.Constant) and k.value in REMOTE_CODE_KEYWORDS]
            if not passed:
                continue
            seen.add(id(node))
            for value in passed:
                problem = value_is_allowed(value, scope)
                if problem:
                    findings.append(Finding(path, value.lineno, f"trust_remote_code: {problem}"))
    return findings


# ---------------------------------------------------------------- data never becomes code

# Calls that run or unpickle what they are given (dotted names, aliases resolved).
CODE_FROM_DATA = frozenset({
    "eval", "exec", "pickle.load", "pickle.loads", "marshal.load", "marshal.loads",
    "yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all",
    "os.system", "os.popen",
})


def code_from_data_findings(source: str, path: str) -> list[Finding]:
    findings = []
    for node, name in named_calls(source):
        if name in CODE_FROM_DATA:
            findings.append(Finding(path, node.lineno, f"{name}()"))
        if any(k.arg == "shell" and not _is_false(k.value) for k in node.keywords):
            findings.append(Finding(path, node.lineno, "shell= other than False"))
    return findings


def _is_false(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


# ---------------------------------------------------------------- the checks on zsar


def test_the_scan_covers_the_code_that_loads_models():
    names = {p.relative_to(REPO).as_posix() for p in python_files()}
    assert {"src/zsar/models/backbones.py", "src/zsar/models/captioners.py",
            "src/zsar/stages/descriptors.py", "src/zsar/models/convert.py",
            "workflow/scripts/embed_videos.py"} <= names


def test_every_torch_load_passes_weights_only_true():
    findings = []
    calls = 0
    for path in python_files():
        source = path.read_text()
        findings += torch_load_findings(source, path.relative_to(REPO).as_posix())
        calls += source.count("torch.load(")
    assert calls > 0, "expected torch.load calls to check (backbones, convert)"
    assert not findings, "\n".join(map(str, findings))


def test_trust_remote_code_comes_only_from_registry_entries():
    findings, passes = [], 0
    for path in python_files():
        source = path.read_text()
        findings += remote_code_findings(source, path.relative_to(REPO).as_posix())
        passes += source.count("trust_remote_code=")
    assert passes > 0, "expected trust_remote_code to be passed somewhere (captions, llms)"
    assert not findings, "\n".join(map(str, findings))


def test_no_code_runs_from_data():
    findings = []
    for path in python_files():
        findings += code_from_data_findings(path.read_text(), path.relative_to(REPO).as_posix())
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.parametrize("source", [
    "x = eval(text)", "import pickle\npickle.loads(b)", "from pickle import load\nload(f)",
    "import yaml\nyaml.load(t, Loader=yaml.Loader)", "import yaml as y\ny.unsafe_load(t)",
    "import subprocess\nsubprocess.run(cmd, shell=True)", "import os\nos.system(cmd)",
])
def test_the_code_from_data_checker_flags_each_kind(source):
    assert len(code_from_data_findings(source, "x.py")) == 1, source


def test_the_code_from_data_checker_passes_safe_calls():
    source = ("import yaml, subprocess\nyaml.safe_load(t)\nmodel.eval()\n"
              "subprocess.run(['ls'], shell=False)\nsubprocess.run(['ls'])\n")
    assert code_from_data_findings(source, "x.py") == []


def test_rule_files_neither_unpickle_nor_trust_remote_code():
    files = [p for pattern in RULE_FILES for p in sorted(REPO.glob(pattern))]
    assert files
    for path in files:
        text = path.read_text()
        assert "torch.load" not in text and "trust_remote_code" not in text, path


# ---------------------------------------------------------------- the checkers can fail


BAD_LOADS = {
    "import torch\ntorch.load(p)\n": "without weights_only=True",
    "import torch\ntorch.load(p, weights_only=False)\n": "without weights_only=True",
    "import torch as t\nt.load(p, map_location='cpu')\n": "without weights_only=True",
    "from torch import load\nload(p)\n": "without weights_only=True",
    "from torch import load as ld\nld(p, weights_only=flag)\n": "without weights_only=True",
    "import torch\ntorch.serialization.load(p)\n": "without weights_only=True",
    "import torch\ntorch.load(p, **opts)\n": "with **kwargs",
}


@pytest.mark.parametrize(("source", "problem"), BAD_LOADS.items())
def test_torch_load_checker_flags_unsafe_calls(source, problem):
    findings = torch_load_findings(source, "x.py")
    assert len(findings) == 1 and problem in findings[0].problem


def test_torch_load_checker_passes_safe_calls():
    source = "import torch\nfrom torch import load\ntorch.load(p, weights_only=True)\n" \
             "load(p, map_location='cpu', weights_only=True)\nnp.load(p)\njson.load(f)\n"
    assert torch_load_findings(source, "x.py") == []


BAD_TRUST = [
    "f(path, trust_remote_code=True)",
    "kwargs = {'trust_remote_code': True}",
    "def g(entry):\n    trust = True\n    f(path, trust_remote_code=trust)",
    "def g(entry):\n    f(path, trust_remote_code=entry.get('trust_remote_code', True))",
    "def g(entry, flag):\n    f(path, trust_remote_code=flag)",
    "def g(entry, remote_code=True):\n    f(path, remote_code=remote_code)",
    "def g(config):\n    f(path, trust_remote_code=config['allow_code'])",
]


@pytest.mark.parametrize("source", BAD_TRUST)
def test_trust_checker_flags_values_not_from_the_registry(source):
    assert remote_code_findings(textwrap.dedent(source), "x.py"), source


GOOD_TRUST = [
    "def g(entry):\n    f(p, trust_remote_code=bool(entry.get('trust_remote_code', False)))",
    "def g(entry):\n    trust = entry.get('trust_remote_code')\n"
    "    f(p, trust_remote_code=trust)\n    kw = {'trust_remote_code': trust}",
    "def g(entry):\n    f(p, trust_remote_code=entry['trust_remote_code'])",
    "def g(p, *, remote_code=False):\n    f(p, remote_code=remote_code)",
    "f(p, trust_remote_code=False)",
]


@pytest.mark.parametrize("source", GOOD_TRUST)
def test_trust_checker_passes_registry_values(source):
    assert remote_code_findings(textwrap.dedent(source), "x.py") == []
