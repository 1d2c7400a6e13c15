"""Model weights into `{resources}/models/<name>/`, once, before any GPU job (rule fetch_model).

The rule is a `localrules` rule: on a cluster it runs on the login node, which has internet,
and the GPU jobs then load from the folder with HF_HUB_OFFLINE=1. What an entry needs is
read from the key that names its source (FETCHERS, first match wins):

  build       a tiny random model written by a builder (BUILDERS, by `build.family`)
  local_file  a checkpoint the user downloads by hand from `download_url` (ViFi-CLIP and
              ActionCLIP are hosted on SharePoint / Baidu, which need a browser): checked
  url         one file over HTTP(S) or file://, streamed, verified against `sha256:`
  hf_repo     a Hugging Face repo (transformers layout, or open_clip's for loader open_clip)
  pretrained  an open_clip architecture + pretrained tag: the hub repo open_clip's own
              registry names for it, with an open_clip_config.json written from open_clip's
              model config and the tag's preprocessing
  source      `hf-hub:org/repo` (an open_clip repo) or `local-dir:PATH` (used in place)

Hub files are pinned to the revision listed before the download, and every LFS file is
checked against the sha256 the hub publishes. Entries served over HTTP or read from a file
(backend openai/file) need nothing. The `.zsar-ready` marker, written last and atomically,
is the rule's output: a folder without it is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import httpx
from tqdm import tqdm

from zsar.data.io import atomic_path, write_json
from zsar.models import tiny
from zsar.models.backbones import OPEN_CLIP_CONFIG, OPEN_CLIP_WEIGHTS
from zsar.models.registry import READY_FILE, backend_of, model_dir, ready_path

logger = logging.getLogger(__name__)

# build.family -> build(spec: dict, out_dir: Path) -> None (zsar.models.tiny imports torch and
# transformers only inside each builder, so naming them here costs nothing).
BUILDERS: dict[str, Callable[[Mapping[str, Any], Path], None]] = {
    "open_clip": tiny.build_tiny_open_clip,
    "vlm": tiny.build_tiny_vlm,
    "causal_lm": tiny.build_tiny_llm,
}
CHUNK_BYTES = 1 << 20
# Tokenizer and processor files a model folder needs besides config and weights.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "spiece.model",
    "tokenizer.model",
)
# Suffixes of the small top-level files a transformers folder may need (configs, chat templates).
TRANSFORMERS_SMALL_FILES = (".json", ".txt", ".model", ".jinja", ".tiktoken")
_BIN_SHARD = re.compile(r"pytorch_model(-\d+-of-\d+)?\.bin")


class FetchError(RuntimeError):
    """A model that could not be fetched; the message says what to do."""


class ChecksumError(FetchError):
    """Downloaded bytes that do not match the published checksum (the file is removed)."""


# --- pure helpers ----------------------------------------------------------------------------


def select_repo_files(
    files: list[str], flavour: str, *, weights: str | None = None, remote_code: bool = False
) -> list[str]:
    """The files of a hub repo a model folder needs: one copy of the weights, no extras.

    Repos often carry the same weights several times (safetensors, .bin, TF, Flax, ONNX,
    timm's and open_clip's layouts); downloading only what the loader reads saves gigabytes.
    """
    top = [f for f in files if "/" not in f]
    present = set(top)
    tokenizer = [f for f in TOKENIZER_FILES if f in present]
    if flavour == "open_clip":
        chosen = [weights] if weights else [w for w in OPEN_CLIP_WEIGHTS if w in present][:1]
        if not chosen or chosen[0] not in set(files):
            raise FetchError(f"no open_clip weights among the repo's files: {sorted(top)}")
        config = [OPEN_CLIP_CONFIG] if OPEN_CLIP_CONFIG in present else []
        return sorted({*config, *chosen, *tokenizer})
    if flavour != "transformers":
        raise ValueError(f"unknown repo flavour {flavour!r}")
    own = [f for f in top if not f.startswith("open_clip")]
    safetensors = [f for f in own if f.endswith(".safetensors")]
    chosen = safetensors or [f for f in own if _BIN_SHARD.fullmatch(f)]
    if not chosen:
        raise FetchError(f"no transformers weights among the repo's files: {sorted(top)}")
    small = [f for f in own if f.endswith(TRANSFORMERS_SMALL_FILES)]
    code = [f for f in own if f.endswith(".py")] if remote_code else []
    return sorted({*chosen, *small, *code, *tokenizer})


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(folder: Path, expected: Mapping[str, str]) -> None:
    """Check files against published sha256 sums; a mismatching file is removed."""
    for name, checksum in sorted(expected.items()):
        path = folder / name
        actual = sha256_of(path)
        if actual != checksum.lower():
            path.unlink()
            raise ChecksumError(f"{path}: sha256 {actual} != published {checksum}; file removed")


def folder_listing(folder: Path) -> dict[str, int]:
    """{relative path: size} of a model folder, without hub caches and the marker."""
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != READY_FILE and ".cache" not in p.relative_to(folder).parts
    }


# --- streaming downloads ---------------------------------------------------------------------


@contextlib.contextmanager
def _http_stream(url: str) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            yield total, response.iter_bytes(CHUNK_BYTES)
    except httpx.HTTPError as err:
        raise FetchError(f"download of {url} failed: {err}") from err


@contextlib.contextmanager
def _file_stream(url: str) -> Iterator[tuple[int | None, Iterator[bytes]]]:
    path = Path(url2pathname(urlparse(url).path))
    if not path.is_file():
        raise FetchError(f"{url}: no such file")
    with open(path, "rb") as handle:
        yield path.stat().st_size, iter(lambda: handle.read(CHUNK_BYTES), b"")


STREAMS = {"http": _http_stream, "https": _http_stream, "file": _file_stream}


def download(url: str, target: Path, sha256: str | None = None) -> Path:
    """Stream `url` into `target` (atomically), checking the sha256 when one is given.

    A file already in place is kept when it matches (or when there is no sum to check: it
    was renamed into place only once complete). On a mismatch nothing is left behind.
    """
    scheme = urlparse(url).scheme
    if scheme not in STREAMS:
        raise FetchError(f"{url}: unsupported scheme; use one of {sorted(STREAMS)}")
    if target.is_file() and (sha256 is None or sha256_of(target) == sha256.lower()):
        logger.info("%s already present", target)
        return target
    digest = hashlib.sha256()
    with atomic_path(target) as tmp, STREAMS[scheme](url) as (total, chunks):
        with (
            open(tmp, "wb") as out,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                desc=target.name,
                file=sys.stderr,
                mininterval=10,
                disable=False,
            ) as progress,
        ):
            for block in chunks:
                out.write(block)
                digest.update(block)
                progress.update(len(block))
        if sha256 and digest.hexdigest() != sha256.lower():
            raise ChecksumError(
                f"{url}: sha256 {digest.hexdigest()} != expected {sha256}; nothing was kept"
            )
    logger.info("downloaded %s -> %s", url, target)
    return target


# --- Hugging Face snapshots ------------------------------------------------------------------


def snapshot_repo(
    repo: str,
    folder: Path,
    flavour: str,
    *,
    revision: str | None = None,
    weights: str | None = None,
    skip: tuple[str, ...] = (),
    remote_code: bool = False,
) -> dict[str, Any]:
    """Download the files of `repo` that a `flavour` folder needs, pinned and checksummed."""
    # lazy: the hub client loads only to fetch from the hub
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
        published = {s.rfilename: (s.lfs or {}).get("sha256") for s in info.siblings}
        wanted = select_repo_files(
            sorted(published), flavour, weights=weights, remote_code=remote_code
        )
        files = [f for f in wanted if f not in skip]
        logger.info("%s@%s: fetching %s", repo, info.sha, files)
        snapshot_download(repo, revision=info.sha, local_dir=folder, allow_patterns=files)
    except FetchError:
        raise
    except Exception as err:  # the hub client raises many types; all mean "could not fetch"
        raise FetchError(
            f"could not fetch {repo} from the Hugging Face hub ({type(err).__name__}: {err}); "
            "fetch_model needs internet and HF_HUB_OFFLINE unset"
        ) from err
    verify_checksums(folder, {f: published[f] for f in files if published.get(f)})
    return {"repo": repo, "revision": info.sha, "files": files}


# --- fetchers, by the key that names the source ------------------------------------------------


def fetch_built(entry: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    spec = entry["build"]
    family = spec.get("family")
    if family not in BUILDERS:
        raise FetchError(f"model '{entry['name']}': build.family must be one of {sorted(BUILDERS)}")
    BUILDERS[family](spec, folder)
    return {"built": family, "seed": spec.get("seed", 0)}


def fetch_local_file(entry: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    path = folder / entry["local_file"]
    if not path.is_file():
        raise FetchError(
            f"model '{entry['name']}' is downloaded by hand: get it from "
            f"{entry.get('download_url', 'the authors page')} and save it as {path}, "
            "then run this rule again"
        )
    if entry.get("sha256"):
        actual = sha256_of(path)
        if actual != entry["sha256"].lower():
            # The user's own download: report, but never delete it.
            raise ChecksumError(f"{path}: sha256 {actual} != expected {entry['sha256']}")
    return {"local_file": entry["local_file"]}


def fetch_url(entry: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    url = entry["url"]
    name = entry.get("filename") or Path(urlparse(url).path).name
    if name in ("", ".", ".."):  # the schema checks `filename`; a URL's last part is checked here
        raise FetchError(f"model '{entry['name']}': {url} names no file; set `filename`")
    download(url, folder / name, entry.get("sha256"))
    return {"url": url, "sha256": entry.get("sha256")}


def fetch_hf_repo(entry: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    flavour = "open_clip" if entry.get("backend") == "open_clip" else "transformers"
    return snapshot_repo(
        entry["hf_repo"],
        folder,
        flavour,
        revision=entry.get("revision"),
        remote_code=bool(entry.get("trust_remote_code", False)),
    )


def open_clip_folder_config(entry: Mapping[str, Any], pretrained_cfg: Mapping[str, Any]) -> dict:
    """open_clip_config.json for an architecture + tag: open_clip's model config and the tag's
    preprocessing, overlaid by the entry's `preprocess` (what `zsar models` shows).

    Written by zsar rather than taken from the repo, so that e.g. OpenAI weights get the
    QuickGELU activation they were trained with (open_clip records it on the tag).
    """
    # lazy: torch loads only where a model runs
    import open_clip

    model_cfg = open_clip.get_model_config(entry["architecture"])
    if model_cfg is None:
        raise FetchError(f"model '{entry['name']}': open_clip has no {entry['architecture']}")
    if pretrained_cfg.get("quick_gelu"):
        model_cfg["quick_gelu"] = True
    keys = ("mean", "std", "interpolation", "resize_mode")
    preprocess = {k: pretrained_cfg[k] for k in keys if k in pretrained_cfg}
    preprocess.update({k: v for k, v in (entry.get("preprocess") or {}).items() if k != "size"})
    return {"model_cfg": model_cfg, "preprocess_cfg": preprocess}


def fetch_open_clip_pretrained(entry: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    # lazy: torch loads only where a model runs
    import open_clip

    arch, tag = entry["architecture"], entry["pretrained"]
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        known = open_clip.list_pretrained_tags_by_model(arch)
        raise FetchError(f"open_clip has no pretrained '{tag}' for {arch}; known: {known}")
    if not cfg.get("hf_hub"):
        raise FetchError(
            f"{arch}/{tag} has no hub repo in open_clip's registry; give the entry a `url:` "
            "and a `sha256:` instead"
        )
    # 'org/repo/' names the repo's default weights; 'org/repo/file' a given file.
    hub = cfg["hf_hub"]
    repo, weights = (hub.rstrip("/"), None) if hub.endswith("/") else os.path.split(hub)
    record = snapshot_repo(
        repo,
        folder,
        "open_clip",
        revision=entry.get("revision"),
        weights=weights,
        skip=(OPEN_CLIP_CONFIG,),
    )
    write_json(open_clip_folder_config(entry, cfg), folder / OPEN_CLIP_CONFIG)
    return record


def fetch_source(entry: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    source = str(entry["source"])
    if source.startswith("hf-hub:"):
        return snapshot_repo(
            source[len("hf-hub:") :], folder, "open_clip", revision=entry.get("revision")
        )
    if source.startswith("local-dir:"):
        local = Path(source[len("local-dir:") :])
        if not (local / OPEN_CLIP_CONFIG).is_file():
            raise FetchError(f"model '{entry['name']}': {local} has no {OPEN_CLIP_CONFIG}")
        return {"local_dir": str(local)}
    raise FetchError(f"model '{entry['name']}': source must start with hf-hub: or local-dir:")


FETCHERS: dict[str, Callable[[Mapping[str, Any], Path], dict[str, Any]]] = {
    "build": fetch_built,
    "local_file": fetch_local_file,
    "url": fetch_url,
    "hf_repo": fetch_hf_repo,
    "pretrained": fetch_open_clip_pretrained,
    "source": fetch_source,
}


def fetch_model(
    entry: Mapping[str, Any], resources: str | os.PathLike, section: str | None = None
) -> Path:
    """Fetch or build the weights of one registry entry; returns its ready file's path.

    An entry whose backend fetches nothing (a server, a file; registry.Backend) gets a
    ready file that says so. `section` is the entry's registry section (found by name in
    the registry when the rule calls this; given by tests and scripts).
    """
    folder = model_dir(resources, entry["name"])
    ready = ready_path(resources, entry["name"])
    ready.unlink(missing_ok=True)  # a re-fetch is unready until it has finished
    folder.mkdir(parents=True, exist_ok=True)
    key = next((k for k in FETCHERS if k in entry), None)
    if key is not None:
        logger.info("model %s: fetching by %s", entry["name"], key)
        record = FETCHERS[key](entry, folder)
    elif section is not None and not backend_of(section, entry).fetches_weights:
        record = {"backend": entry["backend"]}
    else:
        raise FetchError(f"model '{entry['name']}' names no source; give one of {sorted(FETCHERS)}")
    record = {"name": entry["name"], "fetched_by": key, **record, "files": folder_listing(folder)}
    write_json(record, ready)
    logger.info("model %s ready in %s", entry["name"], folder)
    return ready
