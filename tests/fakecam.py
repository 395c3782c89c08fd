"""A fake webcam for the browser tests: a y4m video of real photos with a colour marker per segment.

Chromium plays the file in a loop as its camera. Each segment shows one photo; the left 40 columns carry a solid
marker colour, so a test can read which photo is on screen from the page itself. The marker lies outside the
centre square that the backbone sees, so it cannot help the classifier.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FPS = 640, 480, 5
MARKER_COLUMNS = 40


def frame_of(rgb: np.ndarray, marker: tuple[int, int, int]) -> np.ndarray:
    frame = cv2.resize(np.ascontiguousarray(rgb), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    frame[:, :MARKER_COLUMNS] = marker
    return frame


def write_y4m(path: Path, segments: list[tuple[np.ndarray, tuple[int, int, int]]], seconds: float) -> Path:
    """One segment per (photo, marker colour), each ``seconds`` long, as an I420 y4m file."""
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb, marker in segments:
            planes = cv2.cvtColor(frame_of(rgb, marker), cv2.COLOR_RGB2YUV_I420).tobytes()
            for _ in range(round(seconds * FPS)):
                handle.write(b"FRAME\n")
                handle.write(planes)
    return path


def chromium_args(video: Path) -> list[str]:
    return [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}",
    ]  # fmt: skip


MARKER_JS = """() => {
  const video = document.querySelector('#cam video');
  if (!video || !video.videoWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  const [r, g, b] = context.getImageData(10, Math.floor(canvas.height / 2), 1, 1).data;
  return [r, g, b];
}"""


def start_camera(page, wait_for_prediction: bool = True) -> None:
    """Open the fake camera on the page and start streaming (and wait for the first prediction)."""
    page.get_by_text("Click to Access Webcam").click()
    page.wait_for_function("() => document.querySelector('#cam video')?.videoWidth > 0")
    page.click('#cam button[aria-label="capture photo"]')  # start streaming
    if wait_for_prediction:
        page.wait_for_selector("#prediction .tm-label")
