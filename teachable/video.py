"""Frames of an uploaded video, sampled at the rate the live camera sends them."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from .frames import ImageError

__all__ = ["sampled_frames", "frame_size", "VIDEO_MAX_PIXELS"]

VIDEO_MAX_PIXELS = 3840 * 2160
"""Largest frame a video may have (4K). Checked from the container before any frame is decoded: an MJPEG .avi of
3 MB can hold 10000x10000 frames, each 300 MB once decoded."""


def frame_size(capture: cv2.VideoCapture) -> tuple[int, int]:
    """``(width, height)`` of an opened video's frames, as its container states them (nothing is decoded)."""
    return int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))


def sampled_frames(
    path: str, every_seconds: float, limit: int = 600, max_pixels: int = VIDEO_MAX_PIXELS
) -> Iterator[np.ndarray]:
    """RGB frames of the video at ``path``, one per ``every_seconds`` of video, at most ``limit``.

    Raises :class:`ImageError` when the file is not a video, when its frames are larger than ``max_pixels`` (from
    the container, before decoding any), or when it has no frame that can be read.
    """
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise ImageError("That file could not be read as a video.")
        width, height = frame_size(capture)
        if width * height > max_pixels:
            raise ImageError(
                f"That video's frames are {width}x{height}; the limit is {max_pixels:,} pixels (4K). "
                "Use a smaller video."
            )
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        step = max(1, round(fps * every_seconds))
        index = played = 0
        while played < limit:
            if index % step:
                if not capture.grab():  # skipped frames are never converted into images
                    break
            else:
                ok, frame = capture.read()
                if not ok:
                    break
                if frame.shape[0] * frame.shape[1] > max_pixels:  # a container that understated its frames
                    raise ImageError(f"That video has a frame of {frame.shape[1]}x{frame.shape[0]}; the limit is 4K.")
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                played += 1
            index += 1
    finally:
        capture.release()
    if played == 0:
        raise ImageError("That video has no frames that could be read.")
