"""A one-entry cache keyed by what the value was computed from: recomputed only when the key changes.

For a value derived from a project the key is ``(project, project.version)`` and whatever else it depends on:
``Project.version`` rises with every change of the classes, examples and takes, and a project compares by
identity. (The key is held until the next ``get`` with another key, and with it the project it names.)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["KeyedCache"]

T = TypeVar("T")


class KeyedCache(Generic[T]):
    """Holds one value and the key it was computed for.

    >>> cache = KeyedCache()
    >>> cache.get(("a", 1), lambda: 42)
    42
    >>> cache.get(("a", 1), lambda: 0)  # same key: the stored value
    42
    """

    def __init__(self) -> None:
        self._key: Hashable | None = None
        self._value: T | None = None
        self._filled = False

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        if not self._filled or self._key != key:
            self._value, self._key, self._filled = compute(), key, True
        return self._value  # type: ignore[return-value]

    def clear(self) -> None:
        self._key, self._value, self._filled = None, None, False
