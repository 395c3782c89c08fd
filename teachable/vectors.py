"""Embedding rows as the classifier compares them: unit length, kept at float16 precision, seen through the
prototype rule's signed square root; and the grouping of near-copies that gives old examples their takes.

Pure functions of arrays, shared by the classifier's storage, its rules and the project file's reader.

>>> normalise([[3.0, 4.0]])
array([[0.6, 0.8]], dtype=float32)
>>> near_copy_takes([[1, 0], [0.99, 0.01], [0, 1]], ["cup", "cup", "cup"]).tolist()
[0, 0, 1]
"""

from __future__ import annotations

import numpy as np

__all__ = ["KNNError", "NEAR_COPY_SIMILARITY", "mapped", "near_copy_takes", "normalise", "to_stored_precision"]

NEAR_COPY_SIMILARITY = 0.93
"""Cosine similarity (of the stored vectors) from which two examples of a class count as near-copies of one view,
for :func:`near_copy_takes`. Measured on the development set at ``pool`` (benchmarks/results/fewshot_camera.md):
a photo and its camera-like copies (up to 4 % shift, 90-100 % crop, 0.85-1.15 brightness, as the frames of one
hold differ) have a median similarity of 0.96-0.97 and a 5th percentile of 0.92-0.94; no two distinct photos of
one category reach 0.90 (the most similar pair: 0.89 on grey, 0.82 on texture)."""


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


def to_stored_precision(vectors: np.ndarray) -> np.ndarray:
    """Round float32 vectors to the float16 grid they are stored at (and keep them as float32 for FAISS)."""
    return vectors.astype(np.float16).astype(np.float32)


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
