"""The real page in one headless Chromium with a fake camera, in browser mode and in server mode, against
bench_stream.py's trivial page in the same run (bench_room.py's last part).

The camera is bench_stream.py's numbered video (each frame carries its number in 8 blocks of the left 40 columns,
outside the centre square the model sees). Capture -> screen, per mode:

* server mode: as bench_stream.py: the page's webcam grabs each frame with ``toDataURL`` (whose wrapper reads and
  notes the frame's number), the server (bench_stream.instrumented_full_app) writes the number of the frame it ran
  into the prediction, and a MutationObserver notes when it reaches the screen;
* browser mode: browser.js grabs the frame with ``drawImage(video, ...)`` (whose wrapper notes the time under the
  number the page will give that frame, ``teachableBrowser.sent + 1``), runs the model, sends the embedding, and the
  server's answer carries the number back (``#browser-answered [data-frame]``, which browser.js also writes for a
  frame answered on the frame route), noted when it reaches the screen.

In browser mode the latency splits at the moment browser.js hands the frame's text over (the input event on
``#browser-frame`` for the first frame, then the POST to the frame route): ``capture_to_sent`` (the square, the
model, the float16 text, in the browser) and ``sent_to_screen`` (the route or Gradio's event, the server, the answer
drawn). Frames per second = answers that reached the
screen / seconds. Both pages are served by this process (the server
mode's must be instrumented to name its frames; the browser mode's is the plain page), one at a time.

First prediction: the demo project is loaded in a first browser context; a second, fresh context (its own HTTP
cache, so the model is downloaded again; the first one's localStorage, so the page reopens that project) opens the
page and starts the camera as soon as the page offers it. ``first_prediction_s`` = from the camera's start (the
page's ``getUserMedia`` call) to the first label on screen; ``model_ready_s`` and ``camera_start_s`` count from
opening the page, so whether the model's download and set-up fell inside the first figure is visible.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

import bench_stream
from bench_stream import ORIGINAL, instrumented_full_app, trivial_app, write_video
from fakecam import chromium_args, start_camera
from serving import free_port

from teachable import webapp
from teachable.project import Project
from teachable.session import Session
from teachable.webapp import live

STREAM_EVERY = 0.1
PAGE_JS = """
window.__captured = {}; window.__sent = {}; window.__shown = []; window.__cameraAt = null;
window.__firstLabelAt = null; window.__modelReadyAt = null;
const mode = '%(mode)s';
if (navigator.mediaDevices?.getUserMedia) {
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => {
    if (window.__cameraAt === null) window.__cameraAt = performance.now();
    return getUserMedia(constraints);
  };
}
if (mode === 'server') {
  const toDataURL = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (...args) {
    try {
      const context = this.getContext('2d');
      let code = 0;
      for (let bit = 0; bit < 8; bit++) {
        const [r] = context.getImageData(20, 30 + 60 * bit, 1, 1).data;
        if (r > 128) code |= 1 << bit;
      }
      window.__captured[code] = performance.now();
    } catch (e) {}
    return toDataURL.apply(this, args);
  };
} else {
  const drawImage = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (source, ...rest) {
    if (source instanceof HTMLVideoElement && window.teachableBrowser) {
      window.__captured[window.teachableBrowser.sent + 1] = performance.now();
    }
    return drawImage.call(this, source, ...rest);
  };
  const dispatchEvent = EventTarget.prototype.dispatchEvent;
  EventTarget.prototype.dispatchEvent = function (event) {
    if (event.type === 'input' && this.closest?.('#browser-frame') && window.teachableBrowser) {
      window.__sent[window.teachableBrowser.sent] = performance.now();
    }
    return dispatchEvent.call(this, event);
  };
  const fetchOriginal = window.fetch;
  window.fetch = function (url, ...rest) {  // a frame on the frame route, after the first
    if (String(url).includes('teachable/frame') && window.teachableBrowser) {
      window.__sent[window.teachableBrowser.sent] = performance.now();
    }
    return fetchOriginal.call(this, url, ...rest);
  };
  const ready = setInterval(() => {
    if (window.teachableBrowser?.loadMs === undefined) return;
    window.__modelReadyAt = performance.now();
    clearInterval(ready);
  }, 20);
}
const answered = mode === 'server' ? '#prediction [data-frame]' : '#browser-answered [data-frame]';
new MutationObserver(() => {
  if (window.__firstLabelAt === null && document.querySelector('#prediction .tm-label')) {
    window.__firstLabelAt = performance.now();
  }
  const element = document.querySelector(answered);
  if (!element) return;
  const code = element.getAttribute('data-frame');
  if (window.__last !== code || window.__lastNode !== element) {
    window.__last = code; window.__lastNode = element;
    const times = [window.__captured[code] ?? null, window.__sent[code] ?? null];
    window.__shown.push([Number(code), performance.now(), ...times]);
  }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""
TIMES_JS = """() => ({
  camera: window.__cameraAt, label: window.__firstLabelAt, model: window.__modelReadyAt,
  loadMs: window.teachableBrowser?.loadMs ?? null, where: document.documentElement.dataset.liveModel ?? null,
  modelMs: window.teachableBrowser?.times ?? [],
})"""


def chromium_runs(backbone, data_folder: Path, seconds: float = bench_stream.SECONDS) -> dict:
    """The trivial page, then the real page in browser mode and in server mode: figures per mode and the ratios."""
    from playwright.sync_api import sync_playwright

    video = write_video(Path(tempfile.mkdtemp(prefix="bench-room-video-")) / "numbered.y4m")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(video))
        chromium_version = browser.version
        browser.close()
    with served(trivial_app(STREAM_EVERY), plain=True) as url:
        trivial = bench_stream.drive(url, video, load_demo=False)
    print("chromium trivial", trivial, flush=True)
    results = {"chromium": {"version": chromium_version, "camera": f"{bench_stream.WIDTH}x{bench_stream.HEIGHT} at "
                            f"{bench_stream.FPS} fps", "stream_every_s": STREAM_EVERY, "seconds": seconds,
                            "trivial_page": trivial}}  # fmt: skip
    for mode in ("browser", "server"):
        settings = dataclasses.replace(
            webapp.ServerSettings.from_env({"TEACHABLE_DATA_DIR": str(data_folder / f"chromium-{mode}")}),
            stream_every=STREAM_EVERY, live_model=mode,
        )  # fmt: skip
        with instrumented(backbone, mode, settings) as demo, served(demo) as url:
            figures = drive_real_page(url, video, mode, seconds)
        figures["fps_over_trivial"] = figures["fps"] / trivial["fps"] if trivial["fps"] else None
        figures["latency_p50_over_trivial"] = (
            figures["latency_p50_ms"] / trivial["latency_p50_ms"]
            if figures["latency_p50_ms"] and trivial["latency_p50_ms"] else None
        )  # fmt: skip
        results[f"chromium_{mode}_mode"] = figures
        print(f"chromium {mode}", figures, flush=True)
    return results


@contextmanager
def instrumented(backbone, mode: str, settings: webapp.ServerSettings):
    """The page for ``mode``: in server mode bench_stream's instrumented page (undone afterwards), else the plain
    page (the browser's answers carry their frame's number already)."""
    if mode == "browser":
        yield webapp.build_app(backbone, settings=settings)
        return
    try:
        yield instrumented_full_app(backbone, STREAM_EVERY, [], [], {}, settings=settings)
    finally:
        Session.step, Project.predict = ORIGINAL["step"], ORIGINAL["predict"]
        live.prediction_html, live.frame_outputs = ORIGINAL["prediction_html"], ORIGINAL["frame_outputs"]
        vars(backbone).pop("run", None)


@contextmanager
def served(demo, plain: bool = False):
    """``demo`` on a free loopback port (the app's own serving, or Gradio's bare one for the trivial page)."""
    port = free_port()
    if plain:
        demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    else:
        webapp.serve(demo, "127.0.0.1", port, prevent_thread_lock=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def drive_real_page(url: str, video: Path, mode: str, seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(video))
        try:
            stored = demo_project_stored(browser, url)
            context = browser.new_context(storage_state=stored)  # a fresh HTTP cache: the model is fetched again
            page = context.new_page()
            page.add_init_script(PAGE_JS % {"mode": mode})
            page.goto(url)
            start_camera(page, wait_for_prediction=False)
            page.wait_for_function("() => window.__firstLabelAt !== null", timeout=120_000)
            times = page.evaluate(TIMES_JS)
            page.wait_for_timeout(bench_stream.WARMUP * 1000)
            page.evaluate("() => { window.__shown = []; }")
            page.wait_for_timeout(seconds * 1000)
            shown = page.evaluate("() => window.__shown")
            after = page.evaluate(TIMES_JS)
            label = page.evaluate("() => document.querySelector('#prediction .tm-label')?.dataset.label ?? null")
        finally:
            browser.close()
    return real_page_figures(shown, times, after, label, seconds)


def demo_project_stored(browser, url: str) -> dict:
    """Load the demo project in a context of its own; its storage (the page's browser key) reopens it."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("[data-page-ready]", state="attached", timeout=120_000)
    page.get_by_text("Project: save, open, demo", exact=True).click()
    page.get_by_text("Load the demo project").click()
    page.wait_for_selector("#classes .tm-class[data-class='cat']", timeout=120_000)
    stored = context.storage_state()
    context.close()
    return stored


def real_page_figures(shown: list, times: dict, after: dict, label: str | None, seconds: float) -> dict:
    latencies = [t - c for _, t, c, _ in shown if c is not None and 0 <= t - c < 5000]
    in_page = [s - c for _, t, c, s in shown if c is not None and s is not None and 0 <= t - c < 5000]
    answering = [t - s for _, t, c, s in shown if c is not None and s is not None and 0 <= t - c < 5000]
    model_ms = after["modelMs"][5:]  # browser.js's own time per model run (browser mode), past the first ones
    return {
        "frames_shown": len(shown),
        "fps": len(shown) / seconds,
        "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else None,
        "capture_to_sent_p50_ms": float(np.percentile(in_page, 50)) if in_page else None,
        "sent_to_screen_p50_ms": float(np.percentile(answering, 50)) if answering else None,
        "first_prediction_s": (times["label"] - times["camera"]) / 1000 if times["camera"] is not None else None,
        "camera_start_s": times["camera"] / 1000 if times["camera"] is not None else None,
        "page_open_to_first_prediction_s": times["label"] / 1000,
        "model_ready_s": times["model"] / 1000 if times["model"] is not None else None,
        "model_load_ms": times["loadMs"],
        "model_ready_before_camera_start": (
            times["model"] < times["camera"] if times["model"] is not None and times["camera"] is not None else None
        ),
        "model_run_p50_ms": float(np.percentile(model_ms, 50)) if model_ms else None,
        "where_the_model_ran": after["where"],
        "label_at_end": label,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
