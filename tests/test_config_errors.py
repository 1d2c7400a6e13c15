"""A bad config stops the run before any job starts, with a message naming the key or path."""

import pytest
from helpers.workflow import copy_workflow, snakemake

# Runs the Snakemake workflow: the full suite (make test), not the fast tier (make check).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("wf"))


def failed_run(workdir, *args):
    proc = snakemake(workdir, "--cores", "1", *args, timeout=300)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert not (workdir / "results").exists(), "a job ran before the config was rejected"
    return proc.stdout + proc.stderr


def test_unknown_key(workdir):
    out = failed_run(workdir, "--config", "bogus_key=1")
    assert "unknown key bogus_key; allowed here: allow_demo_models, backbones, captions," in out


def test_wrong_type(workdir):
    out = failed_run(workdir, "--config", "shards=many")
    assert "shards: 'many' is not of type 'integer'" in out


def test_unknown_nested_key(workdir, tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("scoring:\n  lambada: 0.5\n")
    out = failed_run(workdir, "--configfile", "config/config.yaml", str(overlay))
    assert "unknown key scoring.lambada; allowed here: fusion, lambda, topk, variants" in out


def test_missing_data_root(workdir, tmp_path):
    missing = tmp_path / "no-such-root"
    out = failed_run(
        workdir,
        "--configfile", "config/config.yaml", "config/datasets/ucf101.yaml",
        "--config", f"data_root={missing}",
    )
    assert f"data_root '{missing}' does not exist" in out


def test_annotation_file_in_wrong_format(workdir, tmp_path):
    root = tmp_path / "data"
    (root / "ucf101").mkdir(parents=True)
    for split in (1, 2, 3):
        (root / "ucf101" / f"ucf_splits_val{split}.txt").write_text('{"not": "a list"}\n')
    (root / "ucf101" / "ucf_101_labels.csv").write_text("id,name\n0,ApplyEyeMakeup\n")
    out = failed_run(
        workdir,
        "--configfile", "config/config.yaml", "config/datasets/ucf101.yaml",
        "--config", f"data_root={root}",
    )
    assert "dataset_specs.ucf101.annotations" in out and "ucf_splits_val1.txt" in out


def test_model_not_in_registry(workdir):
    out = failed_run(workdir, "--config", "backbones=[no-such-model]")
    assert "backbones[0]" in out and "no-such-model" in out and "not in the model registry" in out


def test_unknown_dataset(workdir):
    out = failed_run(workdir, "--config", "datasets=[imagenet]")
    assert "datasets: 'imagenet' has no spec" in out


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("captions:\n  captioner: no-such-vlm\n", "captions.captioner"),
        ("descriptors:\n  llm: no-such-llm\n", "descriptors.llm"),
    ],
)
def test_captioner_or_llm_not_in_registry(workdir, tmp_path, text, key):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(text)
    out = failed_run(workdir, "--configfile", "config/config.yaml", str(overlay))
    assert key in out and "not in the model registry" in out
