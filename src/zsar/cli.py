"""The `zsar` command. Each subcommand lives in its stage's module and is imported lazily,
so `zsar manifest` never pays for importing torch."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator

# name -> (module, one-line help). The module provides `add_arguments(parser)` and `run(args)`.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("zsar.commands.config_command",
               "print the effective config: files merged, defaults filled in"),
    "manifest": ("zsar.stages.manifest",
                 "build a manifest Parquet from a benchmark's annotation files"),
    "descriptors": ("zsar.commands.descriptors_command",
                    "import descriptor files published elsewhere; export ours as CuPL JSON"),
    "models": ("zsar.models.registry",
               "list the model registry with family, source and preprocessing"),
    "predict": ("zsar.commands.predict", "classify and explain videos with a backbone (top-5)"),
    "explain-cache": ("zsar.commands.explain_cache",
                      "which stages a config key, registry field or module re-runs"),
    "fetch-lists": ("zsar.data.lists",
                    "download ViFi-CLIP's zero-shot split lists into a data root (checksummed)"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zsar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    # Only import the module of the command being run.
    wanted = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if name == wanted:
            importlib.import_module(module).add_arguments(command)
    return parser


@contextlib.contextmanager
def warnings_to_stderr() -> Iterator[None]:
    """The library's warnings (e.g. videos missing on disk) on stderr while a command runs;
    results go to stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING)
    package = logging.getLogger("zsar")
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    with warnings_to_stderr():
        return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
