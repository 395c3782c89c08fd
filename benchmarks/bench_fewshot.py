"""Few-shot and open-set accuracy of embedding taps, normalisations, decision rules and unknown rules.

Usage: ``python benchmarks/bench_fewshot.py FOLDER [--background grey|texture] [--splits 20] [--output DIR]
[--backbone NAME] [--augment none|flip|crops|flip+crops] [--query-flip]``

FOLDER holds one sub-folder of images per class. Every image goes through the backbone once (all taps in the same
pass) and the pooled features are kept in memory; everything after that is numpy on those features.

* **closed set**: for 1, 5 and 10 examples per class ("shots"), taught examples drawn at random, the rest of each
  class as queries; accuracy of the best class, mean ± sd over ``--splits`` random splits;
* **open set**: 10 shots per class with each class left out of the project in turn (``--splits`` draws each), its
  images then being queries that should come back unknown: *known accuracy* (a taught class's photo gets its class
  *and* is not unknown), *unknown recall* (a left-out class's photo is unknown), their mean, and the AUROC of the
  score the unknown rule compares (sklearn ``roc_auc_score``).

A candidate is a tap (or a concatenation of taps, each part L2-normalised), a normalisation (``l2``; ``centre``:
L2, minus the mean of the project's L2 vectors, L2 again), a decision rule (``knn``: today's similarity-weighted
votes of the k nearest; ``prototype``: the class whose mean vector is most similar) and an unknown rule:

* ``fixed:T``: unknown when the score is below T;
* ``project:Q``: the boundary is the Q-quantile of the taught examples' own leave-one-out scores, pooled;
* ``class:Q``: the same per class (the best class's boundary), pooled with the project's when a class has few.

The score is the similarity the rule ranks by: the nearest example's (knn) or the best prototype's (prototype).
Today's default (``pool``, ``l2``, ``knn`` with k = DEFAULT_K, ``fixed:0.4``) runs in the same run as the
baseline, and the shipped ``KNNClassifier`` with its new defaults is run on the same splits as a check that the
implementation matches the figures. Writes ``fewshot.json`` and ``fewshot.md`` to ``--output``
(default benchmarks/results); any other backbone, augmentation or query flip writes
``fewshot_<backbone>_<augment>[_qflip][_<background>].json`` / ``.md`` instead (the background named when only
one was run).

Options beyond the default:

* ``--backbone``: any of ``teachable.backbones.available_backbones()`` whose weights are on this machine; each has
  its own taps and feature sets (``TAPS_BY_BACKBONE``, ``FEATURE_SETS_BY_BACKBONE``; always its pooled head ``pool``);
* ``--augment``: each taught example also enters the project as its left-right mirror (``flip``) and/or two crops
  (``crops``: a 0.8 centre zoom and a 0.85 corner shift; see fewshot_data), embedded once per image next to the
  plain features. The extra vectors join the support set (kNN neighbours; the class mean for prototypes); the
  leave-one-out calibration leaves out an example's whole group (it and its augmented copies) and scores only the
  example itself, so the boundary is not made optimistic by a mirror of the held-out example. Queries stay plain;
* ``--query-flip``: every query (and every held-out example in the calibration) is the mean of the frame's and its
  mirror's features at each tap: two forward passes per frame.

The shipped ``KNNClassifier`` check always runs on the plain ``pool`` features (no augmentation).

``--camera N`` measures instead how the page's own calibration holds when examples are *recorded like the camera*:
every taught photo enters the project as N camera-like copies (fewshot_data.jittered: small shift, scale and
brightness changes, as the frames of one held record button differ) that form one take; queries are the plain
photos. On the same splits it reports, for the shipped ``KNNClassifier`` (class decision unchanged) and for other
"not sure" scores (the similarity to the decided class's prototype in another feature space, calibrated the same
way), each calibrated *before* (per-example leave-one-out, near-copies stay in) and *after* (leave the take out):
closed-set accuracy, "not sure" on correctly guessed known photos, known accuracy, unknown recall, the AUROC of
the margin over all episodes and the mean AUROC of the score within an episode. A project fitted once per photo
(no copies) is the reference. It also reports how alike a photo and its copies are, against distinct photos of one
class (the figures behind ``knn.NEAR_COPY_SIMILARITY``). Writes ``fewshot_camera.json`` / ``.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fewshot_data import Features, embed_folder  # noqa: E402

from teachable.knn import (  # noqa: E402
    DEFAULT_K,
    DEFAULT_STRICTNESS,
    DEFAULT_TEMPERATURE,
    FALLBACK_BOUNDARY,
    MAX_BOUNDARY,
    MIN_CALIBRATION_SCORES,
    NEAR_COPY_SIMILARITY,
    KNNClassifier,
)

TAPS = ("blocks.4", "blocks.5", "blocks.6", "pool")
FEATURE_SETS = ("pool", "blocks.4", "blocks.5", "blocks.6", "blocks.5+blocks.6", "blocks.6+pool", "blocks.5+pool")
TAPS_BY_BACKBONE = {
    "efficientnet_lite0": TAPS,
    # features.16 is the 960-channel map that "pool" averages, inception5b likewise for googlenet: not repeated
    "mobilenet_v3_large": ("features.12", "features.15", "pool"),
    "googlenet": ("inception4e", "inception5a", "pool"),
}
FEATURE_SETS_BY_BACKBONE = {
    "efficientnet_lite0": FEATURE_SETS,
    "mobilenet_v3_large": (
        "pool", "features.12", "features.15", "features.12+features.15", "features.15+pool", "features.12+pool",
    ),
    "googlenet": (
        "pool", "inception4e", "inception5a", "inception4e+inception5a", "inception5a+pool", "inception4e+pool",
    ),
}  # fmt: skip
AUGMENTATIONS = {"none": (), "flip": ("flip",), "crops": ("zoom", "shift"), "flip+crops": ("flip", "zoom", "shift")}
"""``--augment`` -> the extra views (fewshot_data.VIEWS) each taught example also enters the project as."""
NORMALISATIONS = ("l2", "sqrt", "centre")
RULES = ("knn", "prototype")
SHOTS = (1, 5, 10)
OPEN_SHOTS = 10
MIN_CLASS_CALIBRATION = 5
"""A class with fewer leave-one-out scores than this has its boundary pooled with the project's."""


@dataclass(frozen=True)
class Candidate:
    features: str
    normalisation: str
    rule: str
    unknown: str = "fixed:0.4"

    @property
    def name(self) -> str:
        return f"{self.features} / {self.normalisation} / {self.rule} / {self.unknown}"


UNKNOWN_RULES = (
    "fixed:0.4", "fixed:0.5", "fixed:0.6", "fixed:0.7",
    "project:0.1", "project:0.2", "project:0.3",
    "class:0.1", "class:0.2", "class:0.3",
)  # fmt: skip
BASELINE = Candidate("pool", "l2", "knn", "fixed:0.4")
"""Today's default: the pooled head, L2, kNN votes (k = DEFAULT_K), unknown below cosine similarity 0.4."""
CHOSEN = Candidate("pool", "sqrt", "prototype", "project:0.2")
"""The new default (teachable.knn): signed square root + L2, nearest class mean, boundary at the 0.2-quantile of the
examples' own leave-one-out scores."""


# ------------------------------------------------------------------------------------------------ vector algebra
def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def stacked(features: Features, spec: str, view: str = "") -> np.ndarray:
    """The feature set ``spec`` ("pool" or "blocks.6+pool"): each tap L2-normalised, concatenated. ``view``: one of
    the extra views (``flip``, ...), or ``flip-mean``: the mean of the plain and the mirrored features at each tap."""
    if view == "flip-mean":
        by_tap = {tap: (features.by_tap[tap] + features.views["flip"][tap]) / 2 for tap in spec.split("+")}
    else:
        by_tap = features.views[view] if view else features.by_tap
    return unit(np.concatenate([unit(by_tap[tap]) for tap in spec.split("+")], axis=1))


@dataclass(frozen=True)
class Views:
    """Per image (rows as in Features): the vectors a taught image enters the project as (the plain one first, then
    its augmented copies), and the vector it is queried (and held out in the calibration) as."""

    support: tuple[np.ndarray, ...]
    query: np.ndarray


def views_of(features: Features, spec: str, augment: tuple[str, ...] = (), query_flip: bool = False) -> Views:
    plain = stacked(features, spec)
    return Views(
        (plain, *(stacked(features, spec, view) for view in augment)),
        stacked(features, spec, "flip-mean") if query_flip else plain,
    )


def signed_sqrt(vectors: np.ndarray) -> np.ndarray:
    return np.sign(vectors) * np.sqrt(np.abs(vectors))


def normalised(support: np.ndarray, queries: np.ndarray, normalisation: str) -> tuple[np.ndarray, np.ndarray]:
    """Support and query vectors under ``normalisation``; centring uses the support's (the project's) mean only."""
    if normalisation == "l2":
        return unit(support), unit(queries)
    if normalisation == "sqrt":
        return unit(signed_sqrt(unit(support))), unit(signed_sqrt(unit(queries)))
    if normalisation == "centre":
        mean = unit(support).mean(axis=0)
        return unit(unit(support) - mean), unit(unit(queries) - mean)
    raise ValueError(normalisation)


def knn_votes(similarities: np.ndarray, support_labels: np.ndarray, classes: int, k: int = DEFAULT_K) -> np.ndarray:
    """Today's votes: each of the k nearest votes ``exp(similarity / temperature)`` for its class (rows: queries)."""
    k = min(k, similarities.shape[1])
    order = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
    nearest = np.take_along_axis(similarities, order, axis=1)
    weights = np.exp((nearest - nearest[:, :1]) / DEFAULT_TEMPERATURE)
    votes = np.zeros((len(similarities), classes))
    np.add.at(votes, (np.arange(len(similarities))[:, None], support_labels[order]), weights)
    return votes


def prototypes(support: np.ndarray, support_labels: np.ndarray, classes: int) -> np.ndarray:
    """Unit mean vector of each class (rows)."""
    return unit(np.stack([support[support_labels == c].sum(axis=0) for c in range(classes)]))


def decide(candidate: Candidate, support, support_labels, queries, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Best class and score (the similarity the rule ranks by) per query."""
    if candidate.rule == "knn":
        similarities = queries @ support.T
        return knn_votes(similarities, support_labels, classes).argmax(axis=1), similarities.max(axis=1)
    if candidate.rule == "prototype":
        similarities = queries @ prototypes(support, support_labels, classes).T
        return similarities.argmax(axis=1), similarities.max(axis=1)
    raise ValueError(candidate.rule)


def own_scores(
    candidate: Candidate, support: np.ndarray, support_labels: np.ndarray, groups=None, probes=None
) -> np.ndarray:
    """Each taught example's leave-one-out score against its own class: the nearest other example of its class
    (knn), or its class's prototype made without it (prototype). NaN for a class's only example.

    With augmentation, ``groups`` gives each support row's example (an example and its augmented copies share
    one): the whole group is left out, and only the group's first row (the example itself) gets a score, of
    ``probes[g]`` (the example as it would be queried; default that first row). The other rows are NaN."""
    groups = np.arange(len(support)) if groups is None else np.asarray(groups)
    ids, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    probes = support[first] if probes is None else probes
    labels_of = support_labels[first]
    same = (labels_of[:, None] == support_labels[None, :]) & (ids[:, None] != groups[None, :])
    has_other = same.any(axis=1)
    scores = np.full(len(support), np.nan)
    if candidate.rule == "knn":
        similarities = np.where(same, probes @ support.T, -np.inf)
        scores[first[has_other]] = similarities[has_other].max(axis=1)
        return scores
    sums = {c: support[support_labels == c].sum(axis=0) for c in np.unique(support_labels)}
    group_sums = np.zeros((len(ids), support.shape[1]), dtype=np.float64)
    np.add.at(group_sums, inverse, support)
    for g in np.flatnonzero(has_other):
        scores[first[g]] = float(probes[g] @ unit(sums[labels_of[g]] - group_sums[g]))
    return scores


def boundaries(candidate: Candidate, support, support_labels, classes: int, groups=None, probes=None) -> np.ndarray:
    """The similarity below which each class's best guess is called unknown (``groups``, ``probes``: see
    own_scores)."""
    kind, _, value = candidate.unknown.partition(":")
    value = float(value)
    if kind == "fixed":
        return np.full(classes, value)
    scores = own_scores(candidate, support, support_labels, groups, probes)
    finite = scores[np.isfinite(scores)]
    pooled = np.quantile(finite, value) if len(finite) >= MIN_CALIBRATION_SCORES else FALLBACK_BOUNDARY
    pooled = min(pooled, MAX_BOUNDARY)  # as the app caps it (see knn.MAX_BOUNDARY)
    if kind == "project":
        return np.full(classes, pooled)
    if kind == "class":
        result = np.full(classes, pooled)
        for c in range(classes):
            mine = scores[(support_labels == c) & np.isfinite(scores)]
            if len(mine):
                weight = min(1.0, len(mine) / MIN_CLASS_CALIBRATION)
                result[c] = weight * np.quantile(mine, value) + (1 - weight) * pooled
        return np.minimum(result, MAX_BOUNDARY)
    raise ValueError(candidate.unknown)


# ------------------------------------------------------------------------------------------------ splits
def draw_split(labels: np.ndarray, shots: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows taught (``shots`` per class, fewer when a class must keep one query) and rows queried."""
    taught = []
    for name in dict.fromkeys(labels):
        rows = rng.permutation(np.flatnonzero(labels == name))
        taught.extend(rows[: min(shots, len(rows) - 1)])
    taught = np.sort(np.asarray(taught))
    return taught, np.setdiff1d(np.arange(len(labels)), taught)


def closed_splits(labels: np.ndarray, splits: int, seed: int = 0) -> dict[int, list]:
    rng = np.random.default_rng(seed)
    return {shots: [draw_split(labels, shots, rng) for _ in range(splits)] for shots in SHOTS}


def open_splits(labels: np.ndarray, splits: int, seed: int = 1) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(left-out class, taught rows, query rows) for every class left out, ``splits`` draws each."""
    rng = np.random.default_rng(seed)
    episodes = []
    for left_out in dict.fromkeys(labels):
        kept = np.flatnonzero(labels != left_out)
        for _ in range(splits):
            taught, queries = draw_split(labels[kept], OPEN_SHOTS, rng)
            unseen = np.flatnonzero(labels == left_out)
            episodes.append((left_out, kept[taught], np.concatenate([kept[queries], unseen])))
    return episodes


# ------------------------------------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class Episode:
    truth: np.ndarray
    """True class code of each query, -1 when its class was not taught."""
    best: np.ndarray
    score: np.ndarray
    support: np.ndarray
    """Normalised support vectors (the taught examples, then each augmented view of them, same order)."""
    support_labels: np.ndarray
    groups: np.ndarray
    """Index (within ``taught``) of the example each support row comes from."""
    probes: np.ndarray | None
    """The taught examples as they would be queried (normalised), for the calibration; None: the plain rows."""


def episode(candidate: Candidate, vectors, labels: np.ndarray, taught, queries) -> Episode:
    """Classify ``queries`` with a project of ``taught``; ``vectors`` is an array (plain features) or Views."""
    views = vectors if isinstance(vectors, Views) else Views((vectors,), vectors)
    classes = list(dict.fromkeys(labels[taught]))
    code = {name: i for i, name in enumerate(classes)}
    repeats = len(views.support)
    support_labels = np.tile(np.array([code[name] for name in labels[taught]]), repeats)
    groups = np.tile(np.arange(len(taught)), repeats)
    truth = np.array([code.get(name, -1) for name in labels[queries]])
    support_raw = np.concatenate([v[taught] for v in views.support])
    plain_probes = views.query is views.support[0]
    query_raw = views.query[queries] if plain_probes else np.concatenate([views.query[queries], views.query[taught]])
    support, query_all = normalised(support_raw, query_raw, candidate.normalisation)
    query_vectors, probes = query_all[: len(queries)], (None if plain_probes else query_all[len(queries) :])
    best, score = decide(candidate, support, support_labels, query_vectors, len(classes))
    return Episode(truth, best, score, support, support_labels, groups, probes)


def decided(candidate: Candidate, vectors, labels: np.ndarray, taught, queries):
    """Classify ``queries`` with a project of ``taught``: (true class or -1 when not taught, best class, score,
    and the normalised support vectors and their class codes, which the unknown rules calibrate on)."""
    e = episode(candidate, vectors, labels, taught, queries)
    return e.truth, e.best, e.score, e.support, e.support_labels


def closed_figures(run_episode, draws_by_shots: dict) -> dict:
    """Accuracy of the best class (``run_episode(taught, queries) -> (truth, best, ...)``), mean and sd over the
    draws, per number of shots."""
    closed = {}
    for shots, draws in draws_by_shots.items():
        accuracies = [float(np.mean(t == b)) for t, b, *_ in (run_episode(*draw) for draw in draws)]
        closed[f"{shots}-shot"] = {"mean": float(np.mean(accuracies)), "sd": float(np.std(accuracies))}
    return closed


def open_figures(outcomes: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """Known accuracy, unknown recall and their mean over all episodes' (truth, best, margin); AUROC of the margin
    (score minus boundary, so it includes the calibration) over all queries of all episodes together."""
    truth, best, margin = (np.concatenate(parts) for parts in zip(*outcomes))
    known, unknown = truth >= 0, margin < 0
    known_accuracy = float(((truth == best) & ~unknown)[known].mean())
    unknown_recall = float(unknown[~known].mean())
    return {
        "known_accuracy": known_accuracy,
        "unknown_recall": unknown_recall,
        "mean": (known_accuracy + unknown_recall) / 2,
        "auroc": float(roc_auc_score(~known, -margin)),
    }


def evaluate_family(family: list[Candidate], vectors, labels, closed_draws: dict, episodes: list) -> list[dict]:
    """Candidates that differ only in their unknown rule: each episode is classified once, then every rule's
    boundary is applied to it."""
    closed = closed_figures(lambda t, q: decided(family[0], vectors, labels, t, q), closed_draws)
    outcomes: dict[Candidate, list] = {candidate: [] for candidate in family}
    for _, taught, queries in episodes:
        e = episode(family[0], vectors, labels, taught, queries)
        for candidate in family:
            classes = int(e.support_labels.max()) + 1
            limits = boundaries(candidate, e.support, e.support_labels, classes, e.groups, e.probes)
            outcomes[candidate].append((e.truth, e.best, e.score - limits[e.best]))
    return [
        {**candidate.__dict__, "name": candidate.name, "closed": closed, "open": open_figures(outcomes[candidate])}
        for candidate in family
    ]


# ------------------------------------------------------------------------------------------------ the shipped class
def shipped_episode(classifier_options: dict, raw: np.ndarray, labels: np.ndarray, taught, queries):
    """The episode through ``teachable.knn.KNNClassifier`` itself: (truth, best, margin)."""
    classifier = KNNClassifier(raw.shape[1], approximate_from=None, **classifier_options)
    classifier.add(raw[taught], list(labels[taught]))
    code = {name: i for i, name in enumerate(classifier.classes)}
    predictions = [classifier.predict(vector, DEFAULT_K) for vector in raw[queries]]
    truth = np.array([code.get(name, -1) for name in labels[queries]])
    best = np.array([code[p.label] for p in predictions])
    return truth, best, np.array([p.score - p.boundary for p in predictions])


def candidates(feature_sets: tuple[str, ...] = FEATURE_SETS) -> list[Candidate]:
    grid = [
        Candidate(features, normalisation, rule, unknown)
        for features in feature_sets
        for normalisation in NORMALISATIONS
        for rule in RULES
        for unknown in UNKNOWN_RULES
    ]
    return [BASELINE, CHOSEN] + [c for c in grid if c not in (BASELINE, CHOSEN)]


def run_background(
    features: Features,
    splits: int,
    feature_sets: tuple[str, ...] = FEATURE_SETS,
    augment: tuple[str, ...] = (),
    query_flip: bool = False,
) -> dict:
    """Every candidate, and the shipped classifier (old and new defaults), on the same splits."""
    labels = features.labels
    closed_draws, episodes = closed_splits(labels, splits), open_splits(labels, splits)
    families: dict[tuple, list[Candidate]] = {}
    for candidate in candidates(feature_sets):
        families.setdefault((candidate.features, candidate.normalisation, candidate.rule), []).append(candidate)
    rows = []
    for (spec, _, _), family in families.items():
        vectors = views_of(features, spec, augment, query_flip) if augment or query_flip else stacked(features, spec)
        rows += evaluate_family(family, vectors, labels, closed_draws, episodes)
    shipped = {}
    for name, options in {"before": {"rule": "knn", "threshold": 0.4}, "now": {}}.items():

        def run(taught, queries, options=options):
            return shipped_episode(options, features.by_tap["pool"], labels, taught, queries)

        outcomes = [run(taught, queries) for _, taught, queries in episodes]
        shipped[name] = {"closed": closed_figures(run, closed_draws), "open": open_figures(outcomes)}
    return {"candidates": rows, "shipped": shipped}


def view_similarity(features: Features) -> dict[str, float]:
    """How far the extra views move an image at ``pool`` (sqrt normalisation): mean cosine of each image with each
    of its views, next to the mean cosine of each image with its nearest other image of the same class."""
    plain = unit(signed_sqrt(stacked(features, "pool")))
    similarities = plain @ plain.T
    np.fill_diagonal(similarities, -np.inf)
    same = features.labels[:, None] == features.labels[None, :]
    figures = {"nearest_same_class": float(np.where(same, similarities, -np.inf).max(axis=1).mean())}
    for view in features.views:
        figures[view] = float(np.mean(np.sum(plain * unit(signed_sqrt(stacked(features, "pool", view))), axis=1)))
    return figures


# ------------------------------------------------------------------------------------------------ camera-like enrolment
CAMERA_TAPS = ("blocks.5", "blocks.6", "pool")
CAMERA_SCORES = {
    "pool / sqrt (the shipped score)": ("pool", "sqrt", True),
    "blocks.6 / centre": ("blocks.6", "centre", False),
    "blocks.6 / sqrt": ("blocks.6", "sqrt", False),
    "blocks.5 / centre": ("blocks.5", "centre", False),
    "pool / centre": ("pool", "centre", False),
    "blocks.5+pool / l2": ("blocks.5+pool", "l2", False),
}
"""Name -> (feature set as in ``stacked``, normalisation, whether the boundary is capped at MAX_BOUNDARY as the app caps it). The class
decision is always the shipped one (pool / sqrt / prototype); only the "not sure" score and its calibration change.
``centre``: L2, minus the mean of the project's (taught copies') L2 vectors, L2 again."""


def take_out_scores(support: np.ndarray, labels: np.ndarray, takes: np.ndarray) -> np.ndarray:
    """Each (unit) support row's similarity to its class's mean made without its take; NaN when its take is all of
    its class. With every row a take of its own, this is the plain leave-one-out score."""
    scores = np.full(len(support), np.nan)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        total = support[rows].sum(axis=0)
        for take in np.unique(takes[rows]):
            mine = rows[takes[rows] == take]
            if len(mine) < len(rows):
                scores[mine] = support[mine] @ unit(total - support[mine].sum(axis=0))
    return scores


@dataclass(frozen=True)
class CameraEpisode:
    truth: np.ndarray
    best: np.ndarray
    margin: np.ndarray
    """Score minus boundary: below 0 is "not sure"."""
    score: np.ndarray


def camera_project(features: Features, taught: np.ndarray, spec: str, leave_take_out: bool):
    """The copies of the taught photos in the feature set ``spec`` (rows photo by photo), their class names and their
    takes (one per photo after, one per copy before)."""
    copies = unit(np.concatenate([unit(features.copies[tap][taught]) for tap in spec.split("+")], axis=-1))
    count = copies.shape[1]
    takes = np.repeat(np.arange(len(taught)), count) if leave_take_out else np.arange(len(taught) * count)
    return copies.reshape(-1, copies.shape[2]), np.repeat(features.labels[taught], count), takes


def shipped_camera_episode(features: Features, taught, queries, leave_take_out: bool) -> CameraEpisode:
    """The shipped classifier with camera-like takes (``leave_take_out``) or with every copy its own take."""
    vectors, labels, takes = camera_project(features, taught, "pool", leave_take_out)
    classifier = KNNClassifier(vectors.shape[1], approximate_from=None)
    classifier.add(vectors, list(labels), list(takes))
    return classified(classifier, features.by_tap["pool"], features.labels, queries)


def fitted_once_episode(features: Features, taught, queries) -> CameraEpisode:
    """The shipped classifier fitted with one plain vector per taught photo (as ``teachable fit`` does)."""
    classifier = KNNClassifier(features.by_tap["pool"].shape[1], approximate_from=None)
    classifier.add(features.by_tap["pool"][taught], list(features.labels[taught]))
    return classified(classifier, features.by_tap["pool"], features.labels, queries)


def classified(classifier: KNNClassifier, raw: np.ndarray, labels: np.ndarray, queries) -> CameraEpisode:
    code = {name: i for i, name in enumerate(classifier.classes)}
    predictions = [classifier.predict(vector, DEFAULT_K) for vector in raw[queries]]
    return CameraEpisode(
        np.array([code.get(name, -1) for name in labels[queries]]),
        np.array([code[p.label] for p in predictions]),
        np.array([p.score - p.boundary for p in predictions]),
        np.array([p.score for p in predictions]),
    )


def scored_camera_episode(features: Features, taught, queries, score: str, leave_take_out: bool) -> CameraEpisode:
    """The shipped decision (pool / sqrt / prototype of the copies), with the "not sure" score ``score`` (a key of
    CAMERA_SCORES): the query's similarity to the decided class's prototype in that space, against the
    strictness-quantile of the copies' own scores there."""
    vectors, labels, takes = camera_project(features, taught, "pool", leave_take_out)
    classes = list(dict.fromkeys(labels))
    codes = np.array([classes.index(name) for name in labels])
    truth = np.array([classes.index(name) if name in classes else -1 for name in features.labels[queries]])
    support, query = normalised(vectors, features.by_tap["pool"][queries], "sqrt")
    best = (query @ prototypes(support, codes, len(classes)).T).argmax(axis=1)
    tap, normalisation, capped = CAMERA_SCORES[score]
    raw, _, _ = camera_project(features, taught, tap, leave_take_out)
    support, query = normalised(raw, stacked(features, tap)[queries], normalisation)
    scores = (query @ prototypes(support, codes, len(classes)).T)[np.arange(len(queries)), best]
    own = take_out_scores(support, codes, takes)
    own = own[np.isfinite(own)]
    boundary = np.quantile(own, DEFAULT_STRICTNESS) if len(own) >= MIN_CALIBRATION_SCORES else FALLBACK_BOUNDARY
    boundary = min(boundary, MAX_BOUNDARY) if capped else boundary
    return CameraEpisode(truth, best, scores - boundary, scores)


def camera_open_figures(outcomes: list[CameraEpisode]) -> dict:
    """open_figures, plus "not sure" on correctly guessed known photos and the mean AUROC of the score within an
    episode (which no calibration changes)."""
    figures = open_figures([(e.truth, e.best, e.margin) for e in outcomes])
    truth, best, margin = (np.concatenate([getattr(e, name) for e in outcomes]) for name in ("truth", "best", "margin"))
    correct = (truth >= 0) & (truth == best)
    figures["not_sure_on_correct"] = float((margin[correct] < 0).mean())
    figures["auroc_within"] = float(np.mean([roc_auc_score(e.truth < 0, -e.score) for e in outcomes]))
    return figures


def copy_similarity(features: Features) -> dict[str, float]:
    """Cosine similarity (L2 ``pool`` vectors, as the classifier stores them) of each photo with its camera-like
    copies, and of distinct photos of one class: percentiles, and the share of pairs at NEAR_COPY_SIMILARITY."""
    plain, copies = unit(features.by_tap["pool"]), unit(features.copies["pool"])
    with_copies = np.einsum("nd,ncd->nc", plain, copies).ravel()
    distinct = plain @ plain.T
    pairs = distinct[(features.labels[:, None] == features.labels[None, :]) & ~np.eye(len(plain), dtype=bool)]
    figures = {f"photo_copy_p{q}": float(np.percentile(with_copies, q)) for q in (1, 5, 50)}
    figures |= {f"distinct_same_class_p{q}": float(np.percentile(pairs, q)) for q in (50, 99)}
    figures["distinct_same_class_max"] = float(pairs.max())
    figures["photo_copy_share_at_threshold"] = float((with_copies >= NEAR_COPY_SIMILARITY).mean())
    figures["distinct_share_at_threshold"] = float((pairs >= NEAR_COPY_SIMILARITY).mean())
    return figures


def run_camera_background(features: Features, splits: int) -> dict:
    """Every camera-mode row on the same splits as the main benchmark."""
    labels = features.labels
    closed_draws, episodes = closed_splits(labels, splits), open_splits(labels, splits)
    runs = {"fitted once per photo (reference)": lambda t, q: fitted_once_episode(features, t, q)}
    for name, after in (("before: per-example leave-one-out", False), ("after: leave the take out", True)):
        runs[f"shipped classifier, {name}"] = lambda t, q, after=after: shipped_camera_episode(features, t, q, after)
    for score in CAMERA_SCORES:
        for name, after in (("before", False), ("after", True)):
            runs[f"score {score}, {name}"] = (
                lambda t, q, score=score, after=after: scored_camera_episode(features, t, q, score, after)
            )
    rows = {}
    for name, run in runs.items():
        closed = closed_figures(lambda t, q, run=run: dataclasses.astuple(run(t, q)), closed_draws)
        rows[name] = {"closed": closed, "open": camera_open_figures([run(t, q) for _, t, q in episodes])}
    return {"rows": rows, "copy_similarity": copy_similarity(features)}


CAMERA_HEADER = (
    "| row | 1-shot | 5-shot | 10-shot | not sure on correct | known acc. | unknown recall | mean | AUROC (margin) "
    "| AUROC within episode |\n|---|---|---|---|---|---|---|---|---|---|"
)


def write_camera_results(results: dict, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "fewshot_camera.json").write_text(json.dumps(results, indent=1))
    meta = results["meta"]
    lines = [
        "# Calibration with camera-like enrolment",
        "",
        f"Data: {meta['folder_name']} ({meta['images']} images). Every taught photo enters the project as "
        f"{meta['copies']} camera-like copies (one take); queries are the plain photos. {meta['splits']} random "
        f"splits per number of shots; open set: each class left out in turn, {meta['splits']} draws each, "
        f"{OPEN_SHOTS} photos per taught class. Backbone {meta['backbone']}, strictness {DEFAULT_STRICTNESS}. "
        "*Before*: each copy is scored against its class without itself (its near-copies stay in); *after*: "
        "without its take. \"Not sure on correct\": share of the known photos whose best guess is right that come "
        "back \"not sure\". The class decision is the shipped one in every row, so the closed set only differs for "
        "the reference.",
        "",
    ]
    for background, result in results["backgrounds"].items():
        lines += [f"## Background: {background}", "", CAMERA_HEADER]
        for name, figures in result["rows"].items():
            shots = " | ".join(f"{figures['closed'][f'{s}-shot']['mean']:.3f}" for s in SHOTS)
            o = figures["open"]
            cells = " | ".join(
                f"{o[key]:.3f}"
                for key in ("not_sure_on_correct", "known_accuracy", "unknown_recall", "mean", "auroc", "auroc_within")
            )
            lines.append(f"| {name} | {shots} | {cells} |")
        similarity = result["copy_similarity"]
        lines += [
            "",
            "Cosine similarity at `pool` (L2): a photo and its copies "
            f"p1 {similarity['photo_copy_p1']:.3f}, p5 {similarity['photo_copy_p5']:.3f}, median "
            f"{similarity['photo_copy_p50']:.3f}; two distinct photos of one class median "
            f"{similarity['distinct_same_class_p50']:.3f}, p99 {similarity['distinct_same_class_p99']:.3f}, most "
            f"alike {similarity['distinct_same_class_max']:.3f}. At the near-copy similarity {NEAR_COPY_SIMILARITY}: "
            f"{similarity['photo_copy_share_at_threshold']:.1%} of photo-copy pairs, "
            f"{similarity['distinct_share_at_threshold']:.1%} of distinct pairs.",
            "",
        ]
    (output / "fewshot_camera.md").write_text("\n".join(lines))


# ------------------------------------------------------------------------------------------------ report
TARGETS = (
    "10-shot closed set at least 3 points above the baseline's",
    "5-shot closed set at least the baseline's 10-shot",
    "open set known accuracy at least 0.85",
    "open set mean of known accuracy and unknown recall at least 0.85",
)


def targets(baseline: dict, chosen: dict) -> dict[str, bool]:
    return dict(
        zip(
            TARGETS,
            (
                chosen["closed"]["10-shot"]["mean"] >= baseline["closed"]["10-shot"]["mean"] + 0.03,
                chosen["closed"]["5-shot"]["mean"] >= baseline["closed"]["10-shot"]["mean"],
                chosen["open"]["known_accuracy"] >= 0.85,
                chosen["open"]["mean"] >= 0.85,
            ),
        )
    )


def row_cells(name: str, figures: dict) -> str:
    shots = [figures["closed"][f"{s}-shot"] for s in SHOTS]
    closed = " | ".join(f"{shot['mean']:.3f} ± {shot['sd']:.3f}" for shot in shots)
    o = figures["open"]
    open_cells = " | ".join(f"{o[key]:.3f}" for key in ("known_accuracy", "unknown_recall", "mean", "auroc"))
    return f"| {name} | {closed} | {open_cells} |"


HEADER = (
    "| candidate (features, normalisation, rule, unknown) | 1-shot | 5-shot | 10-shot | known acc. | unknown recall "
    "| mean | AUROC |\n|---|---|---|---|---|---|---|---|"
)


def markdown_section(background: str, result: dict, top: int = 12) -> list[str]:
    rows = result["candidates"]
    by_name = {row["name"]: row for row in rows}
    baseline, chosen = by_name[BASELINE.name], by_name[CHOSEN.name]
    lines = [f"## Background: {background}", "", HEADER]
    lines.append(row_cells(f"**baseline** {BASELINE.name}", baseline))
    lines.append(row_cells(f"**chosen** {CHOSEN.name}", chosen))
    for name, figures in result["shipped"].items():
        lines.append(row_cells(f"teachable.knn.KNNClassifier, defaults {name}", figures))
    lines += ["", "Targets (chosen vs baseline): " + "; ".join(
        f"{target}: {'met' if met else 'not met'}" for target, met in targets(baseline, chosen).items()
    ), "", f"Best {top} by 10-shot closed-set accuracy (one row per features/normalisation/rule):", "", HEADER]
    closed_best = {}
    for row in rows:
        closed_best.setdefault((row["features"], row["normalisation"], row["rule"]), row)
    ranked = sorted(closed_best.values(), key=lambda r: -r["closed"]["10-shot"]["mean"])[:top]
    lines += [row_cells(r["name"], r) for r in ranked]
    lines += ["", f"Best {top} by open-set mean:", "", HEADER]
    lines += [row_cells(r["name"], r) for r in sorted(rows, key=lambda r: -r["open"]["mean"])[:top]]
    lines += ["", f"Best {top} by open-set AUROC:", "", HEADER]
    lines += [row_cells(r["name"], r) for r in sorted(rows, key=lambda r: -r["open"]["auroc"])[:top]]
    return lines + [""]


def write_results(results: dict, output: Path, stem: str = "fewshot") -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / f"{stem}.json").write_text(json.dumps(results, separators=(",", ":")))
    meta = results["meta"]
    lines = [
        "# Few-shot and open-set figures",
        "",
        f"Data: {meta['folder_name']} ({meta['images']} images, classes {', '.join(meta['classes'])}). "
        f"{meta['splits']} random splits per number of shots; open set: each class left out in turn, "
        f"{meta['splits']} draws each, {OPEN_SHOTS} shots per taught class. Backbone {meta['backbone']}. "
        "Settings were chosen on this same set (a development set): expect other photos to do somewhat differently.",
        "",
        f"Enrolment augmentation: {meta.get('augment', 'none')} (views {', '.join(meta.get('views', [])) or 'none'}); "
        f"queries: {'mean of the frame and its mirror (two forward passes)' if meta.get('query_flip') else 'plain'}. "
        "Runtime: torch. The shipped-classifier rows are always plain (no augmentation, no query flip).",
        "",
        "Cut-outs are centred on a square background 1.4 times their longer side: `grey` is plain RGB 190, "
        "`texture` a random crop of scikit-image's brick, grass or gravel photo per image.",
        "",
        "Unknown rules: `fixed:T` cosine below T; `project:Q` below the Q-quantile of the taught examples' own "
        "leave-one-out scores; `class:Q` the same per class. Normalisation `sqrt`: signed square root, then L2; "
        "`centre`: L2, minus the project's mean, L2.",
        "",
    ]
    for background, result in results["backgrounds"].items():
        lines += markdown_section(background, result)
    (output / f"{stem}.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--background", nargs="+", default=["grey", "texture"], choices=["grey", "texture"])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--backbone", default="efficientnet_lite0", choices=sorted(TAPS_BY_BACKBONE))
    parser.add_argument("--augment", default="none", choices=list(AUGMENTATIONS))
    parser.add_argument("--query-flip", action="store_true", help="query with the mean of the frame and its mirror")
    parser.add_argument("--camera", type=int, default=0, metavar="COPIES", help="camera-like enrolment (see above)")
    args = parser.parse_args(argv)
    import torch

    from teachable.backbones import load_backbone

    torch.set_num_threads(2)
    backbone = load_backbone(args.backbone, device="cpu", runtime="torch")
    augment = AUGMENTATIONS[args.augment]
    views = tuple(dict.fromkeys(augment + (("flip",) if args.query_flip else ())))
    started = time.perf_counter()
    if args.camera:
        camera_main(args, backbone, started)
        return
    results = {"meta": {}, "backgrounds": {}}
    for background in args.background:
        features = embed_folder(args.folder, list(TAPS_BY_BACKBONE[args.backbone]), background, backbone, views)
        print(f"{background}: embedded {len(features.labels)} images in {time.perf_counter() - started:.0f} s")
        results["backgrounds"][background] = run_background(
            features, args.splits, FEATURE_SETS_BY_BACKBONE[args.backbone], augment, args.query_flip
        )
        results["backgrounds"][background]["view_similarity"] = view_similarity(features)
    results["meta"] = {
        "folder_name": args.folder.name,
        "images": int(len(features.labels)),
        "classes": list(features.classes),
        "splits": args.splits,
        "backbone": backbone.name,
        "baseline": BASELINE.name,
        "chosen": CHOSEN.name,
        "augment": args.augment,
        "views": list(augment),
        "query_flip": args.query_flip,
        "runtime": "torch",
        "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
    }
    both = sorted(args.background) == ["grey", "texture"]
    default = args.backbone == "efficientnet_lite0" and args.augment == "none" and not args.query_flip and both
    stem = "fewshot" if default else f"fewshot_{args.backbone}_{args.augment.replace('+', '-')}"
    stem += ("_qflip" if args.query_flip else "") + ("" if both else "_" + "-".join(args.background))
    write_results(results, args.output, stem)
    print(f"Wrote {args.output / stem}.json and {stem}.md in {results['meta']['seconds']} s")


def camera_main(args, backbone, started: float) -> None:
    results = {"meta": {}, "backgrounds": {}}
    for background in args.background:
        features = embed_folder(args.folder, list(CAMERA_TAPS), background, backbone, camera_copies=args.camera)
        print(f"{background}: embedded {len(features.labels)} images in {time.perf_counter() - started:.0f} s")
        results["backgrounds"][background] = run_camera_background(features, args.splits)
    results["meta"] = {
        "folder_name": args.folder.name,
        "images": int(len(features.labels)),
        "classes": list(features.classes),
        "splits": args.splits,
        "copies": args.camera,
        "backbone": backbone.name,
        "near_copy_similarity": NEAR_COPY_SIMILARITY,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
    }
    write_camera_results(results, args.output)
    print(f"Wrote {args.output / 'fewshot_camera'}.json and .md in {results['meta']['seconds']} s")


if __name__ == "__main__":
    main()
