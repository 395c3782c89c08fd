"""The exported web page, opened as a file in headless Chromium with a fake camera, shows what Python answers for
the very frames it classified: the same label, "Not sure" included, and the same confidences."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from teachable.assets import ASSETS, DEMO_PROJECT
from teachable.backbones import load_backbone
from teachable.cli import main
from teachable.frames import load_image
from teachable.project import Project

from .fakecam import chromium_args, write_y4m

pytestmark = pytest.mark.browser

SEGMENTS = [("cat", (255, 0, 0)), ("coffee", (0, 255, 0)), ("rocket", (0, 0, 255)), ("astronaut", (255, 255, 0))]
"""Photo in assets/try and the marker colour its segment of the fake video carries (astronaut: no class)."""

FRAME_JS = """() => {
  const {rgb, width, height} = window.teachable.lastFrame;
  let text = '';
  for (let i = 0; i < rgb.length; i += 0x8000) text += String.fromCharCode.apply(null, rgb.subarray(i, i + 0x8000));
  return {pixels: btoa(text), width, height, result: window.teachable.last,
          shown: document.getElementById('label').textContent};
}"""


@pytest.fixture(scope="module")
def page_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("web") / "page"
    assert main(["export", str(DEMO_PROJECT), "--format", "web", "-o", str(folder)]) == 0
    return folder


def test_page_shows_the_labels_python_gives(page_folder, tmp_path):
    from playwright.sync_api import sync_playwright

    segments = [(load_image(ASSETS / "try" / f"{name}.jpg"), colour) for name, colour in SEGMENTS]
    video = write_y4m(tmp_path / "camera.y4m", segments, 2.0)
    project = Project.load(DEMO_PROJECT)
    backbone = load_backbone(project.backbone, "cpu")
    session = ort.InferenceSession(str(page_folder / "model.onnx"), providers=["CPUExecutionProvider"])
    requests: list[str] = []
    seen: dict[str, list] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(video))
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.on("request", lambda request: requests.append(request.url))
            page.goto((page_folder / "index.html").as_uri())
            page.evaluate("() => window.teachable.ready")
            page.click("#camera")
            last, deadline = 0, time.monotonic() + 120  # the video loops through its segments every 8 s
            while time.monotonic() < deadline:
                page.wait_for_function(f"() => (window.teachable.last || {{frame: 0}}).frame > {last}", timeout=60_000)
                answer = page.evaluate(FRAME_JS)
                last = answer["result"]["frame"]
                rgb = np.frombuffer(base64.b64decode(answer["pixels"]), np.uint8)
                rgb = rgb.reshape(answer["height"], answer["width"], 3)
                marker = tuple(int(v) for v in rgb[answer["height"] // 2, 10])
                name = min(SEGMENTS, key=lambda s: sum(abs(a - b) for a, b in zip(s[1], marker)))[0]
                seen.setdefault(name, []).append((rgb, answer))
                if len(seen) == len(SEGMENTS) and min(map(len, seen.values())) >= 2:
                    break
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        finally:
            browser.close()
    assert set(seen) == {name for name, _ in SEGMENTS}, f"segments seen: {sorted(seen)}"
    assert overflow <= 0, "the page is wider than a phone"
    assert all(url.startswith(("file:", "blob:", "data:")) for url in requests), requests
    classes = project.classes
    for name, frames in seen.items():
        for rgb, answer in frames:
            result = answer["result"]
            confidences, label, _, _ = session.run(None, {"image": rgb})
            prediction = project.predict(backbone.embed(backbone.prepare(rgb)[None])[0], 5)
            python_label = -1 if prediction.unknown else classes.index(prediction.label)
            assert result["label"] == int(label) == python_label, name
            assert np.abs(np.array(result["confidences"]) - confidences).max() < 1e-3
            assert answer["shown"] == ("Not sure" if python_label < 0 else classes[python_label])
            assert answer["shown"] == ("Not sure" if name == "astronaut" else name)
