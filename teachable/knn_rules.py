"""The two decision rules and their "not sure" boundary, over the rows of an :class:`~teachable.knn_store.ExampleStore`.

**Prototype rule** (:class:`PrototypeRule`, the default). Each stored vector is mapped to ``unit(sqrt(v))`` (signed
square root, then unit length; scale-free, so it works on the stored unit vectors). A class's *prototype* is the
unit mean of its mapped examples, kept as a running sum so adding an example costs O(D). The answer is the class
whose prototype is most similar to the frame; that similarity is the prediction's ``score``. Its knob is the
**strictness**: the boundary is the strictness-quantile of the examples' own scores (each example's similarity to
its class's prototype made without its take), at most ``MAX_BOUNDARY``; with fewer than ``MIN_CALIBRATION_SCORES``
own scores it is ``FALLBACK_BOUNDARY``. Strictness 0.2 means: a frame is "not sure" when it matches its best class
less well than the least typical fifth of the project's own examples match theirs.

**Vote rule** (:class:`VoteRule`, ``rule="knn"``, the former rule). The nearest examples vote with weight
``exp(similarity / temperature)``. Its knob is the **minimum similarity**: a plain cosine similarity below which
the nearest example makes the frame unknown.

**Takes.** A take's frames are near-copies of one another, so scoring an example against a prototype that still
holds them measures how well the class recognises a copy, not a new view. Every leave-one-out figure here (the
examples' own scores, the boundary, the held-out predictions) leaves the whole take out.

**Confidence.** Each class gets weight ``exp(score_c / temperature)`` (prototype rule: its prototype similarity;
vote rule: its summed votes) and a virtual "unknown" class the weight of the boundary. A class's confidence is its
share, so the confidences sum to less than 1 and the rest is the chance that the frame is none of the classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .knn_store import ExampleStore
from .vectors import mapped

__all__ = ["Evaluation", "Neighbour", "Prediction", "PrototypeRule", "VoteRule"]

DEFAULT_STRICTNESS = 0.2
"""Share of the project's own examples (by leave-one-out) that would come back "not sure": the quantile of their
scores used as the boundary. 0.2 gave the best mean of known accuracy and unknown recall on the development set."""
DEFAULT_MIN_SIMILARITY = 0.4
"""The vote rule's cosine similarity below which a frame is unknown (unrelated photos score 0.06-0.24 at ``pool``)."""
FALLBACK_BOUNDARY = 0.6
"""Prototype similarity below which a frame is unknown while there are too few examples to calibrate on."""
MAX_BOUNDARY = 0.7
"""The calibrated boundary never rises above this. A class recorded from a still camera is many near-copies of one
view, whose leave-one-out scores are all about 0.99: their quantile would call the very same object "not sure"
after a small move. On the development set (distinct objects, 5 and 10 per class) the calibrated boundary was
0.50-0.65, so the cap changes nothing there."""
MIN_CALIBRATION_SCORES = 3
CALIBRATION_SAMPLE = 1024
"""At most this many examples (evenly spread over the rows) give the leave-one-out scores the boundary is a
quantile of, so calibrating stays a few milliseconds at any project size."""
DEFAULT_TEMPERATURE = 0.05
CHUNK = 8192
"""Rows mapped at a time when sums or held-out scores are computed, so a large project needs no full mapped copy."""


@dataclass(frozen=True)
class Neighbour:
    index: int
    """Row of the example in the classifier (and in the project)."""
    label: str
    similarity: float


@dataclass(frozen=True)
class Prediction:
    label: str
    """The best class, always (also when ``unknown``): the most similar prototype, or the most votes."""
    confidences: dict[str, float]
    """Share per class (every class the classifier knows); sums to at most 1, the rest is "unknown"."""
    neighbours: tuple[Neighbour, ...]
    """The nearest examples by cosine similarity, most similar first."""
    nearest_similarity: float
    """Cosine similarity of the nearest example."""
    unknown: bool
    """True when ``score`` is below ``boundary``: the frame matches no class well enough ("not sure")."""
    score: float = 0.0
    """What the unknown rule compares: the best class's prototype similarity (vote rule: the nearest example's)."""
    boundary: float = 0.0
    """The value ``score`` was compared with: the calibrated boundary (vote rule: the minimum similarity)."""

    @property
    def is_unknown(self) -> bool:
        """Same as ``unknown`` (the earlier name)."""
        return self.unknown

    @property
    def shown_label(self) -> str:
        """``"unknown"`` when not sure, else the best class."""
        return "unknown" if self.unknown else self.label


@dataclass(frozen=True)
class Evaluation:
    """Leave-one-out result: every example classified by all the others."""

    classes: tuple[str, ...]
    true_labels: tuple[str, ...]
    predicted_labels: tuple[str, ...]
    confusion: np.ndarray = field(repr=False)
    """``confusion[i, j]``: examples of ``classes[i]`` predicted as ``classes[j]``."""
    confidences: tuple[float, ...] = ()
    """Per example: the confidence its predicted class got."""

    @classmethod
    def of(cls, classes: tuple[str, ...], true_labels: list[str], predictions: list[Prediction]) -> "Evaluation":
        """The evaluation of ``predictions``, one per example of ``true_labels``, over ``classes`` in that order."""
        predicted = [prediction.label for prediction in predictions]
        position = {name: i for i, name in enumerate(classes)}
        confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
        for true, guess in zip(true_labels, predicted):
            confusion[position[true], position[guess]] += 1
        confidences = tuple(prediction.confidences[prediction.label] for prediction in predictions)
        return cls(classes, tuple(true_labels), tuple(predicted), confusion, confidences)

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else 0.0

    @property
    def per_class_accuracy(self) -> dict[str, float]:
        rows = self.confusion.sum(axis=1)
        return {name: float(self.confusion[i, i] / rows[i]) if rows[i] else 0.0 for i, name in enumerate(self.classes)}

    def as_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "per_class": self.per_class_accuracy,
            "classes": list(self.classes),
            "confusion": self.confusion.tolist(),
        }


def neighbours_of(labels: list[str], similarities: np.ndarray, rows: np.ndarray) -> tuple[Neighbour, ...]:
    """The found rows (FAISS marks a missing one -1) as neighbours, in the order found."""
    return tuple(Neighbour(int(i), labels[i], float(s)) for i, s in zip(rows, similarities) if i >= 0)


class VoteRule:
    """The nearest examples vote; a frame whose nearest example is less similar than :attr:`min_similarity` is
    unknown."""

    name = "knn"

    def __init__(self, store: ExampleStore, min_similarity: float, temperature: float) -> None:
        self._store = store
        self.min_similarity = min_similarity
        """Cosine similarity of the nearest example below which the frame is unknown (the page's knob)."""
        self.temperature = temperature

    @property
    def boundary(self) -> float:
        return self.min_similarity

    def decide(self, query: np.ndarray, similarities: np.ndarray, rows: np.ndarray, classes: tuple) -> Prediction:
        """The votes of the nearest ``rows`` (found for ``query``, most similar first)."""
        valid = rows >= 0
        similarities, rows = similarities[valid], rows[valid]
        labels = self._store.labels
        weights = np.exp((similarities - similarities[0]) / self.temperature)
        unknown_weight = np.exp((self.min_similarity - similarities[0]) / self.temperature)
        votes = dict.fromkeys(classes, 0.0)
        for row, weight in zip(rows, weights):
            votes[labels[row]] += float(weight)
        total = sum(votes.values()) + float(unknown_weight)
        return Prediction(
            label=max(votes, key=votes.get),
            confidences={name: vote / total for name, vote in votes.items()},
            neighbours=neighbours_of(labels, similarities, rows),
            nearest_similarity=float(similarities[0]),
            unknown=bool(similarities[0] < self.min_similarity),
            score=float(similarities[0]),
            boundary=float(self.min_similarity),
        )

    def held_out(self, classes: tuple, others_nearest: Callable[[], tuple[np.ndarray, np.ndarray]]) -> list[Prediction]:
        """Every example decided by the votes of its nearest examples of other takes."""
        return [self.decide(None, sims, rows, classes) for sims, rows in zip(*others_nearest())]


class PrototypeRule:
    """Nearest class mean of the mapped vectors, with a boundary calibrated on the examples' own scores at the
    :attr:`strictness` quantile."""

    name = "prototype"

    def __init__(self, store: ExampleStore, strictness: float, temperature: float) -> None:
        self._store = store
        self.strictness = strictness
        """0 to 1: the share of the project's own examples that would come back "not sure" (the page's knob)."""
        self.temperature = temperature
        self._sums: dict[str, np.ndarray] | None = None  # per class: sum of mapped vectors; None: recompute
        self._counts: dict[str, int] = {}
        self._take_rows: dict[tuple[str, int], list[int]] = {}  # (class, take) -> its rows; rebuilt with the sums
        self._take_sums: dict[tuple[str, int], np.ndarray] = {}  # (class, take) -> sum of its mapped vectors
        self._own_scores: np.ndarray | None = None  # leave-one-out scores of a sample of rows; None: recompute
        self._boundaries: dict[float, float] = {}  # strictness -> boundary, for the current own scores

    # ----------------------------------------------------------------- keeping up with the store
    def forget(self) -> None:
        """Rows were removed or relabelled: the sums are rebuilt on next use."""
        self._sums, self._counts, self._own_scores = None, {}, None
        self._take_rows, self._take_sums = {}, {}

    def added(self, vectors: np.ndarray, labels: list[str], takes: list[int]) -> None:
        """The store's last rows are these: add them to the running class sums (O(D) per example) and to their
        takes' rows; the boundary is recomputed on next use."""
        self._own_scores = None
        if self._sums is None:
            return  # rebuilt from all rows on next use
        rows = mapped(vectors)
        for label in dict.fromkeys(labels):
            mine = np.fromiter((name == label for name in labels), bool, len(labels))
            self._sums[label] = self._sums.get(label, np.zeros(self._store.dim, np.float32)) + rows[mine].sum(axis=0)
            self._counts[label] = self._counts.get(label, 0) + int(mine.sum())
        first = len(self._store) - len(labels)
        for offset, key in enumerate(zip(labels, takes)):
            self._take_rows.setdefault(key, []).append(first + offset)
            self._take_sums.pop(key, None)  # summed again when next needed

    def _class_sums(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Per class, the sum of its mapped vectors and its number of examples (rebuilt after a removal)."""
        if self._sums is None:
            store, self._sums, self._counts = self._store, {}, {}
            labels = np.asarray(store.labels, dtype=object)
            for start in range(0, len(store), CHUNK):  # mapped copies of a chunk at a time
                chunk = slice(start, start + CHUNK)
                rows = mapped(store.vectors[chunk])
                for label in dict.fromkeys(store.labels[chunk]):
                    mine = labels[chunk] == label
                    self._sums[label] = self._sums.get(label, np.zeros(store.dim, np.float32)) + rows[mine].sum(axis=0)
                    self._counts[label] = self._counts.get(label, 0) + int(mine.sum())
            self._take_rows, self._take_sums = {}, {}
            for row, key in enumerate(zip(store.labels, store.takes)):
                self._take_rows.setdefault(key, []).append(row)
        return self._sums, self._counts

    def _take_sum(self, key: tuple[str, int]) -> np.ndarray:
        """The sum of the mapped vectors of one class's examples in one take (kept until the take grows)."""
        if key not in self._take_sums:
            self._take_sums[key] = mapped(self._store.vectors[self._take_rows[key]]).sum(axis=0)
        return self._take_sums[key]

    # ----------------------------------------------------------------- prototypes and the boundary
    def prototypes(self) -> tuple[tuple[str, ...], np.ndarray]:
        """The classes with examples and their prototypes (unit mean of the mapped vectors), one row each."""
        sums, _ = self._class_sums()
        names = self._store.classes
        if not names:
            return (), np.zeros((0, self._store.dim), np.float32)
        matrix = np.stack([sums[name] for name in names])
        return names, matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def own_scores(self, rows: np.ndarray | None = None, leave_take_out: bool = True) -> np.ndarray:
        """Each example's similarity to its class's prototype made without its take (NaN when its take is all of its
        class); ``leave_take_out=False``: without just the example itself."""
        store = self._store
        rows = np.arange(len(store)) if rows is None else np.asarray(rows, dtype=np.int64)
        sums, counts = self._class_sums()
        vectors = mapped(store.vectors[rows])
        left_out = vectors.copy()
        left_out_count = np.ones(len(rows), dtype=np.int64)
        for position, row in enumerate(rows):
            key = (store.labels[row], store.takes[row])
            if leave_take_out and len(self._take_rows[key]) > 1:
                left_out[position] = self._take_sum(key)
                left_out_count[position] = len(self._take_rows[key])
        labels = [store.labels[row] for row in rows]
        others = np.stack([sums[label] for label in labels]) - left_out if len(rows) else vectors
        norms = np.linalg.norm(others, axis=1)
        scores = (vectors * others).sum(axis=1) / np.maximum(norms, 1e-12)
        alone = np.array([counts[label] for label in labels], dtype=np.int64) <= left_out_count
        scores[alone | (norms < 1e-6)] = np.nan
        return scores

    @property
    def boundary(self) -> float:
        """The :attr:`strictness` quantile of a sample of own scores, at most ``MAX_BOUNDARY``, or
        ``FALLBACK_BOUNDARY`` while fewer than ``MIN_CALIBRATION_SCORES`` exist."""
        count = len(self._store)
        if self._own_scores is None:
            sample = np.unique(np.linspace(0, count - 1, min(count, CALIBRATION_SAMPLE)).round().astype(int))
            scores = self.own_scores(sample) if count else np.zeros(0)
            self._own_scores = np.sort(scores[np.isfinite(scores)])
            self._boundaries = {}
        if len(self._own_scores) < MIN_CALIBRATION_SCORES:
            return FALLBACK_BOUNDARY
        if self.strictness not in self._boundaries:
            quantile = float(np.quantile(self._own_scores, min(max(self.strictness, 0.0), 1.0)))
            self._boundaries[self.strictness] = min(quantile, MAX_BOUNDARY)
        return self._boundaries[self.strictness]

    # ----------------------------------------------------------------- deciding
    def decide(self, query: np.ndarray, similarities: np.ndarray, rows: np.ndarray, classes: tuple) -> Prediction:
        """The class whose prototype is nearest the unit ``query``; ``rows`` are only reported as neighbours."""
        names, prototypes = self.prototypes()
        return self._nearest_class(similarities, rows, prototypes @ mapped(query)[0], names, classes)

    def _nearest_class(
        self, similarities: np.ndarray, rows: np.ndarray, scores: np.ndarray, names: tuple, classes: tuple
    ) -> Prediction:
        """``scores`` are the frame's similarities to the prototypes of ``names``."""
        valid = rows >= 0
        similarities, rows = similarities[valid], rows[valid]
        boundary = self.boundary
        best = int(np.argmax(scores))
        weights = np.exp((np.append(scores, boundary) - scores[best]) / self.temperature)
        shares = dict(zip(names, (weights[:-1] / weights.sum()).tolist()))
        return Prediction(
            label=names[best],
            confidences={name: shares.get(name, 0.0) for name in classes},
            neighbours=neighbours_of(self._store.labels, similarities, rows),
            nearest_similarity=float(similarities[0]) if len(similarities) else float("nan"),
            unknown=bool(scores[best] < boundary),
            score=float(scores[best]),
            boundary=float(boundary),
        )

    def held_out(self, classes: tuple, others_nearest: Callable | None = None) -> list[Prediction]:
        """Every example against the prototypes, its own class's made without its take (no neighbours reported).
        An example whose take is all of its class can only be checked against its take-mates: its class is made
        without just itself. (``others_nearest`` is not needed: the prototypes are enough.)"""
        store = self._store
        names, prototypes = self.prototypes()
        own = self.own_scores()
        whole_class = np.flatnonzero(np.isnan(own))
        own[whole_class] = self.own_scores(whole_class, leave_take_out=False)
        column = {name: i for i, name in enumerate(names)}
        results = []
        for start in range(0, len(store), CHUNK):
            rows = np.arange(start, min(start + CHUNK, len(store)))
            scores = mapped(store.vectors[rows]) @ prototypes.T
            for row, row_scores in zip(rows, scores):
                row_scores[column[store.labels[row]]] = np.nan_to_num(own[row], nan=-1.0)
                results.append(self._nearest_class(np.ones(1), np.full(1, -1), row_scores, names, classes))
        return results
