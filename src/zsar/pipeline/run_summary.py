"""What a run holds, from its metrics records: one console line per dataset at the end of a
run (the Snakefile's `onsuccess:`), and the report's page naming its runs, so that a report
left from another run (the demo's) is seen to be that.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zsar.commands.report import html_page, html_table
from zsar.commands.tables import row_key, run_label
from zsar.data.io import read_json, write_text
from zsar.models.model_origins import demo_models
from zsar.pipeline import stage_table

# The counts a console line gives, in its order.
CONSOLE_COUNTS = ("evaluated", "failed", "missing")


def failures_path(dataset: str, results: str = stage_table.RESULTS) -> str:
    """Where gather_failures lists a dataset's videos that failed (DESIGN, "Frames")."""
    return stage_table.path("failures", "failures", results, dataset=dataset)


def _counts_line(counts: Mapping[str, int], dataset: str, splits: int) -> str:
    evaluated, failed, missing = (counts.get(k, 0) for k in CONSOLE_COUNTS)
    over = f" (summed over {splits} splits)" if splits > 1 else ""
    return (f"{evaluated} videos evaluated, {failed} failed (listed in "
            f"{failures_path(dataset)}), {missing} missing{over}")


def dataset_lines(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per dataset: videos evaluated, failed (with the failures file) and missing,
    as the metrics records count them, and the demo models that made them, if any. Where
    the backbones' counts differ (a video one backbone could not embed), one line per
    backbone instead."""
    by_dataset: dict[str, dict[str, Mapping[str, Any]]] = {}
    demo: dict[str, set[str]] = {}
    for rec in sorted(records, key=row_key):
        # The first run of each backbone in table order (its baseline): every run of a
        # backbone scores the same videos.
        by_dataset.setdefault(rec["dataset"], {}).setdefault(rec["backbone"], rec)
        demo.setdefault(rec["dataset"], set()).update(demo_models(rec))
    lines = []
    for dataset, by_backbone in by_dataset.items():
        said = {b: _counts_line(r["counts"], dataset, len(r["splits"]))
                for b, r in by_backbone.items()}
        tail = f"; made with demo models: {', '.join(sorted(demo[dataset]))}" if demo[
            dataset] else ""
        if len(set(said.values())) == 1:
            lines.append(f"zsar: {dataset}: {next(iter(said.values()))}{tail}")
        else:
            lines += [f"zsar: {dataset} ({b}): {text}{tail}" for b, text in said.items()]
    return lines


def run_summary_lines(metrics_paths: Iterable[str | os.PathLike]) -> list[str]:
    """dataset_lines of the records among `metrics_paths` that exist and can be read (a
    run that stopped early, or targeted less, has not written them all)."""
    records = []
    for path in metrics_paths:
        try:
            records.append(read_json(path))
        except (OSError, ValueError):
            continue
    return dataset_lines(r for r in records if "counts" in r and "splits" in r)


# --- the report's page of runs --------------------------------------------------------------


def runs_held(records: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """datasets, backbones and runs of the records, each in table order, once."""
    ordered = sorted(records, key=row_key)
    return {
        key: list(dict.fromkeys(str(r[field]) for r in ordered))
        for key, field in (("datasets", "dataset"), ("backbones", "backbone"), ("runs", "run"))
    }


def runs_html(
    records: Sequence[Mapping[str, Any]],
    configfiles: Sequence[str],
    overrides: Mapping[str, Any],
    data_root: str,
) -> str:
    """The page that names what a report holds: the config files and `--config` values the
    run was given, its data root, datasets x backbones x runs, and one row per run with
    its counts, demo models and config hash."""
    def _esc(value: Any) -> str:
        return html.escape(str(value))

    held = runs_held(records)
    given = "".join(f"<li><code>{_esc(path)}</code></li>" for path in configfiles) or (
        "<li>none (the workflow's config/config.yaml)</li>")
    extra = "".join(f"<li><code>{_esc(k)}={_esc(v)}</code></li>"
                    for k, v in sorted(overrides.items()))
    rows = [[r["dataset"], r["backbone"], run_label(r["run"]),
             *(r["counts"].get(k, 0) for k in CONSOLE_COUNTS),
             ", ".join(demo_models(r)) or "none", (r.get("provenance") or {}).get("config_hash")]
            for r in sorted(records, key=row_key)]
    body = (
        f"<p>This report holds {len(records)} runs: datasets "
        f"<b>{_esc(', '.join(held['datasets']))}</b> × backbones "
        f"<b>{_esc(', '.join(held['backbones']))}</b> × runs "
        f"<b>{_esc(', '.join(map(run_label, held['runs'])))}</b>, data root "
        f"<code>{_esc(data_root)}</code>.</p>\n"
        f"<h2>Config files</h2>\n<ul>{given}</ul>\n"
        + (f"<h2>--config values</h2>\n<ul>{extra}</ul>\n" if extra else "")
        + "<h2>Runs</h2>\n"
        + html_table(["dataset", "backbone", "run", *CONSOLE_COUNTS, "demo models",
                      "config hash"], rows, {3, 4, 5})
    )
    return html_page("zsar report: the runs it holds", body)


def run_runs_page_stage(
    metrics_paths: Sequence[str],
    out_path: str,
    *,
    configfiles: Sequence[str],
    overrides: Mapping[str, Any],
    data_root: str,
) -> None:
    records = [read_json(p) for p in metrics_paths]
    write_text(runs_html(records, configfiles, overrides, data_root), out_path)


def shown_configfiles(paths: Iterable[str | os.PathLike], workdir: str | os.PathLike) -> list[str]:
    """Config file paths as the user gave them: relative to the working folder where they
    lie under it (Snakemake makes them absolute)."""
    base = Path(workdir).resolve()
    shown = []
    for path in paths:
        resolved = Path(path).resolve()
        shown.append(str(resolved.relative_to(base)) if resolved.is_relative_to(base)
                     else str(path))
    return shown
