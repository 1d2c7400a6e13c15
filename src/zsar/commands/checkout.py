"""Where the workflow's folder is, for the commands that read its config and registry.

`zsar config`, `zsar models` and `zsar predict` read config/config.yaml and
config/models.yaml. Run from the checkout, those are here; run from anywhere else (a data
folder, a notebook's folder), they are in the checkout that the installed zsar comes from
(`make venv` installs it editable). Files the user names on the command line stay relative
to where the command runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import zsar

REGISTRY = Path("config") / "models.yaml"


class CheckoutNotFound(FileNotFoundError):
    """No workflow folder here or at the installed package's checkout."""


def find_workdir(start: Path | None = None) -> Path:
    """This folder if it holds the registry, else the checkout of the installed zsar."""
    here = Path.cwd() if start is None else start
    if (here / REGISTRY).is_file():
        return here
    checkout = Path(zsar.__file__).resolve().parents[2]
    if (checkout / REGISTRY).is_file():
        return checkout
    raise CheckoutNotFound(
        f"no {REGISTRY} in {here} or in {checkout}: pass --workdir (the folder the workflow "
        "runs in)"
    )


def user_paths_then_workdir(paths: Iterable[str], workdir: str | None) -> list[str]:
    """`paths` that exist from here, made absolute; then the process moves to the workflow
    folder, where every other relative path (the defaults, the paths inside the config)
    is read, as Snakemake reads them there."""
    kept = [str(Path(p).resolve()) if Path(p).exists() else p for p in paths]
    os.chdir(Path(workdir) if workdir else find_workdir())
    return kept


def add_workdir_argument(parser) -> None:
    parser.add_argument(
        "--workdir", default=None, metavar="DIR",
        help="the workflow's folder, where config/ is read (default: this folder if it holds "
        "config/models.yaml, else the checkout zsar is installed from)",
    )
