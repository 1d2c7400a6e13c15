"""The method's vocabulary, defined once: kinds of class text, fusion modes, ablation variants.

Everything that names one of these derives it from here: the scoring and the explanations
(the fusion), the descriptors and embedding stages (the kinds), the config schema's enums
(zsar.pipeline.config), `zsar predict`'s choices, the workflow's inputs and params per variant
(workflow/rules/common.smk) and docs/protocols.md's variant table. Adding a fusion mode, a kind of
descriptor or a variant is an entry here (plus, for a kind, its prompt in the LLM prompt set).

The reference formula (docs/DESIGN.md):
- video    v = normalize(mean over frames of E_img(frame))            (zsar.stages.embed)
- caption  t = normalize(E_txt(caption))
- class    c_k = normalize(sum over kinds of w_kind * mean of that kind's E_txt(text))
- score    s_k = q · c_k, where the fusion gives the query q from v, t and λ:
    embedding level  q = normalize((1-λ)v + λt)           so s_k = cos(v', c_k)
    score level      q = (1-λ)v + λt (not normalised)     so s_k = (1-λ)cos(v,c_k) + λcos(t,c_k)
Both are one dot product with one query vector, so the explanations measure a descriptor's
similarity with the same query, and it is exactly that descriptor's share of the class score.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """L2-normalise along `axis`; an all-zero vector stays zero instead of becoming NaN."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.where(norm == 0, 1.0, norm)


# --- kinds of class text ----------------------------------------------------------------


# How a hierarchy becomes one context text: "sports → ball sports → basketball".
HIERARCHY_SEPARATOR = " → "


@dataclass(frozen=True)
class TextKind:
    """A kind of class text.

    `field` is its list in a descriptors record (None for the name prompt); with `joined`,
    the list is one path, root to leaf, embedded as a single text. `weight` is its default
    weight in the class vector and `template` its default sentence ({class}, {text}); both
    are the config schema's defaults (scoring.weights, descriptors.templates).
    """

    name: str
    field: str | None
    summary: str
    weight: float
    template: str | None = None
    joined: bool = False

    @property
    def is_descriptor(self) -> bool:
        return self.field is not None

    def texts(self, record: Mapping[str, Any]) -> list[str]:
        """This kind's texts in a descriptors record (before the kind's template)."""
        values = [str(v) for v in record.get(self.field) or []] if self.field else []
        if self.joined:
            return [HIERARCHY_SEPARATOR.join(values)] if values else []
        return values


KINDS: dict[str, TextKind] = {
    kind.name: kind
    for kind in (
        TextKind("name", None, "the class name in the backbone's name prompt", 1.0),
        TextKind(
            "attribute", "attributes", "short visual cues written by the LLM", 1.0,
            template="{class}, which involves {text}",
        ),
        TextKind(
            "description", "descriptions", "sentences written by the LLM", 1.0,
            template="{class}: {text}",
        ),
        TextKind(
            "hierarchy", "hierarchy", "the parent-category path, as one text", 0.5,
            template="{text}", joined=True,
        ),
    )
}
# The kinds an LLM writes, in the order of a descriptors record.
DESCRIPTOR_KINDS: tuple[str, ...] = tuple(k for k, kind in KINDS.items() if kind.is_descriptor)


def descriptor_texts(
    record: Mapping[str, Any], class_display: str, templates: Mapping[str, str]
) -> dict[str, list[str]]:
    """The sentences to embed for one class's descriptors record, per descriptor kind.

    Each text goes into its kind's template, with {class} the class's display name and
    {text} the text ("{class}, which involves {text}", "{class}: {text}"); the hierarchy is
    one text, its levels joined root to leaf ("sports → ball sports → basketball"). A
    fallback class has no descriptor texts: every list is empty. The fields a record lists
    under `verbatim` (imported CuPL prompts, which already name their class) are embedded as
    they are, without the template.
    """
    verbatim = set(record.get("verbatim") or ())

    def sentence(kind: str, text: str) -> str:
        if KINDS[kind].field in verbatim:
            return text
        return templates[kind].replace("{class}", class_display).replace("{text}", text)

    return {
        kind: [sentence(kind, text) for text in KINDS[kind].texts(record)]
        for kind in DESCRIPTOR_KINDS
    }


# --- fusion of the caption ---------------------------------------------------------------


@dataclass(frozen=True)
class Fusion:
    """How the caption embedding t joins the video embedding v: the query q(v, t, λ)."""

    name: str
    query: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    formula: str


def _embedding_level(video: np.ndarray, caption: np.ndarray, lam: float) -> np.ndarray:
    return normalize((1.0 - lam) * video + lam * caption)


def _score_level(video: np.ndarray, caption: np.ndarray, lam: float) -> np.ndarray:
    # Not normalised on purpose: dot products with it are (1-λ)cos(v,c) + λcos(t,c).
    return (1.0 - lam) * video + lam * caption


FUSIONS: dict[str, Fusion] = {
    "embedding": Fusion("embedding", _embedding_level, "s = cos(normalize((1-λ)v + λt), c)"),
    "score": Fusion("score", _score_level, "s = (1-λ)cos(v, c) + λcos(t, c)"),
}


def fusion_query(
    videos: np.ndarray, captions: np.ndarray | None, *, fusion: str, lam: float
) -> np.ndarray:
    """The query vectors q (one per row) whose dot product with a class vector is its score.

    No caption, or λ = 0, leaves the video embedding as it is.
    """
    videos = np.asarray(videos, dtype=np.float64)
    if captions is None or lam == 0:
        return videos
    return FUSIONS[fusion].query(videos, np.asarray(captions, dtype=np.float64), lam)


# --- several name templates: how a backbone's protocol combines them ----------------------------


def _softmax(scores: np.ndarray, scale: float) -> np.ndarray:
    logits = scale * scores
    logits = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class TemplateCombine:
    """How the class scores of a name-template ensemble are formed.

    per_template: score with each template's own class vectors, then `merge` the T score
    matrices (given the ensemble's scale); otherwise one class vector from all templates
    (their unit embeddings averaged as one kind of text) and a single score.
    """

    name: str
    per_template: bool
    merge: Callable[[list[np.ndarray], float], np.ndarray]
    summary: str


TEMPLATE_COMBINES: dict[str, TemplateCombine] = {
    c.name: c
    for c in (
        TemplateCombine(
            "embedding_mean", False, lambda scores, scale: scores[0],
            "the mean of the templates' unit text embeddings, as one class vector (CLIP)",
        ),
        TemplateCombine(
            "softmax_mean", True,
            lambda scores, scale: np.mean([_softmax(s, scale) for s in scores], axis=0),
            "each template's softmax over the classes of scale·cos, averaged (ActionCLIP)",
        ),
    )
}


# --- the ablation variants ---------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: the kinds of class text it scores with, and the caption."""

    name: str
    kinds: tuple[str, ...]
    caption: bool
    summary: str

    @property
    def descriptor_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in self.kinds if KINDS[k].is_descriptor)

    @property
    def uses_descriptors(self) -> bool:
        return bool(self.descriptor_kinds)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("baseline", ("name",), False, "the class name alone, in the name prompt"),
        Variant(
            "+descriptors", ("name", "attribute", "description"), False,
            "name, LLM attributes and descriptions",
        ),
        Variant("+hierarchy", ("name", "hierarchy"), False, "name and the hierarchy path"),
        Variant("+caption", ("name",), True, "name, and the video's caption fused in"),
        Variant("full", tuple(KINDS), True, "every kind of class text and the caption"),
    )
}


def kind_weights(kinds: Iterable[str], weights: Mapping[str, float]) -> dict[str, float]:
    """The configured weights restricted to the given kinds (a variant's, say)."""
    return {kind: float(weights[kind]) for kind in kinds}
