"""Benchmark tables, built only from the per-run metrics JSONs and the comparisons JSONs
(never edited by hand).

One record per (dataset, backbone, run) becomes one row; the column order and the row
order are fixed, so the same records always give byte-identical tables. The records are
those of the current run and every other metrics record in the same results folder, so a
table covers every benchmark run there, not only the last command's. A record that cannot
be shown faithfully (made by an older zsar without a provenance chain) is left out, and the
table says so. Rows made under different settings are never mixed silently: the footnote
lists every setting (frames, backbone, captioner, LLM and prompt sets, scoring) with the
rows it applies to.

Every accuracy is shown with its bootstrap interval where the record holds one (`ci`, from
the score rule), and each gain over `baseline` with its paired interval and a mark where it
is significant (the compare rule's comparisons JSONs, zsar.stages.compare). A comparison is used
only for the records it was made from (their config hashes match); gains of records that
no comparison matches (made before zsar computed them, or re-scored since) are shown
without interval or mark, and the table says which.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from zsar.core.method import VARIANTS
from zsar.core.metrics import METRICS
from zsar.core.references import (
    Reference,
    class_names_words,
    comparisons,
    load_references,
    run_protocol,
    seen_classes,
)
from zsar.data.io import read_json, write_text
from zsar.data.provenance import config_hash
from zsar.models.model_origins import demo_models
from zsar.models.registry import describe_source
from zsar.pipeline.results_files import find

COLUMNS = (
    "dataset",
    "backbone",
    "variant",
    "lambda",
    "fusion",
    "splits",
    *METRICS,
    "evaluated",
    "failed",
    "missing",
    "excluded",
    "descriptor_fallbacks",
    "notes",
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
# What a record must hold to be shown; older records without them are left out, with a note.
REQUIRED = ("dataset", "backbone", "run", "variant", "splits", "mean", "std", "counts")
# The CSV's columns of the top-1 gain over baseline (suffix -> key of gain_over_baseline).
GAIN_FIELDS = {"": "difference", "_ci_low": "ci_low", "_ci_high": "ci_high",
               "_p_holm": "p_holm", "_significant": "significant"}
# A row's per-split field: top1_split2, top1_split2_ci_low, ...
SPLIT_FIELD = re.compile(r"(?P<metric>\w+?)_split(?P<split>\d+)(?P<rest>\w*)")


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


def unusable(record: Mapping[str, Any]) -> str | None:
    """Why a record cannot be shown, or None."""
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        return f"lacks {', '.join(missing)}"
    if not (record.get("provenance") or {}).get("chain"):
        return "has no provenance chain (made by an older zsar)"
    return None


def missing_share(record: Mapping[str, Any]) -> float:
    counts = record["counts"]
    return counts.get("missing", 0) / counts["videos"] if counts.get("videos") else 0.0


# A row made with a demo model (zsar.models.model_origins) says so first in its notes, in every
# format; the tables also say once what that means (demo_meaning).
DEMO_NOTE = "demo models"
DEMO_MEANING = (
    "demo models (random weights, or the demo's hand-written descriptors): their numbers "
    "test the code and are no result."
)


def row_notes(record: Mapping[str, Any], warn_missing_share: float) -> list[str]:
    """Flags a reader must see beside the numbers."""
    notes = []
    demo = demo_models(record)
    if demo:
        notes.append(f"{DEMO_NOTE}: {', '.join(demo)}")
    if seen_classes(record):
        notes.append(f"not zero-shot: {record['backbone']} was trained on {record['dataset']}")
    share = missing_share(record)
    if share > warn_missing_share:
        notes.append(f"{100 * share:.0f}% of videos missing")
    total, with_results = len(record["splits"]), record.get("splits_with_results")
    if with_results is not None and with_results < total:
        notes.append(f"mean of {with_results} of {total} splits")
    return notes


# --- intervals and paired comparisons ------------------------------------------------------

# What marks a significant gain (its meaning is written under every table that shows it).
MARK = "†"


def record_ci(rec: Mapping[str, Any], metric: str, split: str | None = None) -> list | None:
    """[low, high] of a metric (fractions) for the mean, or for one split; None where the
    record holds none (made before zsar computed intervals, or no video to resample)."""
    block = rec.get("ci") if split is None else (rec["splits"].get(split) or {}).get("ci")
    return (block or {}).get(metric)


def _hash(rec: Mapping[str, Any]) -> str | None:
    return (rec.get("provenance") or {}).get("config_hash")


def paired_comparisons(
    records: Sequence[Mapping[str, Any]], compared: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """(dataset, backbone, run a, run b) -> {metric: the compare rule's record of b against
    a, "settings": ..., "count": comparisons adjusted together}, for the pairs of `records`
    a comparisons JSON was made from: both runs' config hashes are those it recorded."""
    hashes = {(r["dataset"], r["backbone"], r["run"]): _hash(r) for r in records}
    found = {}
    for comp in compared:
        runs = comp.get("runs") or {}
        where = (comp.get("dataset"), comp.get("backbone"))
        for metric in ("top1", "top5", "mean_class"):
            for item in comp.get(metric) or []:
                a, b = item["a"], item["b"]
                recorded = ((runs.get(a) or {}).get("config_hash"),
                            (runs.get(b) or {}).get("config_hash"))
                if None in recorded or recorded != (hashes.get((*where, a)),
                                                     hashes.get((*where, b))):
                    continue
                entry = found.setdefault((*where, a, b), {
                    "settings": comp.get("settings") or {}, "count": len(comp.get("pairs", [])),
                })
                entry[metric] = item
    return found


def gain_over_baseline(
    rec: Mapping[str, Any],
    base: Mapping[str, Any] | None,
    paired: Mapping[tuple[str, str, str, str], Mapping[str, Any]],
    metric: str,
) -> dict[str, Any] | None:
    """The gain of a run over its baseline in `metric` (fractions): difference, and where a
    comparison matches, its paired interval, Holm-adjusted p and significance; None for the
    baseline itself or where either value is missing."""
    if base is None or rec is base or None in (rec["mean"].get(metric), base["mean"].get(metric)):
        return None
    item = (paired.get((rec["dataset"], rec["backbone"], base["run"], rec["run"])) or {}).get(
        metric
    )
    if item is None or item.get("difference") is None:
        return {"difference": rec["mean"][metric] - base["mean"][metric]}
    return {
        "difference": item["difference"],
        "ci_low": item.get("ci_low"),
        "ci_high": item.get("ci_high"),
        "p_holm": item.get("mcnemar_p_holm"),
        "significant": item.get("significant"),
    }


def baselines(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(dataset, backbone) -> its baseline run's record."""
    return {(r["dataset"], r["backbone"]): r for r in records if r["run"] == "baseline"}


def format_interval(ci: Sequence[float | None] | None, *, signed: bool = False) -> str:
    """ " [14.6, 52.1]" in percent (with signs for a difference); "" without an interval."""
    if not ci or None in ci:
        return ""
    spec = "+.1f" if signed else ".1f"
    return f" [{100 * ci[0]:{spec}}, {100 * ci[1]:{spec}}]"


def format_gain(gain: Mapping[str, Any] | None) -> str:
    """ " (+16.7 [+4.2, +33.3])", with MARK after it where the gain is significant."""
    if gain is None:
        return ""
    interval = format_interval([gain.get("ci_low"), gain.get("ci_high")], signed=True)
    mark = MARK if gain.get("significant") else ""
    return f" ({100 * gain['difference']:+.1f}{interval}){mark}"


def table_rows(
    records: Iterable[Mapping[str, Any]],
    warn_missing_share: float = 0.1,
    references: Sequence[Reference] = (),
    compared: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Flatten metrics records into rows with numeric columns, in a stable order; `compared`
    holds the compare rule's records (comparisons JSONs)."""
    records = list(records)
    paired = paired_comparisons(records, compared)
    base_of = baselines(records)
    rows = []
    for rec in sorted(records, key=row_key):
        counts = rec["counts"]
        matched = [c for c in comparisons(rec, references) if c.matched]
        row = {
            "dataset": rec["dataset"],
            "backbone": rec["backbone"],
            "variant": rec["variant"],
            "lambda": rec.get("lambda"),
            "fusion": rec.get("fusion") if rec.get("lambda") is not None else None,
            "splits": len(rec["splits"]),
            "splits_with_results": rec.get("splits_with_results", len(rec["splits"])),
            "evaluated": counts["evaluated"],
            "failed": counts.get("failed", 0),
            "missing": counts.get("missing", 0),
            "excluded": counts.get("excluded", 0),
            "descriptor_fallbacks": rec.get("descriptor_fallbacks"),
            "notes": row_notes(rec, warn_missing_share),
            "demo_models": demo_models(rec),
            "zero_shot": not seen_classes(rec),
            "published_top1": matched[0].reference.top1 if matched else None,
            "published_delta": matched[0].delta if matched else None,
            "published_source": matched[0].reference.source if matched else None,
            "config_hash": (rec.get("provenance") or {}).get("config_hash"),
        }
        for metric in METRICS:
            row[f"{metric}_mean"] = rec["mean"].get(metric)
            row[f"{metric}_std"] = rec["std"].get(metric)
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = record_ci(rec, metric) or (
                None, None)
            for split, values in sorted(rec["splits"].items()):
                row[f"{metric}_split{split}"] = (values or {}).get(metric)
                low, high = record_ci(rec, metric, split) or (None, None)
                row[f"{metric}_split{split}_ci_low"] = low
                row[f"{metric}_split{split}_ci_high"] = high
        gain = gain_over_baseline(rec, base_of.get((rec["dataset"], rec["backbone"])), paired,
                                  "top1") or {}
        for key in GAIN_FIELDS:
            row[f"top1_gain{key}"] = gain.get(GAIN_FIELDS[key])
        rows.append(row)
    return rows



def format_pct(mean: float | None, std: float | None, splits: int) -> str:
    """Percent with one decimal; ± std only where several splits have results."""
    if mean is None:
        return "n/a"
    text = f"{100 * mean:.1f}"
    return f"{text} ± {100 * std:.1f}" if splits > 1 and std is not None else text


def display_cell(row: Mapping[str, Any], column: str) -> str:
    if column in METRICS:
        text = format_pct(
            row[f"{column}_mean"], row[f"{column}_std"], row["splits_with_results"]
        )
        ci = [row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")]
        return text + format_interval(ci) if row[f"{column}_mean"] is not None else text
    value = row[column]
    if column == "splits" and row["splits_with_results"] != value:
        return f"{row['splits_with_results']} of {value}"
    if column == "notes":
        return "; ".join(value)
    if value is None:
        return ""
    if column == "lambda":
        return f"{value:g}"
    return str(value)


# --- the footnote: every setting that made a number, with the rows it applies to ----------


def _describe_model(identity: Mapping[str, Any]) -> str:
    return f"{identity.get('name', '?')} ({describe_source(identity)})"


def sampling_words(label: str | None) -> str:
    """A record's frame sampling (zsar.core.protocol.sampling_label) in words."""
    if label and label.startswith("stride"):
        return f"at stride {label.removeprefix('stride')} from each clip's offset, Open-VCLIP's"
    return "TSN centre of each segment"


def chain_facts(record: Mapping[str, Any]) -> dict[str, str]:
    """topic -> this record's setting, in words (zsar.stages.scoring records the chain)."""
    chain = record["provenance"]["chain"]
    frames = chain.get("frames") or {}
    protocol = run_protocol(record)
    backbone = chain.get("backbone") or {}
    prompt = backbone.get("name_prompt") or {}
    templates = len(prompt.get("templates") or [None])
    facts = {
        "frames": (
            f"{protocol['frames']} per view ({sampling_words(protocol['sampling'])}), views "
            f"{protocol['views']} (clips x crops), short side {frames.get('short_side')} px, "
            f"JPEG quality {frames.get('jpeg_quality')}"
        ),
        f"backbone {record['backbone']}": _describe_model(backbone),
        f"protocol of {record['backbone']}": (
            f"class-name prompt {protocol['name_prompt']!r}"
            + (f" ({templates} templates, {prompt.get('combine')})" if templates > 1 else "")
            + f", frame pooling {protocol['pooling']}"
            + (f", trained on {', '.join(backbone['trained_on'])}"
               if backbone.get("trained_on") else "")
        ),
        f"class names of {record['dataset']}": class_names_words(protocol["class_names"]),
    }
    if "captions" in chain:
        captions = chain["captions"]
        facts["captioner"] = (
            f"{_describe_model(captions['captioner'])}, prompt set {captions['prompt_set']}, "
            f"at most {captions['max_new_tokens']} new tokens"
        )
    if "descriptors" in chain:
        descriptors = chain["descriptors"]
        templates = ", ".join(f"{k} {v!r}" for k, v in sorted(descriptors["templates"].items()))
        facts["descriptor LLM"] = (
            f"{_describe_model(descriptors['llm'])}, prompt set {descriptors['prompt_set']}, "
            f"templates {templates}"
        )
    facts["intervals"] = describe_intervals((record["provenance"]).get("statistics"))
    facts["failure policy"] = str(record.get("failure_policy"))
    for kind, weight in (record.get("weights") or {}).items():
        facts[f"weight of {kind} texts"] = f"{weight:g}"
    return facts


def describe_intervals(method: Mapping[str, Any] | None) -> str:
    """A record's interval method (zsar.core.stats.interval_method) in words."""
    if not method:
        return "none (the record was made before zsar computed them)"
    return (
        f"{100 * method['level']:g}% {method['method']} ({method['resamples']} resamples, "
        f"seed {method['seed']}; {method['mean_class']} for mean-class accuracy; over several "
        "splits, within each split)"
    )


def _row_label(record: Mapping[str, Any]) -> str:
    return f"{record['dataset']}/{record['backbone']}/{run_label(record['run'])}"


def footnote_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per setting: its value, and where several values occur, which rows each
    applies to; then the versions and config hashes."""
    by_topic: dict[str, dict[str, list[str]]] = {}
    for rec in sorted(records, key=row_key):
        for topic, value in chain_facts(rec).items():
            by_topic.setdefault(topic, {}).setdefault(value, []).append(_row_label(rec))
    lines = []
    for topic in sorted(by_topic, key=lambda t: (not t.startswith("frames"), t)):
        values = by_topic[topic]
        if len(values) == 1:
            value, applies = next(iter(values.items()))
            total = sum(1 for r in records if topic in chain_facts(r))
            scope = "" if len(applies) == len(records) else f" (the {total} rows that use it)"
            lines.append(f"{topic}: {value}{scope}")
        else:
            for value, applies in values.items():
                lines.append(f"{topic}: {value} (rows {', '.join(applies)})")
    provenances = [r["provenance"] for r in records]
    versions = sorted({p.get("zsar_version", "?") for p in provenances})
    commits = sorted({p.get("git_commit", "unknown")[:12] for p in provenances})
    combined = config_hash(sorted(p.get("config_hash", "") for p in provenances))
    lines.append(
        f"zsar {', '.join(versions)}; commit {', '.join(commits)}; config hash {combined} "
        "(of every row's; each metrics JSON has its own and the whole chain). Accuracies in %, "
        "mean ± std over the splits that have results, [low, high] the interval named above."
    )
    return lines


# --- formats --------------------------------------------------------------------------------


# What would end or split a Markdown table cell, and what it becomes: a backslash is doubled
# so that a name ending in one cannot escape the pipe after it.
MARKDOWN_CELL_ESCAPES = {"\\": "\\\\", "|": "\\|", "\n": " ", "\r": " "}


def markdown_cell(text: str) -> str:
    """`text` as one Markdown table cell, whatever it holds (a name with `|`, a newline)."""
    return "".join(MARKDOWN_CELL_ESCAPES.get(char, char) for char in text)


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    return [
        _markdown_row(header),
        "|" + "|".join("---" for _ in header) + "|",
        *(_markdown_row(row) for row in body),
    ]


def backbone_cell(backbone: str, demo: Any) -> str:
    """The backbone as the pivot and the per-split table show it: marked where the row's
    numbers come from demo models (the full table says it in the row's notes)."""
    return f"{backbone} ({DEMO_NOTE})" if demo else backbone


def demo_meaning(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the demo mark means, where a row was made with demo models."""
    if not any(r["demo_models"] for r in rows):
        return []
    return [f'Rows noted "{DEMO_NOTE}" were made with {DEMO_MEANING}']


def ablation_pivot(
    records: Sequence[Mapping[str, Any]],
    metric: str = "top1",
    compared: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[str], list[list[str]]]:
    """Rows (dataset, backbone) x columns runs, each cell the metric with its interval and
    its gain over `baseline` in points with the gain's paired interval, MARK where the gain
    is significant, e.g. "61.2 [58.0, 64.3] (+4.5 [+2.1, +6.8])†"."""
    records = sorted(records, key=row_key)
    paired = paired_comparisons(records, compared)
    runs = list(dict.fromkeys(r["run"] for r in records))
    cells: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for rec in records:
        cells.setdefault((rec["dataset"], rec["backbone"]), {})[rec["run"]] = rec
    body = []
    for (dataset, backbone), by_run in cells.items():
        base = by_run.get("baseline")
        row = [dataset, backbone_cell(backbone, any(map(demo_models, by_run.values())))]
        for run in runs:
            rec = by_run.get(run)
            if rec is None:
                row.append("")
                continue
            splits = rec.get("splits_with_results", len(rec["splits"]))
            value = rec["mean"][metric]
            text = format_pct(value, rec["std"][metric], splits)
            if value is not None:
                text += format_interval(record_ci(rec, metric))
            row.append(text + format_gain(gain_over_baseline(rec, base, paired, metric)))
        body.append(row)
    return ["dataset", "backbone", *(run_label(r) for r in runs)], body


def _settings_phrase(settings: Mapping[str, Any]) -> str:
    return (f"{100 * settings.get('level', 0.95):g}% paired bootstrap, "
            f"{settings.get('resamples')} resamples, seed {settings.get('seed')}")


def pivot_notes(
    records: Sequence[Mapping[str, Any]],
    compared: Sequence[Mapping[str, Any]],
    metric: str = "top1",
) -> list[str]:
    """What the pivot's brackets and marks mean, and which rows' gains have neither."""
    paired = paired_comparisons(records, compared)
    base_of = baselines(records)
    settings = {tuple(sorted(v["settings"].items())): v["settings"] for v in paired.values()}
    counts = sorted({v["count"] for v in paired.values()})
    gains = [(r, gain_over_baseline(r, base_of.get((r["dataset"], r["backbone"])), paired,
                                    metric)) for r in sorted(records, key=row_key)]
    gains = [(r, g) for r, g in gains if g is not None]
    notes = []
    if settings:
        alphas = ", ".join(sorted({f"{s['alpha']:g}" for s in settings.values()}))
        levels = ", ".join(sorted({f"{100 * s['level']:g}%" for s in settings.values()}))
        notes.append(
            f"In brackets: the {levels} bootstrap interval of each accuracy, and of each gain "
            f"over baseline the paired interval on the same videos "
            f"({'; '.join(_settings_phrase(s) for s in settings.values())})."
        )
        notes.append(
            f"{MARK} marks a significant gain: the exact McNemar test on the videos where the "
            f"run and baseline disagree gives p < {alphas} after Holm's adjustment, and the "
            "gain's interval excludes 0. Holm adjusts over the "
            f"{' or '.join(map(str, counts))} comparisons of each dataset and backbone (every "
            "run against baseline, full against each single-component run: see Paired "
            "comparisons), not across backbones or datasets."
        )
        tested = [g for _, g in gains if "significant" in g]
        if tested and not any(g["significant"] for g in tested):
            notes.append(f"No gain here is significant: none is marked {MARK}.")
    untested = sorted({f"{r['dataset']}/{r['backbone']}" for r, g in gains
                       if "significant" not in g})
    if untested:
        notes.append(
            "Gains without interval or mark (" + ", ".join(untested) + "): no paired "
            "comparison matches these records (made before zsar compared runs, or by another "
            "command whose comparisons were replaced since)."
        )
    return notes


def comparison_table(
    records: Sequence[Mapping[str, Any]],
    compared: Sequence[Mapping[str, Any]],
    metric: str = "top1",
) -> tuple[list[str], list[list[str]]]:
    """Every paired comparison of `metric` that matches the records: b against a on the same
    videos, the difference in points with its interval, the discordant videos, McNemar's
    exact p raw and Holm-adjusted, and MARK where significant."""
    paired = paired_comparisons(records, compared)
    order = {(r["dataset"], r["backbone"], r["run"]): row_key(r) for r in records}
    demo = {(r["dataset"], r["backbone"]) for r in records if demo_models(r)}
    body = []
    for key in sorted(paired, key=lambda k: (order[(*k[:2], k[3])], order[(*k[:2], k[2])])):
        item = paired[key].get(metric)
        if item is None or item.get("difference") is None:
            continue
        interval = format_interval([item.get("ci_low"), item.get("ci_high")], signed=True)
        body.append([
            key[0], backbone_cell(key[1], key[:2] in demo),
            f"{run_label(key[3])} − {run_label(key[2])}",
            f"{100 * item['difference']:+.1f}{interval}", str(item["videos"]),
            str(item["only_a"]), str(item["only_b"]), f"{item['mcnemar_p']:.3g}",
            f"{item['mcnemar_p_holm']:.3g}", MARK if item["significant"] else "",
        ])
    header = ["dataset", "backbone", "b − a", "difference (points) [interval]", "videos",
              "only a right", "only b right", "McNemar p", "Holm p", MARK]
    return header, body


def per_split_table(rows: Sequence[Mapping[str, Any]], metric: str = "top1") -> list[str]:
    """The metric per split, for datasets with several splits ("—": no result)."""
    several = [r for r in rows if r["splits"] > 1]
    if not several:
        return []
    fields = [SPLIT_FIELD.fullmatch(k) for r in several for k in r]
    splits = sorted({f["split"] for f in fields if f and f["metric"] == metric and not f["rest"]},
                    key=int)
    body = []
    for row in several:
        cells = []
        for s in splits:
            value = row.get(f"{metric}_split{s}")
            ci = [row.get(f"{metric}_split{s}_ci_low"), row.get(f"{metric}_split{s}_ci_high")]
            cells.append("—" if value is None else f"{100 * value:.1f}{format_interval(ci)}")
        body.append([row["dataset"], backbone_cell(row["backbone"], row["demo_models"]),
                     display_cell(row, "variant"), *cells])
    return _markdown_table(["dataset", "backbone", "variant", *(f"split {s}" for s in splits)],
                           body)


def published_lines(
    records: Sequence[Mapping[str, Any]], references: Sequence[Reference]
) -> list[str]:
    """Each baseline run beside the published numbers of its backbone and dataset: the
    difference where the protocols agree, else which protocol fields differ."""
    body, not_compared = [], []
    for rec in sorted(records, key=row_key):
        for c in comparisons(rec, references):
            label = f"{rec['dataset']}/{rec['backbone']}"
            if c.matched:
                body.append([rec["dataset"], rec["backbone"], f"{c.measured:.1f}",
                             c.reference.published(), f"{c.delta:+.1f}", c.reference.source])
            elif c.measured is None:
                not_compared.append(f"{label} vs {c.reference.source}: no result")
            else:
                not_compared.append(
                    f"{label} ({c.measured:.1f}) vs {c.reference.published()} "
                    f"({c.reference.source}): not compared, the protocols differ in "
                    + "; ".join(c.differences)
                )
    if not body and not not_compared:
        return []
    lines = ["## Published numbers beside the baseline runs", ""]
    if body:
        header = ["dataset", "backbone", "top-1 % (this run)", "published", "difference",
                  "source"]
        lines += [*_markdown_table(header, body), ""]
    lines += [f"- {line}" for line in not_compared]
    return lines if lines[-1] else lines[:-1]


PIVOT_TITLE = "Ablation: top-1 (%) [interval], gain over baseline in points [paired interval]"
COMPARISONS_TITLE = "Paired comparisons: top-1, run b against run a on the same videos"


def to_markdown(
    rows: list[dict[str, Any]],
    footnotes: Sequence[str],
    records: Iterable[Mapping[str, Any]] = (),
    left_out: Sequence[str] = (),
    references: Sequence[Reference] = (),
    compared: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The full table, the per-split numbers, then (given the records) the top-1 pivot with
    what its marks mean, the paired comparisons and the published numbers."""
    lines = ["# zsar results", ""]
    lines += _markdown_table(list(COLUMNS), [[display_cell(r, c) for c in COLUMNS] for r in rows])
    lines += [line for meaning in demo_meaning(rows) for line in ("", meaning)]
    split_lines = per_split_table(rows)
    if split_lines:
        lines += ["", "## Top-1 (%) per split", "", *split_lines]
    records = list(records)
    if records:
        header, body = ablation_pivot(records, "top1", compared)
        lines += ["", f"## {PIVOT_TITLE}", ""]
        lines += _markdown_table(header, body)
        for note in pivot_notes(records, compared):
            lines += ["", note]
        header, body = comparison_table(records, compared)
        if body:
            lines += ["", f"## {COMPARISONS_TITLE}", "", *_markdown_table(header, body)]
        published = published_lines(records, references)
        if published:
            lines += ["", *published]
    lines += ["", "## Settings", "", *(f"- {line}" for line in footnotes)]
    if left_out:
        lines += ["", "## Left out", "", *(f"- {line}" for line in left_out)]
    return "\n".join([*lines, ""])


def _split_field_order(name: str) -> tuple:
    match = SPLIT_FIELD.fullmatch(name)
    return (METRICS.index(match["metric"]), int(match["split"]), match["rest"] != "",
            match["rest"])


def csv_fields(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    fields = ["dataset", "backbone", "variant", "lambda", "fusion", "splits",
              "splits_with_results"]
    fields += [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "ci_low", "ci_high")]
    fields += sorted({k for r in rows for k in r if SPLIT_FIELD.fullmatch(k)},
                     key=_split_field_order)
    fields += [f"top1_gain{key}" for key in GAIN_FIELDS]
    fields += ["evaluated", "failed", "missing", "excluded", "descriptor_fallbacks", "notes",
               "demo_models", "zero_shot",
               "published_top1", "published_delta", "published_source", "config_hash"]
    return fields


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, list):
        return "; ".join(value)
    return "" if value is None else value


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=csv_fields(rows), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    return out.getvalue()


# Every character LaTeX reads as markup, and how to print it. Replaced in one pass: replacing
# one character after another would escape the braces of an earlier replacement.
LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # Not markup, but the default font prints them as other glyphs.
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def _latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(char, char) for char in text)


def to_latex(rows: list[dict[str, Any]], footnotes: Sequence[str]) -> str:
    columns = ("dataset", "backbone", "variant", "lambda", *METRICS)
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
        if not row["zero_shot"]:
            cells[0] += r"$^{*}$"
        if row["demo_models"]:
            cells[1] += r"$^{\ddagger}$"
        if row.get("top1_gain_significant"):
            cells[columns.index("top1")] += r"$^{\dagger}$"
        lines.append(" & ".join(cells) + r" \\")
    marked = any(row.get("top1_gain_significant") for row in rows)
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{Zero-shot action recognition. "
        + (r"$^{*}$Not zero-shot: the backbone was trained on this dataset's classes. "
           if any(not row["zero_shot"] for row in rows) else "")
        + (r"$^{\ddagger}$" + _latex_escape(f"Made with {DEMO_MEANING} ")
           if demo_meaning(rows) else "")
        + (r"$^{\dagger}$Top-1 gain over baseline significant (Holm-adjusted exact McNemar "
           r"test and paired-bootstrap interval excluding 0; see results.md). " if marked else "")
        + _latex_escape(" ".join(footnotes)) + "}",
        r"\end{table}",
        "",
    ]
    return "\n".join(lines)


# --- the I/O edge ---------------------------------------------------------------------------


def records_in(results_dir: str | os.PathLike | None) -> list[str]:
    """Every metrics record of a results folder (results/DATASET/metrics/BACKBONE/RUN.json)."""
    if results_dir is None:
        return []
    return sorted(str(p) for p in find("score", "metrics", results_dir))


def comparisons_in(results_dir: str | os.PathLike | None) -> list[str]:
    """Every comparisons JSON of a results folder (results/DATASET/comparisons/BACKBONE.json)."""
    if results_dir is None:
        return []
    return sorted(str(p) for p in find("compare", "comparisons", results_dir))


def read_comparisons(paths: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(comparisons records, a note for each unreadable one), each path once."""
    found, left_out = [], []
    for path in sorted(set(map(str, paths))):
        try:
            found.append(read_json(path))
        except (OSError, ValueError) as err:
            left_out.append(f"{path}: unreadable ({err})")
    return found, left_out


def read_records(paths: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(records to show, a note for each one left out and why), each path once."""
    records, left_out = [], []
    for path in sorted(set(map(str, paths))):
        try:
            record = read_json(path)
        except (OSError, ValueError) as err:
            left_out.append(f"{path}: unreadable ({err})")
            continue
        reason = unusable(record)
        if reason:
            left_out.append(f"{path}: {reason}")
        else:
            records.append(record)
    return records, left_out


def run_tables_stage(
    metrics_paths: list[str],
    *,
    md: str,
    csv: str,
    tex: str,
    results_dir: str | None = None,
    warn_missing_share: float = 0.1,
    references_path: str | None = None,
    comparisons_paths: Sequence[str] = (),
) -> None:
    """The tables of these records (this run's and those other commands left in
    `results_dir`), with the paired comparisons that match them."""
    references = load_references(references_path)
    records, left_out = read_records([*metrics_paths, *records_in(results_dir)])
    compared, unreadable = read_comparisons([*comparisons_paths, *comparisons_in(results_dir)])
    left_out = [*left_out, *unreadable]
    rows = table_rows(records, warn_missing_share, references, compared)
    footnotes = footnote_lines(records)
    write_text(to_markdown(rows, footnotes, records, left_out, references, compared), md)
    write_text(to_csv(rows), csv)
    write_text(to_latex(rows, footnotes), tex)
