"""Shared fixtures: a small generated demo dataset, and no model hub anywhere."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def env_offline(monkeypatch):
    """Tests never reach a model hub: fail fast instead of waiting on the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory):
    """A demo dataset with every demo class and 2 clips each; returns its folder.

    The folder holds videos/<class>/<class>_<k>.mp4, annotations.txt and labels.csv,
    exactly as the demo_data rule writes them. Treat it as read-only: it is shared by
    the whole session.
    """
    from zsar.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo"), clips_per_class=2, seed=0)
