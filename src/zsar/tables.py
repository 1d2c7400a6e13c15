"""Benchmark tables, built only from the per-run metrics JSONs (never edited by hand).

One record per (dataset, backbone, run) becomes one row; the column order and the row
order are fixed, so the same records always give byte-identical tables.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from zsar.method import VARIANTS
from zsar.metrics import METRICS
from zsar.provenance import config_hash

COLUMNS = (
    "dataset",
    "backbone",
    "variant",
    "lambda",
    "fusion",
    "splits",
    *METRICS,
    "evaluated",
    "excluded",
    "descriptor_fallbacks",
)
VARIANT_ORDER = {name: i for i, name in enumerate(VARIANTS)}
# Header words of the HTML table, where a column name would read badly.
COLUMN_LABELS = {
    "lambda": "λ",
    "top1": "top-1 %",
    "top5": "top-5 %",
    "mean_class": "mean-class %",
    "descriptor_fallbacks": "descriptor fallbacks",
}


def run_label(run: str) -> str:
    """A run's name as tables and plots show it: the variant, with λ where it was swept."""
    return run.replace("_lambda", " λ=")


def row_key(record: Mapping[str, Any]) -> tuple:
    lam = record.get("lambda")
    return (
        record["dataset"],
        record["backbone"],
        VARIANT_ORDER.get(record["variant"], len(VARIANT_ORDER)),
        -1.0 if lam is None else lam,
        record["run"],
    )


def table_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flatten metrics records into rows with numeric mean/std columns, in a stable order."""
    rows = []
    for rec in sorted(records, key=row_key):
        row = {
            "dataset": rec["dataset"],
            "backbone": rec["backbone"],
            "variant": rec["variant"],
            "lambda": rec.get("lambda"),
            "fusion": rec["fusion"] if rec.get("lambda") is not None else "",
            "splits": len(rec["splits"]),
            "evaluated": rec["counts"]["evaluated"],
            "excluded": rec["counts"].get("excluded", 0),
            # None for a variant that does not score with descriptors.
            "descriptor_fallbacks": rec.get("descriptor_fallbacks"),
        }
        for metric in METRICS:
            row[f"{metric}_mean"] = rec["mean"].get(metric, math.nan)
            row[f"{metric}_std"] = rec["std"].get(metric, math.nan)
        rows.append(row)
    return rows


def format_pct(mean: float, std: float, splits: int) -> str:
    """Percent with one decimal; ± std only where there are several splits."""
    if math.isnan(mean):
        return "n/a"
    text = f"{100 * mean:.1f}"
    return f"{text} ± {100 * std:.1f}" if splits > 1 else text


def display_cell(row: Mapping[str, Any], column: str) -> str:
    if column in METRICS:
        return format_pct(row[f"{column}_mean"], row[f"{column}_std"], row["splits"])
    value = row[column]
    if value is None:
        return ""
    if column == "lambda":
        return f"{value:g}"
    return str(value)


def provenance_footnote(records: Iterable[Mapping[str, Any]]) -> str:
    records = list(records)
    commits = sorted({r["provenance"].get("git_commit", "unknown") for r in records})
    models = sorted({r["provenance"].get("model", r["backbone"]) for r in records})
    llms = sorted({str(r["provenance"]["llm"]) for r in records if r["provenance"].get("llm")})
    combined = config_hash(sorted(r["provenance"].get("config_hash", "") for r in records))
    return (
        f"zsar {records[0]['provenance'].get('zsar_version', '?') if records else '?'}; "
        f"commit {', '.join(c[:12] for c in commits)}; config hash {combined}; "
        f"backbones {', '.join(models)}; descriptor LLM {', '.join(llms)}. "
        "Accuracies in %, mean ± std over splits where a benchmark has several."
    )


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in body),
    ]


def ablation_pivot(
    records: Sequence[Mapping[str, Any]], metric: str = "top1"
) -> tuple[list[str], list[list[str]]]:
    """Rows (dataset, backbone) x columns runs, each cell the metric and its gain over
    `baseline` in points, e.g. "61.2 (+4.5)"."""
    records = sorted(records, key=row_key)
    runs = list(dict.fromkeys(r["run"] for r in records))
    cells: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for rec in records:
        cells.setdefault((rec["dataset"], rec["backbone"]), {})[rec["run"]] = rec
    body = []
    for (dataset, backbone), by_run in cells.items():
        base = by_run.get("baseline")
        row = [dataset, backbone]
        for run in runs:
            rec = by_run.get(run)
            if rec is None:
                row.append("")
                continue
            text = format_pct(rec["mean"][metric], rec["std"][metric], len(rec["splits"]))
            if base is not None and run != "baseline":
                text += f" ({100 * (rec['mean'][metric] - base['mean'][metric]):+.1f})"
            row.append(text)
        body.append(row)
    return ["dataset", "backbone", *(run_label(r) for r in runs)], body


def to_markdown(
    rows: list[dict[str, Any]], footnote: str, records: Iterable[Mapping[str, Any]] = ()
) -> str:
    """The full table, then (given the records) the top-1 ablation pivot."""
    lines = ["# zsar results", ""]
    lines += _markdown_table(list(COLUMNS), [[display_cell(r, c) for c in COLUMNS] for r in rows])
    records = list(records)
    if records:
        header, body = ablation_pivot(records, "top1")
        lines += ["", "## Ablation: top-1 (%), gain over baseline in points", ""]
        lines += _markdown_table(header, body)
    return "\n".join([*lines, "", f"[^1]: {footnote}", ""])


def to_csv(rows: list[dict[str, Any]]) -> str:
    fields = [c for c in COLUMNS if c not in METRICS]
    fields[fields.index("splits") + 1 : fields.index("splits") + 1] = [
        f"{m}_{s}" for m in METRICS for s in ("mean", "std")
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (f"{v:.6f}" if isinstance(v, float) else ("" if v is None else v))
                for k, v in row.items()
            }
        )
    return out.getvalue()


def _latex_escape(text: str) -> str:
    for char, repl in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("_", r"\_"),
        ("#", r"\#"),
        ("$", r"\$"),
        ("{", r"\{"),
        ("}", r"\}"),
    ):
        text = text.replace(char, repl)
    return text


def to_latex(rows: list[dict[str, Any]], footnote: str) -> str:
    columns = ("dataset", "backbone", "variant", "lambda", "top1", "top5", "mean_class")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{lll" + "r" * (len(columns) - 3) + "}",
        r"\toprule",
        " & ".join(_latex_escape(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    for row in rows:
        cells = [_latex_escape(display_cell(row, c)).replace("±", r"$\pm$") for c in columns]
        lines.append(" & ".join(cells) + r" \\")
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{Zero-shot action recognition. " + _latex_escape(footnote) + "}",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines)


def run_tables_stage(metrics_paths: list[str], *, md: str, csv: str, tex: str) -> None:
    from zsar.io import read_json, write_text

    records = [read_json(p) for p in metrics_paths]
    rows = table_rows(records)
    footnote = provenance_footnote(records)
    write_text(to_markdown(rows, footnote, records), md)
    write_text(to_csv(rows), csv)
    write_text(to_latex(rows, footnote), tex)
