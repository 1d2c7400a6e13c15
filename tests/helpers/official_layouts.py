"""UCF101 and HMDB51 laid out as their official archives unpack, with the real lists from
../shared/benchmark-lists and a few tiny generated clips; and a local mirror of ViFi-CLIP's
lists served over HTTP (for `zsar fetch-lists`).

    official_ucf101(data_root)  ->  data_root/ucf101/UCF-101/<Class>/v_*.avi
                                    data_root/ucf101/ucfTrainTestlist/classInd.txt,
                                        testlist0{1,2,3}.txt, trainlist01.txt
    official_hmdb51(data_root)  ->  data_root/hmdb51/<class>/*.avi
                                    data_root/hmdb51/testTrainMulti_7030_splits/
                                        <class>_test_split{1,2,3}.txt

What ../shared holds of the official files is copied as it is (testlist01.txt,
trainlist01.txt). What it lacks is written from the lists it has, which name the same
videos: classInd.txt from mmaction2's UCF101 map (classInd order, 1-based); testlist02/03
from ViFi-CLIP's val2/val3 (its lists are the official test lists with 0-based labels);
HMDB51's per-class split files from ViFi-CLIP's three test lists (flag 2 = a test video of
that split, 1 = a test video of another split, which is a training video of this one).
Only the clips of `classes` classes per split are generated; the rest of each list is
missing on disk, as in a partial download.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from helpers.workflow import BENCHMARK_LISTS, REPO

SPLITS = (1, 2, 3)
VIFI_SPLITS = BENCHMARK_LISTS / "vificlip-splits"
VIFI_LABELS = BENCHMARK_LISTS / "vificlip-labels"


@dataclass(frozen=True)
class Layout:
    data_root: Path
    # split -> the listed videos a clip was generated for (paths relative to the videos' root)
    clips: dict[int, list[str]]


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def write_clip(path: Path, seed: int, frames: int = 16, width: int = 64, height: int = 48) -> None:
    """A tiny MPEG-4 Part 2 AVI (the codec family of UCF101's XviD files): a square sliding
    on a plain background, different for each seed."""
    import imageio_ffmpeg

    from zsar.data.demo import paint_sliding

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    raw = b"".join(f.tobytes() for f in paint_sliding(rng, frames, height, width))
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
               "-nostdin", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", "25", "-i", "-", "-an", "-c:v", "mpeg4",
               "-q:v", "5", "-threads", "1", "-fflags", "+bitexact", "-f", "avi", str(path)]
    subprocess.run(command, input=raw, check=True, capture_output=True)


def _pick(videos: list[tuple[str, int]], classes: int) -> list[tuple[str, int]]:
    """The first video of each of the first `classes` classes of a list."""
    first: dict[int, tuple[str, int]] = {}
    for video, label in videos:
        if label not in first and len(first) < classes:
            first[label] = (video, label)
    return list(first.values())


def _vifi_rows(name: str) -> list[tuple[str, int]]:
    return [(v, int(label)) for v, label in (line.split() for line in _lines(VIFI_SPLITS / name))]


def _make_clips(videos_root: Path, picked: list[str], seed: int) -> None:
    for number, video in enumerate(picked):
        write_clip(videos_root / video, seed=seed * 1000 + number)


def official_ucf101(data_root: Path, classes: int = 2) -> Layout:
    root = data_root / "ucf101"
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    names = _lines(BENCHMARK_LISTS / "mmaction2-label-maps" / "ucf101_label_map.txt")
    (lists / "classInd.txt").write_bytes(
        "".join(f"{i} {name}\r\n" for i, name in enumerate(names, 1)).encode()
    )
    for name in ("testlist01.txt", "trainlist01.txt"):
        shutil.copyfile(BENCHMARK_LISTS / "ucf101-official" / name, lists / name)
    clips = {}
    for split in SPLITS:
        rows = _vifi_rows(f"ucf_splits_val{split}.txt")
        # The class folder is classInd's spelling (HandstandPushups/v_HandStandPushups_…).
        listed = [(f"{names[label]}/{video}", label) for video, label in rows]
        if split != 1:
            (lists / f"testlist0{split}.txt").write_bytes(
                "".join(f"{video}\r\n" for video, _ in listed).encode()
            )
        clips[split] = [video for video, _ in _pick(listed, classes)]
        _make_clips(root / "UCF-101", clips[split], seed=split)
    return Layout(data_root, clips)


def official_hmdb51(data_root: Path, classes: int = 2) -> Layout:
    root = data_root / "hmdb51"
    lists = root / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True, exist_ok=True)
    names = _lines(BENCHMARK_LISTS / "mmaction2-label-maps" / "hmdb51_label_map.txt")
    tests = {split: _vifi_rows(f"hmdb_splits_val{split}.txt") for split in SPLITS}
    every = sorted({row for rows in tests.values() for row in rows})
    clips = {}
    for split in SPLITS:
        in_test = set(tests[split])
        for class_id, name in enumerate(names):
            rows = [f"{video} {2 if (video, label) in in_test else 1} \r\n"
                    for video, label in every if label == class_id]
            (lists / f"{name}_test_split{split}.txt").write_bytes("".join(rows).encode())
        picked = _pick(tests[split], classes)
        clips[split] = [f"{names[label]}/{video}" for video, label in picked]
        _make_clips(root, clips[split], seed=10 + split)
    return Layout(data_root, clips)


# ---------------------------------------------------------------------------------------
# ViFi-CLIP's lists, served as the repository holds them


def _shared_copy(source: str) -> Path:
    """The ../shared copy of a file of ViFi-CLIP's repository (SOURCES.md names them)."""
    if source.startswith("labels/"):
        return VIFI_LABELS / source.removeprefix("labels/")
    folder, name = source.removeprefix("datasets_splits/").split("/")
    return VIFI_SPLITS / f"{folder}_{name}"


def vificlip_mirror(dest: Path) -> Path:
    """The files `zsar fetch-lists` downloads, at their paths in ViFi-CLIP's repository."""
    registry = yaml.safe_load((REPO / "src/zsar/data/vificlip_lists.yaml").read_text())
    for files in registry["datasets"].values():
        for entry in files.values():
            target = dest / entry["source"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_shared_copy(entry["source"]), target)
    return dest


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test's output clean
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """An HTTP server on localhost serving `folder`, in a thread; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
