"""Frame sampling against its upstream: the stride rule against Open-VCLIP's test loader as
its source writes it (wengzejia1/Open-VCLIP @ 047a817, slowfast/datasets/decoder.py:
get_multiple_start_end_idx with use_offset=True, then temporal_sampling's
torch.linspace/clamp/long), and both rules on real frames whose pixels carry their index."""

from __future__ import annotations

import math
import random

import pytest
import torch
from helpers.format_corpus import CORPUS, make_clip, read_index

from zsar.stages.frames import Sampling, decode_video, sample_frame_indices, stride_frame_indices


def open_vclip_indices(length, fps, num_frames, sampling_rate, clips, target_fps=30):
    """Open-VCLIP's test-time frame indices of a fully decoded video, step for step as
    decoder.py computes them (DATA.TARGET_FPS = 30, TEST.NUM_ENSEMBLE_VIEWS = clips)."""
    clip_size = max(1.0, sampling_rate * num_frames / target_fps * fps)
    indices = []
    for clip_idx in range(clips):
        max_start = max(length - clip_size, 0)
        if clips == 1:
            start_idx = math.floor(max_start / 2)
        else:
            start_idx = clip_idx * math.floor(max_start / (clips - 1))
        end_idx = start_idx + clip_size - 1
        index = torch.linspace(start_idx, end_idx, num_frames)
        indices += torch.clamp(index, 0, length - 1).long().tolist()
    return indices


def test_the_stride_rule_is_open_vclips_on_every_drawn_case():
    rng = random.Random(0)
    for _ in range(5000):
        length = rng.randint(1, 4000)
        fps = rng.choice([12.5, 15, 24, 25, 29.97, 30, 50, 60, rng.uniform(5, 90)])
        n, rate, clips = rng.choice([1, 2, 8, 16, 32]), rng.choice([1, 4, 8, 16]), rng.randint(1, 5)
        assert stride_frame_indices(length, fps, n, rate, clips) == open_vclip_indices(
            length, fps, n, rate, clips
        ), (length, fps, n, rate, clips)


def test_froster_frozen_clip_views_on_a_ten_second_clip():
    # 8 frames at stride 16 from 3 offsets, a 300-frame 30 fps video: 128-frame clips
    # starting at 0, 86 and 172.
    indices = Sampling("stride", num_frames=8, clips=3, stride=16).indices(300, 30.0)
    assert indices == open_vclip_indices(300, 30.0, 8, 16, 3)
    assert [indices[0], indices[8], indices[16]] == [0, 86, 172]
    assert len(indices) == 24


def test_a_video_without_a_rate_is_taken_at_thirty_frames_a_second():
    assert stride_frame_indices(200, None, 8, 16, 1) == open_vclip_indices(200, 30.0, 8, 16, 1)


def test_tsn_clips_are_the_segments_of_clips_times_n():
    sampling = Sampling("tsn", num_frames=4, clips=3)
    assert sampling.indices(120, 25.0) == sample_frame_indices(120, 12)


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown frame sampling 'every'"):
        Sampling("every", 8)


@pytest.mark.slow  # encodes clips with ffmpeg
@pytest.mark.parametrize(
    "name", ["ucf101_xvid_packed_b.avi", "k400_h264_b.mp4", "k400_2997.mp4"]
)
def test_the_frames_read_are_the_frames_the_rule_names(tmp_path, name):
    """Each frame of the clip shows its own index: what is decoded is what the indices
    say, on the in-order path (UCF101's AVI with packed B-frames) and the seek path (MP4),
    at 25, 30 and 29.97 fps (the stride's span depends on the rate)."""
    clip = next(c for c in CORPUS if c.name == name)
    path = make_clip(clip, tmp_path)
    sampling = Sampling("stride", num_frames=8, clips=3, stride=2)
    video = decode_video("clip", str(path), sampling, short_side=64)
    assert video.ok, video.error
    want = stride_frame_indices(video.num_source_frames, video.source_fps, 8, 2, 3)
    assert video.frame_indices == want
    assert [read_index(frame) for frame in video.frames] == want
    assert len(set(want)) > 8  # three distinct clips, not one repeated
