"""A fake webcam for the browser tests: a y4m video of real photos with a colour marker per segment.

Chromium plays the file in a loop as its camera. Each segment shows one photo; the left 40 columns carry a solid
marker colour, so a test can read which photo is on screen from the page itself. The marker lies outside the
centre square that the backbone sees, so it cannot help the classifier.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def fake_camera_page(playwright, video: Path, **page_options) -> Iterator:
    """A page of Debian's Chromium whose camera plays ``video`` (``page_options``: ``browser.new_page``'s); the
    browser is closed after."""
    browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(video))
    try:
        yield browser.new_page(**page_options)
    finally:
        browser.close()


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


CAMERA_OPEN_JS = "() => document.querySelector('#cam video')?.videoWidth > 0"
START_SHOWN_OR_OPEN_JS = """() => document.querySelector('#cam video')?.videoWidth > 0
  || [...document.querySelectorAll('#cam button')].some((button) => button.textContent.trim() === 'Start camera')"""


FRAMES_FLOW_JS = """() => document.documentElement.dataset.liveModel === 'browser'
  || !document.querySelector('#cam .capture-button [title="start recording"]')"""
"""Frames flow: the page runs the model itself (browser.js), or the camera streams to the host."""


def start_camera(page, wait_for_prediction: bool = True) -> None:
    """Start the fake camera with the page's one button, unless the page opened it by itself (the browser already
    allows this page the camera), and wait until frames stream (and for the first prediction)."""
    page.wait_for_function(START_SHOWN_OR_OPEN_JS)
    if not page.evaluate("() => document.documentElement.dataset.camera === 'requested'"):
        try:
            page.get_by_text("Start camera", exact=True).click(timeout=5000)
        except Exception:  # noqa: BLE001 (Playwright's TimeoutError) the page opened it meanwhile
            pass
    page.wait_for_function(CAMERA_OPEN_JS)
    page.wait_for_function(FRAMES_FLOW_JS)
    if wait_for_prediction:
        page.wait_for_selector("#prediction .tm-label")


def wait_for_label(page, label: str, timeout_ms: float = 120_000) -> None:
    """Wait until the prediction shows ``label``; on a timeout, fail with what the page showed instead."""
    try:
        page.wait_for_selector(f"#prediction .tm-label[data-label='{label}']", timeout=timeout_ms)
    except Exception as error:  # noqa: BLE001 (Playwright's TimeoutError)
        shown = page.inner_text("#prediction")[:300]
        cards = page.evaluate("() => [...document.querySelectorAll('.tm-card')].map(c => c.innerText.slice(0, 40))")
        raise AssertionError(f"no {label!r} after {timeout_ms / 1000:.0f} s; prediction: {shown!r}; cards: {cards}") from error


def demo_to_first_prediction(page, label: str = "cat") -> None:
    """On an opened page: load the demo project, start the camera (showing a ``label`` picture) and wait for it."""
    page.get_by_text("Project: save, open, demo", exact=True).click()
    page.get_by_text("Load the demo project").click()
    page.wait_for_selector(".tm-card[data-class='cat']")
    start_camera(page)
    wait_for_label(page, label)
