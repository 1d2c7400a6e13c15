"""Shared fixtures: no model hub anywhere, a small generated demo dataset, and the registry's
tiny models built once per session (helpers live in tests/helpers)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The registry's tiny demo models, by section: built once, shared by every test that loads one.
TINY_MODELS = {
    "backbones": ("tiny-clip",),
    "captioners": ("tiny-vlm", "tiny-llava-video"),
}


@pytest.fixture(autouse=True)
def env_offline(monkeypatch):
    """Tests never reach a model hub: fail fast instead of waiting on the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def debug_log(tmp_path):
    """Everything every logger says (httpx and httpcore included, at DEBUG) into
    tmp_path/run.log, for tests that look for what must never be logged."""
    path = tmp_path / "run.log"
    handler = logging.FileHandler(path)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield path
    root.removeHandler(handler)
    root.setLevel(old_level)
    handler.close()


@pytest.fixture(scope="session")
def demo_videos(tmp_path_factory):
    """A demo dataset with every demo class and 2 clips each; returns its folder.

    The folder holds videos/<class>/<class>_<k>.mp4, annotations.txt and labels.csv,
    exactly as the demo_data rule writes them. Treat it as read-only: it is shared by
    the whole session.
    """
    from zsar.data.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo"), clips_per_class=2, seed=0)


@pytest.fixture(scope="session")
def tiny_resources(tmp_path_factory):
    """A resources folder with the registry's tiny models, built by fetch_model's own code
    (as the workflow's fetch_model rule builds them). Treat it as read-only."""
    from zsar.models.fetch import fetch_model
    from zsar.models.registry import get_entry, load_registry

    registry = load_registry(REPO / "config" / "models.yaml")
    root = tmp_path_factory.mktemp("resources")
    for section, names in TINY_MODELS.items():
        for name in names:
            fetch_model(get_entry(registry, section, name), root, section)
    return root
