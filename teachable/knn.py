"""Classifier over example embeddings: nearest class mean for the answer, FAISS for the nearest examples.

There is no training step. ``add`` makes an example count at once, ``predict`` answers from the examples as they
are now, and ``leave_one_out`` scores every example against all the others in one pass.

:class:`KNNClassifier` puts three parts together, one module each:

- **storage** (:mod:`teachable.knn_store`): unit vectors kept at float16 precision (rounded on ``add``, held as
  float32 for FAISS), so a project file stores them as float16 without loss: save -> load predicts bit-identically
  at half the bytes. Rounding moves a cosine similarity by about 1e-4; ``benchmarks/bench_scale.py`` measures the
  effect on predictions. Everything else (prototypes, the boundary) is derived from the stored vectors, so a project
  file needs nothing more.
- **the rules** (:mod:`teachable.knn_rules`): the *prototype rule* (the default: nearest class mean of the signed
  square roots, "not sure" below a boundary calibrated on the project at the quantile its **strictness** names) and
  the *vote rule* (``rule="knn"``, the former rule: the nearest examples vote, "not sure" below a fixed **minimum
  similarity**). That module's docstring defines both, the confidences, and why leave-one-out leaves whole takes
  out. On the development set (benchmarks/results/fewshot.md) the square root and the prototypes raise few-shot
  accuracy over the vote on the same ``pool`` embedding, and the calibrated boundary separates untaught objects
  better than the fixed similarity 0.4, which no longer suits a project whose classes are broad.
- **the index** (:mod:`teachable.knn_index`): the nearest examples (shown on the page; the vote rule's voters) from
  FAISS, exact below ``approximate_from`` examples and IVF above, built in the background.

**Takes.** Every example belongs to a take: the frames of one hold of the record button, or one uploaded or
imported image (``add(..., takes=...)``; by default each example is a take of its own). The examples' own scores,
the boundary, ``leave_one_out`` and ``others_nearest`` leave the whole take out: scored against their own
near-copies, the frames of a held recording raised the boundary from 0.54-0.58 to 0.63-0.64 and made the live page
"not sure" about twice as many correctly guessed photos. Examples saved before takes existed get theirs from
:func:`near_copy_takes`.

**The knob.** The page has one slider, which the session and the project call ``threshold``: it is the prototype
rule's :attr:`~KNNClassifier.strictness` or the vote rule's :attr:`~KNNClassifier.min_similarity`, whichever rule
the classifier uses (:attr:`KNNClassifier.threshold` maps one to the other).

This module knows nothing of images or models: it takes vectors and class names.
"""

from __future__ import annotations

import numpy as np

from .knn_index import APPROXIMATE_FROM, ExampleIndex, gpu_count
from .knn_rules import (
    CALIBRATION_SAMPLE,
    DEFAULT_MIN_SIMILARITY,
    DEFAULT_STRICTNESS,
    DEFAULT_TEMPERATURE,
    FALLBACK_BOUNDARY,
    MAX_BOUNDARY,
    MIN_CALIBRATION_SCORES,
    Evaluation,
    Neighbour,
    Prediction,
    PrototypeRule,
    VoteRule,
)
from .knn_store import ExampleStore
from .vectors import NEAR_COPY_SIMILARITY, KNNError, mapped, near_copy_takes, normalise, to_stored_precision

__all__ = [
    "KNNClassifier",
    "Prediction",
    "Neighbour",
    "Evaluation",
    "KNNError",
    "normalise",
    "mapped",
    "near_copy_takes",
    "gpu_count",
    "RULES",
    "NEAR_COPY_SIMILARITY",
    "APPROXIMATE_FROM",
    "CALIBRATION_SAMPLE",
    "DEFAULT_K",
    "DEFAULT_MIN_SIMILARITY",
    "DEFAULT_STRICTNESS",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_THRESHOLD",
    "FALLBACK_BOUNDARY",
    "KNN_THRESHOLD",
    "MAX_BOUNDARY",
    "MIN_CALIBRATION_SCORES",
]

DEFAULT_K = 5
"""Nearest examples searched for a frame: shown on the page under either rule, and the voters under the vote rule."""
RULES = ("prototype", "knn")
DEFAULT_RULE = "prototype"
DEFAULT_THRESHOLD = DEFAULT_STRICTNESS
"""The default of the page's knob, ``threshold``: the default rule's strictness."""
KNN_THRESHOLD = DEFAULT_MIN_SIMILARITY
"""The vote rule's default minimum similarity (the earlier name)."""


class KNNClassifier:
    """Classifier over labelled embeddings: nearest class mean (or votes of the nearest examples), nearest examples
    from FAISS (exact below ``approximate_from`` examples).

    >>> knn = KNNClassifier(dim=3)
    >>> knn.add([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0]], ["cup", "cup", "hand"])
    >>> knn.predict([1, 0.05, 0], k=2).label
    'cup'

    ``threshold`` is the active rule's knob (see :attr:`threshold`); ``strictness`` and ``min_similarity`` set
    each rule's own knob by name. Queries and changes come from one thread (a session's); only the approximate
    index is built in another.
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
        strictness: float | None = None,
        min_similarity: float | None = None,
    ) -> None:
        if dim <= 0:
            raise KNNError(f"Embedding dimension must be positive, got {dim}.")
        if rule not in RULES:
            raise KNNError(f"Unknown rule {rule!r}; choose one of: {', '.join(RULES)}.")
        self.dim = dim
        self._store = ExampleStore(dim)
        self.index = ExampleIndex(dim, self._store, approximate_from, use_gpu)
        """The FAISS search over the stored vectors (:mod:`teachable.knn_index`)."""
        self._prototype_rule = PrototypeRule(self._store, DEFAULT_STRICTNESS, temperature)
        self._vote_rule = VoteRule(self._store, DEFAULT_MIN_SIMILARITY, temperature)
        self._rule = self._prototype_rule if rule == "prototype" else self._vote_rule
        if threshold is not None:
            self.threshold = threshold
        if strictness is not None:
            self.strictness = strictness
        if min_similarity is not None:
            self.min_similarity = min_similarity

    # ----------------------------------------------------------------- settings
    @property
    def rule(self) -> str:
        """``"prototype"`` (nearest class mean, calibrated boundary) or ``"knn"`` (votes, fixed similarity)."""
        return self._rule.name

    @property
    def strictness(self) -> float:
        """The prototype rule's knob, 0 to 1: the share of the project's own examples that would come back "not
        sure" (the boundary is that quantile of their leave-one-out scores; see :attr:`boundary`). Higher is
        stricter."""
        return self._prototype_rule.strictness

    @strictness.setter
    def strictness(self, value: float) -> None:
        self._prototype_rule.strictness = float(value)

    @property
    def min_similarity(self) -> float:
        """The vote rule's knob: the cosine similarity below which the nearest example makes the frame unknown."""
        return self._vote_rule.min_similarity

    @min_similarity.setter
    def min_similarity(self, value: float) -> None:
        self._vote_rule.min_similarity = float(value)

    @property
    def threshold(self) -> float:
        """The page's knob (its "strictness" slider, the session's and the CLI's ``threshold``), 0 to 1, as the
        active rule reads it: :attr:`strictness` under the prototype rule, :attr:`min_similarity` under the vote
        rule."""
        return self.strictness if self._rule is self._prototype_rule else self.min_similarity

    @threshold.setter
    def threshold(self, value: float) -> None:
        if self._rule is self._prototype_rule:
            self.strictness = value
        else:
            self.min_similarity = value

    @property
    def temperature(self) -> float:
        """Softness of the confidences: each class's weight is ``exp(score / temperature)``."""
        return self._rule.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._prototype_rule.temperature = self._vote_rule.temperature = value

    @property
    def approximate_from(self) -> int | None:
        """Number of examples from which an approximate index is used (None: always exact)."""
        return self.index.approximate_from

    @property
    def use_gpu(self) -> bool:
        return self.index.use_gpu

    def __deepcopy__(self, memo: dict) -> "KNNClassifier":
        fresh = KNNClassifier(
            self.dim,
            None,
            self.temperature,
            approximate_from=self.approximate_from,
            use_gpu=self.use_gpu,
            rule=self.rule,
            strictness=self.strictness,
            min_similarity=self.min_similarity,
        )
        fresh._store.copy_from(self._store)
        fresh.index.reuse_centroids(self.index, memo)
        return fresh

    # ----------------------------------------------------------------- examples
    def __len__(self) -> int:
        return len(self._store)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._store.labels)

    @property
    def takes(self) -> tuple[int, ...]:
        """The take of each example: examples recorded together (one hold, one uploaded image) share one."""
        return tuple(self._store.takes)

    def new_take(self) -> int:
        """A take number no example has yet (for a recording about to start)."""
        return self._store.new_take()

    @property
    def vectors(self) -> np.ndarray:
        """The stored unit-length embeddings (read-only view)."""
        view = self._store.vectors.view()
        view.flags.writeable = False
        return view

    @property
    def classes(self) -> tuple[str, ...]:
        """Classes that have at least one example, in order of their first example."""
        return self._store.classes

    @property
    def index_kind(self) -> str:
        """``"flat"`` (exact) or ``"ivf"`` (approximate): the index that answers the next query."""
        return self.index.kind

    def add(self, embeddings: np.ndarray, labels: list[str] | str, takes: list[int] | int | None = None) -> None:
        """Add examples. ``takes``: the take of each (a list), of all of them (a number, e.g. from
        :meth:`new_take`), or None: each a take of its own."""
        vectors, labels = _checked_rows(embeddings, labels, self.dim)
        takes = self._store.checked_takes(takes, len(vectors))
        with self.index.lock:
            self._store.append(vectors, labels, takes)
            self._prototype_rule.added(vectors, labels, takes)
            self.index.extend(vectors)

    def remove(self, indices: list[int] | np.ndarray) -> None:
        """Remove examples by row. Rows after them move up."""
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if len(indices) and (indices[0] < 0 or indices[-1] >= len(self)):
            raise KNNError(f"Example index out of range (0 to {len(self) - 1}).")
        kept = np.ones(len(self), dtype=bool)
        kept[indices] = False
        with self.index.lock:
            self._store.keep(kept)
            self._prototype_rule.forget()
            self.index.reset()

    def remove_class(self, label: str) -> None:
        self.remove([i for i, name in enumerate(self._store.labels) if name == label])

    def rename_class(self, old: str, new: str) -> None:
        if not new:
            raise KNNError("A class name cannot be empty.")
        if new in self._store.labels and new != old:
            raise KNNError(f"There is already a class named {new!r}.")
        self._store.rename_class(old, new)
        self._prototype_rule.forget()

    def relabel(self, index: int, label: str) -> None:
        if not 0 <= index < len(self):
            raise KNNError(f"Example index {index} out of range (0 to {len(self) - 1}).")
        self._store.relabel(index, label)
        self._prototype_rule.forget()

    # ----------------------------------------------------------------- the prototype rule's parts
    def prototypes(self) -> tuple[tuple[str, ...], np.ndarray]:
        """The classes with examples and their prototypes (unit mean of the mapped vectors), one row each."""
        return self._prototype_rule.prototypes()

    def own_scores(self, rows: np.ndarray | None = None, leave_take_out: bool = True) -> np.ndarray:
        """Leave-the-take-out score of each example in ``rows`` (default: all): its mapped vector's similarity to
        its class's prototype made without its take (it and the examples recorded with it), i.e. how well the class
        recognises a new view like it. NaN when its take is all of its class.

        ``leave_take_out=False``: the former leave-one-out score (only the example itself left out)."""
        return self._prototype_rule.own_scores(rows, leave_take_out)

    @property
    def boundary(self) -> float:
        """The similarity below which the best class is "not sure".

        Prototype rule: the :attr:`strictness` quantile of the examples' own leave-one-out scores, at most
        ``MAX_BOUNDARY``, or ``FALLBACK_BOUNDARY`` while fewer than ``MIN_CALIBRATION_SCORES`` exist. Vote rule:
        :attr:`min_similarity` itself.
        """
        return self._rule.boundary

    # ----------------------------------------------------------------- searching and deciding
    def wait_for_index(self, timeout: float | None = None) -> str:
        """Block until a background index build finishes; returns :attr:`index_kind`. (For tests and tools.)"""
        return self.index.wait(timeout)

    def search(self, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw FAISS search: ``(similarities, indices)``, each ``(n_queries, min(k, len(self)))``."""
        if len(self) == 0:
            raise KNNError("There are no examples yet. Record or add a few examples of each class first.")
        queries = normalise(embeddings)
        if queries.shape[1] != self.dim:
            raise KNNError(f"Embedding has {queries.shape[1]} dimensions; this classifier uses {self.dim}.")
        return self.index.search(queries, max(1, min(int(k), len(self))))

    def predict(self, embedding: np.ndarray, k: int = DEFAULT_K, classes: tuple[str, ...] = ()) -> Prediction:
        """Classify one embedding: by the nearest prototype (default rule) or the votes of its ``k`` nearest
        examples (vote rule). The ``k`` nearest examples are reported either way (``k`` is capped at the number
        of examples).

        ``classes`` lists every class to report a confidence for (e.g. a project's empty classes too);
        by default, the classes that have examples.
        """
        if k < 1:
            raise KNNError(f"k must be at least 1, got {k}.")
        similarities, indices = self.search(embedding, k)
        classes = tuple(dict.fromkeys((*classes, *self.classes)))
        return self._rule.decide(normalise(embedding), similarities[0], indices[0], classes)

    def others_nearest(self, k: int = DEFAULT_K) -> tuple[np.ndarray, np.ndarray]:
        """For every example, its nearest examples of *other takes*: ``(similarities, rows)``, each
        ``N x min(k, N - largest take)``. (When one take holds every example, only the example itself is left out.)
        See :meth:`ExampleIndex.nearest_of_other_groups`."""
        return self.index.nearest_of_other_groups(np.asarray(self._store.takes, dtype=np.int64), k)

    def leave_one_out(self, k: int = DEFAULT_K, classes: tuple[str, ...] = ()) -> Evaluation:
        """Classify every example by the examples of the other takes (see :meth:`others_nearest` and
        :meth:`own_scores`). ``classes`` orders the confusion matrix (classes without examples are left out)."""
        if len(self.classes) < 2:
            raise KNNError("Leave-one-out needs examples of at least two classes.")
        if len(self) < 3:
            raise KNNError("Leave-one-out needs at least three examples.")
        present = set(self.classes)
        classes = tuple(dict.fromkeys([c for c in classes if c in present] + list(self.classes)))
        predictions = self._rule.held_out(classes, lambda: self.others_nearest(k))
        return Evaluation.of(classes, self._store.labels, predictions)


def _checked_rows(embeddings: np.ndarray, labels: list[str] | str, dim: int) -> tuple[np.ndarray, list[str]]:
    """New examples as stored (unit length, float16 precision) and one class name each, or :class:`KNNError`."""
    vectors = to_stored_precision(normalise(embeddings))
    labels = [labels] * len(vectors) if isinstance(labels, str) else list(labels)
    if vectors.shape[1] != dim:
        raise KNNError(f"Embedding has {vectors.shape[1]} dimensions; this classifier uses {dim}.")
    if len(labels) != len(vectors):
        raise KNNError(f"Got {len(vectors)} embeddings but {len(labels)} labels.")
    if any(not isinstance(label, str) or not label for label in labels):
        raise KNNError("Every example needs a non-empty class name.")
    return vectors, labels
