"""Frames of an uploaded video, sampled at the rate the live camera sends them."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from .frames import ImageError

__all__ = ["sampled_frames"]


def sampled_frames(path: str, every_seconds: float, limit: int = 600) -> Iterator[np.ndarray]:
    """RGB frames of the video at ``path``, one per ``every_seconds`` of video, at most ``limit``.

    Raises :class:`ImageError` when the file is not a video or has no frame that can be read.
    """
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ImageError("That file could not be read as a video.")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(fps * every_seconds))
    index = played = 0
    try:
        while played < limit:
            ok, frame = capture.read()
            if not ok:
                break
            if index % step == 0:
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                played += 1
            index += 1
    finally:
        capture.release()
    if played == 0:
        raise ImageError("That video has no frames that could be read.")
