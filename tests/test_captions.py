"""The captions stage with tiny random captioners of two families, built offline, loaded
through the same registry entry -> loader path as real checkpoints; plus the file backend,
cleaning, out-of-memory back-off, crash atomicity and the generic gather script."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from PIL import Image

from zsar.data.caption_files import ID_KEYS, match_imported_captions, read_caption_file
from zsar.data.io import PROVENANCE_KEY, gather_parquet, read_provenance, write_parquet
from zsar.models.batching import AdaptiveBatch, run_in_batches
from zsar.models.caption_inputs import VideoFrames, load_prompt_set
from zsar.models.captioners import (
    BACKENDS,
    VISUAL_INPUTS,
    Captioner,
    TransformersCaptioner,
    load_vlm,
    make_captioner,
)
from zsar.models.registry import get_entry, load_registry
from zsar.models.tiny import TINY_VLM_ARCHS, build_tiny_vlm
from zsar.stages import captions as C
from zsar.stages.frames import decode_jpegs

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts" / "captions-v1.yaml"
REGISTRY = load_registry(ROOT / "config" / "models.yaml")
TINY = {"qwen2_5_vl": "tiny-vlm", "llava_next_video": "tiny-llava-video"}


def jpeg(seed: int, height: int, width: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


# video_id -> (frame count, height, width). Sizes differ so that Qwen's prompts differ in
# length and batching really pads; "c_four" has another frame count than the rest.
GOOD = {
    "a_square.mp4": (8, 64, 64),
    "b_wide.mp4": (8, 64, 128),
    "c_four.mp4": (4, 64, 64),
    "d_small.mp4": (8, 40, 40),
    "e_tall.mp4": (8, 96, 48),
    "f_square.mp4": (8, 64, 64),
}
BROKEN = {"g_noframes.mp4": [], "h_corrupt.mp4": [b"not a jpeg"] * 8}


def frames_rows():
    rows = []
    for n, (vid, (count, h, w)) in enumerate(GOOD.items()):
        rows.append({"video_id": vid, "jpeg": [jpeg(100 * n + i, h, w) for i in range(count)]})
    rows += [{"video_id": vid, "jpeg": jpegs} for vid, jpegs in BROKEN.items()]
    for row in rows:
        k = len(row["jpeg"])
        row.update(frame_indices=list(range(k)), height=64, width=64, num_source_frames=64)
    return sorted(rows, key=lambda r: r["video_id"])


FRAMES_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("jpeg", pa.list_(pa.binary())),
    ("frame_indices", pa.list_(pa.int32())), ("height", pa.int32()), ("width", pa.int32()),
    ("num_source_frames", pa.int32()),
])


@pytest.fixture(scope="module")
def resources(tiny_resources):
    """Both tiny captioners, built from their registry entries as the fetch rule does."""
    return tiny_resources


@pytest.fixture(scope="module")
def frames_shard(tmp_path_factory):
    path = tmp_path_factory.mktemp("frames") / "000-of-001.parquet"
    pq.write_table(pa.Table.from_pylist(frames_rows(), schema=FRAMES_SCHEMA), path)
    return path


def good_videos():
    rows = [r for r in frames_rows() if r["video_id"] in GOOD]
    return [VideoFrames(r["video_id"], r["jpeg"]) for r in rows]


@pytest.mark.slow  # about 25 s on two cores
@pytest.mark.parametrize(
    ("arch", "visual_input"),
    [("qwen2_5_vl", "video"), ("qwen2_5_vl", "images"), ("llava_next_video", "video")],
)
def test_batched_and_one_at_a_time_greedy_captions_are_identical(resources, arch, visual_input):
    entry = {**get_entry(REGISTRY, "captioners", TINY[arch]), "visual_input": visual_input}
    processor, model = load_vlm(entry, resources, "cpu")
    assert model.dtype == torch.float32 and not model.training
    prompts = load_prompt_set(PROMPTS)
    videos = good_videos()

    def captioner(batch_size):
        return TransformersCaptioner(processor, model, prompts, max_new_tokens=12,
                                     batch_size=batch_size, visual_input=visual_input)

    batched = captioner(4).caption(videos)
    single = captioner(1).caption(videos)
    assert batched == single
    assert all(error is None and text for text, error in batched)
    if arch == "qwen2_5_vl":  # the batch really was padded: prompts of different lengths
        key = VISUAL_INPUTS[visual_input]
        lengths = {len(processor(text=[captioner(1)._prompt_text(len(v.jpegs))],
                                 **{key: [decode_jpegs(v.jpegs)]})["input_ids"][0])
                   for v in videos}
        assert len(lengths) > 1


def test_stage_writes_one_row_per_video_less_the_failures(resources, frames_shard, tmp_path):
    entry = get_entry(REGISTRY, "captioners", "tiny-vlm")
    out, failures_out = tmp_path / "caps.parquet", tmp_path / "caps.failures.parquet"
    C.run_caption_stage(frames_shard, out, failures_out, entry, PROMPTS, max_new_tokens=10,
                        batch_size=3, resources=resources, device="cpu")

    captions = pq.read_table(out)
    failures = pq.read_table(failures_out).to_pylist()
    assert captions.schema.names == C.CAPTION_SCHEMA.names
    manifest_ids = sorted(GOOD) + sorted(BROKEN)
    captioned = captions.column("video_id").to_pylist()
    failed = [f["video_id"] for f in failures]
    assert sorted(captioned + failed) == sorted(manifest_ids)  # each video exactly once
    assert captioned == sorted(captioned)  # the shard's order
    reasons = {f["video_id"]: f["reason"] for f in failures}
    assert reasons["g_noframes.mp4"] == "no frames"
    assert reasons["h_corrupt.mp4"].startswith("cannot decode frames")
    assert {f["stage"] for f in failures} == {"captions"}
    assert all(r in ("empty caption", "no frames") or r.startswith("cannot decode")
               for r in reasons.values())

    rows = captions.to_pylist()
    assert all(r["caption"] == C.clean_caption(r["caption"]) and r["caption"] for r in rows)
    assert {r["captioner"] for r in rows} == {"tiny-vlm"}
    assert {r["prompt_version"] for r in rows} == {"captions-v1"}
    params = json.loads(rows[0]["generation_params"])
    assert params["max_new_tokens"] == 10 and params["decoding"] == "greedy"
    assert "batch_size" not in params  # batching does not change the output
    block = read_provenance(out)
    assert block["model"] == "tiny-vlm" and block["prompt_version"] == "captions-v1"

    # Same inputs, another batch size: byte-identical captions.
    again = tmp_path / "again.parquet"
    C.run_caption_stage(frames_shard, again, tmp_path / "again.failures.parquet", entry,
                        PROMPTS, max_new_tokens=10, batch_size=8, resources=resources,
                        device="cpu")
    assert pq.read_table(again).equals(captions)


def test_tiny_build_is_deterministic(resources, tmp_path):
    spec = get_entry(REGISTRY, "captioners", "tiny-vlm")["build"]
    build_tiny_vlm(spec, tmp_path / "copy")
    for name in ("model.safetensors", "tokenizer.json", "chat_template.jinja"):
        original = resources / "models" / "tiny-vlm" / name
        assert (tmp_path / "copy" / name).read_bytes() == original.read_bytes()


def test_registry_entries_name_known_backends_and_families():
    entries = REGISTRY["captioners"]
    assert {"tiny-vlm", "qwen2.5-vl-7b", "llava-next-video-7b", "smolvlm2-2.2b"} <= set(entries)
    families = set()
    for name, entry in entries.items():
        assert entry["backend"] in BACKENDS, name
        if "build" in entry:
            assert entry["build"]["family"] == "vlm"
            families.add(entry["build"]["arch"])
        elif entry["backend"] == "transformers":
            assert "/" in entry["hf_repo"], name
    assert families == set(TINY_VLM_ARCHS) and len(families) >= 2
    with pytest.raises(ValueError, match="unknown backend"):
        make_captioner({"name": "x", "backend": "nope"}, "r", "cpu", None, 8, 1)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  A man rides a bike.  ", "A man rides a bike."),
        ("assistant:\nA man  rides\n a bike.<|im_end|>", "A man rides a bike."),
        ("<|im_start|>assistant\nA dog runs.</s>", "A dog runs."),
        ("ASSISTANT: A dog runs.\nUser: and now?", "A dog runs."),
        ("A\x07 cat\ufffd sits.<end_of_utterance>", "A cat sits."),
        ("<|im_end|>   \n", ""),
        (None, ""),
    ],
)
def test_clean_caption(raw, clean):
    assert C.clean_caption(raw) == clean


def test_clean_caption_caps_length_at_a_word_boundary():
    text = " ".join(["word"] * 200)
    capped = C.clean_caption(text)
    assert len(capped) <= C.MAX_CAPTION_CHARS
    assert capped.endswith("word") and text.startswith(capped)


def test_out_of_memory_halves_the_batch_and_a_bad_video_fails_alone():
    sizes = []

    def run(chunk):
        sizes.append(len(chunk))
        if len(chunk) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        if "bad" in chunk:
            raise ValueError("broken input")
        return [(f"caption {x}", None) for x in chunk]

    logged = []
    batch = AdaptiveBatch(8)
    items = ["v0", "v1", "bad", "v3", "v4"]
    outcomes = run_in_batches(items, run, batch, log=logged.append)
    assert batch.size == 2  # kept for later batches
    assert [o[0] for o in outcomes] == ["caption v0", "caption v1", None, "caption v3",
                                        "caption v4"]
    assert outcomes[2][1] == "ValueError: broken input"
    assert any("out of memory at batch size 5" in m for m in logged)
    assert sizes[:3] == [5, 2, 2]  # halved (5 -> 2), then the failing pair split

    always_oom = run_in_batches(["x"], lambda c: (_ for _ in ()).throw(
        torch.OutOfMemoryError("out of memory")), AdaptiveBatch(1), log=logged.append)
    assert always_oom == [(None, "out of memory at batch size 1")]


class _CrashingCaptioner(Captioner):
    prompt_version = "v"
    generation_params = {}

    def __init__(self):
        self.calls = 0

    def caption(self, videos):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("node died")
        return [("a caption", None) for _ in videos]


def test_a_crash_mid_shard_leaves_no_output(frames_shard, tmp_path):
    out, failures_out = tmp_path / "c.parquet", tmp_path / "c.failures.parquet"
    with pytest.raises(RuntimeError, match="node died"):
        C.caption_shard(frames_shard, out, failures_out, _CrashingCaptioner(), "x", 2, {})
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary left behind


# --- file backend --------------------------------------------------------------------------

SHARD_IDS = ["val/a.mp4", "val/b.mp4", "val/c.mp4", "val/d.mp4"]


def ids_shard(tmp_path):
    path = tmp_path / "frames.parquet"
    rows = [{"video_id": v, "jpeg": []} for v in SHARD_IDS]
    schema = pa.schema([("video_id", pa.string()), ("jpeg", pa.list_(pa.binary()))])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def write_caption_file(tmp_path, suffix, mapping):
    path = tmp_path / f"captions{suffix}"
    if suffix == ".csv":
        lines = ["video_id,caption"] + [f'{k},"{v}"' for k, v in mapping.items()]
        path.write_text("\n".join(lines) + "\n")
    elif suffix == ".json":
        path.write_text(json.dumps(mapping))
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps({"video_id": k, "caption": v}) + "\n"
                                for k, v in mapping.items()))
    else:
        table = pa.table({"video_id": list(mapping), "caption": list(mapping.values())})
        pq.write_table(table, path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_file_backend_counts_and_reports_missing_and_unknown_ids(tmp_path, suffix, caplog):
    mapping = {
        "val/a.mp4": "A man, rides a bike.",
        "val/b.mp4": "  <|im_end|> ",  # empty once cleaned
        "val/d.mp4": "A woman swims.",
        "val/zzz.mp4": "Not in the dataset.",
        "other.mp4": "Also unknown.",
    }
    source = write_caption_file(tmp_path, suffix, mapping)
    entry = {"name": "imported", "backend": "file", "path": str(source)}
    out, failures_out = tmp_path / "out.parquet", tmp_path / "out.failures.parquet"
    with caplog.at_level(logging.INFO, logger="zsar.models.captioners"):
        C.run_caption_stage(ids_shard(tmp_path), out, failures_out, entry, PROMPTS, 16, 2,
                            tmp_path, "cpu")
    rows = pq.read_table(out).to_pylist()
    assert [(r["video_id"], r["caption"]) for r in rows] == [
        ("val/a.mp4", "A man, rides a bike."), ("val/d.mp4", "A woman swims.")]
    assert rows[0]["prompt_version"] == "external"
    failures = {f["video_id"]: f["reason"] for f in pq.read_table(failures_out).to_pylist()}
    assert failures == {"val/b.mp4": "empty caption",
                        "val/c.mp4": "no caption for this video in the caption file"}
    report = " ".join(r.getMessage() for r in caplog.records)
    assert "3 of 4 videos matched; 1 missing" in report
    assert "2 ids in the file matched no video" in report


def test_file_backend_matches_by_stem_and_rejects_bad_files(tmp_path):
    captions = {"a": "x one", "b": "x two", "q": "x three"}
    outcomes, report = match_imported_captions(SHARD_IDS, captions, ID_KEYS["stem"])
    assert outcomes[:2] == [("x one", None), ("x two", None)]
    assert report.missing == ["val/c.mp4", "val/d.mp4"] and report.unused == ["q"]
    duplicate = tmp_path / "dup.csv"
    duplicate.write_text("video_id,caption\na,x\na,y\n")
    with pytest.raises(ValueError, match="more than once"):
        read_caption_file(duplicate)
    wrong_columns = tmp_path / "cols.csv"
    wrong_columns.write_text("id,text\na,x\n")
    with pytest.raises(ValueError, match="missing column"):
        read_caption_file(wrong_columns)
    with pytest.raises(ValueError, match="unsupported"):
        read_caption_file(tmp_path / "captions.txt")


# --- gathering shards ------------------------------------------------------------------------


def test_gather_concatenates_shards_in_order_and_keeps_provenance(tmp_path):
    shards = []
    for i, ids in enumerate([["b", "a"], [], ["c"]]):
        path = tmp_path / f"{i:03d}-of-003.parquet"
        table = pa.table({"video_id": pa.array(ids, pa.string()),
                          "vector": pa.array([[float(i)]] * len(ids), pa.list_(pa.float32()))})
        write_parquet(table, path, provenance={"model": "m", "shard": i})
        shards.append(path)
    out = tmp_path / "all.parquet"
    assert gather_parquet(shards, out) == 3
    table = pq.read_table(out)
    assert table.column("video_id").to_pylist() == ["b", "a", "c"]
    assert read_provenance(out) == {"model": "m", "shard": 0}
    assert PROVENANCE_KEY in pq.read_schema(out).metadata
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_prompt_set_is_versioned():
    data = yaml.safe_load(PROMPTS.read_text())
    prompts = load_prompt_set(PROMPTS)
    assert prompts.version == data["version"] == PROMPTS.stem
    assert "who" in prompts.prompt and "where" in prompts.prompt
