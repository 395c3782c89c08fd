"""The nearest examples by cosine similarity, from FAISS: exact at first, approximate (IVF) from many examples.

Below ``approximate_from`` examples an exact ``IndexFlatIP`` answers: inner products of unit vectors, the same
ranking as a brute-force ``queries @ vectors.T`` (tests/test_knn.py holds it to that). From there an IVF index
(``IndexIVFFlat``, ``sqrt(n)`` lists) is trained on a sample in a background thread while the flat index goes on
answering; once ready it answers instead, probing enough lists to keep recall against the flat index at or above
0.99 on the benchmark data. Adds go into it at once; a removal drops it and a new one is built in the background
from the kept centroids (a build overtaken by a removal is discarded, and rows added during a build are added before
the swap). When the installed faiss sees a GPU (the ``gpu`` extra), indexes live on the GPU.

The index holds copies of the rows; the rows themselves belong to the caller (any object whose ``vectors`` are the
current rows, such as :class:`~teachable.knn_store.ExampleStore`), which tells the index when they grow
(:meth:`ExampleIndex.extend`) or lose rows (:meth:`ExampleIndex.reset`), holding :attr:`ExampleIndex.lock` across
its change and that call, so the background swap never sees the two out of step.

>>> import numpy as np, types
>>> rows = types.SimpleNamespace(vectors=np.eye(3, dtype=np.float32))
>>> index = ExampleIndex(3, rows)
>>> index.search(np.array([[0.1, 1, 0]], np.float32), 2)[1].tolist()
[[1, 0]]
"""

from __future__ import annotations

import copy
import logging
import threading

import faiss
import numpy as np

from .vectors import KNNError

__all__ = ["APPROXIMATE_FROM", "ExampleIndex", "gpu_count"]

APPROXIMATE_FROM = 20_000
"""Examples from which an approximate index is built. A flat search of 20k 1280-d vectors takes about 3.5 ms on a
2-core CPU and grows linearly (18 ms at 100k); the IVF index stays near 1 ms (benchmarks/bench_scale.py)."""
PROBE_FRACTION = 1 / 16
"""Share of the IVF lists each query visits (at least MIN_PROBES): recall >= 0.99 on the benchmark data."""
MIN_PROBES = 16
TRAINING_POINTS_PER_LIST = 40

log = logging.getLogger(__name__)


def gpu_count() -> int:
    """GPUs the installed faiss can use (0 with faiss-cpu)."""
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


class ExampleIndex:
    """FAISS inner-product search over ``rows.vectors`` (unit float32 vectors of dimension ``dim``), read afresh
    whenever needed: the owner replaces it as rows are added and removed.

    Queries and changes come from one thread; only the approximate index is built in another.
    """

    def __init__(
        self,
        dim: int,
        rows: object,
        approximate_from: int | None = APPROXIMATE_FROM,
        use_gpu: bool | None = None,
    ) -> None:
        if use_gpu and gpu_count() == 0:
            raise KNNError(
                "FAISS sees no GPU here; install the gpu extra on a machine with CUDA, or leave use_gpu unset."
            )
        self.dim = dim
        self._owner = rows  # holds the rows as ``vectors``; no reference back, so no cycle keeps the rows alive
        self.approximate_from = approximate_from
        """Number of rows from which an approximate index is used (None: always exact)."""
        self.use_gpu = gpu_count() > 0 if use_gpu is None else use_gpu
        self.lock = threading.Lock()
        """Held while the rows change and the index follows, and by the builder's swap."""
        self._flat: faiss.Index | None = None  # exact index, rebuilt lazily after a removal
        self._approximate: faiss.Index | None = None  # set by the background builder once ready
        self._centroids: faiss.IndexIVFFlat | None = None  # trained, empty: reused after removals
        self._builder: threading.Thread | None = None
        self._generation = 0  # bumped by every removal; a build of an older generation is discarded
        self._gpu_resources = None

    def reuse_centroids(self, other: "ExampleIndex", memo: dict | None = None) -> None:
        """Start from a copy of ``other``'s trained IVF centroids (a copied classifier need not train again)."""
        self._centroids = copy.deepcopy(other._centroids, memo) if other._centroids is not None else None

    def _rows(self) -> np.ndarray:
        return self._owner.vectors

    @property
    def kind(self) -> str:
        """``"flat"`` (exact) or ``"ivf"`` (approximate): the index that answers the next query."""
        return "ivf" if self._approximate is not None else "flat"

    @property
    def approximate(self) -> faiss.Index | None:
        """The IVF index once it answers (its ``nprobe`` can be changed), else None."""
        return self._approximate

    def extend(self, vectors: np.ndarray) -> None:
        """The rows grew by ``vectors`` (call with :attr:`lock` held, after they grew)."""
        for index in (self._flat, self._approximate):
            if index is not None:
                index.add(vectors)

    def reset(self) -> None:
        """Rows were removed (call with :attr:`lock` held): the next query is exact, and any build is stale."""
        self._flat = self._approximate = None
        self._generation += 1

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, rows)`` of the ``k`` nearest rows of each unit query, most similar first."""
        approximate = self._approximate
        if approximate is not None:
            return approximate.search(queries, k)
        rows = self._rows()
        if self.approximate_from is not None and len(rows) >= self.approximate_from:
            self._start_building()
        flat = self._flat  # read once: the builder may drop it when its index lands
        if flat is None:
            flat = self._on_device(faiss.IndexFlatIP(self.dim))
            with self.lock:
                flat.add(self._rows())
                if self._approximate is None:
                    self._flat = flat
        return flat.search(queries, k)

    def nearest_of_other_groups(self, groups: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """For every row, its nearest rows of *other groups* (``groups``: one number per row, e.g. the takes):
        ``(similarities, rows)``, each ``N x min(k, N - largest group)``. When one group holds every row, only the
        row itself is left out.

        One search of ``k`` plus the largest group; a row's group-mates are dropped by group, not by rank, since
        exact duplicates may rank the row itself second."""
        count = len(groups)
        largest = int(np.unique(groups, return_counts=True)[1].max())
        if largest == count:
            groups, largest = np.arange(count), 1
        width = min(k, count - largest)
        similarities, indices = self.search(self._rows(), min(width + largest, count))
        keep = (indices >= 0) & (groups[np.maximum(indices, 0)] != groups[:, None])
        keep &= np.cumsum(keep, axis=1) <= width  # the nearest ``width`` of the rest
        return similarities[keep].reshape(count, width), indices[keep].reshape(count, width)

    def wait(self, timeout: float | None = None) -> str:
        """Block until a background build finishes; returns :attr:`kind`. (For tests and tools.)"""
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
        return self.kind

    def _on_device(self, index: faiss.Index) -> faiss.Index:
        if not self.use_gpu:
            return index
        if self._gpu_resources is None:
            self._gpu_resources = faiss.StandardGpuResources()
        return faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)

    def _start_building(self) -> None:
        if self._builder is not None and self._builder.is_alive():
            return
        snapshot, generation = self._rows(), self._generation
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
        with self.lock:
            if generation != self._generation:
                return  # rows were removed meanwhile; the next query starts a fresh build
            rows = self._rows()
            index.add(rows[len(snapshot) :])  # rows added meanwhile
            self._centroids = centroids
            self._approximate = index
            self._flat = None  # its copy of the vectors is no longer needed
        log.info("Approximate index ready: %d examples in %d lists, %d probed", len(rows), lists, centroids.nprobe)
