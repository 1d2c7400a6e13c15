"""The report's figures and pages: confusion matrix, per-class accuracy, ablation bars,
a results table, explanation pages and a run summary.

Everything is built from the workflow's records (metrics JSONs, scores and explanations
Parquet, descriptors JSON, failures), never from anything computed here for the first
time. Output is deterministic: sorted orders, a seeded sample, and figures saved without
the software/date metadata matplotlib would otherwise embed, so equal inputs give equal
bytes.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from zsar.commands.tables import (
    COLUMN_LABELS,
    COLUMNS,
    COMPARISONS_TITLE,
    PIVOT_TITLE,
    ablation_pivot,
    comparison_table,
    comparisons_in,
    demo_meaning,
    display_cell,
    footnote_lines,
    pivot_notes,
    read_comparisons,
    read_records,
    record_ci,
    records_in,
    row_key,
    run_label,
    table_rows,
)
from zsar.core.method import HIERARCHY_SEPARATOR
from zsar.core.references import comparisons, load_references
from zsar.core.stats import largest_changes
from zsar.data.io import RowGroups, atomic_path, read_json, write_text
from zsar.pipeline.plan import parse_variant_run

# Per-class accuracy with more classes than this shows the worst and best halves only:
# a bar per class of Kinetics-400 would make a plot no one can read.
PER_CLASS_MAX = 60
# The run whose per-class plots and explanation pages the report shows.
PRIMARY_VARIANT = "full"
GROUPS = ("correct", "wrong")
FIGURE_DPI = 110


# ---------------------------------------------------------------------------
# Choosing what to show
# ---------------------------------------------------------------------------


def primary_run(runs: Sequence[str], lambdas: Sequence[float]) -> str:
    """The run the per-class figures and explanation pages describe.

    The method's `full` variant when it is scored (its first λ in a sweep), otherwise the
    last configured run, which in the usual variant order is the richest one.
    """
    if not runs:
        raise ValueError("no scored runs")
    full = [r for r in runs if parse_variant_run(r, list(lambdas))[0] == PRIMARY_VARIANT]
    return full[0] if full else runs[-1]


def sample_rows(rows: Sequence[Mapping[str, Any]], count: int, seed: int) -> list[dict]:
    """A deterministic sample of `count` rows, in (split, video_id) order.

    The rows are sorted first, so the sample depends only on their content and the seed.
    """
    ordered = sorted(rows, key=lambda r: (r["split"], r["video_id"]))
    if len(ordered) <= count:
        return [dict(r) for r in ordered]
    picked = np.random.default_rng(seed).choice(len(ordered), size=count, replace=False)
    return [dict(ordered[i]) for i in sorted(picked)]


def sample_explanations(
    rows: Sequence[Mapping[str, Any]], per_group: int, seed: int
) -> dict[str, list[dict]]:
    """Up to `per_group` correct and `per_group` wrong predictions."""
    return {
        "correct": sample_rows([r for r in rows if r["correct"]], per_group, seed),
        "wrong": sample_rows([r for r in rows if not r["correct"]], per_group, seed),
    }


# ---------------------------------------------------------------------------
# Confusion matrix and per-class accuracy (pure)
# ---------------------------------------------------------------------------


def confusion_matrix(
    true_names: Sequence[str], predicted_names: Sequence[str], labels: Sequence[str]
) -> np.ndarray:
    """Counts [true, predicted] over `labels` (rows: true class, columns: prediction)."""
    index = {name: i for i, name in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for true, pred in zip(true_names, predicted_names, strict=True):
        matrix[index[true], index[pred]] += 1
    return matrix


def most_confused(matrix: np.ndarray, limit: int) -> list[int]:
    """Indices of the `limit` classes most involved in errors, in their original order.

    A class's involvement is its misclassified videos plus the videos wrongly given to it;
    ties go to the lower index, so the choice is deterministic.
    """
    if len(matrix) <= limit:
        return list(range(len(matrix)))
    errors = matrix - np.diag(np.diag(matrix))
    involvement = errors.sum(axis=1) + errors.sum(axis=0)
    order = sorted(range(len(matrix)), key=lambda i: (-involvement[i], i))
    return sorted(order[:limit])


def per_class_accuracy(
    true_names: Sequence[str], correct: Sequence[bool], labels: Sequence[str]
) -> list[tuple[str, float, int]]:
    """(class, top-1 accuracy, videos) for every label with videos, lowest accuracy first."""
    hits: dict[str, list[bool]] = {}
    for name, ok in zip(true_names, correct, strict=True):
        hits.setdefault(name, []).append(bool(ok))
    rows = [(n, float(np.mean(hits[n])), len(hits[n])) for n in labels if n in hits]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def trim_per_class(rows: list[tuple[str, float, int]], limit: int = PER_CLASS_MAX):
    """The worst and best limit/2 classes when there are more than `limit`."""
    if len(rows) <= limit:
        return rows, 0
    half = limit // 2
    return rows[:half] + rows[-half:], len(rows) - 2 * half


# ---------------------------------------------------------------------------
# Figures (matplotlib, Agg, no pyplot global state)
# ---------------------------------------------------------------------------


def _figure(width: float, height: float):
    # lazy: matplotlib (seconds to import) loads only in the plotting jobs
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=FIGURE_DPI)
    FigureCanvasAgg(fig)
    return fig


def plain(text: Any) -> str:
    """Text that matplotlib prints as written. Two `$` in a label start mathtext, which fails
    on most names (`$\\foo$`) and changes the rest; an escaped `\\$` prints as `$`."""
    return str(text).replace("$", r"\$")


def save_figure(fig, path) -> None:
    """PNG, atomically, without the Software key (PNGs carry no date), so bytes are stable."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata={"Software": None})


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], title: str):
    """Row-normalised confusion matrix (recall per true class) with counts in the cells."""
    n = len(labels)
    size = max(4.0, 0.45 * n + 2.5)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot()
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    shown = [plain(label) for label in labels]
    ax.set_xticks(range(n), shown, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), shown, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(plain(title), fontsize=10)
    if n <= 30:  # counts stay legible up to about this size
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                colour = "white" if shares[i, j] > 0.5 else "black"
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=colour)
    return fig


def plot_per_class(rows: list[tuple[str, float, int]], title: str, hidden: int = 0):
    """Horizontal bars of top-1 accuracy per class, worst at the top."""
    fig = _figure(7.0, max(2.5, 0.26 * len(rows) + 1.2))
    ax = fig.add_subplot()
    names = [plain(f"{name} (n={count})") for name, _, count in rows]
    values = [100 * acc for _, acc, _ in rows]
    positions = np.arange(len(rows))[::-1]
    ax.barh(positions, values, color="#4C72B0")
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("top-1 accuracy (%)")
    if hidden:
        title += f"\n(worst and best {len(rows) // 2} classes; {hidden} in between not shown)"
    ax.set_title(plain(title), fontsize=10)
    for y, value in zip(positions, values, strict=True):
        ax.text(min(value + 1, 92), y, f"{value:.0f}", va="center", fontsize=7)
    return fig


def error_bars(records: Sequence[Mapping[str, Any] | None], metric: str) -> np.ndarray | None:
    """[2, runs] distances (points) from each bar's top down to its interval's low end and up
    to its high end; 0 where a run has no interval. None when no run has one (no caps)."""
    bars = np.zeros((2, len(records)))
    for i, rec in enumerate(records):
        ci = record_ci(rec, metric) if rec else None
        mean = rec["mean"][metric] if rec else None
        if ci and None not in ci and mean is not None:
            # max(0, ...): an interval's end can sit a rounding error inside the mean.
            bars[:, i] = [max(0.0, 100 * (mean - ci[0])), max(0.0, 100 * (ci[1] - mean))]
    return bars if bars.any() else None


def plot_ablation(records: Sequence[Mapping[str, Any]], dataset: str):
    """Grouped bars: one group per run (variant order), one bar per backbone, two metrics;
    error bars are each accuracy's bootstrap interval (metrics JSON `ci`)."""
    records = sorted(records, key=row_key)
    runs = list(dict.fromkeys(r["run"] for r in records))
    backbones = sorted({r["backbone"] for r in records})
    by_key = {(r["run"], r["backbone"]): r for r in records}
    labels = {r["run"]: run_label(r["run"]) for r in records}
    fig = _figure(max(6.0, 1.1 * len(runs) * max(1, len(backbones)) + 3.0), 4.2)
    width = 0.8 / max(1, len(backbones))
    fallbacks = max((r.get("descriptor_fallbacks") or 0 for r in records), default=0)
    for panel, (metric, name) in enumerate((("top1", "top-1"), ("mean_class", "mean-class"))):
        ax = fig.add_subplot(1, 2, panel + 1)
        for b, backbone in enumerate(backbones):
            shown = [by_key.get((run, backbone)) for run in runs]
            means = [math.nan if rec is None or rec["mean"][metric] is None
                     else 100 * rec["mean"][metric] for rec in shown]
            x = np.arange(len(runs)) + (b - (len(backbones) - 1) / 2) * width
            errors = error_bars(shown, metric)
            ax.bar(x, means, width, yerr=errors, capsize=3, label=plain(backbone))
            above = np.zeros(len(runs)) if errors is None else errors[1]
            for xi, mean, up in zip(x, means, above, strict=True):
                if not math.isnan(mean):  # the value above its error bar, not behind it
                    ax.text(xi, mean + up + 1, f"{mean:.1f}", ha="center", va="bottom",
                            fontsize=7)
        ax.set_xticks(range(len(runs)), [plain(labels[r]) for r in runs], rotation=30,
                      ha="right")
        ax.set_ylabel(f"{name} accuracy (%)")
        ax.set_ylim(0, 105)
        ax.set_title(plain(f"{dataset}: {name}"), fontsize=10)
        if panel == 0:
            ax.legend(fontsize=8, title="backbone", title_fontsize=8)
    noun = "class" if fallbacks == 1 else "classes"
    levels = sorted({f"{100 * m['level']:g}%" for r in records
                     if (m := (r.get("provenance") or {}).get("statistics"))})
    bars = (f"error bars: {', '.join(levels)} bootstrap intervals over videos" if levels
            else "no intervals in these records")
    fig.suptitle(f"{bars}; descriptor fallbacks: {fallbacks} {noun} fell back to the name",
                 fontsize=8)
    return fig


# ---------------------------------------------------------------------------
# HTML pages (self-contained: inline style, images as data URIs)
# ---------------------------------------------------------------------------

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f3f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em 1em; margin: 1em 0; }
.card.wrong { border-left: 5px solid #c44e52; } .card.correct { border-left: 5px solid #55a868; }
.card img { float: right; max-height: 120px; margin-left: 1em; border-radius: 4px; }
.sentence { font-style: italic; margin: 0.4em 0 0.6em; }
p { overflow-wrap: anywhere; } td { overflow-wrap: break-word; } td.num { white-space: nowrap; }
.muted { color: #666; font-size: 0.85em; }
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def html_page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{_esc(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric=()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    lines = [f"<table>\n<tr>{head}</tr>"]
    for row in rows:
        cells = "".join(
            f"<td class=\"num\">{_esc(v)}</td>" if i in numeric else f"<td>{_esc(v)}</td>"
            for i, v in enumerate(row)
        )
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def tables_html(
    records: Sequence[Mapping[str, Any]],
    left_out: Sequence[str] = (),
    warn_missing_share: float = 0.1,
    references: Sequence[Any] = (),
    compared: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The top-1 ablation pivot with what its marks mean, the paired comparisons, the
    published numbers beside the baseline runs, the benchmark table and the settings as one
    HTML page (`compared`: the compare rule's records)."""
    rows = table_rows(records, warn_missing_share, references, compared)
    numeric = set(range(COLUMNS.index("splits"), COLUMNS.index("notes")))
    full = html_table(
        [COLUMN_LABELS.get(c, c) for c in COLUMNS],
        ([display_cell(r, c) for c in COLUMNS] for r in rows),
        numeric,
    )
    header, pivot = ablation_pivot(records, "top1", compared)
    notes = "".join(f"<p class=\"muted\">{_esc(line)}</p>"
                    for line in pivot_notes(records, compared))
    paired_header, paired = comparison_table(records, compared)
    paired_html = (f"\n<h2>{_esc(COMPARISONS_TITLE)}</h2>\n"
                   + html_table(paired_header, paired, set(range(3, len(paired_header) - 1)))
                   if paired else "")
    settings = "".join(f"<li>{_esc(line)}</li>" for line in footnote_lines(records))
    published = published_html(records, references)
    skipped = "".join(f"<li>{_esc(line)}</li>" for line in left_out)
    body = (
        f"<h2>{_esc(PIVOT_TITLE)}</h2>\n"
        + html_table(header, pivot, set(range(2, len(header))))
        + notes
        + paired_html
        + published
        + "\n<h2>All runs</h2>\n"
        + full
        + "".join(f"<p class=\"muted\">{_esc(line)}</p>" for line in demo_meaning(rows))
        + f"\n<h2>Settings</h2>\n<ul class=\"muted\">{settings}</ul>"
        + (f"\n<h2>Left out</h2>\n<ul class=\"muted\">{skipped}</ul>" if skipped else "")
    )
    return html_page("zsar results", body)


# Classes shown per run on the per-class gains page, for the gains and for the losses.
CLASS_GAINS_SHOWN = 10


def _class_gain_table(rows: Sequence[Mapping[str, Any]], a: str, b: str) -> str:
    header = ["class", "videos", f"right under {run_label(a)}", f"right under {run_label(b)}",
              "gain (points)", "gained", "lost"]
    return html_table(
        header,
        ([r["class"], r["videos"], r["correct_a"], r["correct_b"], f"{r['gain_points']:+.1f}",
          r["gained"], r["lost"]] for r in rows),
        set(range(1, len(header))),
    )


def class_gains_html(
    rows: Sequence[Mapping[str, Any]], title: str, limit: int = CLASS_GAINS_SHOWN
) -> str:
    """Per run against baseline (zsar.stages.compare's per-class gains rows, in their order): the
    classes that gain most and lose most in top-1, with their counts."""
    pairs = list(dict.fromkeys((r["a"], r["b"]) for r in rows))
    sections = []
    for a, b in pairs:
        # Class names are unique within a pair; the id only completes largest_changes' key.
        mine = [{**r, "class_id": i} for i, r in enumerate(r for r in rows
                                                          if (r["a"], r["b"]) == (a, b))]
        gains, losses = largest_changes(mine, limit)
        gained, lost = sum(r["gained"] for r in mine), sum(r["lost"] for r in mine)
        up = sum(r["gain_points"] > 0 for r in mine)
        down = sum(r["gain_points"] < 0 for r in mine)
        sections.append(
            f"<h2>{_esc(run_label(b))} against {_esc(run_label(a))}</h2>\n"
            f"<p>{len(mine)} classes: {up} gain, {down} lose, {len(mine) - up - down} "
            f"unchanged; {gained} videos newly right, {lost} newly wrong (net "
            f"{gained - lost:+d}).</p>\n"
            f"<h3>Classes that gain most</h3>\n"
            + (_class_gain_table(gains, a, b) if gains else "<p>None.</p>")
            + "\n<h3>Classes that lose most</h3>\n"
            + (_class_gain_table(losses, a, b) if losses else "<p>None.</p>")
        )
    intro = (
        "<p class=\"muted\">Top-1, each run against baseline on the same videos, pooled over "
        "splits. gained: videos only the run gets right; lost: videos only baseline gets "
        "right. Per-class differences on few videos are noisy, and no class is tested "
        "on its own: the paired comparisons on the tables page say whether a run's gain as a "
        "whole is significant.</p>"
    )
    body = "\n".join(sections) if sections else "<p>No run to compare with baseline.</p>"
    return html_page(title, intro + "\n" + body)


def _descriptor_list(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return "<span class=\"muted\">none</span>"
    return html_table(
        ["kind", "descriptor", "similarity"],
        ([d["kind"], d["text"], f"{d['similarity']:.3f}"] for d in items),
        {2},
    )


def _explanation_card(row: Mapping[str, Any], thumbnail: bytes | None) -> str:
    group = "correct" if row["correct"] else "wrong"
    image = ""
    if thumbnail:
        data = base64.b64encode(thumbnail).decode()
        image = f"<img alt=\"middle frame\" src=\"data:image/jpeg;base64,{data}\">"
    runner = row.get("runner_up")
    lines = [
        f"<div class=\"card {group}\">{image}",
        f"<h3>{_esc(row['video_id'])}</h3>",
        f"<p class=\"sentence\">{_esc(row['sentence'])}</p>",
        f"<p>true class <b>{_esc(row['true_class'])}</b> (split {row['split']}); predicted "
        f"<b>{_esc(row['predicted'])}</b> ({row['predicted_score']:.3f})"
        + (f", runner-up <b>{_esc(runner)}</b> ({row['runner_up_score']:.3f})" if runner else "")
        + "</p>",
    ]
    if row.get("caption"):
        lines.append(f"<p>caption: “{_esc(row['caption'])}”</p>")
    if row.get("hierarchy"):
        lines.append(f"<p>hierarchy: {_esc(HIERARCHY_SEPARATOR.join(row['hierarchy']))}</p>")
    lines.append(f"<p class=\"muted\">similarity to: {_esc(row['similarity_to'])}</p>")
    lines.append(f"<h4>top descriptors of {_esc(row['predicted'])}</h4>")
    lines.append(_descriptor_list(row.get("predicted_descriptors") or []))
    if runner:
        lines.append(f"<h4>top descriptors of {_esc(runner)}</h4>")
        lines.append(_descriptor_list(row.get("runner_up_descriptors") or []))
    lines.append("</div>")
    return "\n".join(lines)


def explanations_html(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    total: int,
    thumbnails: Mapping[str, bytes] | None = None,
) -> str:
    thumbnails = thumbnails or {}
    intro = (
        f"<p class=\"muted\">{len(rows)} of {total} predictions, a fixed-seed sample.</p>"
        if rows
        else "<p>No predictions in this group.</p>"
    )
    cards = "\n".join(_explanation_card(r, thumbnails.get(r["video_id"])) for r in rows)
    return html_page(title, intro + "\n" + cards)


# The order of the count columns: what was there, what was scored, what was lost and how.
COUNT_ORDER = (
    "videos", "evaluated", "failed", "missing", "excluded", "counted_as_wrong", "without_caption"
)


def summary_html(
    dataset: str,
    records: Sequence[Mapping[str, Any]],
    descriptors_json: Mapping[str, Any],
    failures: Sequence[Mapping[str, Any]],
    max_examples: int = 20,
) -> str:
    """Counts per run, descriptor fallbacks (with the classes and reasons) and failures."""
    records = sorted(records, key=row_key)
    present = {k for r in records for k in r["counts"]}
    count_keys = [k for k in COUNT_ORDER if k in present] + sorted(present - set(COUNT_ORDER))
    counts = html_table(
        ["backbone", "run", *count_keys],
        ([r["backbone"], r["run"], *(r["counts"].get(k, "") for k in count_keys)]
         for r in records),
        set(range(2, 2 + len(count_keys))),
    )
    classes = descriptors_json.get("classes") or {}
    fell_back = sorted((n, c.get("reason") or "") for n, c in classes.items() if c.get("fallback"))
    reported = sorted({r["descriptor_fallbacks"] for r in records
                       if r.get("descriptor_fallbacks") is not None})
    fallback_text = (
        f"<p>Descriptor LLM <b>{_esc(descriptors_json.get('llm'))}</b>: "
        f"<b>{len(fell_back)}</b> of {len(classes)} classes fell back to their name "
        f"(metrics JSONs report {', '.join(map(str, reported)) or 'none'}).</p>"
    )
    if fell_back:
        fallback_text += html_table(["class", "reason"], fell_back)
    by_stage: dict[str, int] = {}
    for f in failures:
        by_stage[f["stage"]] = by_stage.get(f["stage"], 0) + 1
    examples = sorted(failures, key=lambda f: (f["stage"], f["video_id"]))[:max_examples]
    failure_text = (
        html_table(["stage", "videos"], sorted(by_stage.items()), {1})
        + html_table(["video", "stage", "reason"],
                     ([f["video_id"], f["stage"], f["reason"]] for f in examples))
        if failures
        else "<p>No video failed.</p>"
    )
    body = (
        "<h2>Videos per run</h2>\n" + counts
        + "\n<h2>Descriptor fallbacks</h2>\n" + fallback_text
        + "\n<h2>Failures</h2>\n" + failure_text
    )
    return html_page(f"{dataset}: run summary", body)


# ---------------------------------------------------------------------------
# I/O edges (one per report rule)
# ---------------------------------------------------------------------------


def _class_order(classes) -> list[str]:
    """Raw class names in (split, class_id) order, each once."""
    ordered = sorted(classes, key=lambda c: (c["split"], c["class_id"]))
    return list(dict.fromkeys(c["name"] for c in ordered))


# The columns of a scores Parquet the per-class figures read.
CLASS_PLOT_COLUMNS = ("split", "video_id", "true_class", "predicted_class", "correct", "status")


def _evaluated_names(scores, classes) -> tuple[list[str], list[str], list[bool]]:
    """(true class, predicted class, correct) of the evaluated rows of a scores table (the
    CLASS_PLOT_COLUMNS), in (split, video_id) order, column by column."""
    names = {(c["split"], c["class_id"]): c["name"] for c in classes}
    rows = scores.filter(pc.equal(scores.column("status"), "evaluated"))
    rows = rows.take(pc.sort_indices(rows, sort_keys=[("split", "ascending"),
                                                      ("video_id", "ascending")]))  # fmt: skip
    split = rows.column("split").to_pylist()
    true = [names[k] for k in zip(split, rows.column("true_class").to_pylist(), strict=True)]
    pred = [names[k] for k in zip(split, rows.column("predicted_class").to_pylist(), strict=True)]
    return true, pred, [bool(c) for c in rows.column("correct").to_pylist()]


def run_class_plots_stage(
    scores_path: str,
    classes_path: str,
    *,
    confusion_path: str,
    per_class_path: str,
    title: str,
    max_classes: int,
) -> None:
    """Confusion matrix (most-confused classes when there are many) and per-class accuracy."""
    classes = pq.read_table(classes_path).to_pylist()
    scores = pq.read_table(scores_path, columns=list(CLASS_PLOT_COLUMNS))
    true, pred, correct = _evaluated_names(scores, classes)
    labels = _class_order(classes)
    matrix = confusion_matrix(true, pred, labels)
    keep = most_confused(matrix, max_classes)
    shown = f"{len(keep)} most-confused of {len(labels)} classes" if len(keep) < len(labels) else (
        f"{len(labels)} classes"
    )
    save_figure(
        plot_confusion(matrix[np.ix_(keep, keep)], [labels[i] for i in keep],
                       f"{title}\n{shown}, {len(true)} videos"),
        confusion_path,
    )
    rows, hidden = trim_per_class(per_class_accuracy(true, correct, labels))
    save_figure(plot_per_class(rows, title, hidden), per_class_path)


def run_ablation_plot_stage(metrics_paths: Sequence[str], out_path: str, *, dataset: str) -> None:
    save_figure(plot_ablation([read_json(p) for p in metrics_paths], dataset), out_path)


def run_class_gains_page_stage(gains_path: str, out_path: str, *, title: str) -> None:
    """The per-class gains page from the compare rule's per-class gains Parquet."""
    write_text(class_gains_html(pq.read_table(gains_path).to_pylist(), title), out_path)


def published_html(records: Sequence[Mapping[str, Any]], references: Sequence[Any]) -> str:
    """zsar.commands.tables.published_lines as HTML: the comparisons table and the ones not made."""
    matched, not_compared = [], []
    for rec in records:
        for c in comparisons(rec, references):
            if c.matched:
                matched.append([rec["dataset"], rec["backbone"], f"{c.measured:.1f}",
                                c.reference.published(), f"{c.delta:+.1f}", c.reference.source])
            else:
                why = "; ".join(c.differences) or "no result"
                not_compared.append(f"{rec['dataset']}/{rec['backbone']} vs "
                                    f"{c.reference.source}: not compared ({why})")
    if not matched and not not_compared:
        return ""
    header = ["dataset", "backbone", "top-1 % (this run)", "published", "difference", "source"]
    items = "".join(f"<li>{_esc(line)}</li>" for line in not_compared)
    return (
        "\n<h2>Published numbers beside the baseline runs</h2>\n"
        + (html_table(header, matched, {2, 3, 4}) if matched else "")
        + (f"\n<ul class=\"muted\">{items}</ul>" if items else "")
    )


def run_tables_html_stage(
    metrics_paths: Sequence[str],
    out_path: str,
    *,
    results_dir: str | None = None,
    warn_missing_share: float = 0.1,
    references_path: str | None = None,
    comparisons_paths: Sequence[str] = (),
) -> None:
    """The tables page, of this run's records and every other one in `results_dir`, with
    the paired comparisons that match them."""
    records, left_out = read_records([*metrics_paths, *records_in(results_dir)])
    compared, unreadable = read_comparisons([*comparisons_paths, *comparisons_in(results_dir)])
    references = load_references(references_path)
    page = tables_html(records, [*left_out, *unreadable], warn_missing_share, references,
                       compared)
    write_text(page, out_path)


def middle_frames(frames_paths: Sequence[str], video_ids: Iterable[str]) -> dict[str, bytes]:
    """The middle sampled frame (JPEG bytes) of each wanted video, read from frames shards.

    Only the video_id column is scanned; JPEGs are read from the few row groups that hold
    a wanted video, so a benchmark's gigabytes of frames are never loaded for ten pictures.
    """
    wanted = set(video_ids)
    found: dict[str, bytes] = {}
    for path in frames_paths:
        shard = pq.ParquetFile(path)
        for group in range(shard.num_row_groups):
            ids = shard.read_row_group(group, columns=["video_id"]).column(0).to_pylist()
            if wanted.isdisjoint(ids):
                continue
            jpegs = shard.read_row_group(group, columns=["jpeg"]).column(0).to_pylist()
            for video_id, frames in zip(ids, jpegs, strict=True):
                if video_id in wanted and frames:
                    found[video_id] = frames[len(frames) // 2]
    return found


def run_explanation_pages_stage(
    explanations_path: str,
    frames_paths: Sequence[str],
    out_paths: Mapping[str, str],
    *,
    title: str,
    per_group: int,
    seed: int,
) -> None:
    """One HTML page per group (correct, wrong) with a fixed-seed sample of explanations.

    The sample is drawn from three columns (split, video_id, correct); only the rows drawn
    are read whole, from the row groups that hold them, so the page's memory does not grow
    with a benchmark's explanations."""
    light = pq.read_table(explanations_path, columns=["split", "video_id", "correct"])
    rows = [{**r, "row": i} for i, r in enumerate(light.to_pylist())]
    drawn = sample_explanations(rows, per_group, seed)
    whole = RowGroups(explanations_path)
    samples = {group: whole.records([r["row"] for r in drawn[group]]) for group in GROUPS}
    thumbnails = middle_frames(
        frames_paths, (r["video_id"] for group in samples.values() for r in group)
    )
    for group in GROUPS:
        total = sum(1 for r in rows if bool(r["correct"]) == (group == "correct"))
        page = explanations_html(
            samples[group], title=f"{title}: {group} predictions", total=total,
            thumbnails=thumbnails,
        )
        write_text(page, out_paths[group])


def run_summary_stage(
    metrics_paths: Sequence[str],
    descriptors_path: str,
    failures_path: str,
    out_path: str,
    *,
    dataset: str,
) -> None:
    page = summary_html(
        dataset,
        [read_json(p) for p in metrics_paths],
        read_json(descriptors_path),
        pq.read_table(failures_path).to_pylist(),
    )
    write_text(page, out_path)

