"""Explanations: top descriptors, the similarity basis, the sentence, and the rule's I/O edge."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsar.data.io import write_json
from zsar.stages.explain import (
    ClassDescriptors,
    explain_prediction,
    explanation_query,
    run_explain_stage,
    top_descriptors,
)
from zsar.stages.scoring import build_class_vectors, score_videos


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def descriptors_of(rng, texts, dim=8, kind="attribute"):
    return ClassDescriptors(
        kinds=tuple(kind for _ in texts),
        texts=tuple(texts),
        vectors=unit(rng.normal(size=(len(texts), dim))).astype(np.float32),
    )


def test_top_descriptors_are_the_most_similar_in_order():
    rng = np.random.default_rng(0)
    desc = descriptors_of(rng, [f"cue {i}" for i in range(7)])
    query = unit(rng.normal(size=8))
    got = top_descriptors(query, desc, k=3)
    sims = [float(np.dot(v, query)) for v in desc.vectors]
    want = sorted(range(7), key=lambda i: -sims[i])[:3]
    assert [d["text"] for d in got] == [f"cue {i}" for i in want]
    np.testing.assert_allclose([d["similarity"] for d in got], [sims[i] for i in want], atol=1e-6)
    assert top_descriptors(query, None) == []
    assert len(top_descriptors(query, desc, k=10)) == 7


@pytest.mark.parametrize("fusion", ["embedding", "score"])
def test_descriptor_similarities_are_their_share_of_the_class_score(fusion):
    """With one kind, the class score is the mean descriptor similarity over |mean(d)|."""
    rng = np.random.default_rng(1)
    dim, lam = 8, 0.4
    desc = descriptors_of(rng, ["a", "b", "c", "d"], dim)
    video, caption = unit(rng.normal(size=dim)), unit(rng.normal(size=dim))
    class_vector = build_class_vectors(
        desc.vectors, np.zeros(4, int), np.array(desc.kinds), 1, {"attribute": 1.0}
    )
    score = score_videos(
        video[None], class_vector, captions=caption[None], fusion=fusion, lam=lam
    )[0, 0]
    query = explanation_query(video, caption, fusion=fusion, lam=lam)
    sims = [d["similarity"] for d in top_descriptors(query, desc, k=4)]
    mean_norm = np.linalg.norm(desc.vectors.astype(np.float64).mean(axis=0))
    assert score == pytest.approx(np.mean(sims) / mean_norm, abs=1e-6)


def test_query_without_caption_is_the_video():
    video = unit([1.0, 2.0, 3.0])
    np.testing.assert_allclose(explanation_query(video, None, lam=0.5), video)
    np.testing.assert_allclose(explanation_query(video, unit([3, 2, 1]), lam=0.0), video)


def test_record_and_sentence_tie_prediction_caption_descriptors_and_hierarchy():
    dim = 4
    # Axis-aligned vectors make every similarity exact and the ranking obvious.
    eye = np.eye(dim, dtype=np.float32)
    descriptors = {
        "Rotating": ClassDescriptors(
            ("attribute", "description", "hierarchy"),
            ("a bar turning around its centre", "spins", "motion → turning → rotating"),
            np.stack([eye[0], eye[1], 0.6 * eye[0] + 0.8 * eye[2]]),
        ),
        "Sliding": ClassDescriptors(
            ("attribute", "attribute"), ("a square moving sideways", "steady"),
            np.stack([eye[3], eye[1]]),
        ),
    }
    query = unit([0.9, 0.1, 0.0, 0.4])
    record = explain_prediction(
        ranked=[("Rotating", 0.312), ("Sliding", 0.271), ("Growing", 0.1)],
        query=query,
        descriptors=descriptors,
        hierarchy={"Rotating": ["motion", "turning", "rotating"], "Sliding": ["motion"]},
        caption="a white bar spins on a black background",
        display={"Rotating": "rotating", "Sliding": "sliding"},
        top=2,
    )
    assert record["predicted"] == "Rotating" and record["runner_up"] == "Sliding"
    assert [d["text"] for d in record["predicted_descriptors"]] == [
        "a bar turning around its centre",
        "motion → turning → rotating",
    ]
    assert record["predicted_descriptors"][0]["similarity"] == pytest.approx(query[0])
    assert record["runner_up_descriptors"][0]["text"] == "a square moving sideways"
    assert record["hierarchy"] == ["motion", "turning", "rotating"]
    sentence = record["sentence"]
    assert sentence.startswith('Predicted "rotating" (0.312) over "sliding" (0.271)')
    assert 'the caption says "a white bar spins on a black background"' in sentence
    assert f'matches "a bar turning around its centre" ({query[0]:.3f}) of "rotating"' in sentence
    assert f'and "a square moving sideways" ({query[3]:.3f}) of "sliding"' in sentence
    assert sentence.endswith("context: motion → turning → rotating.")


def test_sentence_without_caption_descriptors_or_runner_up():
    record = explain_prediction(
        ranked=[("jump", 0.5)], query=unit([1.0, 0.0]), descriptors={}, hierarchy={}
    )
    assert record["runner_up"] is None and record["runner_up_descriptors"] == []
    assert record["sentence"] == (
        'Predicted "jump" (0.500): the score rests on the class name alone.'
    )
    with pytest.raises(ValueError):
        explain_prediction(ranked=[], query=unit([1.0]), descriptors={}, hierarchy={})


def test_long_captions_are_shortened_in_the_sentence_only():
    caption = "word " * 100
    record = explain_prediction(
        ranked=[("a", 0.2), ("b", 0.1)], query=unit([1.0, 0.0]), descriptors={},
        hierarchy={}, caption=caption,
    )
    assert record["caption"] == caption
    assert "…" in record["sentence"] and len(record["sentence"]) < 250


def _text_table(rows):
    return pa.Table.from_pylist(
        [{"kind": k, "owner": o, "text": t, "vector": list(map(float, v))} for k, o, t, v in rows],
        schema=pa.schema([("kind", pa.string()), ("owner", pa.string()), ("text", pa.string()),
                          ("vector", pa.list_(pa.float32()))]),
    )


def test_explain_stage_writes_one_row_per_evaluated_video(tmp_path):
    eye = np.eye(4)
    templates = {"attribute": "{class}, which involves {text}", "description": "{class}: {text}",
                 "hierarchy": "{text}"}
    descriptors = {"llm": "curated", "classes": {
        "RollBall": {"attributes": ["a ball"], "descriptions": ["A ball rolls."],
                     "hierarchy": ["motion", "roll ball"], "fallback": False, "reason": None},
        "Spin": {"attributes": [], "descriptions": [], "hierarchy": [], "fallback": True,
                 "reason": "no answer"},
    }}
    write_json(descriptors, tmp_path / "descriptors.json")
    pq.write_table(pa.Table.from_pylist([
        {"split": 1, "class_id": 0, "name": "RollBall", "display_name": "roll ball"},
        {"split": 1, "class_id": 1, "name": "Spin", "display_name": "spin"},
    ]), tmp_path / "classes.parquet")
    pq.write_table(_text_table([
        ("name", "RollBall", "roll ball", eye[0]),
        ("name", "Spin", "spin", eye[3]),
    ]), tmp_path / "class_names.parquet")
    pq.write_table(_text_table([
        ("attribute", "RollBall", "roll ball, which involves a ball", eye[1]),
        ("description", "RollBall", "roll ball: A ball rolls.", eye[2]),
        ("hierarchy", "RollBall", "motion → roll ball", unit([1, 1, 0, 0])),
    ]), tmp_path / "class_texts.parquet")
    pq.write_table(pa.Table.from_pylist([
        {"video_id": "v1", "vector": [0.0, 0.8, 0.6, 0.0]},
        {"video_id": "v2", "vector": [0.0, 0.0, 0.0, 1.0]},
    ]), tmp_path / "videos.parquet")
    pq.write_table(pa.Table.from_pylist([
        {"split": 1, "video_id": "v2", "true_class": 0, "predicted_class": 1,
         "topk_classes": [1, 0], "topk_scores": [1.0, 0.1], "correct": False,
         "status": "evaluated"},
        {"split": 1, "video_id": "v1", "true_class": 0, "predicted_class": 0,
         "topk_classes": [0, 1], "topk_scores": [0.7, 0.0], "correct": True,
         "status": "evaluated"},
        {"split": 1, "video_id": "v3", "true_class": 1, "predicted_class": -1,
         "topk_classes": [], "topk_scores": [], "correct": False, "status": "failed"},
    ]), tmp_path / "scores.parquet")
    inputs = {k: str(tmp_path / f"{k}.parquet")
              for k in ("scores", "classes", "videos", "class_names", "class_texts")}
    inputs["descriptors"] = str(tmp_path / "descriptors.json")
    out = tmp_path / "explanations.parquet"
    params = {"variant": "+descriptors", "lambda": 0.3, "fusion": "embedding"}

    assert run_explain_stage(inputs, params, str(out), templates=templates) == 2
    rows = pq.read_table(out).to_pylist()
    assert [r["video_id"] for r in rows] == ["v1", "v2"]
    v1, v2 = rows
    assert v1["correct"] and v1["true_class"] == "RollBall" and v1["runner_up"] == "Spin"
    # Raw descriptors are shown, not the templated sentences; +descriptors has no hierarchy kind.
    assert [(d["text"], round(d["similarity"], 4)) for d in v1["predicted_descriptors"]] == [
        ("a ball", 0.8), ("A ball rolls.", 0.6)]
    assert v1["runner_up_descriptors"] == []  # Spin fell back to its name
    assert v1["hierarchy"] == ["motion", "roll ball"] and v1["caption"] is None
    assert v1["similarity_to"] == "video"
    assert v2["predicted"] == "Spin" and "rests on the class name alone" in v2["sentence"]
    assert '"spin" (1.000) over "roll ball" (0.100)' in v2["sentence"]

    # The full variant fuses the caption where there is one (v1) and not where it failed (v2).
    pq.write_table(_text_table([("caption", "v1", "a ball rolls", eye[1])]),
                   tmp_path / "captions.parquet")
    pq.write_table(pa.Table.from_pylist([{"video_id": "v1", "caption": "a ball rolls"}]),
                   tmp_path / "caption_texts.parquet")
    inputs["captions"] = str(tmp_path / "captions.parquet")
    inputs["caption_texts"] = str(tmp_path / "caption_texts.parquet")
    full = {"variant": "full", "lambda": 0.5, "fusion": "embedding"}
    run_explain_stage(inputs, full, str(out), templates=templates)
    v1, v2 = pq.read_table(out).to_pylist()
    assert v1["caption"] == "a ball rolls" and 'the caption says "a ball rolls"' in v1["sentence"]
    assert v1["similarity_to"] == "video+caption embedding (λ=0.5)"
    query = unit(0.5 * np.array([0.0, 0.8, 0.6, 0.0]) + 0.5 * eye[1])
    sims = {d["text"]: d["similarity"] for d in v1["predicted_descriptors"]}
    assert sims["a ball"] == pytest.approx(query[1], abs=1e-6)
    assert sims["motion → roll ball"] == pytest.approx(query @ unit([1, 1, 0, 0]), abs=1e-6)
    assert v2["caption"] is None and v2["similarity_to"] == "video"
