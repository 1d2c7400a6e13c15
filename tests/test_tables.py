"""Tables are built only from metrics records, in a fixed order, with provenance."""

import copy

import pytest

from zsar.tables import run_tables_stage, table_rows, to_csv, to_markdown

BASE = {
    "dataset": "ucf101",
    "backbone": "b16",
    "run": "baseline",
    "variant": "baseline",
    "fusion": "embedding",
    "lambda": None,
    "splits": {"1": {}, "2": {}, "3": {}},
    "mean": {"top1": 0.5, "top5": 0.8, "mean_class": 0.45},
    "std": {"top1": 0.01, "top5": 0.02, "mean_class": 0.03},
    "counts": {"evaluated": 90, "excluded": 3},
    "descriptor_fallbacks": 2,
    "provenance": {"git_commit": "abc123", "config_hash": "h1", "model": "b16", "llm": "x"},
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


def test_markdown_shows_mean_and_std_over_splits_and_footnote():
    single = record(dataset="k400", splits={"1": {}})
    md = to_markdown(table_rows([record(), single]), "provenance here")
    assert "| ucf101 | b16 | baseline |  |  | 3 | 50.0 ± 1.0 | 80.0 ± 2.0 | 45.0 ± 3.0 |" in md
    # one split: no ± std
    assert "| k400 | b16 | baseline |  |  | 1 | 50.0 | 80.0 | 45.0 |" in md
    assert md.rstrip().endswith("provenance here")


def test_csv_has_numeric_columns_in_fixed_order():
    text = to_csv(table_rows([record()]))
    header, row = text.splitlines()
    assert header.split(",")[:9] == [
        "dataset", "backbone", "variant", "lambda", "fusion", "splits",
        "top1_mean", "top1_std", "top5_mean",
    ]
    assert row.startswith("ucf101,b16,baseline,,,3,0.500000,0.010000,0.800000")


def test_stage_writes_three_formats_deterministically(tmp_path):
    from zsar.io import write_json

    paths = []
    for i, rec in enumerate([record(), record(backbone="l14")]):
        paths.append(tmp_path / f"m{i}.json")
        write_json(rec, paths[-1])
    outs = [tmp_path / f"t.{ext}" for ext in ("md", "csv", "tex")]
    run_tables_stage([str(p) for p in paths], md=outs[0], csv=outs[1], tex=outs[2])
    first = [p.read_bytes() for p in outs]
    run_tables_stage([str(p) for p in reversed(paths)], md=outs[0], csv=outs[1], tex=outs[2])
    assert [p.read_bytes() for p in outs] == first
    tex = outs[2].read_text()
    assert r"\toprule" in tex and r"50.0 $\pm$ 1.0" in tex and "abc123" in tex


@pytest.mark.parametrize("missing", ["dataset", "mean"])
def test_malformed_record_is_an_error(missing):
    rec = record()
    del rec[missing]
    with pytest.raises(KeyError):
        table_rows([rec])


def test_ablation_pivot_shows_gain_over_baseline():
    full = record(variant="full", run="full", **{"lambda": 0.3})
    full["mean"] = {"top1": 0.6, "top5": 0.9, "mean_class": 0.55}
    md = to_markdown(table_rows([record(), full]), "note", [full, record()])
    assert "| dataset | backbone | baseline | full |" in md
    assert "| ucf101 | b16 | 50.0 ± 1.0 | 60.0 ± 1.0 (+10.0) |" in md
