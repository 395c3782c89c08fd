"""A session's live state between camera frames: the take being recorded (which class, the take its frames join,
how many it kept) and the confidences smoothed over frames."""

from __future__ import annotations

import math

__all__ = ["RECORD_PER_SECOND", "Recorder", "Smoother"]

RECORD_PER_SECOND = 10


class Recorder:
    """Keeps at most one frame per ``1 / per_second`` seconds while a class records (a camera sends more)."""

    def __init__(self, per_second: float = RECORD_PER_SECOND) -> None:
        self.interval = 1.0 / per_second
        self.label: str | None = None
        """The class being recorded, or None."""
        self.take: int | None = None
        """The take the frames join (one per hold of the record button, see ``Project.new_take``)."""
        self.count = 0
        """Frames kept since the take started."""
        self._kept_at = -math.inf

    def start(self, label: str, take: int) -> None:
        self.label, self.take, self.count, self._kept_at = label, take, 0, -math.inf

    def stop(self) -> int:
        """End the take; returns how many frames it kept."""
        self.label = self.take = None
        return self.count

    def due(self, now: float) -> bool:
        """Whether a frame arriving at ``now`` is to be kept."""
        return self.label is not None and now - self._kept_at >= self.interval - 1e-6  # clock rounding

    def kept(self, now: float) -> None:
        self._kept_at = now
        self.count += 1


class Smoother:
    """Confidences blended over frames: ``weight`` of the last blend plus the rest of the new frame's. A new set
    of classes starts afresh."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def reset(self) -> None:
        self._last = {}

    def __call__(self, confidences: dict[str, float], weight: float) -> dict[str, float]:
        if set(confidences) != set(self._last):
            self._last = dict(confidences)
        else:
            self._last = {name: weight * self._last[name] + (1 - weight) * value for name, value in confidences.items()}
        return dict(self._last)
