"""The embedding map: a 2-D layout of a project's examples, and the live frame placed among them.

Layouts are fitted off the frame path, in a background executor: UMAP (cosine, fixed seed, spectral start) once
there are enough examples, PCA before that or on request. A new layout is aligned to the old one with a similarity
Procrustes fit over the examples both share, so points stay where the eye left them. (Starting UMAP from the old
layout instead moved points about three times as far in our measurements.) Until the new layout lands, the old one stays,
and examples it does not know yet are placed from their neighbours, exactly like the live frame:
the similarity-weighted mean of the map positions of its nearest examples.
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import numpy as np

__all__ = [
    "EmbeddingMap",
    "fit_layout",
    "layout_method",
    "align",
    "place",
    "warm_up",
    "METHODS",
    "MIN_UMAP_POINTS",
    "LAYOUT_SAMPLE",
]

METHODS = ("umap", "pca")
MIN_UMAP_POINTS = 20
"""Below this many examples UMAP's neighbour graph is too thin to mean much; PCA is used instead."""
LAYOUT_SAMPLE = 3000
"""Above this many distinct examples the layout is fitted on a random sample of this many (UMAP on 3,000 takes
seconds, on 100,000 many minutes) and every other example is placed from its nearest sampled neighbours."""
MIN_ALIGNMENT_SPREAD = 0.05
"""An old layout is an alignment target only where the examples it shares with the new one spread over at least
this share of the new layout's spread. A first fit of identical frames (a still picture, a camera held still) puts
them all on one spot; aligning to that would scale every later layout down to that spot for good."""


def place(neighbour_xy: np.ndarray, similarities: np.ndarray) -> np.ndarray:
    """Similarity-weighted mean of neighbours' map positions (negative similarities weigh nothing; if none weighs
    anything, a plain mean). One point (``k x 2`` and ``k``) or many at once (``n x k x 2`` and ``n x k``)."""
    weights = np.clip(np.asarray(similarities, dtype=np.float64), 0, None)
    weights = np.where(weights.sum(axis=-1, keepdims=True) > 0, weights, 1.0)
    return (weights[..., None] * neighbour_xy).sum(axis=-2) / weights.sum(axis=-1)[..., None]


def _normalised(xy: np.ndarray) -> np.ndarray:
    xy = xy - xy.mean(axis=0)
    radius = np.abs(xy).max()
    return xy / radius if radius > 0 else xy


def _pca(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ components[:2].T
    return np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))


def layout_method(distinct: int, method: str) -> str:
    """What :func:`fit_layout` fits for ``distinct`` distinct vectors when asked for ``method``: ``"umap"``,
    ``"pca"``, or ``"none"`` (fewer than 3: fixed spots)."""
    if distinct < 3:
        return "none"
    return "pca" if method == "pca" or distinct < MIN_UMAP_POINTS else "umap"


def fit_layout(vectors: np.ndarray, method: str = "umap", seed: int = 0, sample: int = LAYOUT_SAMPLE) -> np.ndarray:
    """``N x 2`` layout in [-1, 1] of ``N x D`` unit vectors. UMAP falls back to PCA below ``MIN_UMAP_POINTS``.
    Above ``sample`` distinct vectors, the layout is fitted on ``sample`` of them and the rest are placed."""
    return fitted_layout(vectors, method, seed, sample)[0]


def fitted_layout(
    vectors: np.ndarray, method: str = "umap", seed: int = 0, sample: int = LAYOUT_SAMPLE
) -> tuple[np.ndarray, str]:
    """:func:`fit_layout`, and the method it used (:func:`layout_method`), from the same count of distinct vectors."""
    if method not in METHODS:
        raise ValueError(f"Unknown map method {method!r}; choose one of {METHODS}.")
    if len(vectors) == 0:
        return np.zeros((0, 2)), "none"
    vectors = np.asarray(vectors, dtype=np.float32)
    # Identical examples (a still camera records many) share one position; UMAP is fitted on the distinct ones.
    distinct, inverse = np.unique(vectors, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    used = layout_method(len(distinct), method)
    if used == "none":
        layout = np.zeros((len(distinct), 2)) if len(distinct) < 2 else np.array([[-0.5, 0.0], [0.5, 0.0]])
    elif len(distinct) > sample:
        chosen = np.sort(np.random.default_rng(seed).choice(len(distinct), sample, replace=False))
        sampled, used = fitted_layout(distinct[chosen], method, seed, sample)
        layout = _place_all(distinct, chosen, sampled)
    elif used == "pca":
        layout = _normalised(_pca(distinct))
    else:
        layout = _umap(distinct, seed)
        if not np.isfinite(layout).all():
            layout, used = _normalised(_pca(distinct)), "pca"
    return layout[inverse], used


def _place_all(vectors: np.ndarray, fitted_rows: np.ndarray, fitted_xy: np.ndarray, k: int = 10) -> np.ndarray:
    """Positions for every vector: the fitted ones keep theirs, the others are placed from their ``k`` nearest
    fitted neighbours (one exact FAISS search)."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors[fitted_rows]))
    similarities, neighbours = index.search(np.ascontiguousarray(vectors), k)
    layout = place(fitted_xy[neighbours], similarities)
    layout[fitted_rows] = fitted_xy
    return layout


def _umap(vectors: np.ndarray, seed: int) -> np.ndarray:
    import umap

    warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)  # a fixed seed is our choice
    reducer = umap.UMAP(
        n_neighbors=min(15, len(vectors) - 1), metric="cosine", init="spectral", random_state=seed, n_epochs=200
    )
    return _normalised(reducer.fit_transform(vectors).astype(np.float64))


def spread(xy: np.ndarray) -> float:
    """Root-mean-square distance of the points from their centre (0 for fewer than two points)."""
    return float(np.sqrt(((xy - xy.mean(axis=0)) ** 2).sum(axis=1).mean())) if len(xy) > 1 else 0.0


def align(new: np.ndarray, old: np.ndarray, rows: list[int] | None = None) -> np.ndarray:
    """Rotate/reflect, scale and shift all of ``new`` so that ``new[rows]`` best matches ``old`` (similarity
    Procrustes); ``rows`` defaults to every row. ``new`` is kept as it is when fewer than 3 rows are shared or
    when ``old`` is degenerate (its points spread less than :data:`MIN_ALIGNMENT_SPREAD` of ``new[rows]``'s)."""
    shared = new if rows is None else new[rows]
    if len(shared) < 3 or spread(old) < MIN_ALIGNMENT_SPREAD * spread(shared):
        return new
    new_mean, old_mean = shared.mean(axis=0), old.mean(axis=0)
    a, b = shared - new_mean, old - old_mean
    u, s, vt = np.linalg.svd(a.T @ b)
    scale = s.sum() / max((a**2).sum(), 1e-12)
    return scale * (new - new_mean) @ (u @ vt) + old_mean


def warm_up() -> None:
    """Compile UMAP's numba code once (about 10 s the first time in a process), so no user waits for it."""
    rng = np.random.default_rng(0)
    fit_layout(rng.normal(size=(MIN_UMAP_POINTS * 2, 16)), "umap")


class EmbeddingMap:
    """Map positions of examples, keyed by example uid, refitted in the background when asked.

    ``request`` never blocks: it schedules a fit when the set of examples or the method changed. ``positions``
    returns the current layout for any list of examples, placing unknown ones from their neighbours.
    """

    def __init__(self, executor: Executor | None = None, method: str = "umap") -> None:
        if method not in METHODS:
            raise ValueError(f"Unknown map method {method!r}; choose one of {METHODS}.")
        self.method = method
        self._executor = executor
        self._lock = threading.Lock()
        self._xy: dict[int, np.ndarray] = {}
        self._fitted_key: tuple | None = None
        self._pending: Future | None = None
        self._pending_key: tuple | None = None
        self.version = 0
        """Increases each time a new layout lands."""
        self.shown_method = "none"
        """What the layout on screen was fitted with (:func:`layout_method`): it can differ from :attr:`method`
        (too few distinct examples for UMAP yet, or a refit still running)."""

    def restarted(self, method: str | None = None) -> "EmbeddingMap":
        """A fresh map (no layout yet) that fits on the same executor, with ``method`` or this map's."""
        return EmbeddingMap(self._executor, method or self.method)

    @property
    def fitting(self) -> bool:
        return self._pending is not None and not self._pending.done()

    def request(self, uids: list[int], vectors: np.ndarray) -> None:
        key = (self.method, tuple(uids))
        if key in (self._fitted_key, self._pending_key):
            return
        if self.fitting:
            return  # one fit at a time; the next request after it lands picks up the newest examples
        vectors = np.array(vectors, copy=True)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding-map")
        self._pending_key = key
        self._pending = self._executor.submit(self._fit, key, list(uids), vectors)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running fit (if any) has landed. For tests and scripts, never the frame path."""
        pending = self._pending
        if pending is not None:
            pending.result(timeout)

    def _fit(self, key: tuple, uids: list[int], vectors: np.ndarray) -> None:
        xy, fitted_with = fitted_layout(vectors, self.method)
        with self._lock:
            shared = [i for i, uid in enumerate(uids) if uid in self._xy]
            if len(shared) >= 3:
                xy = align(xy, np.stack([self._xy[uids[i]] for i in shared]), shared)
            self._xy = {uid: point for uid, point in zip(uids, xy)}
            self._fitted_key = key
            self._pending_key = None
            self.shown_method = fitted_with
            self.version += 1

    def positions(self, uids: list[int], vectors: np.ndarray, k: int = 15) -> np.ndarray:
        """``N x 2`` positions; examples the layout does not know yet are placed from their known neighbours."""
        with self._lock:
            known = dict(self._xy)
        xy = np.zeros((len(uids), 2))
        known_rows = [i for i, uid in enumerate(uids) if uid in known]
        for i in known_rows:
            xy[i] = known[uids[i]]
        unknown_rows = [i for i, uid in enumerate(uids) if uid not in known]
        if unknown_rows and known_rows:
            known_vectors = vectors[known_rows]
            similarities = vectors[unknown_rows] @ known_vectors.T
            for row, sims in zip(unknown_rows, similarities):
                top = np.argsort(-sims)[:k]
                xy[row] = place(xy[np.asarray(known_rows)[top]], sims[top])
        return xy
