"""The classifier's examples: unit vectors at float16 precision, their class names and their takes.

Vectors live in a buffer that grows by doubling, so adding one example is O(1) on average, and rows already stored
are never written again: a view of :attr:`ExampleStore.vectors` taken earlier stays as it was. A removal copies
the kept rows into a fresh array.

>>> store = ExampleStore(2)
>>> store.append(np.eye(2, dtype=np.float32), ["cup", "hand"], store.checked_takes(None, 2))
>>> store.classes, store.takes, store.new_take()
(('cup', 'hand'), [0, 1], 2)
"""

from __future__ import annotations

import numpy as np

from .vectors import KNNError

__all__ = ["ExampleStore"]


class ExampleStore:
    """Rows of vectors with a label and a take each. Read :attr:`vectors`, :attr:`labels` and :attr:`takes`; change
    them only through the methods, which keep the three in step."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._buffer = np.zeros((0, dim), dtype=np.float32)  # grows by doubling, so adding one is O(1)
        self.vectors = self._buffer[:0]
        """The stored rows (float32 holding float16-precision values); rows already there are never written again."""
        self.labels: list[str] = []
        self.takes: list[int] = []
        """The take of each row: examples recorded together (one hold, one uploaded image) share one."""
        self._next_take = 0
        self._classes: tuple[str, ...] | None = None  # cached; reset by every change of labels

    def __len__(self) -> int:
        return len(self.labels)

    def copy_from(self, other: "ExampleStore") -> None:
        """Hold a copy of ``other``'s rows, labels and takes, in a buffer of its own (both may append)."""
        self._buffer = self.vectors = other.vectors.copy()
        self.labels, self.takes, self._next_take = list(other.labels), list(other.takes), other._next_take
        self._classes = None

    @property
    def classes(self) -> tuple[str, ...]:
        """Classes that have at least one example, in order of their first example."""
        if self._classes is None:
            self._classes = tuple(dict.fromkeys(self.labels))
        return self._classes

    def new_take(self) -> int:
        """A take number no example has yet (for a recording about to start)."""
        self._next_take += 1
        return self._next_take - 1

    def checked_takes(self, takes: list[int] | int | None, count: int) -> list[int]:
        """One take per new row: ``takes`` as given (a list, or one number for all), or fresh takes for None."""
        if takes is None:
            return list(range(self._next_take, self._next_take + count))
        takes = [takes] * count if isinstance(takes, (int, np.integer)) and not isinstance(takes, bool) else list(takes)
        if len(takes) != count:
            raise KNNError(f"Got {count} embeddings but {len(takes)} takes.")
        if any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0 for t in takes):
            raise KNNError("A take is a whole number, 0 or more.")
        return [int(t) for t in takes]

    def append(self, vectors: np.ndarray, labels: list[str], takes: list[int]) -> None:
        """Add checked rows (unit length, at stored precision) after the others."""
        size = len(self.vectors) + len(vectors)
        if size > len(self._buffer):
            grown = np.empty((max(size, 2 * len(self._buffer), 64), self.dim), dtype=np.float32)
            grown[: len(self.vectors)] = self.vectors
            self._buffer = grown
        self._buffer[len(self.vectors) : size] = vectors
        self.vectors = self._buffer[:size]
        self.labels.extend(labels)
        self.takes.extend(takes)
        self._next_take = max(self._next_take, max(takes, default=-1) + 1)
        self._classes = None

    def keep(self, kept: np.ndarray) -> None:
        """Keep the rows where ``kept`` is True; the rows after a removed one move up."""
        self._buffer = self.vectors = np.ascontiguousarray(self.vectors[kept])
        self.labels = [label for label, keep in zip(self.labels, kept) if keep]
        self.takes = [take for take, keep in zip(self.takes, kept) if keep]
        self._classes = None

    def rename_class(self, old: str, new: str) -> None:
        self.labels = [new if label == old else label for label in self.labels]
        self._classes = None

    def relabel(self, index: int, label: str) -> None:
        self.labels[index] = label
        self._classes = None
