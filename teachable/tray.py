"""The "help it learn" tray: recent live frames the classifier was unsure about, kept so that one click can
teach it the answer.

A frame enters the tray when it came out unknown, or when its top two classes were close. Frames enter at most
once per ``min_interval`` seconds and not when they look like the newest frame already there, so a person holding
something still does not fill the tray with copies of one view. Once the examples change, frames the classifier is
now sure about leave the tray (``drop_explained``): the classes explain them, so there is nothing left to ask.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .knn import Prediction

__all__ = ["TrayItem", "HelpTray", "uncertainty"]

CLOSE_MARGIN = 0.2
"""Top-two confidence gap below which a frame counts as a close call."""
SAME_VIEW_SIMILARITY = 0.95
"""A frame at least this similar to the newest tray item is the same view, and is not added again."""


@dataclass(frozen=True)
class TrayItem:
    id: int
    thumbnail: bytes = field(repr=False)
    """JPEG of the square the backbone saw."""
    embedding: np.ndarray = field(repr=False)
    """Unit vector at the project's embedding tap when it was taken."""
    guess: str
    """The best class at the time."""
    reason: str
    """Why it is here, in words: "not sure" or "close call"."""


def uncertainty(prediction: Prediction, filled_classes: int) -> str | None:
    """Why a prediction is worth a person's look, or None when it is confident."""
    if filled_classes < 2:
        return None
    if prediction.is_unknown:
        return "not sure"
    top = sorted(prediction.confidences.values(), reverse=True)
    if len(top) >= 2 and top[0] - top[1] < CLOSE_MARGIN:
        return "close call"
    return None


class HelpTray:
    """The last ``size`` uncertain frames of one session, newest first."""

    def __init__(self, size: int = 6, min_interval: float = 1.0) -> None:
        self.size = size
        self.min_interval = min_interval
        self._items: deque[TrayItem] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._last_added_at = -np.inf
        self.version = 0
        """Increases whenever the tray's contents change (the page redraws it only then)."""
        self._checked_at: object = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def items(self) -> list[TrayItem]:
        return list(self._items)

    def offer(self, embedding: np.ndarray, thumbnail: bytes, guess: str, reason: str, now: float) -> bool:
        """Keep a frame if enough time has passed and it is not the same view as the newest one."""
        if now - self._last_added_at < self.min_interval:
            return False
        embedding = np.asarray(embedding, dtype=np.float32)
        embedding = embedding / max(float(np.linalg.norm(embedding)), 1e-12)  # compared by cosine similarity
        if self._items and float(self._items[0].embedding @ embedding) >= SAME_VIEW_SIMILARITY:
            return False
        self._items.appendleft(TrayItem(next(self._ids), thumbnail, embedding, guess, reason))
        self._last_added_at = now
        self.version += 1
        return True

    def wants(self, now: float) -> bool:
        """Whether a frame offered now could be kept (lets the caller skip encoding a thumbnail)."""
        return now - self._last_added_at >= self.min_interval

    def take(self, item_id: int) -> TrayItem | None:
        """Remove and return an item, or None when it is gone (taken in another tab, or pushed out)."""
        for item in self._items:
            if item.id == item_id:
                self._items.remove(item)
                self.version += 1
                return item
        return None

    def consider(self, prediction: Prediction, embedding, thumbnail: Callable[[], bytes], filled: int, now: float) -> bool:
        """Offer a live frame when the classifier is unsure of it (:func:`uncertainty`, with ``filled`` classes
        that have examples); its thumbnail is made only then. Returns whether it was kept."""
        reason = uncertainty(prediction, filled)
        return bool(reason) and self.wants(now) and self.offer(embedding, thumbnail(), prediction.label, reason, now)

    def would_consider(self, prediction: Prediction, filled: int, now: float) -> bool:
        """Whether a frame like this one, with its picture, would be offered now: a browser that sends its frames
        without pictures is asked for one with its next frame (webapp/browser.py)."""
        return uncertainty(prediction, filled) is not None and self.wants(now)

    def recheck(self, state: Callable[[], object], still_unsure: Callable[[TrayItem], bool]) -> int:
        """Drop the items ``still_unsure`` says the classifier is now sure about, when ``state()`` (what the
        predictions depend on) changed since the last recheck; an empty tray asks nothing."""
        if not self._items:
            return 0
        now_state = state()
        if now_state == self._checked_at:
            return 0
        self._checked_at = now_state
        return self.drop_explained(still_unsure)

    def drop_explained(self, still_unsure: Callable[[TrayItem], bool]) -> int:
        """Remove the items ``still_unsure`` says the classifier is now sure about; returns how many went."""
        kept = [item for item in self._items if still_unsure(item)]
        dropped = len(self._items) - len(kept)
        if dropped:
            self._items = deque(kept, maxlen=self.size)
            self.version += 1
        return dropped

    def clear(self) -> None:
        if self._items:
            self._items.clear()
            self.version += 1
