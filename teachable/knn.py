"""Classifier over example embeddings: nearest class mean for the answer, FAISS for the nearest examples.

There is no training step. ``add`` makes an example count at once, ``predict`` answers from the examples as they
are now, and ``leave_one_out`` scores every example against all the others in one pass.

**Decision rule** (``rule="prototype"``, the default). Each stored vector is mapped to ``unit(sqrt(v))`` (signed
square root, then unit length; scale-free, so it works on the stored unit vectors). A class's *prototype* is the
unit mean of its mapped examples, kept as a running sum so adding an example costs O(D). ``label`` is the class
whose prototype is most similar to the frame; that similarity is the prediction's ``score``.

**Unknown rule.** The boundary is calibrated on the project itself: every example's own score (its similarity to
its class's prototype made without its *take*, see below) is computed, and the boundary is the
``strictness``-quantile of those scores. Strictness 0.2 means: a frame is "not sure" when it matches its best class less well than the
least typical fifth of the project's own examples match theirs. With fewer than ``MIN_CALIBRATION_SCORES`` such
scores (one example per class), ``FALLBACK_BOUNDARY`` is used. ``unknown`` is ``score < boundary``; ``label`` is
still the best class, so the page can say "not sure, best guess: cup".

On the development set (benchmarks/results/fewshot.md) the square root and the prototypes raise few-shot accuracy
over the kNN vote on the same ``pool`` embedding, and the calibrated boundary separates untaught objects better than
the fixed similarity 0.4, which no longer suits a project whose classes are broad.

**Takes.** Every example belongs to a take: the frames of one hold of the record button, or one uploaded or
imported image (``add(..., takes=...)``; by default each example is a take of its own). A take's frames are
near-copies of one another, so scoring an example against a prototype that still holds them measures how well the
class recognises a copy, not a new view: a held recording raised the boundary from 0.54-0.58 to 0.63-0.64 and made
the live page "not sure" about twice as many correctly guessed photos. So every leave-one-out figure here (the
examples' own scores, the boundary, ``leave_one_out``, ``others_nearest``) leaves the whole take out. A class
recorded in one take has no own scores (nothing is left when its take is out); with fewer than
``MIN_CALIBRATION_SCORES`` own scores in the project the boundary is ``FALLBACK_BOUNDARY``. Examples saved before
takes existed get theirs from :func:`near_copy_takes`.

``rule="knn"`` keeps the former rule: the k nearest examples vote with weight ``exp(similarity / temperature)``
and ``threshold`` is a plain cosine similarity below which the frame is unknown.

**Confidence.** Each class gets weight ``exp(score_c / temperature)`` (prototype rule: its prototype similarity;
kNN rule: its summed votes) and a virtual "unknown" class the weight of the boundary. A class's confidence is its
share, so the confidences sum to less than 1 and the rest is the chance that the frame is none of the classes.

**Storage.** Vectors are kept at float16 precision (rounded on ``add``, held as float32 for FAISS), so a project
file stores them as float16 without loss: save -> load predicts bit-identically at half the bytes. Rounding moves a
cosine similarity by about 1e-4; ``benchmarks/bench_scale.py`` measures the effect on predictions. The prototypes
and the boundary are derived from the stored vectors, so a project file needs nothing else.

**Index.** The nearest examples (shown on the page; the kNN rule's votes) come from FAISS. Below
``approximate_from`` examples, an exact ``IndexFlatIP`` answers. From there an IVF index
(``IndexIVFFlat``, ``sqrt(n)`` lists) is trained on a sample in a background thread while the flat index goes on
answering; once ready it answers instead, probing enough lists to keep recall against the flat index at or above
0.99 on the benchmark data. Adds go into it at once; a removal drops it and a new one is built in the background
from the kept centroids. When the installed faiss sees a GPU (the ``gpu`` extra), indexes live on the GPU.

This module knows nothing of images or models: it takes vectors and class names.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass, field

import faiss
import numpy as np

__all__ = [
    "KNNClassifier",
    "Prediction",
    "Neighbour",
    "Evaluation",
    "KNNError",
    "normalise",
    "mapped",
    "near_copy_takes",
    "RULES",
    "NEAR_COPY_SIMILARITY",
]

DEFAULT_K = 5
RULES = ("prototype", "knn")
DEFAULT_RULE = "prototype"
DEFAULT_STRICTNESS = 0.2
"""Share of the project's own examples (by leave-one-out) that would come back "not sure": the quantile of their
scores used as the boundary. 0.2 gave the best mean of known accuracy and unknown recall on the development set."""
DEFAULT_THRESHOLD = DEFAULT_STRICTNESS
"""The default of ``KNNClassifier.threshold``, the one knob of the unknown rule (the strictness, for the default
rule)."""
KNN_THRESHOLD = 0.4
"""The kNN rule's cosine similarity below which a frame is unknown (unrelated photos score 0.06-0.24 at ``pool``)."""
FALLBACK_BOUNDARY = 0.6
MAX_BOUNDARY = 0.7
"""The calibrated boundary never rises above this. A class recorded from a still camera is many near-copies of one
view, whose leave-one-out scores are all about 0.99: their quantile would call the very same object "not sure"
after a small move. On the development set (distinct objects, 5 and 10 per class) the calibrated boundary was
0.50-0.65, so the cap changes nothing there."""
"""Prototype similarity below which a frame is unknown while there are too few examples to calibrate on."""
MIN_CALIBRATION_SCORES = 3
CALIBRATION_SAMPLE = 1024
"""At most this many examples (evenly spread over the rows) give the leave-one-out scores the boundary is a
quantile of, so calibrating stays a few milliseconds at any project size."""
DEFAULT_TEMPERATURE = 0.05
APPROXIMATE_FROM = 20_000
"""Examples from which an approximate index is built. A flat search of 20k 1280-d vectors takes about 3.5 ms on a
2-core CPU and grows linearly (18 ms at 100k); the IVF index stays near 1 ms (benchmarks/bench_scale.py)."""
PROBE_FRACTION = 1 / 16
"""Share of the IVF lists each query visits (at least MIN_PROBES): recall >= 0.99 on the benchmark data."""
MIN_PROBES = 16
TRAINING_POINTS_PER_LIST = 40
NEAR_COPY_SIMILARITY = 0.93
"""Cosine similarity (of the stored vectors) from which two examples of a class count as near-copies of one view,
for :func:`near_copy_takes`. Measured on the development set at ``pool`` (benchmarks/results/fewshot_camera.md):
a photo and its camera-like copies (up to 4 % shift, 90-100 % crop, 0.85-1.15 brightness, as the frames of one
hold differ) have a median similarity of 0.96-0.97 and a 5th percentile of 0.92-0.94; no two distinct photos of
one category reach 0.90 (the most similar pair: 0.89 on grey, 0.82 on texture)."""

log = logging.getLogger(__name__)


class KNNError(ValueError):
    """A request the classifier cannot answer, with a message that says what to do."""


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit L2 length. Raises :class:`KNNError` on NaN/inf or all-zero rows."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    if vectors.ndim != 2:
        raise KNNError(f"Embeddings must be a vector or a 2-D array, got shape {vectors.shape}.")
    if not np.isfinite(vectors).all():
        raise KNNError("Embedding contains NaN or infinite values; it was not added.")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        raise KNNError("Embedding is all zeros; it cannot be compared by direction.")
    # Rows that are already unit length (to float16 precision, as stored) stay bit-identical, so saved and reloaded
    # vectors predict identically.
    norms[np.abs(norms - 1) < 1e-3] = 1
    return np.ascontiguousarray(vectors / norms)


def mapped(vectors: np.ndarray) -> np.ndarray:
    """The prototype rule's view of vectors: signed square root of each component, then unit length (rows)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    rooted = np.sign(vectors) * np.sqrt(np.abs(vectors))
    return rooted / np.maximum(np.linalg.norm(rooted, axis=-1, keepdims=True), 1e-12)


def near_copy_takes(vectors: np.ndarray, labels: list[str], similarity: float = NEAR_COPY_SIMILARITY) -> np.ndarray:
    """A take number per row for examples that came without one (saved before takes existed, or a batch of
    uploads): examples of one class at least ``similarity`` alike (cosine) share a take, and so do the examples
    linked through such pairs; every other example is a take of its own. Numbers run from 0 in row order."""
    vectors = normalise(vectors)
    labels = np.asarray(labels, dtype=object)
    parent = np.arange(len(vectors))

    def root(row: int) -> int:
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    for label in dict.fromkeys(labels):
        rows = np.flatnonzero(labels == label)
        for start in range(0, len(rows), 1024):  # a block of rows against the class at a time
            block = rows[start : start + 1024]
            pairs = np.argwhere(np.triu(vectors[block] @ vectors[rows].T >= similarity, k=start + 1))
            for i, j in pairs:
                parent[root(block[i])] = root(rows[j])
    roots = np.array([root(row) for row in range(len(vectors))], dtype=np.int64)
    _, first_rows, takes = np.unique(roots, return_index=True, return_inverse=True)
    order = np.empty(len(first_rows), dtype=np.int64)
    order[np.argsort(first_rows)] = np.arange(len(first_rows))
    return order[takes.reshape(-1)]  # numbered in the order of each take's first row


def to_stored_precision(vectors: np.ndarray) -> np.ndarray:
    """Round float32 vectors to the float16 grid they are stored at (and keep them as float32 for FAISS)."""
    return vectors.astype(np.float16).astype(np.float32)


def gpu_count() -> int:
    """GPUs the installed faiss can use (0 with faiss-cpu)."""
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


@dataclass(frozen=True)
class Neighbour:
    index: int
    """Row of the example in the classifier (and in the project)."""
    label: str
    similarity: float


@dataclass(frozen=True)
class Prediction:
    label: str
    """The best class, always (also when ``unknown``): the most similar prototype, or the most kNN votes."""
    confidences: dict[str, float]
    """Share per class (every class the classifier knows); sums to at most 1, the rest is "unknown"."""
    neighbours: tuple[Neighbour, ...]
    """The nearest examples by cosine similarity, most similar first."""
    nearest_similarity: float
    """Cosine similarity of the nearest example."""
    unknown: bool
    """True when ``score`` is below ``boundary``: the frame matches no class well enough ("not sure")."""
    score: float = 0.0
    """What the unknown rule compares: the best class's prototype similarity (kNN rule: the nearest example's)."""
    boundary: float = 0.0
    """The value ``score`` was compared with: the calibrated boundary (kNN rule: the fixed threshold)."""

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


class KNNClassifier:
    """Classifier over labelled embeddings: nearest class mean (or kNN votes), nearest examples from FAISS (exact
    below ``approximate_from`` examples).

    >>> knn = KNNClassifier(dim=3)
    >>> knn.add([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0]], ["cup", "cup", "hand"])
    >>> knn.predict([1, 0.05, 0], k=2).label
    'cup'

    Queries and changes come from one thread (a session's); only the approximate index is built in another.
    """

    def __init__(
        self,
        dim: int,
        threshold: float | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        *,
        approximate_from: int | None = APPROXIMATE_FROM,
        use_gpu: bool | None = None,
        rule: str = DEFAULT_RULE,
    ) -> None:
        if dim <= 0:
            raise KNNError(f"Embedding dimension must be positive, got {dim}.")
        if rule not in RULES:
            raise KNNError(f"Unknown rule {rule!r}; choose one of: {', '.join(RULES)}.")
        self.dim = dim
        self.rule = rule
        """``"prototype"`` (nearest class mean, calibrated boundary) or ``"knn"`` (votes, fixed similarity)."""
        if threshold is None:
            threshold = DEFAULT_STRICTNESS if rule == "prototype" else KNN_THRESHOLD
        self.threshold = threshold
        self.temperature = temperature
        self.approximate_from = approximate_from
        """Number of examples from which an approximate index is used (None: always exact)."""
        if use_gpu and gpu_count() == 0:
            raise KNNError(
                "FAISS sees no GPU here; install the gpu extra on a machine with CUDA, or leave use_gpu unset."
            )
        self.use_gpu = gpu_count() > 0 if use_gpu is None else use_gpu
        self._buffer = np.zeros((0, dim), dtype=np.float32)  # grows by doubling, so adding one is O(1)
        self._vectors = self._buffer[:0]  # the stored rows; rows already there are never written again
        self._labels: list[str] = []
        self._takes: list[int] = []  # the take of each row (see add)
        self._next_take = 0
        self._classes: tuple[str, ...] | None = None  # cached; reset by every change of labels
        self._flat: faiss.Index | None = None  # exact index, rebuilt lazily after a removal
        self._approximate: faiss.Index | None = None  # set by the background builder once ready
        self._centroids: faiss.IndexIVFFlat | None = None  # trained, empty: reused after removals
        self._builder: threading.Thread | None = None
        self._generation = 0  # bumped by every removal; a build of an older generation is discarded
        self._lock = threading.Lock()  # guards the vectors/approximate index pair against the builder's swap
        self._gpu_resources = None
        self._sums: dict[str, np.ndarray] | None = None  # per class: sum of mapped vectors; None: recompute
        self._counts: dict[str, int] = {}
        self._take_rows: dict[tuple[str, int], list[int]] = {}  # (class, take) -> its rows; rebuilt with the sums
        self._take_sums: dict[tuple[str, int], np.ndarray] = {}  # (class, take) -> sum of its mapped vectors
        self._own_scores: np.ndarray | None = None  # leave-one-out scores of a sample of rows; None: recompute
        self._boundaries: dict[float, float] = {}  # strictness -> boundary, for the current own scores

    @property
    def threshold(self) -> float:
        """The knob of the unknown rule (the page's slider), 0 to 1.

        Prototype rule: the *strictness*, the share of the project's own examples that would come back "not sure"
        (the boundary is that quantile of their leave-one-out scores; see :attr:`boundary`). Higher is stricter.
        kNN rule: the cosine similarity below which the nearest example makes the frame unknown.
        """
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._threshold = float(value)

    def __deepcopy__(self, memo: dict) -> "KNNClassifier":
        fresh = KNNClassifier(
            self.dim,
            self.threshold,
            self.temperature,
            approximate_from=self.approximate_from,
            use_gpu=self.use_gpu,
            rule=self.rule,
        )
        fresh._buffer = self._vectors.copy()  # its own buffer: both may append
        fresh._vectors, fresh._labels = fresh._buffer, list(self._labels)
        fresh._takes, fresh._next_take = list(self._takes), self._next_take
        fresh._centroids = copy.deepcopy(self._centroids, memo) if self._centroids is not None else None
        return fresh

    # ----------------------------------------------------------------- examples
    def __len__(self) -> int:
        return len(self._labels)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._labels)

    @property
    def takes(self) -> tuple[int, ...]:
        """The take of each example: examples recorded together (one hold, one uploaded image) share one."""
        return tuple(self._takes)

    def new_take(self) -> int:
        """A take number no example has yet (for a recording about to start)."""
        self._next_take += 1
        return self._next_take - 1

    @property
    def vectors(self) -> np.ndarray:
        """The stored unit-length embeddings (read-only view)."""
        view = self._vectors.view()
        view.flags.writeable = False
        return view

    @property
    def classes(self) -> tuple[str, ...]:
        """Classes that have at least one example, in order of their first example."""
        if self._classes is None:
            self._classes = tuple(dict.fromkeys(self._labels))
        return self._classes

    @property
    def index_kind(self) -> str:
        """``"flat"`` (exact) or ``"ivf"`` (approximate): the index that answers the next query."""
        return "ivf" if self._approximate is not None else "flat"

    def add(self, embeddings: np.ndarray, labels: list[str] | str, takes: list[int] | int | None = None) -> None:
        """Add examples. ``takes``: the take of each (a list), of all of them (a number, e.g. from
        :meth:`new_take`), or None: each a take of its own."""
        vectors = to_stored_precision(normalise(embeddings))
        labels = [labels] * len(vectors) if isinstance(labels, str) else list(labels)
        if vectors.shape[1] != self.dim:
            raise KNNError(f"Embedding has {vectors.shape[1]} dimensions; this classifier uses {self.dim}.")
        if len(labels) != len(vectors):
            raise KNNError(f"Got {len(vectors)} embeddings but {len(labels)} labels.")
        if any(not isinstance(label, str) or not label for label in labels):
            raise KNNError("Every example needs a non-empty class name.")
        takes = self._checked_takes(takes, len(vectors))
        with self._lock:
            size = len(self._vectors) + len(vectors)
            if size > len(self._buffer):
                grown = np.empty((max(size, 2 * len(self._buffer), 64), self.dim), dtype=np.float32)
                grown[: len(self._vectors)] = self._vectors
                self._buffer = grown
            self._buffer[len(self._vectors) : size] = vectors
            self._vectors = self._buffer[:size]
            self._labels.extend(labels)
            self._takes.extend(takes)
            self._next_take = max(self._next_take, max(takes, default=-1) + 1)
            self._classes = None
            self._add_to_prototypes(vectors, labels, takes)
            for index in (self._flat, self._approximate):
                if index is not None:
                    index.add(vectors)

    def _checked_takes(self, takes: list[int] | int | None, count: int) -> list[int]:
        if takes is None:
            return list(range(self._next_take, self._next_take + count))
        takes = [takes] * count if isinstance(takes, (int, np.integer)) and not isinstance(takes, bool) else list(takes)
        if len(takes) != count:
            raise KNNError(f"Got {count} embeddings but {len(takes)} takes.")
        if any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0 for t in takes):
            raise KNNError("A take is a whole number, 0 or more.")
        return [int(t) for t in takes]

    def remove(self, indices: list[int] | np.ndarray) -> None:
        """Remove examples by row. Rows after them move up."""
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if len(indices) and (indices[0] < 0 or indices[-1] >= len(self)):
            raise KNNError(f"Example index out of range (0 to {len(self) - 1}).")
        keep = np.ones(len(self), dtype=bool)
        keep[indices] = False
        with self._lock:
            self._buffer = self._vectors = np.ascontiguousarray(self._vectors[keep])
            self._labels = [label for label, kept in zip(self._labels, keep) if kept]
            self._takes = [take for take, kept in zip(self._takes, keep) if kept]
            self._classes = None
            self._forget_prototypes()
            self._flat = self._approximate = None
            self._generation += 1

    def remove_class(self, label: str) -> None:
        self.remove([i for i, name in enumerate(self._labels) if name == label])

    def rename_class(self, old: str, new: str) -> None:
        if not new:
            raise KNNError("A class name cannot be empty.")
        if new in self._labels and new != old:
            raise KNNError(f"There is already a class named {new!r}.")
        self._labels = [new if label == old else label for label in self._labels]
        self._classes = None
        self._forget_prototypes()

    def relabel(self, index: int, label: str) -> None:
        if not 0 <= index < len(self):
            raise KNNError(f"Example index {index} out of range (0 to {len(self) - 1}).")
        self._labels[index] = label
        self._classes = None
        self._forget_prototypes()

    # ----------------------------------------------------------------- prototypes and the boundary
    def _forget_prototypes(self) -> None:
        self._sums, self._counts, self._own_scores = None, {}, None
        self._take_rows, self._take_sums = {}, {}

    def _add_to_prototypes(self, vectors: np.ndarray, labels: list[str], takes: list[int]) -> None:
        """Add new rows to the running class sums (O(D) per example) and to their takes' rows; the boundary is
        recomputed on next use."""
        self._own_scores = None
        if self._sums is None:
            return  # rebuilt from all rows on next use
        rows = mapped(vectors)
        for label in dict.fromkeys(labels):
            mine = np.fromiter((name == label for name in labels), bool, len(labels))
            self._sums[label] = self._sums.get(label, np.zeros(self.dim, np.float32)) + rows[mine].sum(axis=0)
            self._counts[label] = self._counts.get(label, 0) + int(mine.sum())
        first = len(self) - len(labels)
        for offset, key in enumerate(zip(labels, takes)):
            self._take_rows.setdefault(key, []).append(first + offset)
            self._take_sums.pop(key, None)  # summed again when next needed

    def _class_sums(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Per class, the sum of its mapped vectors and its number of examples (rebuilt after a removal)."""
        if self._sums is None:
            self._sums, self._counts = {}, {}
            labels = np.asarray(self._labels, dtype=object)
            for start in range(0, len(self), 8192):  # mapped copies of a chunk at a time
                chunk = slice(start, start + 8192)
                rows = mapped(self._vectors[chunk])
                for label in dict.fromkeys(self._labels[chunk]):
                    mine = labels[chunk] == label
                    self._sums[label] = self._sums.get(label, np.zeros(self.dim, np.float32)) + rows[mine].sum(axis=0)
                    self._counts[label] = self._counts.get(label, 0) + int(mine.sum())
            self._take_rows, self._take_sums = {}, {}
            for row, key in enumerate(zip(self._labels, self._takes)):
                self._take_rows.setdefault(key, []).append(row)
        return self._sums, self._counts

    def _take_sum(self, key: tuple[str, int]) -> np.ndarray:
        """The sum of the mapped vectors of one class's examples in one take (kept until the take grows)."""
        if key not in self._take_sums:
            self._take_sums[key] = mapped(self._vectors[self._take_rows[key]]).sum(axis=0)
        return self._take_sums[key]

    def prototypes(self) -> tuple[tuple[str, ...], np.ndarray]:
        """The classes with examples and their prototypes (unit mean of the mapped vectors), one row each."""
        sums, _ = self._class_sums()
        names = self.classes
        if not names:
            return (), np.zeros((0, self.dim), np.float32)
        matrix = np.stack([sums[name] for name in names])
        return names, matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def own_scores(self, rows: np.ndarray | None = None, leave_take_out: bool = True) -> np.ndarray:
        """Leave-the-take-out score of each example in ``rows`` (default: all): its mapped vector's similarity to
        its class's prototype made without its take (it and the examples recorded with it), i.e. how well the class
        recognises a new view like it. NaN when its take is all of its class.

        ``leave_take_out=False``: the former leave-one-out score (only the example itself left out)."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        sums, counts = self._class_sums()
        vectors = mapped(self._vectors[rows])
        left_out = vectors.copy()
        left_out_count = np.ones(len(rows), dtype=np.int64)
        for position, row in enumerate(rows):
            key = (self._labels[row], self._takes[row])
            if leave_take_out and len(self._take_rows[key]) > 1:
                left_out[position] = self._take_sum(key)
                left_out_count[position] = len(self._take_rows[key])
        labels = [self._labels[row] for row in rows]
        others = np.stack([sums[label] for label in labels]) - left_out if len(rows) else vectors
        norms = np.linalg.norm(others, axis=1)
        scores = (vectors * others).sum(axis=1) / np.maximum(norms, 1e-12)
        alone = np.array([counts[label] for label in labels], dtype=np.int64) <= left_out_count
        scores[alone | (norms < 1e-6)] = np.nan
        return scores

    @property
    def boundary(self) -> float:
        """The similarity below which the best class is "not sure".

        Prototype rule: the ``threshold`` (strictness) quantile of the examples' own leave-one-out scores, at most
        ``MAX_BOUNDARY``, or ``FALLBACK_BOUNDARY`` while fewer than ``MIN_CALIBRATION_SCORES`` exist. kNN rule:
        ``threshold`` itself.
        """
        if self.rule == "knn":
            return self.threshold
        if self._own_scores is None:
            sample = np.unique(np.linspace(0, len(self) - 1, min(len(self), CALIBRATION_SAMPLE)).round().astype(int))
            scores = self.own_scores(sample) if len(self) else np.zeros(0)
            self._own_scores = np.sort(scores[np.isfinite(scores)])
            self._boundaries = {}
        if len(self._own_scores) < MIN_CALIBRATION_SCORES:
            return FALLBACK_BOUNDARY
        if self.threshold not in self._boundaries:
            strictness = min(max(self.threshold, 0.0), 1.0)
            quantile = float(np.quantile(self._own_scores, strictness))
            self._boundaries[self.threshold] = min(quantile, MAX_BOUNDARY)
        return self._boundaries[self.threshold]

    # ----------------------------------------------------------------- indexes
    def _on_device(self, index: faiss.Index) -> faiss.Index:
        if not self.use_gpu:
            return index
        if self._gpu_resources is None:
            self._gpu_resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        approximate = self._approximate
        if approximate is not None:
            return approximate.search(queries, k)
        if self.approximate_from is not None and len(self) >= self.approximate_from:
            self._start_building()
        flat = self._flat  # read once: the builder may drop it when its index lands
        if flat is None:
            flat = self._on_device(faiss.IndexFlatIP(self.dim))
            with self._lock:
                flat.add(self._vectors)
                if self._approximate is None:
                    self._flat = flat
        return flat.search(queries, k)

    def _start_building(self) -> None:
        if self._builder is not None and self._builder.is_alive():
            return
        snapshot, generation = self._vectors, self._generation
        self._builder = threading.Thread(
            target=self._build_approximate, args=(snapshot, generation), name="knn-ivf", daemon=True
        )
        self._builder.start()

    def _build_approximate(self, snapshot: np.ndarray, generation: int) -> None:
        """Background: train (or reuse) IVF centroids, add ``snapshot``, then swap the index in if still current."""
        lists = max(1, int(np.sqrt(len(snapshot))))
        centroids = self._centroids
        if centroids is None or not lists / 2 <= centroids.nlist <= lists * 2:
            quantizer = faiss.IndexFlatIP(self.dim)
            centroids = faiss.IndexIVFFlat(quantizer, self.dim, lists, faiss.METRIC_INNER_PRODUCT)
            sample = np.random.default_rng(0).permutation(len(snapshot))[: lists * TRAINING_POINTS_PER_LIST]
            centroids.train(snapshot[np.sort(sample)])
            centroids.nprobe = max(MIN_PROBES, round(lists * PROBE_FRACTION))
        index = faiss.clone_index(centroids)
        index.add(snapshot)
        index = self._on_device(index)
        with self._lock:
            if generation != self._generation:
                return  # examples were removed meanwhile; the next query starts a fresh build
            index.add(self._vectors[len(snapshot) :])  # examples added meanwhile
            self._centroids = centroids
            self._approximate = index
            self._flat = None  # its copy of the vectors is no longer needed
        log.info("Approximate index ready: %d examples in %d lists, %d probed", len(self), lists, centroids.nprobe)

    def wait_for_index(self, timeout: float | None = None) -> str:
        """Block until a background index build finishes; returns :attr:`index_kind`. (For tests and tools.)"""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return self.index_kind

    def search(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw FAISS search: ``(similarities, indices)``, each ``(n_queries, min(k, len(self)))``."""
        if len(self) == 0:
            raise KNNError("There are no examples yet. Record or add a few examples of each class first.")
        queries = normalise(embeddings)
        if queries.shape[1] != self.dim:
            raise KNNError(f"Embedding has {queries.shape[1]} dimensions; this classifier uses {self.dim}.")
        return self._search(queries, max(1, min(int(k), len(self))))

    def _vote(self, similarities: np.ndarray, indices: np.ndarray, classes: tuple[str, ...]) -> Prediction:
        valid = indices >= 0
        similarities, indices = similarities[valid], indices[valid]
        weights = np.exp((similarities - similarities[0]) / self.temperature)
        unknown_weight = np.exp((self.threshold - similarities[0]) / self.temperature)
        votes = dict.fromkeys(classes, 0.0)
        for index, weight in zip(indices, weights):
            votes[self._labels[index]] += float(weight)
        total = sum(votes.values()) + float(unknown_weight)
        label = max(votes, key=votes.get)
        return Prediction(
            label=label,
            confidences={name: vote / total for name, vote in votes.items()},
            neighbours=tuple(Neighbour(int(i), self._labels[i], float(s)) for i, s in zip(indices, similarities)),
            nearest_similarity=float(similarities[0]),
            unknown=bool(similarities[0] < self.threshold),
            score=float(similarities[0]),
            boundary=float(self.threshold),
        )

    def _nearest_class(
        self, similarities: np.ndarray, indices: np.ndarray, scores: np.ndarray, names: tuple, classes: tuple
    ) -> Prediction:
        """Prototype rule: ``scores`` are the frame's similarities to the prototypes of ``names``."""
        valid = indices >= 0
        similarities, indices = similarities[valid], indices[valid]
        boundary = self.boundary
        best = int(np.argmax(scores))
        weights = np.exp((np.append(scores, boundary) - scores[best]) / self.temperature)
        shares = dict(zip(names, (weights[:-1] / weights.sum()).tolist()))
        return Prediction(
            label=names[best],
            confidences={name: shares.get(name, 0.0) for name in classes},
            neighbours=tuple(Neighbour(int(i), self._labels[i], float(s)) for i, s in zip(indices, similarities)),
            nearest_similarity=float(similarities[0]) if len(similarities) else float("nan"),
            unknown=bool(scores[best] < boundary),
            score=float(scores[best]),
            boundary=float(boundary),
        )

    def predict(self, embedding: np.ndarray, k: int = DEFAULT_K, classes: tuple[str, ...] = ()) -> Prediction:
        """Classify one embedding: by the nearest prototype (default rule) or the votes of its ``k`` nearest
        examples (kNN rule). The ``k`` nearest examples are reported either way (``k`` is capped at the number of
        examples).

        ``classes`` lists every class to report a confidence for (e.g. a project's empty classes too);
        by default, the classes that have examples.
        """
        if k < 1:
            raise KNNError(f"k must be at least 1, got {k}.")
        similarities, indices = self.search(embedding, k)
        classes = tuple(dict.fromkeys((*classes, *self.classes)))
        if self.rule == "knn":
            return self._vote(similarities[0], indices[0], classes)
        names, prototypes = self.prototypes()
        scores = prototypes @ mapped(normalise(embedding))[0]
        return self._nearest_class(similarities[0], indices[0], scores, names, classes)

    def others_nearest(self, k: int = DEFAULT_K) -> tuple[np.ndarray, np.ndarray]:
        """For every example, its nearest examples of *other takes*: ``(similarities, rows)``, each
        ``N x min(k, N - largest take)``. (When one take holds every example, only the example itself is left out.)

        One FAISS search of ``k`` plus the largest take; an example's take-mates are dropped by take, not by rank,
        since exact duplicates may rank it second.
        """
        takes = np.asarray(self._takes, dtype=np.int64)
        largest = int(np.unique(takes, return_counts=True)[1].max())
        if largest == len(self):
            takes, largest = np.arange(len(self)), 1
        width = min(k, len(self) - largest)
        similarities, indices = self._search(self._vectors, min(width + largest, len(self)))
        keep = (indices >= 0) & (takes[np.maximum(indices, 0)] != takes[:, None])
        keep &= np.cumsum(keep, axis=1) <= width  # the nearest ``width`` of the rest
        return similarities[keep].reshape(len(self), width), indices[keep].reshape(len(self), width)

    def leave_one_out(self, k: int = DEFAULT_K, classes: tuple[str, ...] = ()) -> Evaluation:
        """Classify every example by the examples of the other takes (see :meth:`others_nearest` and
        :meth:`own_scores`). ``classes`` orders the confusion matrix (classes without examples are left out)."""
        if len(self.classes) < 2:
            raise KNNError("Leave-one-out needs examples of at least two classes.")
        if len(self) < 3:
            raise KNNError("Leave-one-out needs at least three examples.")
        present = set(self.classes)
        classes = tuple(dict.fromkeys([c for c in classes if c in present] + list(self.classes)))
        if self.rule == "knn":
            votes = [self._vote(sims, ids, classes) for sims, ids in zip(*self.others_nearest(k))]
        else:
            votes = self._prototype_leave_one_out(classes)
        predicted = [vote.label for vote in votes]
        position = {name: i for i, name in enumerate(classes)}
        confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
        for true, guess in zip(self._labels, predicted):
            confusion[position[true], position[guess]] += 1
        confidences = tuple(vote.confidences[vote.label] for vote in votes)
        return Evaluation(classes, tuple(self._labels), tuple(predicted), confusion, confidences)

    def _prototype_leave_one_out(self, classes: tuple[str, ...]) -> list[Prediction]:
        """Every example against the prototypes, its own class's made without its take (no neighbours reported).
        An example whose take is all of its class can only be checked against its take-mates: its class is made
        without just itself."""
        names, prototypes = self.prototypes()
        own = self.own_scores()
        whole_class = np.flatnonzero(np.isnan(own))
        own[whole_class] = self.own_scores(whole_class, leave_take_out=False)
        column = {name: i for i, name in enumerate(names)}
        results = []
        for start in range(0, len(self), 8192):
            rows = np.arange(start, min(start + 8192, len(self)))
            scores = mapped(self._vectors[rows]) @ prototypes.T
            for row, row_scores in zip(rows, scores):
                row_scores[column[self._labels[row]]] = np.nan_to_num(own[row], nan=-1.0)
                results.append(self._nearest_class(np.ones(1), np.full(1, -1), row_scores, names, classes))
        return results
