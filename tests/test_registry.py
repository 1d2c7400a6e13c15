"""The model registry: entries checked on load, backends and their traits, the identity."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zsar.models.registry import (
    SECTIONS,
    RegistryError,
    backends,
    load_registry,
    model_identity,
    models_schema,
)

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "config" / "models.yaml"


def write_registry(tmp_path, data) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_shipped_registry_is_valid():
    registry = load_registry(REGISTRY)
    assert set(registry) == set(SECTIONS) and all(registry[s] for s in SECTIONS)


@pytest.mark.parametrize(
    ("entry", "section", "message"),
    [
        ({"backend": "open_clip", "archtecture": "ViT-B-16"}, "backbones",
         "unknown key backbones.m.archtecture; allowed here: architecture,"),
        ({"backend": "nope"}, "backbones",
         "backbones.m.backend: 'nope' is not one of: actionclip, hf_clip, open_clip, vificlip"),
        ({"backend": "file"}, "captioners", "captioners.m.path is required"),
        ({"backend": "openai", "base_url": "http://x"}, "llms", "llms.m.model is required"),
        ({"family": "no backend"}, "llms", "llms.m.backend is required"),
        ({"backend": "open_clip", "preprocess": {"interpolation": "lanczos"}}, "backbones",
         "backbones.m.preprocess.interpolation: 'lanczos' is not one of: bicubic, bilinear"),
    ],
)
def test_a_bad_entry_is_one_line_naming_the_file_and_key(tmp_path, entry, section, message):
    path = write_registry(tmp_path, {section: {"m": entry}})
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_an_unknown_section_is_an_error(tmp_path):
    with pytest.raises(RegistryError, match="unknown key encoders"):
        load_registry(write_registry(tmp_path, {"encoders": {}}))


def test_each_section_backends_are_the_schema_enum():
    schema = models_schema()
    for section, definition in (("backbones", "backbone"), ("captioners", "captioner"),
                                ("llms", "llm")):
        enum = schema["$defs"][definition]["properties"]["backend"]["enum"]
        assert enum == sorted(backends(section))


def test_backend_traits_say_what_needs_weights_and_a_gpu():
    assert all(b.fetches_weights and b.uses_gpu for b in backends("backbones").values())
    for section in ("captioners", "llms"):
        traits = backends(section)
        assert traits["transformers"].fetches_weights and traits["transformers"].uses_gpu
        assert not traits["openai"].fetches_weights and not traits["openai"].uses_gpu
        assert traits["file"].input_files({"path": "x.csv"}) == ["x.csv"]
        assert traits["transformers"].input_files({"hf_repo": "a/b"}) == []


def test_identity_leaves_out_documentation_and_speed_only():
    entry = {"backend": "openai", "family": "f", "description": "d", "base_url": "http://a",
             "model": "m", "api_key_env": "K", "concurrency": 8, "timeout_s": 60,
             "max_retries": 4, "backoff_s": 1.0}
    assert model_identity("captioners", entry) == {"backend": "openai", "model": "m"}
    backbone = {"backend": "open_clip", "description": "d", "download_url": "u",
                "architecture": "ViT-B-16", "preprocess": {"size": 224}}
    assert model_identity("backbones", backbone) == {
        "backend": "open_clip", "architecture": "ViT-B-16", "preprocess": {"size": 224}}
