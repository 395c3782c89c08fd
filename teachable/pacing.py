"""Long work gives way to live frames on a shared CPU.

Re-embedding a project of 2,000 examples at another layer takes a minute of both cores. Run flat out beside other
people's cameras, it halves their answers for that minute. :class:`Pacer` is shared by every session of a server:
the frame path marks each frame it runs through the backbone, or answers for a browser that ran it
(:meth:`Pacer.frame`), and long work (a re-embedding, a large upload's decode) reports its batches through
:meth:`Pacer.paced`, which rests after a batch, while frames were run within the last second, for long enough that
the work takes at most ``share`` of the time. With nobody streaming it runs at full speed.

>>> pacer = Pacer(share=0.25, clock=iter([0.0, 0.5, 1.0, 1.0, 3.0, 3.0]).__next__, rest=print)
>>> report = pacer.paced(None)  # the work starts at t = 0
>>> pacer.frame()  # someone's frame at t = 0.5
>>> report(16, 32)  # a batch that took 1 s: rest 3 s, so the work has a quarter of the time
3.0
>>> report(32, 32)  # the last batch (2 s, and no frame in the last second) never rests
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """``share``: the most of the time long work takes while people stream; ``recent``: frames run within this
    many seconds mean someone is streaming."""

    def __init__(
        self, share: float = 0.25, recent: float = 1.0, clock: Callable[[], float] = time.monotonic, rest=time.sleep
    ) -> None:
        self.share, self.recent, self._clock, self._rest = share, recent, clock, rest
        self._last_frame = -float("inf")
        self._lock = threading.Lock()

    def frame(self) -> None:
        """Someone's frame (or still picture) was run through the backbone now."""
        with self._lock:
            self._last_frame = self._clock()

    def paced(self, progress: Callable[[int, int], None] | None) -> Callable[[int, int], None]:
        """``progress`` (``(done, total)``, called after each batch of one piece of long work), resting first
        when people are streaming."""
        started = self._clock()

        def report(done: int, total: int) -> None:
            nonlocal started
            now = self._clock()
            with self._lock:
                streaming = now - self._last_frame < self.recent
            if streaming and done < total:
                self._rest((now - started) * (1 / self.share - 1))
            started = self._clock()
            if progress is not None:
                progress(done, total)

        return report
