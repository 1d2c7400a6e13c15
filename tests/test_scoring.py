"""Production scoring against straightforward numpy references written here."""

import numpy as np
import pytest

from zsar.core.method import FUSIONS, VARIANTS, kind_weights
from zsar.stages.scoring import build_class_vectors, score_videos

KINDS = ["name", "attribute", "description", "hierarchy"]


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def reference_class_vector(texts_by_kind, weights, dim):
    total = np.zeros(dim)
    for kind, w in weights.items():
        vecs = texts_by_kind.get(kind, [])
        if w == 0 or not vecs:
            continue
        total = total + w * np.mean(vecs, axis=0)
    norm = np.linalg.norm(total)
    return total / norm if norm else total


def random_texts(rng, num_classes, dim, empty_class):
    """Random text embeddings: every class has names; `empty_class` has no descriptors."""
    vectors, owners, kinds, by_class = [], [], [], []
    for c in range(num_classes):
        per_kind = {}
        for kind in KINDS:
            n = 1 if kind == "name" else (0 if c == empty_class else int(rng.integers(1, 5)))
            vecs = [unit(rng.normal(size=dim)) for _ in range(n)]
            per_kind[kind] = vecs
            vectors += vecs
            owners += [c] * n
            kinds += [kind] * n
        by_class.append(per_kind)
    return np.array(vectors), np.array(owners), np.array(kinds), by_class


@pytest.mark.parametrize(
    "weights",
    [
        {"name": 1.0, "attribute": 1.0, "description": 1.0, "hierarchy": 1.0},
        {"name": 1.0, "attribute": 0.0, "description": 2.0, "hierarchy": 0.5},
        {"name": 0.3, "attribute": 0.7, "description": 0.0, "hierarchy": 0.0},
        {"name": 1.0},
    ],
)
def test_class_vectors_match_reference(weights):
    rng = np.random.default_rng(0)
    dim, num_classes = 16, 7
    vectors, owners, kinds, by_class = random_texts(rng, num_classes, dim, empty_class=3)
    got = build_class_vectors(vectors, owners, kinds, num_classes, weights)
    want = np.array([reference_class_vector(t, weights, dim) for t in by_class])
    np.testing.assert_allclose(got, want, atol=1e-6)


def reference_scores(v, c, t, lam, fusion):
    s = np.zeros((len(v), len(c)))
    for i in range(len(v)):
        for k in range(len(c)):
            cos_v = float(np.dot(v[i], c[k]))
            if t is None:
                s[i, k] = cos_v
            elif fusion == "embedding":
                fused = (1 - lam) * v[i] + lam * t[i]
                s[i, k] = float(np.dot(fused / np.linalg.norm(fused), c[k]))
            else:
                s[i, k] = (1 - lam) * cos_v + lam * float(np.dot(t[i], c[k]))
    return s


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("fusion", list(FUSIONS))
def test_every_variant_and_fusion_matches_reference(variant, fusion):
    rng = np.random.default_rng(1)
    dim, num_classes, num_videos, lam = 12, 5, 9, 0.35
    weights = {"name": 1.0, "attribute": 0.8, "description": 0.6, "hierarchy": 0.4}
    vectors, owners, kinds, by_class = random_texts(rng, num_classes, dim, empty_class=2)
    v = unit(rng.normal(size=(num_videos, dim)))
    t = unit(rng.normal(size=(num_videos, dim)))

    spec = VARIANTS[variant]
    w = kind_weights(spec.kinds, weights)
    classes = build_class_vectors(vectors, owners, kinds, num_classes, w)
    got = score_videos(v, classes, captions=t if spec.caption else None, fusion=fusion, lam=lam)
    ref_classes = np.array([reference_class_vector(tb, w, dim) for tb in by_class])
    want = reference_scores(v, ref_classes, t if spec.caption else None, lam, fusion)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_variants_differ_where_they_should():
    """Guards the variant table itself: kinds and caption flags are not all the same."""
    baseline, full = VARIANTS["baseline"], VARIANTS["full"]
    assert baseline.kinds == ("name",) and not baseline.caption and not baseline.uses_descriptors
    assert set(full.kinds) == set(KINDS) and full.caption
    assert VARIANTS["+hierarchy"].descriptor_kinds == ("hierarchy",)
    assert VARIANTS["+caption"].caption and VARIANTS["+caption"].kinds == ("name",)


def test_video_without_caption_is_scored_on_vision_alone():
    rng = np.random.default_rng(2)
    v = unit(rng.normal(size=(3, 8)))
    c = unit(rng.normal(size=(4, 8)))
    t = unit(rng.normal(size=(3, 8)))
    has = np.array([True, False, True])
    got = score_videos(v, c, captions=t, has_caption=has, fusion="embedding", lam=0.5)
    np.testing.assert_allclose(got[1], v[1] @ c.T, atol=1e-12)
    assert not np.allclose(got[0], v[0] @ c.T)


def test_zero_weight_removes_a_kind():
    rng = np.random.default_rng(3)
    vectors, owners, kinds, _ = random_texts(rng, 4, 8, empty_class=-1)
    with_attr = build_class_vectors(vectors, owners, kinds, 4, {"name": 1, "attribute": 1})
    zero_attr = build_class_vectors(vectors, owners, kinds, 4, {"name": 1, "attribute": 0})
    name_only = build_class_vectors(vectors, owners, kinds, 4, {"name": 1})
    np.testing.assert_allclose(zero_attr, name_only)
    assert not np.allclose(with_attr, name_only)
