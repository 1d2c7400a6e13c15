"""Which third-party modules the code a workflow script runs can import, found by reading it.

zsar keeps heavy imports inside the functions that need them, so "every import in every
module the script reaches" would put torch into the CPU jobs, and "the imports at the top
of those modules" would miss the decoders and matplotlib that they import lazily. This
follows the code instead, one function (or class, or module-level name) at a time:

- the script's module-level code runs; of it, only the functions it calls are followed;
- importing a module runs its module-level code (and its packages' `__init__`), the same way;
- a function, class or module-level name, once reached, reaches every import inside it and
  every function, class or name it refers to, called or not (a callback passed on is
  usually called), in its own module or through an import;
- a registry (a module-level dict of functions) is therefore reached only when code that
  runs refers to it by name, not merely because its module was imported.

Modules imported from a string (importlib.import_module) cannot be seen this way: the
caller names them in `string_imports`, and any other such import in reached code is
reported, so that nothing is skipped silently. What it cannot see either: attributes of
objects reached through a registry that only some callers use (every function a reached
registry holds counts as reached), and `if TYPE_CHECKING:` imports (counted as real).
"""

from __future__ import annotations

import ast
import collections
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

MODULE = "<module>"  # the node of a module's module-level code
DYNAMIC_IMPORTS = frozenset({"import_module", "__import__"})

Node = tuple[str, str]  # (module, top-level name or MODULE)


@dataclass
class CodeImports:
    """What a script's code can import: third-party top-level module -> how it gets there
    (the chain of nodes from the script), and the reached dynamic imports nobody named."""

    imports: dict[str, list[str]] = field(default_factory=dict)
    unlisted_dynamic: list[str] = field(default_factory=list)


def dotted_name(node: ast.AST, aliases: Mapping[str, str] | None = None) -> str | None:
    """`a.b.c` of a Name or an Attribute chain on one, else None; with `aliases`, the
    Name's import alias resolved (`np.load` -> `numpy.load`)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    head = (aliases or {}).get(node.id, node.id)
    return ".".join([head, *reversed(parts)])


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The module an ImportFrom names, relative ones resolved against `module`."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


class _Module:
    """One first-party module (or script) split into nodes, with its import bindings."""

    def __init__(self, name: str, path: Path, resolver: _Resolver):
        self.name = name
        self.is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        self.parts: dict[str, list[ast.AST]] = {MODULE: []}
        for stmt in tree.body:
            self._split(stmt)
        # Local name -> what it stands for: a dotted module path, or (module, name). Bound
        # module-wide, whether the import is at the top or inside a function.
        self.bindings: dict[str, str | Node] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.bindings[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.bindings[top] = top
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(name, self.is_package, node)
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    bound = sub if resolver.is_module(sub) else (source, alias.name)
                    self.bindings[alias.asname or alias.name] = bound

    def _split(self, stmt: ast.stmt) -> None:
        """Defs and named assignments become nodes of their own; what runs at import (the
        rest, decorators, base classes) stays in the module node."""
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.parts.setdefault(stmt.name, []).append(stmt)
            # Decorators and base classes are called (or used) at import: as calls here.
            called = list(stmt.decorator_list)
            if isinstance(stmt, ast.ClassDef):
                called += [*stmt.bases, *(k.value for k in stmt.keywords)]
            self.parts[MODULE].extend(ast.Call(func=f, args=[], keywords=[]) for f in called)
            return
        self.parts[MODULE].append(stmt)
        targets = []
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        for target in targets:
            if isinstance(target, ast.Subscript):  # REGISTRY["x"] = f
                target = target.value
            if isinstance(target, ast.Name):
                self.parts.setdefault(target.id, []).append(value)


class _Resolver:
    """Finds first-party modules under `src` (and scripts by path) and parses each once."""

    def __init__(self, src: Path):
        self.src = src
        self.modules: dict[str, _Module | None] = {}

    def path_of(self, name: str) -> Path | None:
        base = self.src.joinpath(*name.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    def is_module(self, name: str) -> bool:
        return name in self.modules or self.path_of(name) is not None

    def is_first_party(self, name: str) -> bool:
        top = name.split(".")[0]
        return self.path_of(top) is not None or (self.src / top).is_dir()

    def module(self, name: str, path: Path | None = None) -> _Module | None:
        if name not in self.modules:
            path = path or self.path_of(name)
            self.modules[name] = _Module(name, path, self) if path else None
        return self.modules[name]

    def node_of(self, module: str, name: str, seen: frozenset[Node] = frozenset()) -> Node:
        """The node `name` in `module` stands for, through re-exports; the module's own node
        when it is none of its defs or names (a constant, say)."""
        if self.is_module(f"{module}.{name}"):
            return (f"{module}.{name}", MODULE)
        mod = self.module(module)
        if mod is None or (module, name) in seen:
            return (module, MODULE)
        if name in mod.parts:
            return (module, name)
        bound = mod.bindings.get(name)
        if isinstance(bound, tuple) and self.is_first_party(bound[0]):
            return self.node_of(*bound, seen | {(module, name)})
        return (module, MODULE)


def _walk_code(parts: Sequence[ast.AST]) -> Iterator[ast.AST]:
    for part in parts:
        yield from ast.walk(part)


def _imported_modules(node: ast.AST, mod: _Module) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        source = _absolute(mod.name, mod.is_package, node)
        return [source, *(f"{source}.{alias.name}" for alias in node.names)]
    return []


def _is_dynamic_import(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    dotted = dotted_name(node.func) or ""
    return dotted.split(".")[-1] in DYNAMIC_IMPORTS


class _Reach:
    def __init__(self, resolver: _Resolver, string_imports: Mapping[Node, Sequence[str]]):
        self.resolver = resolver
        self.string_imports = string_imports
        self.parent: dict[Node, Node | None] = {}
        self.result = CodeImports()

    def chain(self, node: Node) -> list[str]:
        out: list[str] = []
        current: Node | None = node
        while current is not None:
            module, name = current
            out.append(module if name == MODULE else f"{module}:{name}")
            current = self.parent[current]
        return out[::-1]

    def referenced(self, node: ast.AST, mod: _Module) -> Node | None:
        """The first-party node a Name or attribute chain refers to, if any."""
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, *rest = dotted.split(".")
        if head in mod.parts:
            return (mod.name, head)
        bound = mod.bindings.get(head)
        if isinstance(bound, tuple):
            return self.resolver.node_of(*bound) if self.resolver.is_first_party(bound[0]) else None
        if bound is None or not self.resolver.is_first_party(bound):
            return None
        # A module path: the longest prefix of bound.rest... that is a module, then a name.
        path = [*bound.split("."), *rest]
        for cut in range(len(path), 0, -1):
            module = ".".join(path[:cut])
            if self.resolver.is_module(module):
                if cut < len(path):
                    return self.resolver.node_of(module, path[cut])
                return (module, MODULE)
        return None

    def successors(self, node: Node) -> Iterator[Node]:
        module, name = node
        mod = self.resolver.module(module)
        if mod is None:
            return
        if name != MODULE:  # a def or name runs only once its module has been imported
            yield (module, MODULE)
        elif self.resolver.is_first_party(module):  # importing a.b.c runs a and a.b first
            parts = module.split(".")
            yield from ((".".join(parts[:cut]), MODULE) for cut in range(1, len(parts)))
        for sub in _walk_code(mod.parts.get(name, [])):
            for imported in _imported_modules(sub, mod):
                yield from self.import_of(imported, node)
            if _is_dynamic_import(sub):
                listed = self.string_imports.get(node)
                if listed is None:
                    where = " -> ".join(self.chain(node))
                    self.result.unlisted_dynamic.append(f"{where} (line {sub.lineno})")
                else:
                    yield from ((target, MODULE) for target in listed)
            # Module-level code runs at import: only what it calls is followed. Reached defs
            # and names follow everything they refer to.
            if name == MODULE:
                target = sub.func if isinstance(sub, ast.Call) else None
            else:
                target = sub if isinstance(sub, ast.Name | ast.Attribute) else None
            if target is not None:
                found = self.referenced(target, mod)
                if found is not None and found != node:
                    yield found

    def import_of(self, imported: str, node: Node) -> Iterator[Node]:
        if self.resolver.is_first_party(imported):
            if self.resolver.is_module(imported):
                yield (imported, MODULE)
            return
        top = imported.split(".")[0]
        if top and top not in sys.stdlib_module_names and top not in self.result.imports:
            self.result.imports[top] = self.chain(node)

    def run(self, start: Node) -> CodeImports:
        self.parent[start] = None
        pending = collections.deque([start])  # breadth first: the chains shown are shortest
        while pending:
            node = pending.popleft()
            for nxt in self.successors(node):
                if nxt not in self.parent:
                    self.parent[nxt] = node
                    pending.append(nxt)
        return self.result


def script_imports(
    scripts: Sequence[Path],
    src: Path,
    string_imports: Mapping[Node, Sequence[str]] = {},
    root: Path | None = None,
) -> dict[Path, CodeImports]:
    """The third-party modules (top-level names) the code each script runs can import.

    src: the folder that holds the first-party packages the scripts import.
    string_imports: (module, function) -> the modules that function imports from strings.
    root: chains name a script by its path relative to it (else by the path given).
    """
    resolver = _Resolver(src)  # shared: each module is parsed once
    found = {}
    for script in scripts:
        name = str(script.relative_to(root) if root else script)
        resolver.module(name, script)
        found[script] = _Reach(resolver, string_imports).run((name, MODULE))
    return found
