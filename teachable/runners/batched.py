"""Frames from many sessions in one forward pass.

When several people stream at once, each session's frame would otherwise be its own batch-1 forward pass.
:class:`FrameBatcher` queues the frames, and one worker thread runs the backbone on all frames that want the same
taps together: the first frame that arrives, plus those that arrive within ``window`` seconds, up to
``max_batch``. It only waits for frames it expects: as many as there are sessions that sent a frame in the last
second. A single user therefore never waits, and a full house waits at most ``window``.

On a GPU one batch of 16 costs little more than a batch of 1, so this multiplies throughput. On a small CPU a batch
costs about the sum of its frames (benchmarks/bench_scale.py), so the app batches on the GPU only, unless asked.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from ..stages import Backbone

__all__ = ["FrameBatcher"]

ACTIVE_SECONDS = 1.0
"""A session counts as streaming if it sent a frame this recently."""


@dataclass(eq=False)  # compared by identity
class _Request:
    images: np.ndarray
    taps: tuple[str, ...]
    caller: int
    result: Future = field(default_factory=Future)


class FrameBatcher:
    """Run ``backbone.run`` for many callers at once. Thread-safe; callers block until their outputs are ready.

    ``run(images, taps, caller)`` has the signature of :meth:`Backbone.run` plus who is calling (a session id),
    and returns the same ``{tap: tensor}`` for the caller's images only.
    """

    def __init__(
        self, backbone: Backbone, window: float = 0.004, max_batch: int = 16, active_seconds: float = ACTIVE_SECONDS
    ) -> None:
        self.backbone = backbone
        self.window = window
        self.max_batch = max_batch
        self.active_seconds = active_seconds
        self._pending: list[_Request] = []
        self._last_seen: dict[int, float] = {}
        self._condition = threading.Condition()
        self._closed = False
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        """Frames per forward pass, the latest 10,000 (for benchmarks and tests)."""
        self._worker = threading.Thread(target=self._serve, name="frame-batcher", daemon=True)
        self._worker.start()

    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        request = _Request(np.asarray(images), tuple(taps), caller)
        with self._condition:
            if self._closed:
                raise RuntimeError("The frame batcher is closed.")
            self._last_seen[caller] = time.monotonic()
            self._pending.append(request)
            self._condition.notify_all()
        return request.result.result()

    def close(self) -> None:
        """Stop the worker; frames still waiting get an error rather than waiting for ever."""
        with self._condition:
            self._closed = True
            for request in self._pending:
                request.result.set_exception(RuntimeError("The frame batcher is closed."))
            self._pending.clear()
            self._condition.notify_all()
        self._worker.join(timeout=5)

    def _expected(self, now: float) -> int:
        for caller, seen in list(self._last_seen.items()):
            if now - seen > self.active_seconds:
                del self._last_seen[caller]
        return max(1, len(self._last_seen))

    def _next_batch(self) -> list[_Request] | None:
        with self._condition:
            while not self._pending and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            taps = self._pending[0].taps
            deadline = time.monotonic() + self.window
            while True:
                same = [r for r in self._pending if r.taps == taps]
                frames = sum(len(r.images) for r in same)
                wanted = min(self._expected(time.monotonic()), self.max_batch)
                remaining = deadline - time.monotonic()
                if len(same) >= wanted or frames >= self.max_batch or remaining <= 0:
                    break
                self._condition.wait(remaining)
            batch, frames = [], 0
            for request in same:
                if batch and frames + len(request.images) > self.max_batch:
                    break
                batch.append(request)
                frames += len(request.images)
            self._pending = [r for r in self._pending if r not in batch]
            return batch

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                outputs = self.backbone.run(np.concatenate([r.images for r in batch]), batch[0].taps)
            except BaseException as error:  # every caller hears about it; the worker goes on
                for request in batch:
                    request.result.set_exception(error)
                continue
            self.batch_sizes.append(sum(len(r.images) for r in batch))
            start = 0
            for request in batch:
                stop = start + len(request.images)
                request.result.set_result({tap: value[start:stop] for tap, value in outputs.items()})
                start = stop
