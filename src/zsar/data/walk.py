"""Listing every file under a folder, following folder links, and ending whatever they form.

Video roots often reach their videos through symbolic links (a scratch or NFS copy linked
into place), so links are followed. A link back to a folder above it would make the walk
endless, and two such links make even a bounded walk exponential; so each folder is
entered once, known by its (device, inode), and a link to a folder already entered is
skipped, with one warning for the whole walk that names every such link.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)
# How many skipped links the warning names; the count is always complete.
LINKS_NAMED = 5


def _folder_id(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)  # follows a link: the folder it leads to
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _relative(path: str, root: str) -> str:
    rel = os.path.relpath(path, root)
    return "." if rel == "." else Path(rel).as_posix()


def files_under(root: str) -> list[str]:
    """Paths relative to `root` (POSIX, sorted folder by folder) of every non-folder entry
    below it, each folder entered once however many links lead to it."""
    entered = {_folder_id(root)}
    skipped: list[str] = []
    files: list[str] = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        rel = _relative(folder, root)
        kept = []
        for name in sorted(dirs):
            path = os.path.join(folder, name)
            key = _folder_id(path)
            if key in entered:
                target = _relative(os.path.realpath(path), os.path.realpath(root))
                skipped.append(f"{_relative(path, root)} -> {target}")
                continue
            entered.add(key)
            kept.append(name)
        dirs[:] = kept  # os.walk enters only these
        files += [n if rel == "." else f"{rel}/{n}" for n in sorted(names)]
    if skipped:
        named = ", ".join(skipped[:LINKS_NAMED])
        more = f" and {len(skipped) - LINKS_NAMED} more" if len(skipped) > LINKS_NAMED else ""
        logger.warning(
            "%s: skipped %d folder link(s) to folders already walked (a symlink loop, or a "
            "second link to one folder): %s%s",
            root,
            len(skipped),
            named,
            more,
        )
    return files
