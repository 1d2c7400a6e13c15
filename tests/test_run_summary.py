"""What a run holds, from its metrics records: the console's line per dataset and the
report's page of runs."""

from __future__ import annotations

import copy

from test_tables import BASE

from zsar.data.io import write_json
from zsar.pipeline.run_summary import (
    dataset_lines,
    run_summary_lines,
    runs_held,
    runs_html,
    shown_configfiles,
)


def record(**changes):
    rec = copy.deepcopy(BASE)
    rec.update(changes)
    return rec


def counted(evaluated, failed, missing, splits=3):
    rec = record(counts={"videos": evaluated + failed + missing, "evaluated": evaluated,
                         "failed": failed, "missing": missing})
    rec["splits"] = dict(list(rec["splits"].items())[:splits])
    return rec


def test_one_line_per_dataset_with_the_failures_file():
    ucf = counted(3780, 3, 0)
    hmdb = {**counted(5, 0, 1, splits=1), "dataset": "hmdb51"}
    ucf_full = {**ucf, "run": "full", "variant": "full"}
    assert dataset_lines([ucf_full, hmdb, ucf]) == [
        "zsar: hmdb51: 5 videos evaluated, 0 failed (listed in "
        "results/hmdb51/failures.parquet), 1 missing",
        "zsar: ucf101: 3780 videos evaluated, 3 failed (listed in "
        "results/ucf101/failures.parquet), 0 missing (summed over 3 splits)",
    ]


def test_backbones_that_counted_differently_get_a_line_each():
    lines = dataset_lines([counted(10, 0, 0), {**counted(9, 1, 0), "backbone": "l14"}])
    assert [line.split(":")[1] for line in lines] == [" ucf101 (b16)", " ucf101 (l14)"]
    assert "9 videos evaluated, 1 failed" in lines[1]


def test_demo_models_are_named_on_the_line():
    rec = counted(6, 0, 0, splits=1)
    rec["models"] = {"backbone": {"name": "tiny-clip", "demo": True}}
    [line] = dataset_lines([rec])
    assert line.endswith("; made with demo models: tiny-clip (backbone)")


def test_records_not_written_are_skipped(tmp_path):
    write_json(counted(2, 1, 0, splits=1), tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{not json")
    lines = run_summary_lines([tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"])
    assert lines == ["zsar: ucf101: 2 videos evaluated, 1 failed (listed in "
                     "results/ucf101/failures.parquet), 0 missing"]


def test_the_runs_page_names_the_runs_and_what_made_them():
    records = [record(run="full_lambda0.3", variant="full"), record(),
               record(dataset="hmdb51", backbone="l14")]
    assert runs_held(records) == {"datasets": ["hmdb51", "ucf101"], "backbones": ["l14", "b16"],
                                  "runs": ["baseline", "full_lambda0.3"]}
    page = runs_html(records, ["config/config.yaml", "my <run>.yaml"],
                     {"allow_demo_models": True}, "/data")
    assert ("This report holds 3 runs: datasets <b>hmdb51, ucf101</b> × backbones "
            "<b>l14, b16</b> × runs <b>baseline, full λ=0.3</b>, data root <code>/data</code>"
            in page)
    assert "<code>my &lt;run&gt;.yaml</code>" in page
    assert "<code>allow_demo_models=True</code>" in page
    assert page.count("<tr>") == 4 and "<td>full λ=0.3</td>" in page


def test_config_files_are_shown_as_given(tmp_path):
    (tmp_path / "config").mkdir()
    inside, outside = tmp_path / "config" / "a.yaml", tmp_path.parent / "b.yaml"
    assert shown_configfiles([inside, outside], tmp_path) == ["config/a.yaml", str(outside)]
