"""Report figures and pages from small hand-made records."""

import base64
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsar.commands import report
from zsar.data.io import write_json
from zsar.stages.explain import explanations_schema

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics_record(dataset, backbone, run, top1, *, variant=None, lam=None, splits=1, fb=0):
    return {
        "dataset": dataset, "backbone": backbone, "run": run, "variant": variant or run,
        "fusion": "embedding", "lambda": lam, "descriptor_fallbacks": fb,
        "splits": {str(s + 1): {} for s in range(splits)},
        "mean": {"top1": top1, "top5": min(1.0, top1 + 0.2), "mean_class": top1 - 0.01},
        "std": {"top1": 0.02 if splits > 1 else 0.0, "top5": 0.0, "mean_class": 0.0},
        "counts": {"videos": 10, "evaluated": 9, "failed": 1, "missing": 0, "excluded": 1},
        "provenance": {"git_commit": "abc123", "config_hash": "h", "model": backbone,
                       "llm": "curated", "zsar_version": "0.1",
                       "chain": {"frames": {"num_frames": 8},
                                 "backbone": {"name": backbone, "backend": "open_clip"}}},
    }  # fmt: skip


def test_primary_run_prefers_full_then_the_last_run():
    assert report.primary_run(["baseline", "full"], [0.3]) == "full"
    runs = ["baseline", "+caption_lambda0.3", "full_lambda0.3", "full_lambda0.5"]
    assert report.primary_run(runs, [0.3, 0.5]) == "full_lambda0.3"
    assert report.primary_run(["baseline", "+hierarchy"], [0.3]) == "+hierarchy"
    with pytest.raises(ValueError):
        report.primary_run([], [0.3])


def test_most_confused_keeps_the_classes_involved_in_errors():
    labels = list("abcde")
    true = list("aabbccddee") + ["a", "e"]
    pred = list("aabbccddee") + ["d", "c"]
    matrix = report.confusion_matrix(true, pred, labels)
    assert matrix.sum() == 12 and matrix[0, 3] == 1 and matrix[4, 2] == 1
    assert report.most_confused(matrix, 4) == [0, 2, 3, 4]  # b made and drew no error
    assert report.most_confused(matrix, 10) == [0, 1, 2, 3, 4]


def test_per_class_accuracy_sorted_worst_first_and_trimmed():
    rows = report.per_class_accuracy(["x", "x", "y", "z"], [True, False, True, False],
                                     ["x", "y", "z", "unused"])
    assert rows == [("z", 0.0, 1), ("x", 0.5, 2), ("y", 1.0, 1)]
    many = [(f"c{i:02d}", i / 100, 1) for i in range(100)]
    kept, hidden = report.trim_per_class(many, 10)
    assert hidden == 90 and [r[0] for r in kept] == [f"c{i:02d}" for i in [*range(5),
                                                                          *range(95, 100)]]


def test_sample_is_deterministic_and_split_by_correctness():
    rows = [{"split": 1, "video_id": f"v{i:02d}", "correct": i % 3 == 0} for i in range(30)]
    a = report.sample_explanations(rows, 4, seed=0)
    b = report.sample_explanations(list(reversed(rows)), 4, seed=0)
    assert a == b
    assert len(a["correct"]) == 4 and all(r["correct"] for r in a["correct"])
    assert len(a["wrong"]) == 4 and not any(r["correct"] for r in a["wrong"])
    assert a["correct"] == sorted(a["correct"], key=lambda r: r["video_id"])
    assert report.sample_explanations(rows, 4, seed=1) != a
    assert len(report.sample_explanations(rows[:2], 5, seed=0)["wrong"]) == 1


def _scores_and_classes(tmp_path, num_classes=30, videos_per_class=3):
    rng = np.random.default_rng(0)
    classes = [{"split": 1, "class_id": i, "name": f"class{i:02d}", "display_name": f"c {i}"}
               for i in range(num_classes)]
    rows = []
    for c in range(num_classes):
        for k in range(videos_per_class):
            pred = c if rng.random() < 0.5 else int(rng.integers(num_classes))
            rows.append({"split": 1, "video_id": f"v{c}_{k}", "true_class": c,
                         "predicted_class": pred, "correct": pred == c, "status": "evaluated"})
    rows.append({"split": 1, "video_id": "lost", "true_class": 0, "predicted_class": -1,
                 "correct": False, "status": "failed"})
    pq.write_table(pa.Table.from_pylist(classes), tmp_path / "classes.parquet")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "scores.parquet")
    return tmp_path / "scores.parquet", tmp_path / "classes.parquet"


def test_class_plots_are_written_as_stable_pngs(tmp_path):
    scores, classes = _scores_and_classes(tmp_path)
    outputs = []
    for attempt in range(2):
        paths = (tmp_path / f"confusion{attempt}.png", tmp_path / f"per_class{attempt}.png")
        report.run_class_plots_stage(
            str(scores), str(classes), confusion_path=str(paths[0]),
            per_class_path=str(paths[1]), title="demo / tiny / full", max_classes=8,
        )
        outputs.append([p.read_bytes() for p in paths])
    for data in outputs[0]:
        assert data.startswith(PNG_MAGIC) and b"Software" not in data and len(data) > 5000
    assert outputs[0] == outputs[1]  # same inputs, same bytes


def test_confusion_figure_shows_only_the_most_confused(tmp_path):
    from PIL import Image

    scores, classes = _scores_and_classes(tmp_path)
    sizes = {}
    for limit in (5, 30):
        out = tmp_path / f"c{limit}.png"
        report.run_class_plots_stage(str(scores), str(classes), confusion_path=str(out),
                                     per_class_path=str(tmp_path / "p.png"), title="t",
                                     max_classes=limit)
        sizes[limit] = Image.open(out).size
    assert sizes[5][0] < sizes[30][0] and sizes[5][1] < sizes[30][1]


def test_ablation_plot_and_tables_page(tmp_path):
    records = [
        metrics_record("demo", "tiny", "baseline", 0.40, fb=2),
        metrics_record("demo", "tiny", "full", 0.55, fb=2),
        metrics_record("demo", "big", "baseline", 0.60, fb=2, splits=3),
        metrics_record("demo", "big", "full", 0.58, fb=2, splits=3),
    ]
    paths = []
    for i, rec in enumerate(records):
        write_json(rec, tmp_path / f"m{i}.json")
        paths.append(str(tmp_path / f"m{i}.json"))
    report.run_ablation_plot_stage(paths, str(tmp_path / "ablation.png"), dataset="demo")
    assert (tmp_path / "ablation.png").read_bytes().startswith(PNG_MAGIC)

    header, pivot = report.ablation_pivot(records)
    assert header == ["dataset", "backbone", "baseline", "full"]
    assert pivot == [["demo", "big", "60.0 ± 2.0", "58.0 ± 2.0 (-2.0)"],
                     ["demo", "tiny", "40.0", "55.0 (+15.0)"]]
    report.run_tables_html_stage(paths, str(tmp_path / "tables.html"))
    page = (tmp_path / "tables.html").read_text()
    assert "55.0 (+15.0)" in page and "descriptor fallbacks" in page and "abc123" in page
    assert page.count("<tr>") == 1 + 2 + 1 + 4  # pivot header+rows, table header+rows


def _explanation(video_id, correct, caption="a <b>bar</b> spins"):
    return {
        "split": 1, "video_id": video_id, "true_class": "rotating", "correct": correct,
        "predicted": "rotating" if correct else "sliding", "predicted_score": 0.31,
        "runner_up": "sliding" if correct else "rotating", "runner_up_score": 0.27,
        "caption": caption,
        "predicted_descriptors": [{"kind": "attribute", "text": "a thin bar", "similarity": 0.4}],
        "runner_up_descriptors": [], "hierarchy": ["motion", "turning", "rotating"],
        "runner_up_hierarchy": [], "similarity_to": "video",
        "sentence": f"Predicted something for {video_id}.",
    }  # fmt: skip


def test_explanation_pages_with_thumbnails(tmp_path):
    from PIL import Image

    rows = [_explanation(f"v{i}", i % 2 == 0) for i in range(9)]
    pq.write_table(pa.Table.from_pylist(rows, schema=explanations_schema()),
                   tmp_path / "expl.parquet")
    jpegs = []
    for shade in (10, 128, 250):  # the middle one is the thumbnail
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (shade, shade, shade)).save(buf, format="JPEG")
        jpegs.append(buf.getvalue())
    pq.write_table(pa.Table.from_pylist([{"video_id": f"v{i}", "jpeg": jpegs} for i in range(9)]),
                   tmp_path / "frames.parquet")
    out = {g: str(tmp_path / f"{g}.html") for g in ("correct", "wrong")}
    report.run_explanation_pages_stage(str(tmp_path / "expl.parquet"),
                                       [str(tmp_path / "frames.parquet")], out,
                                       title="demo / tiny / full", per_group=3, seed=0)
    correct = (tmp_path / "correct.html").read_text()
    wrong = (tmp_path / "wrong.html").read_text()
    assert "3 of 5 predictions" in correct and "3 of 4 predictions" in wrong
    assert correct.count('class="card correct"') == 3 and wrong.count('class="card wrong"') == 3
    assert base64.b64encode(jpegs[1]).decode() in correct
    assert "a &lt;b&gt;bar&lt;/b&gt; spins" in correct and "<b>bar</b>" not in correct
    assert "motion → turning → rotating" in wrong and "a thin bar" in wrong


def test_summary_page_lists_fallbacks_and_failures(tmp_path):
    records = [metrics_record("demo", "tiny", "full", 0.5, fb=1)]
    write_json(records[0], tmp_path / "m.json")
    write_json({"llm": "curated", "classes": {
        "Spin": {"fallback": True, "reason": "LLM answer was not JSON"},
        "Roll": {"fallback": False, "reason": None}}}, tmp_path / "d.json")
    pq.write_table(pa.Table.from_pylist(
        [{"video_id": "bad.mp4", "stage": "frames", "reason": "moov atom not found"}]),
        tmp_path / "failures.parquet")
    report.run_summary_stage([str(tmp_path / "m.json")], str(tmp_path / "d.json"),
                             str(tmp_path / "failures.parquet"), str(tmp_path / "s.html"),
                             dataset="demo")
    page = (tmp_path / "s.html").read_text()
    assert "<b>1</b> of 2 classes fell back" in page and "LLM answer was not JSON" in page
    assert "moov atom not found" in page and "bad.mp4" in page


def test_pages_escape_text():
    page = report.html_page("t", report.html_table(["a"], [["<script>x</script>"]]))
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page


@pytest.mark.slow
def test_report_targets_are_scheduled_by_the_workflow(tmp_path):
    """A dry run with a λ sweep schedules every report target: explanations for each run,
    and the pages of the `full` run at the sweep's first λ."""
    import re

    from helpers.workflow import copy_workflow, snakemake

    from zsar.pipeline.plan import variant_runs

    work = copy_workflow(tmp_path / "wf")
    (work / "sweep.yaml").write_text("scoring:\n  lambda: [0.3, 0.5]\n")
    runs = variant_runs(["baseline", "+descriptors", "+hierarchy", "+caption", "full"],
                        [0.3, 0.5])
    result = snakemake(work, "-n", "--quiet", "rules", "--configfile", "config/config.yaml",
                       "sweep.yaml", timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.M))
    assert counts["explain"] == str(len(runs)) == "7"
    for rule in ("report_tables_html", "report_ablation", "report_summary",
                 "report_class_plots", "report_explanations", "compare", "report_class_gains"):
        assert counts[rule] == "1", rule
    plan = snakemake(work, "-n", "--configfile", "config/config.yaml", "sweep.yaml",
                     "--", "results/report/demo/tiny-clip/confusion.png", timeout=300)
    assert "results/demo/scores/tiny-clip/full_lambda0.3.parquet" in plan.stdout


def test_ablation_error_bars_are_the_records_intervals():
    with_ci = metrics_record("demo", "tiny", "full", 0.55)
    with_ci["ci"] = {"top1": [0.40, 0.70], "top5": [0.6, 0.9], "mean_class": [0.5, 0.56]}
    without = metrics_record("demo", "tiny", "baseline", 0.40)  # made before intervals
    bars = report.error_bars([without, with_ci, None], "top1")
    assert bars.shape == (2, 3)
    assert bars[:, 0].tolist() == [0, 0] and bars[:, 2].tolist() == [0, 0]
    assert bars[:, 1] == pytest.approx([15.0, 15.0])
    assert report.error_bars([without], "top1") is None
    with_ci["provenance"]["statistics"] = {"level": 0.9}
    fig = report.plot_ablation([without, with_ci], "demo")
    assert "error bars: 90% bootstrap intervals" in fig._suptitle.get_text()


def gain_rows(b, gains):
    """zsar.stages.compare's per-class gains rows of b against baseline, one per (class, points)."""
    rows = [{"a": "baseline", "b": b, "class": name, "videos": 4, "correct_a": 2,
             "correct_b": 2 + round(points / 25), "gain_points": float(points),
             "gained": max(0, round(points / 25)), "lost": max(0, -round(points / 25))}
            for name, points in gains]
    return sorted(rows, key=lambda r: (-r["gain_points"], r["class"]))


def test_class_gains_page_shows_the_largest_changes_per_run():
    rows = [*gain_rows("+caption", [("jump", 50), ("run", 25), ("swim", 0), ("walk", -50)]),
            *gain_rows("full_lambda0.3", [("jump", 0), ("run", 0)])]
    page = report.class_gains_html(rows, "demo: gains", limit=1)
    caption = page.split("<h2>+caption against baseline</h2>")[1].split("<h2>")[0]
    assert "4 classes: 2 gain, 1 lose, 1 unchanged; 3 videos newly right, 2 newly wrong" in caption
    gains, losses = caption.split("Classes that lose most")
    assert "jump" in gains and "run" not in gains  # limit 1: the largest gain only
    assert "walk" in losses and "-50.0" in losses and "right under +caption" in losses
    assert "<h2>full λ=0.3 against baseline</h2>" in page and "None." in page
    assert "No run to compare" in report.class_gains_html([], "t")


def test_tables_page_shows_marks_and_the_paired_comparisons(tmp_path):
    base = metrics_record("demo", "tiny", "baseline", 0.40)
    full = metrics_record("demo", "tiny", "full", 0.55)
    full["provenance"] = {**full["provenance"], "config_hash": "h-full"}
    compared = {
        "dataset": "demo", "backbone": "tiny", "pairs": [["baseline", "full"]],
        "runs": {"baseline": {"config_hash": "h"}, "full": {"config_hash": "h-full"}},
        "settings": {"resamples": 1000, "seed": 0, "level": 0.95, "alpha": 0.05},
        "top1": [{"a": "baseline", "b": "full", "difference": 0.15, "ci_low": 0.05,
                  "ci_high": 0.25, "videos": 10, "only_a": 0, "only_b": 9, "mcnemar_p": 0.004,
                  "mcnemar_p_holm": 0.004, "significant": True}],
    }  # fmt: skip
    paths = []
    for i, item in enumerate((base, full, compared)):
        paths.append(str(tmp_path / f"{i}.json"))
        write_json(item, paths[-1])
    report.run_tables_html_stage(paths[:2], str(tmp_path / "t.html"),
                                 comparisons_paths=paths[2:])
    page = (tmp_path / "t.html").read_text()
    assert "55.0 (+15.0 [+5.0, +25.0])†" in page and "marks a significant gain" in page
    assert "Paired comparisons: top-1" in page and "full − baseline" in page
