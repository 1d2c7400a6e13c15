"""The workflow outputs that exist under a results folder, found through the stage table's
templates (zsar.pipeline.stage_table), so that no module spells a results path itself."""

from __future__ import annotations

import glob as globbing
import os
from pathlib import Path, PurePosixPath
from typing import Any

from zsar.pipeline import stage_table


def find(stage: str, output: str, results: str | os.PathLike = stage_table.RESULTS,
         **values: Any) -> list[Path]:
    """The files of a stage output under `results` (absolute or relative), sorted; the
    wildcards not given match anything, the given ones only themselves (a dataset named
    `ucf*` finds its own folder, not every ucf one)."""
    literal = {name: globbing.escape(str(value)) for name, value in values.items()}
    pattern = PurePosixPath(stage_table.glob(stage, output, **literal))
    # Path.glob takes a pattern relative to its folder: the template's part after results/.
    relative = pattern.relative_to(stage_table.RESULTS)
    return sorted(Path(results).glob(str(relative)))
