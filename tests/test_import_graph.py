"""The import graph of src/zsar, read from the source with `ast`: no circle, and no import
inside a function without a reason.

Every import counts, at the top of a module or inside a function: an import inside a
function only hides a circle until the function runs. An import inside a function is kept
only where it spares a light command a heavy package (torch and the like, HEAVY below): the
package itself, or a zsar module that loads one when imported. Each such import carries a
comment saying so.
"""

from __future__ import annotations

import ast
import io
import itertools
import subprocess
import sys
import tokenize
from pathlib import Path

from zsar.cli import COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "zsar"
# Packages that take seconds (or a GPU runtime) to import: torch and what builds on it, the
# video decoders, plotting and the model hub client; and httpx, which only the env of the
# jobs that talk to a server installs (envs/torch.yaml; tests/test_envs.py).
HEAVY = frozenset({
    "av", "decord", "httpx", "huggingface_hub", "imageio_ffmpeg", "matplotlib", "open_clip",
    "safetensors", "tokenizers", "torch", "torchvision", "transformers",
})  # fmt: skip


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Dotted module name -> file, for every module and package of src/zsar."""
    files = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _is_package(name: str, files: dict[str, Path]) -> bool:
    return files[name].name == "__init__.py"


def _base(node: ast.ImportFrom, importer: str, files: dict[str, Path]) -> str:
    """The absolute module an ImportFrom names (`from . import x` resolved from `importer`)."""
    if not node.level:
        return node.module or ""
    package = importer if _is_package(importer, files) else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return ".".join(p for p in (package, node.module) if p)


def imported_names(node: ast.Import | ast.ImportFrom, importer: str,
                   files: dict[str, Path]) -> list[str]:
    """The names an import statement loads, as dotted module paths (zsar's or not).

    `from zsar import x` and `from . import x` name the module zsar.x where there is one,
    and the package otherwise (`from zsar import __version__`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = _base(node, importer, files)
    return [
        f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
        for alias in node.names
    ]


def _comment_lines(source: str) -> set[int]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT}


class Import:
    def __init__(self, importer: str, node, in_function: bool, commented: bool, targets):
        self.importer, self.line, self.in_function = importer, node.lineno, in_function
        self.commented, self.targets, self.text = commented, targets, ast.unparse(node)


def _imports_of(name: str, path: Path, files: dict[str, Path]) -> list[Import]:
    source = path.read_text()
    comments = _comment_lines(source)
    found = []

    def visit(node, in_function: bool, previous_line: int) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                # Its reason: a comment on its own lines, or just above (an import run
                # shares the comment above its first line).
                lines = set(range(child.lineno, (child.end_lineno or child.lineno) + 1))
                commented = bool(lines & comments) or child.lineno - 1 in comments or (
                    bool(found) and found[-1].commented and previous_line == child.lineno - 1
                )
                found.append(Import(name, child, in_function, commented,
                                    imported_names(child, name, files)))
                previous_line = child.end_lineno or child.lineno
                continue
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                       ast.Lambda))
            visit(child, inside, -1)

    visit(ast.parse(source), False, -1)
    return found


def all_imports(src: Path = SRC) -> list[Import]:
    files = module_files(src)
    return [imp for name, path in files.items() for imp in _imports_of(name, path, files)]


def import_graph(imports: list[Import], files: dict[str, Path]) -> dict[str, dict[str, Import]]:
    """zsar module -> {zsar module it imports: the first statement that does}."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in files}
    for imp in imports:
        for target in imp.targets:
            if target in files and target != imp.importer:
                graph[imp.importer].setdefault(target, imp)
    return graph


def find_cycle(graph: dict[str, dict[str, Import]]) -> list[str] | None:
    """One circle of the graph as [a, b, ..., a], or None (a depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = 2
        path.pop()
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def describe_cycle(cycle: list[str], graph: dict[str, dict[str, Import]],
                   files: dict[str, Path], src: Path = SRC) -> str:
    steps = []
    for a, b in itertools.pairwise(cycle):
        imp = graph[a][b]
        where = files[a].relative_to(src.parent)
        inside = " (inside a function)" if imp.in_function else ""
        steps.append(f"  {a} -> {b}: {where}:{imp.line} `{imp.text}`{inside}")
    return "import circle " + " -> ".join(cycle) + ":\n" + "\n".join(steps)


def eager_heavy(graph_imports: list[Import], files: dict[str, Path]) -> dict[str, set[str]]:
    """zsar module -> the HEAVY packages importing it loads (through its top-level imports)."""
    eager: dict[str, set[str]] = {name: set() for name in files}
    for imp in graph_imports:
        if not imp.in_function:
            eager[imp.importer].update(imp.targets)
    loads: dict[str, set[str]] = {}

    def heavy(name: str, seen: frozenset[str]) -> set[str]:
        if name in loads:
            return loads[name]
        out = set()
        for target in eager[name]:
            if target in files and target not in seen:
                out |= heavy(target, seen | {target})
            elif target.split(".")[0] in HEAVY:
                out.add(target.split(".")[0])
        loads[name] = out
        return out

    for name in files:
        heavy(name, frozenset({name}))
    return loads


def test_the_walk_sees_every_form_of_import(tmp_path):
    """The graph this file checks holds each form of import (a check of the check)."""
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from zsar.b import x\n")
    (pkg / "b.py").write_text("def f():\n    from . import c\n")
    (pkg / "c.py").write_text("import zsar.sub.d\n")
    (pkg / "sub" / "d.py").write_text("from ..a import y\nfrom zsar import e\n")
    (pkg / "e.py").write_text("def g():\n    # torch: only the stage needs it\n"
                              "    import torch\n    import numpy\n")
    files = module_files(tmp_path)
    imports = all_imports(tmp_path)
    graph = import_graph(imports, files)
    cycle = find_cycle(graph)
    assert cycle == ["zsar.a", "zsar.b", "zsar.c", "zsar.sub.d", "zsar.a"]
    assert "zsar/b.py:2 `from . import c` (inside a function)" in describe_cycle(
        cycle, graph, files, tmp_path)
    assert set(graph["zsar.sub.d"]) == {"zsar.a", "zsar.e"}
    commented = {(i.importer, i.text): i.commented for i in imports if i.in_function}
    assert commented == {("zsar.b", "from . import c"): False,
                         ("zsar.e", "import torch"): True, ("zsar.e", "import numpy"): True}
    del graph["zsar.sub.d"]["zsar.a"]
    assert find_cycle(graph) is None


def test_src_zsar_has_no_import_circle():
    files = module_files()
    graph = import_graph(all_imports(), files)
    cycle = find_cycle(graph)
    assert cycle is None, describe_cycle(cycle, graph, files)


def _unneeded(imp: Import, heavy_of: dict[str, set[str]], files: dict[str, Path]) -> bool:
    """An import inside a function that spares its module nothing heavy."""
    for target in imp.targets:
        if target in files:
            if heavy_of[target]:
                return False
        elif target.split(".")[0] in HEAVY:
            return False
    return True


def test_imports_inside_functions_spare_a_heavy_import_and_say_so():
    files = module_files()
    imports = all_imports()
    heavy_of = eager_heavy(imports, files)
    inside = [imp for imp in imports if imp.in_function]
    where = {imp: f"{files[imp.importer].relative_to(SRC.parent)}:{imp.line} `{imp.text}`"
             for imp in inside}
    unneeded = [where[imp] for imp in inside if _unneeded(imp, heavy_of, files)]
    assert not unneeded, "imports inside functions that could be at the top:\n" + "\n".join(
        unneeded)
    silent = [where[imp] for imp in inside if not imp.commented]
    assert not silent, "imports inside functions without a comment saying why:\n" + "\n".join(
        silent)


def test_light_commands_load_nothing_heavy():
    """The modules of the light commands, the workflow's planning (what common.smk imports)
    and `zsar predict` before it runs load no HEAVY package: the reason the imports above
    stay inside functions, checked by importing them in a fresh interpreter."""
    modules = sorted({module for module, _ in COMMANDS.values()} | {
        "zsar.pipeline.config", "zsar.stages.embed", "zsar.core.method", "zsar.pipeline.plan",
        "zsar.data.provenance",
        "zsar.core.references", "zsar.models.registry", "zsar.stages.scoring"})
    code = (f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
            f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]"], done.stdout


# The layers of src/zsar, lowest first (docs/DESIGN.md, "The library"): a module imports
# from its own layer and those below it, except along these edges, each with its reason.
LAYERS = ("core", "data", "models", "stages", "pipeline", "commands")
UPWARD = {
    # The dataset's own class-name rule lives with its adapter; a mapping file is YAML,
    # refused as a config error is.
    ("zsar.core.class_names", "zsar.data.adapters"): "CLASS_NAME_RULES, get_adapter",
    ("zsar.core.class_names", "zsar.pipeline.config"): "ConfigError, read_yaml_mapping",
    ("zsar.data.caption_files", "zsar.models.batching"): "Outcome: a video's caption or reason",
    # Export writes sentences with the run's templates, found beside the run's class list.
    ("zsar.data.descriptor_export", "zsar.pipeline.config"): "load_config: the templates",
    ("zsar.data.descriptor_export", "zsar.pipeline.stage_table"): "the class list's path",
    ("zsar.data.descriptor_export", "zsar.stages.embed_text"): "NAME_PROMPT",
    # `zsar models` (the registry's command) finds the checkout; entries are checked
    # against the schema as the config is.
    ("zsar.models.registry", "zsar.commands.checkout"): "zsar models: the checkout",
    ("zsar.models.registry", "zsar.pipeline.config"): "ConfigError, check_against",
    # Captioners time, sample and decode frames as the frames stage does.
    ("zsar.models.caption_inputs", "zsar.stages.frames"): "positive_seconds, sampling",
    ("zsar.models.captioners", "zsar.stages.frames"): "decode_jpegs",
    # The report's page of runs is drawn as the tables and report pages are.
    ("zsar.pipeline.run_summary", "zsar.commands.report"): "html_page, html_table",
    ("zsar.pipeline.run_summary", "zsar.commands.tables"): "row_key, run_label",
    ("zsar.stages.manifest", "zsar.pipeline.config"): "dataset_spec_default",
}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 2 and parts[1] in LAYERS else None


def test_imports_go_down_the_layers_but_for_the_listed_edges():
    files = module_files()
    upward = set()
    for imp in all_imports():
        for target in imp.targets:
            low, high = _layer(imp.importer), _layer(target)
            if low is not None and high is not None and high > low:
                upward.add((imp.importer, target))
    assert upward <= set(UPWARD), sorted(upward - set(UPWARD))
    assert files  # the walk saw the package
