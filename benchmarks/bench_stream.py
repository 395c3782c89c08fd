"""Streaming figures of the real page in headless Chromium with a fake webcam, against a trivial per-frame function
served the same way in the same run.

Every frame of the fake camera carries its number as 8 black/white blocks in the left 40 columns (outside the
centre square the backbone sees). In the page, a wrapper around ``HTMLCanvasElement.toDataURL`` (which Gradio's
webcam calls to grab a frame) notes when each numbered frame was captured; the server reads the number from the
frame and writes it into its output; a MutationObserver notes when each number reaches the screen. So:

* frames per second = outputs that reached the screen / seconds;
* capture-to-screen latency = screen time - capture time of the same frame;
* server compute = time in ``Session.step`` per frame, against the raw backbone forward measured in this process,
  split into the forward pass, the kNN, the views and the page outputs;
* bytes per frame = the HTML the frame handler returns;
* browser main-thread time = long tasks (over 50 ms) per update, from the Performance API.

The backbone runs in the runtime ``TEACHABLE_RUNTIME`` picks (torch, onnxruntime or auto); the forward pass is timed
around ``Backbone.run`` (from the uint8 image), so the figures hold for either runtime.

Writes benchmarks/results/stream.json (or the path given as the first argument).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from pathlib import Path

import cv2
import gradio as gr
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fakecam import CAMERA_OPEN_JS, chromium_args, start_camera  # noqa: E402
from serving import free_port  # noqa: E402

from teachable import webapp  # noqa: E402
from teachable.webapp import live  # noqa: E402
from teachable.backbones import load_backbone  # noqa: E402
from teachable.project import Project  # noqa: E402
from teachable.session import Session  # noqa: E402

WIDTH, HEIGHT, FPS, FRAMES = 640, 480, 30, 128
ORIGINAL = {
    "step": Session.step,
    "prediction_html": live.prediction_html,
    "predict": Project.predict,
    "frame_outputs": live.frame_outputs,
}
"""What each run wraps afresh (so wrappers never nest across runs)."""
BITS, BLOCK = 8, 60
SECONDS = 15
WARMUP = 4

CAPTURE_JS = """
window.__captured = {}; window.__shown = []; window.__longTasks = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks += entry.duration;
}).observe({type: 'longtask', buffered: true});
const original = HTMLCanvasElement.prototype.toDataURL;
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
  return original.apply(this, args);
};
new MutationObserver(() => {
  const el = document.querySelector('[data-frame]');
  if (!el) return;
  const code = Number(el.getAttribute('data-frame'));
  if (window.__last !== el.getAttribute('data-frame') || window.__lastNode !== el) {
    window.__last = el.getAttribute('data-frame'); window.__lastNode = el;
    const t = performance.now();
    window.__shown.push([code, t, window.__captured[code] ?? null]);
  }
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


TRIVIAL_START_OR_OPEN_JS = """() => document.querySelector('#cam video')?.videoWidth > 0
  || [...document.querySelectorAll('#cam button')].some(
    (button) => ['Click to Access Webcam', 'Start camera'].includes(button.textContent.trim()))"""
"""The trivial page's webcam is open, or shows its button (Gradio's words, or the page script's: serve() gives every
page the app's styles and scripts)."""
TRIVIAL_OPEN_OR_REQUESTED_JS = f"() => ({CAMERA_OPEN_JS})() || document.documentElement.dataset.camera === 'requested'"
TRIVIAL_STREAMING_JS = """() => !!document.querySelector('#cam .capture-button [title="stop recording"]')"""


def write_video(path: Path) -> Path:
    import skimage.data

    photos = [skimage.data.chelsea(), skimage.data.coffee()]
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(FRAMES):
            frame = cv2.resize(
                photos[index * 2 // FRAMES],
                (WIDTH, HEIGHT),
                interpolation=cv2.INTER_AREA,
            )
            frame[:, :40] = 0
            for bit in range(BITS):
                if index >> bit & 1:
                    frame[bit * BLOCK : (bit + 1) * BLOCK, :40] = 255
            handle.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def frame_code(frame: np.ndarray) -> int:
    column = frame[30::BLOCK, 20, 0][:BITS]
    return int(sum(1 << bit for bit, value in enumerate(column) if value > 128))


def trivial_app(stream_every: float) -> gr.Blocks:
    def echo(frame):
        return f'<div data-frame="{frame_code(frame)}">frame</div>' if frame is not None else gr.skip()

    with gr.Blocks() as demo:
        camera = gr.Image(
            sources=["webcam"], streaming=True, elem_id="cam",
            webcam_options=gr.WebcamOptions(mirror=False, constraints={"video": {"width": {"ideal": WIDTH}, "height": {"ideal": HEIGHT}}}),
        )  # fmt: skip
        out = gr.HTML()
        camera.stream(
            echo,
            camera,
            out,
            stream_every=stream_every,
            time_limit=600,
            concurrency_limit=None,
            show_progress="hidden",
        )
    return demo


def instrumented_full_app(backbone, stream_every: float, step_ms: list[float], forward_ms: list[float],
                          split: dict[str, list[float]] | None = None,
                          settings: webapp.ServerSettings | None = None) -> gr.Blocks:
    """The real page, with the frame number passed through to its output, and Session.step and the backbone
    forward inside it timed (so both are measured under the same load from the browser and the server). ``split``
    collects the kNN time, the page-output time and the bytes each frame sends. ``settings``: the server's
    (default: the defaults, with ``stream_every``)."""
    split = {} if split is None else split
    render, forward = ORIGINAL["prediction_html"], type(backbone).run
    predict, outputs = ORIGINAL["predict"], ORIGINAL["frame_outputs"]

    def timed_predict(self, *args, **kwargs):
        start = time.perf_counter()
        out = predict(self, *args, **kwargs)
        split.setdefault("knn_ms", []).append((time.perf_counter() - start) * 1000)
        return out

    def measured_outputs(*args, **kwargs):
        start = time.perf_counter()
        out = outputs(*args, **kwargs)
        split.setdefault("page_outputs_ms", []).append((time.perf_counter() - start) * 1000)
        split.setdefault("bytes", []).append(sum(len(o) for o in vars(out).values() if isinstance(o, str)))
        return out

    Project.predict = timed_predict
    live.frame_outputs = measured_outputs
    last_code = {}

    def timed_forward(*args, **kwargs):
        start = time.perf_counter()
        out = forward(backbone, *args, **kwargs)
        forward_ms.append((time.perf_counter() - start) * 1000)
        return out

    def timed_step(self, frame, *args, **kwargs):
        last_code[id(self)] = frame_code(frame)
        start = time.perf_counter()
        result = ORIGINAL["step"](self, frame, *args, **kwargs)
        step_ms.append((time.perf_counter() - start) * 1000)
        return result

    def tagged_render(result, project, *args, **kwargs):
        code = next(reversed(last_code.values()), -1)
        return render(result, project, *args, **kwargs) + f'<span data-frame="{code}"></span>'

    Session.step = timed_step
    live.prediction_html = tagged_render
    backbone.run = timed_forward  # the forward pass in whichever runtime the backbone uses
    # the server's frame path: the host runs the model (browser inference is bench_room.py's)
    settings = settings or webapp.ServerSettings(stream_every=stream_every, live_model="server")
    return webapp.build_app(backbone, settings=settings)


def drive(url: str, video: Path, load_demo: bool, views_off: bool = False) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(video))
        page = browser.new_page()
        page.add_init_script(CAPTURE_JS)
        page.goto(url)
        if load_demo:
            page.get_by_text("Project: save, open, demo", exact=True).click()
            page.get_by_text("Load the demo project").click()
            page.wait_for_selector("#classes .tm-class[data-class='cat']")
        if views_off:
            page.locator("#settings").get_by_text("Settings").click()
            page.get_by_label("Live map and activation grid").uncheck()
        if load_demo:  # the real page: one click starts camera and stream (none where the camera is allowed)
            start_camera(page, wait_for_prediction=False)
        else:  # the trivial page is Gradio's bare webcam: open it (the page script does so itself where the camera
            # is allowed), then start the stream with Gradio's record control, which the page's styles hide
            page.wait_for_function(TRIVIAL_START_OR_OPEN_JS)
            if not page.evaluate(TRIVIAL_OPEN_OR_REQUESTED_JS):
                try:
                    page.locator("#cam button", has_text=re.compile("Click to Access Webcam|Start camera")).first.click(
                        timeout=5000
                    )
                except Exception:  # noqa: BLE001 (Playwright's TimeoutError) the page opened it meanwhile
                    pass
            page.wait_for_function(CAMERA_OPEN_JS)
            page.locator('#cam button[aria-label="capture photo"]').dispatch_event("click")
            page.wait_for_function(TRIVIAL_STREAMING_JS)
        page.wait_for_timeout(WARMUP * 1000)
        page.evaluate("() => { window.__shown = []; }")
        page.wait_for_timeout(SECONDS * 1000)
        shown = page.evaluate("() => window.__shown")
        long_tasks_ms = page.evaluate("() => window.__longTasks")
        browser.close()
    latencies = [t - c for _, t, c in shown if c is not None and 0 <= t - c < 5000]
    return {
        "frames_shown": len(shown),
        "fps": len(shown) / SECONDS,
        "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else None,
        "browser_long_task_ms_per_update": long_tasks_ms / max(len(shown), 1),
    }


def raw_forward_ms(backbone, repeats: int = 60) -> list[float]:
    image = np.zeros((1, 224, 224, 3), np.uint8)
    samples = []
    for i in range(repeats + 5):
        start = time.perf_counter()
        type(backbone).run(backbone, image, [backbone.embedding_tap])
        if i >= 5:
            samples.append((time.perf_counter() - start) * 1000)
    return samples


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "stream.json"
    backbone = load_backbone(device="cpu")
    video = write_video(Path(tempfile.mkdtemp()) / "numbered.y4m")
    results: dict = {
        "seconds_per_run": SECONDS,
        "camera": f"{WIDTH}x{HEIGHT} at {FPS} fps",
        "runtime": backbone.runtime_in_use,
        "runtime_setting": backbone.runtime,
        "runs": {},
    }
    raw_before = raw_forward_ms(backbone)
    step_ms: list[float] = []
    forward_ms: list[float] = []
    split: dict[str, list[float]] = {}
    for stream_every, kind in [
        (0.05, "trivial"),
        (0.05, "full"),
        (0.1, "trivial"),
        (0.1, "full"),
        (0.1, "full-views-off"),
    ]:
        port = free_port()
        demo = (
            trivial_app(stream_every)
            if kind == "trivial"
            else instrumented_full_app(backbone, stream_every, step_ms, forward_ms, split)
        )
        webapp.serve(demo, "127.0.0.1", port, prevent_thread_lock=True)
        try:
            url = f"http://127.0.0.1:{port}/"
            results["runs"][f"{kind}@{stream_every}"] = drive(url, video, kind != "trivial", kind == "full-views-off")
        finally:
            demo.close()
        print(kind, stream_every, results["runs"][f"{kind}@{stream_every}"], flush=True)
    raw = raw_before + raw_forward_ms(backbone)
    for stream_every in (0.05, 0.1):
        trivial, full = (
            results["runs"][f"trivial@{stream_every}"],
            results["runs"][f"full@{stream_every}"],
        )
        results[f"ratios@{stream_every}"] = {
            "fps_full_over_trivial": full["fps"] / trivial["fps"] if trivial["fps"] else None,
            "latency_p50_full_over_trivial": (
                full["latency_p50_ms"] / trivial["latency_p50_ms"]
                if full["latency_p50_ms"] and trivial["latency_p50_ms"] else None
            ),
        }  # fmt: skip
    on, off = results["runs"]["full@0.1"], results["runs"]["full-views-off@0.1"]
    results["views_on_over_off@0.1"] = {
        "fps": on["fps"] / off["fps"] if off["fps"] else None,
        "latency_p50": on["latency_p50_ms"] / off["latency_p50_ms"] if off["latency_p50_ms"] else None,
    }
    results["server_compute"] = {
        "session_step_p50_ms": float(np.percentile(step_ms, 50)),
        "session_step_p95_ms": float(np.percentile(step_ms, 95)),
        "forward_in_stream_p50_ms": float(np.percentile(forward_ms, 50)),
        "ratio_p50_step_over_forward_in_stream": float(np.percentile(step_ms, 50) / np.percentile(forward_ms, 50)),
        "raw_forward_idle_p50_ms": float(np.percentile(raw, 50)),
        "ratio_p50_step_over_idle_forward": float(np.percentile(step_ms, 50) / np.percentile(raw, 50)),
        "frames": len(step_ms),
        "knn_p50_ms": float(np.percentile(split["knn_ms"], 50)),
        "page_outputs_p50_ms": float(np.percentile(split["page_outputs_ms"], 50)),
        "views_and_rest_of_step_p50_ms": float(
            np.percentile(step_ms, 50) - np.percentile(forward_ms, 50) - np.percentile(split["knn_ms"], 50)
        ),
    }
    results["bytes_per_frame"] = {
        "p50": float(np.percentile(split["bytes"], 50)),
        "mean": float(np.mean(split["bytes"])),
        "what": "characters of HTML the frame handler returns (before Gradio's JSON and SSE framing)",
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
