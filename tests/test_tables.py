"""Tables are built only from metrics records, in a fixed order, with every setting named."""

import copy
import json

import pytest

from zsar.commands.tables import (
    MARK,
    ablation_pivot,
    comparison_table,
    footnote_lines,
    pivot_notes,
    read_records,
    records_in,
    run_tables_stage,
    table_rows,
    to_csv,
    to_latex,
    to_markdown,
)
from zsar.data.io import write_json

CHAIN = {
    "dataset": {"name": "ucf101"},
    "frames": {"num_frames": 8, "short_side": 256, "jpeg_quality": 90},
    "backbone": {"name": "b16", "backend": "open_clip", "architecture": "ViT-B-16",
                 "pretrained": "openai"},
}
SPLIT = {"top1": 0.5, "top5": 0.8, "mean_class": 0.45}
BASE = {
    "dataset": "ucf101",
    "backbone": "b16",
    "run": "baseline",
    "variant": "baseline",
    "fusion": None,
    "lambda": None,
    "weights": {"name": 1.0},
    "failure_policy": "exclude",
    "splits": {"1": SPLIT, "2": SPLIT, "3": SPLIT},
    "splits_with_results": 3,
    "mean": {"top1": 0.5, "top5": 0.8, "mean_class": 0.45},
    "std": {"top1": 0.01, "top5": 0.02, "mean_class": 0.03},
    "counts": {"videos": 93, "evaluated": 90, "missing": 3, "excluded": 3},
    "descriptor_fallbacks": None,
    "provenance": {"git_commit": "abc123", "config_hash": "h1", "zsar_version": "0.1.0",
                   "chain": CHAIN},
}


def record(**changes):
    rec = copy.deepcopy(BASE)
    rec.update(changes)
    return rec


def test_rows_have_stable_order_whatever_the_input_order():
    recs = [
        record(variant="full", run="full", **{"lambda": 0.3}),
        record(dataset="hmdb51"),
        record(variant="+descriptors", run="+descriptors"),
        record(),
    ]
    order = [(r["dataset"], r["variant"]) for r in table_rows(recs)]
    assert order == [
        ("hmdb51", "baseline"),
        ("ucf101", "baseline"),
        ("ucf101", "+descriptors"),
        ("ucf101", "full"),
    ]
    assert table_rows(reversed(recs)) == table_rows(recs)


def test_markdown_shows_mean_and_std_over_splits_and_the_settings():
    single = record(dataset="k400", splits={"1": SPLIT}, splits_with_results=1)
    records = [record(), single]
    md = to_markdown(table_rows(records), footnote_lines(records))
    assert "| ucf101 | b16 | baseline |  |  | 3 | 50.0 ± 1.0 | 80.0 ± 2.0 | 45.0 ± 3.0 |" in md
    assert "| k400 | b16 | baseline |  |  | 1 | 50.0 | 80.0 | 45.0 |" in md  # one split: no ±
    assert "- frames: 8 per view" in md and "b16 (open_clip: ViT-B-16 pretrained=openai)" in md
    assert "## Top-1 (%) per split" in md
    assert "| ucf101 | b16 | baseline | 50.0 | 50.0 | 50.0 |" in md


def test_a_split_without_results_shows_as_such_and_the_mean_is_of_the_rest():
    partial = record(splits={"1": SPLIT, "2": {"top1": None, "top5": None, "mean_class": None},
                             "3": {"top1": None, "top5": None, "mean_class": None}},
                     splits_with_results=1, std={"top1": 0.0, "top5": 0.0, "mean_class": 0.0})
    [row] = table_rows([partial])
    md = to_markdown([row], footnote_lines([partial]))
    assert "| ucf101 | b16 | baseline |  |  | 1 of 3 | 50.0 | 80.0 | 45.0 |" in md
    assert "mean of 1 of 3 splits" in md
    assert "| ucf101 | b16 | baseline | 50.0 | — | — |" in md


def test_rows_with_many_videos_missing_are_flagged():
    many = record(counts={"videos": 100, "evaluated": 60, "missing": 40, "excluded": 40})
    [row] = table_rows([many], warn_missing_share=0.1)
    assert row["notes"] == ["40% of videos missing"]
    assert table_rows([many], warn_missing_share=0.5)[0]["notes"] == []


def test_csv_has_numeric_columns_in_fixed_order():
    text = to_csv(table_rows([record()]))
    header, row = text.splitlines()
    assert header.split(",")[:9] == [
        "dataset", "backbone", "variant", "lambda", "fusion", "splits", "splits_with_results",
        "top1_mean", "top1_std",
    ]
    # A record without intervals (made before zsar computed them) leaves their columns empty.
    assert row.startswith("ucf101,b16,baseline,,,3,3,0.500000,0.010000,,,0.800000")
    assert "top1_split3" in header and header.endswith(
        "evaluated,failed,missing,excluded,descriptor_fallbacks,notes,demo_models,zero_shot,"
        "published_top1,published_delta,published_source,config_hash")


def test_settings_that_differ_between_rows_name_the_rows():
    other = record(backbone="l14", provenance={**BASE["provenance"], "chain": {
        **CHAIN, "frames": {"num_frames": 16, "short_side": 256, "jpeg_quality": 90}}})
    lines = footnote_lines([record(), other])
    assert "frames: 8 per view (TSN centre of each segment), views 1x1 (clips x crops), short "\
           "side 256 px, JPEG quality 90 (rows ucf101/b16/baseline)" in lines
    assert any(line.startswith("frames: 16 per view") and "ucf101/l14/baseline" in line
               for line in lines)


def test_stage_writes_three_formats_deterministically_from_every_record(tmp_path):
    results = tmp_path / "results"
    paths = []
    for rec in (record(), record(backbone="l14"), record(dataset="hmdb51")):
        paths.append(results / rec["dataset"] / "metrics" / rec["backbone"] / "baseline.json")
        write_json(rec, paths[-1])
    outs = {ext: tmp_path / f"t.{ext}" for ext in ("md", "csv", "tex")}
    # The run names one record; the others were left in the results folder by earlier runs.
    run_tables_stage([str(paths[0]), *records_in(results)], **outs)
    first = {ext: p.read_bytes() for ext, p in outs.items()}
    assert first["md"].count(b"| baseline |") >= 3 and b"| hmdb51 | b16 |" in first["md"]
    run_tables_stage([*records_in(results), str(paths[0])], **outs)
    assert {ext: p.read_bytes() for ext, p in outs.items()} == first
    tex = outs["tex"].read_text()
    assert r"\toprule" in tex and r"50.0 $\pm$ 1.0" in tex and "abc123" in tex


def test_records_that_cannot_be_shown_are_left_out_with_a_note(tmp_path):
    old = record()
    del old["provenance"]["chain"]
    broken = record()
    del broken["mean"]
    paths = []
    for i, rec in enumerate((record(), old, broken)):
        paths.append(tmp_path / f"r{i}.json")
        write_json(rec, paths[-1])
    (tmp_path / "bad.json").write_text("{not json")
    records, left_out = read_records([*map(str, paths), str(tmp_path / "bad.json")])
    assert len(records) == 1
    assert any("r1.json: has no provenance chain" in line for line in left_out)
    assert any("r2.json: lacks mean" in line for line in left_out)
    assert any("bad.json: unreadable" in line for line in left_out)
    md = to_markdown(table_rows(records), footnote_lines(records), records, left_out)
    assert "## Left out" in md and "r1.json" in md


def test_ablation_pivot_shows_gain_over_baseline():
    full = record(variant="full", run="full", **{"lambda": 0.3})
    full["mean"] = {"top1": 0.6, "top5": 0.9, "mean_class": 0.55}
    records = [full, record()]
    md = to_markdown(table_rows(records), footnote_lines(records), records)
    assert "| dataset | backbone | baseline | full |" in md
    assert "| ucf101 | b16 | 50.0 ± 1.0 | 60.0 ± 1.0 (+10.0) |" in md


def test_every_number_is_strict_json(tmp_path):
    partial = record(splits={"1": {"top1": None, "top5": None, "mean_class": None}},
                     mean={"top1": None, "top5": None, "mean_class": None})
    write_json(partial, tmp_path / "m.json")
    json.loads((tmp_path / "m.json").read_text(), parse_constant=pytest.fail)
    with pytest.raises(ValueError):
        write_json({"top1": float("nan")}, tmp_path / "nan.json")


# --- intervals and paired comparisons -------------------------------------------------------

CI = {"top1": [0.48, 0.52], "top5": [0.77, 0.83], "mean_class": [0.41, 0.49]}
SPLIT_CI = {"top1": [0.4, 0.6], "top5": [0.7, 0.9], "mean_class": [0.35, 0.55]}


def with_ci(rec):
    rec = copy.deepcopy(rec)
    rec["ci"] = CI
    for values in rec["splits"].values():
        values["ci"] = SPLIT_CI
    return rec


def comparison(a_rec, b_rec, **item):
    """A comparisons JSON of the compare rule holding one top-1 comparison of b against a."""
    return {
        "dataset": a_rec["dataset"], "backbone": a_rec["backbone"],
        "runs": {r["run"]: {"variant": r["variant"], "lambda": r["lambda"],
                            "config_hash": r["provenance"]["config_hash"]}
                 for r in (a_rec, b_rec)},
        "pairs": [[a_rec["run"], b_rec["run"]]],
        "settings": {"resamples": 1000, "seed": 0, "level": 0.95, "alpha": 0.05},
        "top1": [{"a": a_rec["run"], "b": b_rec["run"], "difference": 0.1, "ci_low": 0.04,
                  "ci_high": 0.16, "videos": 90, "only_a": 1, "only_b": 10, "mcnemar_p": 0.01,
                  "mcnemar_p_holm": 0.01, "significant": True, **item}],
        "top5": [], "mean_class": [],
    }  # fmt: skip


def pivot_and_full():
    full = record(variant="full", run="full", **{"lambda": 0.3},
                  provenance={**BASE["provenance"], "config_hash": "h2"})
    full["mean"] = {"top1": 0.6, "top5": 0.9, "mean_class": 0.55}
    return [with_ci(record()), with_ci(full)]


def test_every_accuracy_is_shown_with_its_interval():
    records = [with_ci(record()), with_ci(record(dataset="k400", splits={"1": SPLIT},
                                                 splits_with_results=1))]
    rows = table_rows(records)
    md = to_markdown(rows, footnote_lines(records))
    assert ("| ucf101 | b16 | baseline |  |  | 3 | 50.0 ± 1.0 [48.0, 52.0] | 80.0 ± 2.0 "
            "[77.0, 83.0] | 45.0 ± 3.0 [41.0, 49.0] |") in md
    assert "| k400 | b16 | baseline |  |  | 1 | 50.0 [48.0, 52.0] |" in md
    assert "| ucf101 | b16 | baseline | 50.0 [40.0, 60.0] | 50.0 [40.0, 60.0] |" in md
    csv = to_csv(rows).splitlines()
    header = csv[0].split(",")
    assert header[7:11] == ["top1_mean", "top1_std", "top1_ci_low", "top1_ci_high"]
    row = dict(zip(header, csv[2].split(","), strict=True))  # k400 sorts first
    assert row["dataset"] == "ucf101"
    assert (row["top1_ci_low"], row["top1_ci_high"]) == ("0.480000", "0.520000")
    assert (row["mean_class_split2_ci_low"], row["mean_class_split2_ci_high"]) == (
        "0.350000", "0.550000")
    assert header.index("top1_split1") < header.index("top1_split1_ci_low") < header.index(
        "top1_split2")
    tex = to_latex(rows, footnote_lines(records))
    assert r"50.0 $\pm$ 1.0 [48.0, 52.0]" in tex and "50.0 [48.0, 52.0]" in tex


def test_pivot_marks_a_significant_gain_with_its_paired_interval():
    base, full = pivot_and_full()
    compared = [comparison(base, full)]
    header, body = ablation_pivot([base, full], "top1", compared)
    assert body == [["ucf101", "b16", "50.0 ± 1.0 [48.0, 52.0]",
                     f"60.0 ± 1.0 [48.0, 52.0] (+10.0 [+4.0, +16.0]){MARK}"]]
    notes = pivot_notes([base, full], compared)
    assert any(f"{MARK} marks a significant gain" in n and "p < 0.05" in n
               and "Holm adjusts over the 1 comparisons" in n for n in notes)
    _, body = ablation_pivot([base, full], "top1",
                             [comparison(base, full, significant=False, mcnemar_p_holm=0.2)])
    assert body[0][3] == "60.0 ± 1.0 [48.0, 52.0] (+10.0 [+4.0, +16.0])"
    assert "No gain here is significant" in " ".join(
        pivot_notes([base, full], [comparison(base, full, significant=False)]))
    header, rows = comparison_table([base, full], compared)
    assert rows == [["ucf101", "b16", "full − baseline", "+10.0 [+4.0, +16.0]", "90", "1",
                     "10", "0.01", "0.01", MARK]]
    assert header[-3:] == ["McNemar p", "Holm p", MARK]


def test_a_comparison_marks_only_the_records_it_was_made_from():
    base, full = pivot_and_full()
    stale = comparison(base, full)
    stale["runs"]["full"]["config_hash"] = "another"
    _, body = ablation_pivot([base, full], "top1", [stale])
    assert body[0][3] == "60.0 ± 1.0 [48.0, 52.0] (+10.0)"  # the records' own difference
    notes = pivot_notes([base, full], [stale])
    assert any(n.startswith("Gains without interval or mark (ucf101/b16)") for n in notes)
    other_backbone = comparison(record(backbone="l14"), full)
    assert ablation_pivot([base, full], "top1", [other_backbone])[1] == body
    [row] = [r for r in table_rows([base, full], compared=[stale]) if r["variant"] == "full"]
    assert row["top1_gain"] == pytest.approx(0.1) and row["top1_gain_significant"] is None


def test_tables_stage_reads_comparisons_and_leaves_out_unreadable_ones(tmp_path):
    base, full = pivot_and_full()
    paths = []
    for rec in (base, full):
        paths.append(tmp_path / "results" / "ucf101" / "metrics" / "b16" / f"{rec['run']}.json")
        write_json(rec, paths[-1])
    write_json(comparison(base, full), tmp_path / "results/ucf101/comparisons/b16.json")
    (tmp_path / "bad.json").write_text("{")
    outs = {ext: tmp_path / f"t.{ext}" for ext in ("md", "csv", "tex")}
    run_tables_stage([], **outs, results_dir=str(tmp_path / "results"),
                     comparisons_paths=[str(tmp_path / "bad.json")])
    md = outs["md"].read_text()
    assert f"(+10.0 [+4.0, +16.0]){MARK}" in md and "bad.json: unreadable" in md
    assert r"60.0 $\pm$ 1.0 [48.0, 52.0]$^{\dagger}$" in outs["tex"].read_text()
    assert "Top-1 gain over baseline significant" in outs["tex"].read_text()
