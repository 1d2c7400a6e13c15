"""Benchmark lists: `zsar fetch-lists` downloads ViFi-CLIP's zero-shot split and label files
(zsar/data/vificlip_lists.yaml: where from, where to, their sha256) into a data root; and
when a dataset file's lists are missing, `missing_input` says which other dataset file's
files are there (the official archives' layout) and which command fetches the lists.

This module reads YAML and talks HTTP only; the run plan (zsar.pipeline.plan) calls into it."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

LISTS_DATA = "data/vificlip_lists.yaml"
# The base URL's override, for a mirror (or a test's local server).
BASE_URL_ENV = "ZSAR_LISTS_URL"
# The biggest list (SSv2's) is under 1 MiB; a server that streams more is refused.
MAX_LIST_BYTES = 32 * 1024 * 1024


class ListsError(Exception):
    """A list that could not be fetched, or whose bytes are not the expected ones."""


def load_lists() -> dict[str, Any]:
    """The lists' registry, package data so that the command works from any folder."""
    text = resources.files("zsar").joinpath(LISTS_DATA).read_text()
    return yaml.safe_load(text)


def list_destinations(dataset: str, data_root: str | os.PathLike) -> list[Path]:
    """Where `zsar fetch-lists dataset` writes its files under data_root."""
    files = load_lists()["datasets"].get(dataset, {})
    return [Path(data_root) / relative for relative in files]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(client, url: str, out: Path) -> None:
    # httpx: only the torch env installs it, and every rule imports this module (via plan)
    import httpx

    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise ListsError(f"could not fetch {url}: HTTP {response.status_code}")
            size = 0
            with open(out, "wb") as handle:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_LIST_BYTES:
                        raise ListsError(f"{url}: more than {MAX_LIST_BYTES} bytes; not a list")
                    handle.write(chunk)
    except httpx.HTTPError as err:
        raise ListsError(
            f"could not fetch {url} ({type(err).__name__}); check the network, or set "
            f"--base-url / {BASE_URL_ENV} to a mirror"
        ) from None


def _pending(files: dict[str, dict[str, str]], root: Path) -> dict[str, dict[str, str]]:
    """The files still to fetch: one already there with the expected bytes is kept; one
    there with other bytes is the user's and is never overwritten."""
    pending = {}
    for relative, entry in files.items():
        target = root / relative
        if not target.exists():
            pending[relative] = entry
        elif _sha256(target) != entry["sha256"]:
            raise ListsError(
                f"{target} exists with other content than ViFi-CLIP's {entry['source']}; "
                "move it away to fetch the published list"
            )
    return pending


def fetch_lists(
    dataset: str, data_root: str | os.PathLike, base_url: str | None = None
) -> list[Path]:
    """Download `dataset`'s lists into data_root, all or none: each file is checked against
    its sha256 in a staging folder under data_root, and only when all match are they moved
    into place (each with an atomic rename). Returns the files written."""
    # httpx: only the torch env installs it, and every rule imports this module (via plan)
    import httpx

    registry = load_lists()
    if dataset not in registry["datasets"]:
        known = ", ".join(sorted(registry["datasets"]))
        raise ListsError(f"no lists for dataset {dataset!r}; known: {known}")
    root = Path(data_root)
    if not root.is_dir():
        raise ListsError(f"--data-root {root}: no such folder")
    base = (base_url or os.environ.get(BASE_URL_ENV) or registry["base_url"]).rstrip("/")
    pending = _pending(registry["datasets"][dataset], root)
    staging = Path(tempfile.mkdtemp(prefix=".zsar-fetch-lists.", dir=root))
    try:
        with httpx.Client(follow_redirects=True, timeout=60) as client:
            for number, (relative, entry) in enumerate(pending.items()):
                staged = staging / str(number)
                _download(client, f"{base}/{entry['source']}", staged)
                if _sha256(staged) != entry["sha256"]:
                    raise ListsError(
                        f"{base}/{entry['source']} (for {root / relative}): sha256 differs "
                        f"from the published list's {entry['sha256'][:12]}…; nothing written"
                    )
        written = []
        for number, relative in enumerate(pending):
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / str(number), target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# The missing-input message


def _fill(template: str | None, data_root: str, split: int) -> str | None:
    if template is None:
        return None
    return template.replace("{data_root}", data_root).replace("{split}", str(split))


def _spec_files(spec: dict[str, Any], data_root: str) -> list[str]:
    files = set()
    for split in spec.get("splits") or [1]:
        files |= {_fill(spec.get(k), data_root, split) for k in ("annotations", "labels")}
    return sorted(f for f in files if f)


def dataset_file_that_fits(
    dataset: str, data_root: str, config_dir: str | os.PathLike
) -> Path | None:
    """The first dataset file under config_dir/datasets/ (its subfolders included) that
    defines `dataset` and whose every list is under data_root."""
    for path in sorted(Path(config_dir, "datasets").rglob("*.yaml")):
        try:
            spec = (yaml.safe_load(path.read_text()) or {}).get("dataset_specs", {})[dataset]
        except (KeyError, TypeError, AttributeError, yaml.YAMLError):
            continue
        files = _spec_files(spec, data_root)
        if files and all(Path(f).exists() for f in files):
            return path
    return None


def _as_typed(path: Path) -> str:
    """A path as a user types it from the checkout (relative), else absolute."""
    relative = os.path.relpath(path.resolve())
    return path.as_posix() if relative.startswith("..") else relative


def missing_input(
    path: str, dataset: str, role: str, split: int, data_root: str, config_dir: str | os.PathLike
) -> str:
    """The one line that stops a run whose list is not there, with the way out if there is
    one: another dataset file whose lists are there, or the command that fetches them."""
    message = (
        f"missing input: {path} (dataset_specs.{dataset}.{role}, split {split}) does not "
        "exist; check data_root and the dataset's paths"
    )
    fits = dataset_file_that_fits(dataset, data_root, config_dir)
    if fits is not None:
        message += (
            f". The lists {_as_typed(fits)} reads are there: pass it in place of the dataset "
            f"file, e.g. snakemake --cores all --configfile config/config.yaml "
            f"{_as_typed(fits)} config/runs/vit-b16-qwen.yaml --config data_root={data_root}"
        )
    if Path(path) in list_destinations(dataset, data_root):
        message += (
            f". Or fetch the ViFi-CLIP lists this dataset file reads: "
            f"zsar fetch-lists {dataset} --data-root {data_root}"
        )
    return message


# ---------------------------------------------------------------------------------------
# `zsar fetch-lists`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    registry = load_lists()
    parser.description = (
        f"Download ViFi-CLIP's zero-shot split lists and label files ({registry['repository']} "
        f"at {registry['commit'][:7]}) into the data root, where config/datasets/<dataset>.yaml "
        "expects them; each is checked against its sha256 before any is written."
    )
    parser.add_argument("datasets", nargs="+", choices=sorted(registry["datasets"]),
                        metavar="DATASET", help=", ".join(sorted(registry["datasets"])))
    parser.add_argument("--data-root", required=True,
                        help="the folder that holds one folder per benchmark (data_root)")
    parser.add_argument("--base-url", default=None,
                        help=f"a mirror of the repository at that commit (or ${BASE_URL_ENV})")


def run(args: argparse.Namespace) -> int:
    for dataset in args.datasets:
        try:
            written = fetch_lists(dataset, args.data_root, args.base_url)
        except (ListsError, OSError) as err:
            print(f"zsar fetch-lists: error: {err}", file=sys.stderr)
            return 1
        kept = len(load_lists()["datasets"][dataset]) - len(written)
        print(f"{dataset}: {len(written)} list(s) written, {kept} already there, under "
              f"{args.data_root}")
    return 0
