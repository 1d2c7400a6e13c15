"""The caption `file` backend on caption files published elsewhere: Kinetics clip ids in
their several spellings, the `videos=N matched=M` log line, and the stop on a wrong file."""

from __future__ import annotations

import codecs
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsar.data.adapters import kinetics_clip_key, kinetics_clip_name
from zsar.models.captioners import FileCaptioner
from zsar.stages import captions as C

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts" / "captions-v1.yaml"

# As the Kinetics adapters write them: zero-padded, with an extension, maybe in a folder.
SHARD_IDS = [
    "val/" + kinetics_clip_name("abc123XYZ_-", 10, 20),
    kinetics_clip_name("under_sc0re", 0, 10),
    "val/" + kinetics_clip_name("-dash_1_2", 125, 135),
    kinetics_clip_name("qqqqqqqqqqq", 3, 13),
]


def ids_shard(tmp_path: Path, ids=SHARD_IDS) -> Path:
    path = tmp_path / "frames.parquet"
    schema = pa.schema([("video_id", pa.string()), ("jpeg", pa.list_(pa.binary()))])
    pq.write_table(pa.Table.from_pylist([{"video_id": v, "jpeg": []} for v in ids],
                                        schema=schema), path)
    return path


@pytest.mark.parametrize(
    "spelling",
    ["abc123XYZ_-_000010_000020.mp4", "abc123XYZ_-_10_20", "val/abc123XYZ_-_10_20.mp4",
     "abc123XYZ_-_000010_000020", "abc123XYZ_-_10.0_20.0", "train\\abc123XYZ_-_10_20.MKV"],
)
def test_kinetics_spellings_share_one_key(spelling):
    assert kinetics_clip_key(spelling) == "abc123XYZ_-_10_20"


def test_ids_that_are_not_kinetics_clips_keep_their_file_name():
    assert kinetics_clip_key("val/v_YoYo_g01_c01.avi") == "v_YoYo_g01_c01"
    assert kinetics_clip_key("clip_7") == "clip_7"
    # A YouTube id ending in digits: the two numbers are always the last two fields.
    assert kinetics_clip_key("a_1_2_000003_000004.mp4") == "a_1_2_3_4"


def run_file_captioner(tmp_path, source, **entry):
    out, failures = tmp_path / "captions.parquet", tmp_path / "captions.failures.parquet"
    entry = {"name": "published", "backend": "file", "path": str(source), **entry}
    C.run_caption_stage(ids_shard(tmp_path), out, failures, entry, PROMPTS, 16, 2, tmp_path,
                        "cpu")
    return out, failures


def test_published_kinetics_ids_in_several_spellings_all_match(tmp_path, caplog):
    # How a published caption file might spell the same clips: unpadded, with or without an
    # extension, and a BOM from the spreadsheet it was saved from.
    rows = [("abc123XYZ_-_10_20", "A man abseils down a cliff."),
            ("under_sc0re_000000_000010.mp4", "Two people play a drum."),
            ("-dash_1_2_125_135.mp4", "A child rides a bike."),
            ("someone_else_1_2", "Not a clip of this shard.")]
    text = "video_id,caption\n" + "".join(f'{i},"{c}"\n' for i, c in rows)
    source = tmp_path / "published.csv"
    source.write_bytes(codecs.BOM_UTF8 + text.encode())
    with caplog.at_level(logging.INFO, logger="zsar.models.captioners"):
        out, failures = run_file_captioner(tmp_path, source, match="kinetics")
    captions = {r["video_id"]: r["caption"] for r in pq.read_table(out).to_pylist()}
    assert captions == {SHARD_IDS[0]: "A man abseils down a cliff.",
                        SHARD_IDS[1]: "Two people play a drum.",
                        SHARD_IDS[2]: "A child rides a bike."}
    assert [r["video_id"] for r in pq.read_table(failures).to_pylist()] == [SHARD_IDS[3]]
    assert "videos=4 matched=3" in caplog.text


def test_by_video_id_the_same_file_matches_nothing_and_stops_the_job(tmp_path):
    source = tmp_path / "published.json"
    source.write_text(json.dumps({"abc123XYZ_-_10_20": "A man abseils.",
                                  "under_sc0re_0_10": "A drum."}))
    with pytest.raises(ValueError) as err:
        run_file_captioner(tmp_path, source)  # match: video_id, the default
    message = str(err.value)
    assert str(source) in message
    assert "matches 0 of 4 videos (0%), less than min_match 50%" in message
    assert "wrong file" in message
    assert not (tmp_path / "captions.parquet").exists()  # no output: the job failed


def test_min_match_is_configurable(tmp_path, caplog):
    source = tmp_path / "one.json"
    source.write_text(json.dumps({"qqqqqqqqqqq_3_13": "A dog runs."}))
    with pytest.raises(ValueError, match="matches 1 of 4 videos"):
        run_file_captioner(tmp_path, source, match="kinetics")
    with caplog.at_level(logging.INFO, logger="zsar.models.captioners"):
        out, _ = run_file_captioner(tmp_path, source, match="kinetics", min_match=0.25)
    assert pq.read_table(out).num_rows == 1
    assert "videos=4 matched=1" in caplog.text
    with pytest.raises(ValueError, match="min_match must be in"):
        FileCaptioner({"name": "x", "path": str(source), "min_match": 50})


def test_two_ids_of_one_clip_in_a_file_are_an_error(tmp_path):
    source = tmp_path / "dup.json"
    source.write_text(json.dumps({"abc_10_20": "one", "abc_000010_000020.mp4": "two"}))
    with pytest.raises(ValueError, match="are the same video"):
        FileCaptioner({"name": "x", "path": str(source), "match": "kinetics"})
