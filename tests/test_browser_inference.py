"""Browser inference in a real Chromium with a fake camera: the page runs the backbone itself (webapp/browser.py).

The same pictures get the same label with the model in the browser as on the server, from the same square (the
page's own centre square equals the server's) and an embedding within cosine 0.999 of the server's; holding a
class's button records examples whose pictures and embeddings are the frames shown; ``auto`` hands the camera to the
server when the model cannot load or the computer is too slow, and says so; what a page writes into the frame box is
read as hostile; it works over https by a name other than localhost (the workshop room); and the model is cached by
the browser, so a reload does not download it again.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import time
import zipfile
from collections import Counter
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from teachable.backbones import pooled
from teachable.certs import ensure_certificate
from teachable.frames import center_square
from teachable.sent_frames import MAX_SENT_CHARACTERS
from teachable.webapp import browser_inference, build_app, serve
from teachable.webapp.frame_channel import FRAME_ROUTE
from teachable.webapp.page import context_of
from teachable.webapp.settings import ServerSettings

from .conftest import photo
from .fakecam import MARKER_JS, chromium_args, start_camera, wait_for_label, write_y4m
from .serving import free_port

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is not installed (make test installs it)"),
]

NAME = "workshop.test"
PHOTOS = {"cat": ("chelsea", (255, 0, 0)), "rocket": ("rocket", (0, 255, 0)), "coffee": ("coffee", (0, 0, 255))}
"""The demo project's classes, the photo the fake camera shows for each, and that segment's marker colour."""
SEGMENT_SECONDS = 4
MODEL_URLS = "**/teachable/browser/model-*"
SLOW_FRAME_MS = 400

FRAME_JS = """() => {
  const video = document.querySelector('#cam video');
  if (!video || !video.videoWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let text = '';
  for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return {width: canvas.width, height: canvas.height, rgba: btoa(text)};
}"""
"""The camera frame the page shows now, as base64 RGBA."""

SQUARE_JS = """() => {
  const state = window.teachableBrowser;
  if (!state?.lastSquare) return null;
  const square = state.lastSquare;
  let text = '';
  for (let i = 0; i < square.length; i += 0x8000) text += String.fromCharCode(...square.subarray(i, i + 0x8000));
  return {square: btoa(text), embedding: state.lastEmbedding, sent: state.sent};
}"""
"""The square the page fed its model last, and the embedding the model gave for it."""

SHOWN_JS = """() => ({label: document.querySelector('#prediction .tm-label')?.dataset.label ?? null,
                     where: document.documentElement.dataset.liveModel})"""

SEND_JS = """(message) => {
  const box = document.querySelector('#browser-frame textarea, #browser-frame input');
  box.value = typeof message === 'string' ? message : JSON.stringify(message);
  box.dispatchEvent(new Event('input', {bubbles: true}));
}"""
"""Write a frame into the box as browser.js does."""

COUNT_IS_JS = """([name, n]) => parseInt(
  document.querySelector(`#classes .tm-card[data-class='${name}'] .tm-count`).textContent) === n"""

RECORDED_JS = """([name, n]) => parseInt(
  document.querySelector(`#classes .tm-card[data-class='${name}'] .tm-recorded`)?.textContent) >= n"""

PAUSE_JS = "() => { const s = window.teachableBrowser; s.paused = s.session; s.session = null; }"
RESUME_JS = "() => { const s = window.teachableBrowser; s.session = s.paused; }"
"""The page's model steps only while it holds its session: taking it away stops the page's own frames."""


# ------------------------------------------------------------------------------------------------- the servers
def settings_for(live_model: str, data: Path) -> ServerSettings:
    """The app's settings from its environment, with the live model chosen here (the test run's default is the
    server) and a data folder of its own."""
    return ServerSettings.from_env({**os.environ, "TEACHABLE_LIVE_MODEL": live_model, "TEACHABLE_DATA_DIR": str(data)})


def serving(backbone, live_model: str, data: Path, served_urls=(), port: int | None = None, **ssl):
    port = port or free_port()
    settings = settings_for(live_model, data)
    demo = build_app(backbone, settings=settings, served_urls=served_urls)
    serve(demo, "127.0.0.1", port, prevent_thread_lock=True, settings=settings, **ssl)
    return demo, port


@pytest.fixture(scope="module")
def browser_server(backbone, tmp_path_factory):
    """An app whose pages run the model themselves (TEACHABLE_LIVE_MODEL=browser); its data folder."""
    data = tmp_path_factory.mktemp("browser-data")
    demo, port = serving(backbone, "browser", data)
    yield f"http://127.0.0.1:{port}/", data, context_of(demo).browser
    demo.close()


@pytest.fixture(scope="module")
def server_server(backbone, tmp_path_factory):
    demo, port = serving(backbone, "server", tmp_path_factory.mktemp("server-data"))
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def auto_server(backbone, tmp_path_factory):
    """``auto``, with a page counted slow from 400 ms a frame instead of 100: on a small test machine that other
    processes load, the unthrottled model takes 50-200 ms a frame, and 20 times slower is over a second."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(browser_inference, "SLOW_FRAME_MS", SLOW_FRAME_MS)
        demo, port = serving(backbone, "auto", tmp_path_factory.mktemp("auto-data"))
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def https_server(backbone, tmp_path_factory):
    """Browser mode over https, for a laptop that reaches the host as workshop.test."""
    certificate = ensure_certificate(tmp_path_factory.mktemp("cert"), names=["localhost", "127.0.0.1", NAME])
    port = free_port()
    demo, _ = serving(backbone, "browser", tmp_path_factory.mktemp("https-data"), (f"https://{NAME}:{port}",), port,
                      ssl_certfile=str(certificate.certfile), ssl_keyfile=str(certificate.keyfile))  # fmt: skip
    yield f"https://{NAME}:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    segments = [(photo(name), colour) for name, colour in PHOTOS.values()]
    return write_y4m(tmp_path_factory.mktemp("cam") / "cam.y4m", segments, seconds=SEGMENT_SECONDS)


@pytest.fixture(scope="module")
def chromium(video):
    """One Chromium for the module (each test opens its own context): the fake camera, workshop.test mapped to this
    machine, and the https test's self-signed certificate accepted."""
    from playwright.sync_api import sync_playwright

    args = chromium_args(video) + [f"--host-resolver-rules=MAP {NAME} 127.0.0.1", "--ignore-certificate-errors"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, ignore_https_errors=True)
    yield context
    context.close()


# ------------------------------------------------------------------------------------------------- the page
def load_demo(page) -> None:
    page.get_by_text("Project: save, open, demo", exact=True).click()
    page.get_by_text("Load the demo project").click()
    page.wait_for_selector(".tm-card[data-class='cat']")


def wait_for_model_in_browser(page, timeout_ms: float = 120_000) -> None:
    page.wait_for_function("() => window.teachableBrowser?.loadMs > 0", timeout=timeout_ms)


def showing(page) -> str | None:
    """Which class's photo the fake camera shows now, from its marker colour."""
    rgb = page.evaluate(MARKER_JS)
    for name, (_, colour) in PHOTOS.items():
        if rgb is not None and all(abs(a - b) < 60 for a, b in zip(rgb, colour)):
            return name
    return None


def wait_until_showing(page, name: str, settle: float = 0.5, timeout: float = 40) -> None:
    """Wait for the start of a segment showing ``name``, then ``settle`` seconds into it."""
    deadline = time.monotonic() + timeout
    while showing(page) == name:
        assert time.monotonic() < deadline
        page.wait_for_timeout(100)
    while showing(page) != name:
        assert time.monotonic() < deadline, f"the fake camera never showed {name}"
        page.wait_for_timeout(100)
    page.wait_for_timeout(settle * 1000)


def labels_by_photo(page) -> dict[str, str]:
    """The label the page shows for each photo: the most common one over the second half of a whole segment of it
    (the first half leaves the smoothing time to follow), watched until each photo had one."""
    samples = []  # (photo, labels) per segment, in order
    deadline = time.monotonic() + 3 * SEGMENT_SECONDS * len(PHOTOS)
    while time.monotonic() < deadline and not set(PHOTOS) <= {shown for shown, _ in samples[1:-1]}:
        shown, label = showing(page), page.evaluate(SHOWN_JS)["label"]
        if not samples or samples[-1][0] != shown:
            samples.append((shown, []))
        samples[-1][1].append(label)
        page.wait_for_timeout(150)
    votes: dict[str, Counter] = {}
    for shown, labels in samples[1:-1]:  # whole segments only
        votes.setdefault(shown, Counter()).update(labels[len(labels) // 2 :])
    return {shown: counter.most_common(1)[0][0] for shown, counter in votes.items() if shown is not None}


def rgb_frame(page) -> np.ndarray:
    frame = page.evaluate(FRAME_JS)
    rgba = np.frombuffer(base64.b64decode(frame["rgba"]), np.uint8).reshape(frame["height"], frame["width"], 4)
    return np.ascontiguousarray(rgba[..., :3])


def same_photo_frame_and_square(page, attempts: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A camera frame, and the square and embedding the page's model made of a frame of the same photo (the camera
    holds each photo for seconds; a change of segment in between is retried)."""
    for _ in range(attempts):
        before, frame = showing(page), rgb_frame(page)
        page.wait_for_timeout(400)  # a few of the page's own frames of that picture
        made = page.evaluate(SQUARE_JS)
        if before is not None and showing(page) == before and made is not None:
            square = np.frombuffer(base64.b64decode(made["square"]), np.uint8).reshape(224, 224, 3)
            return frame, square, np.asarray(made["embedding"], np.float32)
        page.wait_for_timeout(500)
    raise AssertionError("the camera changed photo during every try")


def count(page, class_name: str) -> int:
    return int(page.inner_text(f"#classes .tm-card[data-class='{class_name}'] .tm-count").split()[0])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def server_embedding(backbone, square: np.ndarray) -> np.ndarray:
    tap = backbone.embedding_tap
    return pooled(backbone.run(square[None], [tap])[tap])[0]


def half_base64(embedding) -> str:
    return base64.b64encode(np.asarray(embedding, "<f2").tobytes()).decode()


def jpeg_base64(rgb: np.ndarray, quality: int = 95) -> str:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return base64.b64encode(data.tobytes()).decode()


def saved_projects(data: Path) -> list[zipfile.ZipFile]:
    """Every project autosaved in an app's data folder (the header lines, then the project's .zip)."""
    projects = []
    for path in Path(data).rglob("*.autosave"):
        _, header, rest = path.read_bytes().split(b"\n", 2)
        projects.append(zipfile.ZipFile(io.BytesIO(rest[: json.loads(header)["size"]])))
    return projects


# ------------------------------------------------------------------------------------------------- the tests
def test_browser_and_server_give_the_same_labels_from_the_same_square(
    backbone, context, chromium, browser_server, server_server
):
    expected = {name: name for name in PHOTOS}
    page = context.new_page()
    page.goto(browser_server[0])
    load_demo(page)
    start_camera(page)
    assert page.evaluate(SHOWN_JS)["where"] == "browser"
    assert "this computer" in page.inner_text("#model-place")
    in_browser = labels_by_photo(page)
    sent, direct = page.evaluate("() => [window.teachableBrowser.sent, window.teachableBrowser.direct]")
    assert sent >= 10, sent  # the labels came from frames the page embedded
    assert direct >= sent // 2, (direct, sent)  # after the first, frames went to the frame route, past the queue

    # The page's square is the server's centre square of the frame, and its embedding the server's for that square.
    frame, square, embedding = same_photo_frame_and_square(page)
    difference = np.abs(square.astype(int) - center_square(frame, 224).astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01, (difference.max(), (difference > 0).mean())
    assert cosine(embedding, server_embedding(backbone, square)) >= 0.999

    other = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = other.new_page()
        page.goto(server_server)
        load_demo(page)
        start_camera(page)
        assert page.evaluate(SHOWN_JS)["where"] == "server"
        on_server = labels_by_photo(page)
    finally:
        other.close()
    assert in_browser == on_server == expected, (in_browser, on_server)


def test_hold_to_record_keeps_the_frames_shown(backbone, context, browser_server):
    url, data, _ = browser_server
    page = context.new_page()
    page.goto(url)
    start_camera(page, wait_for_prediction=False)
    assert page.evaluate(SHOWN_JS)["where"] == "browser"
    wait_until_showing(page, "cat", settle=0.3)
    squares = {"cat": center_square(rgb_frame(page), 224)}  # the centre square of each photo the camera showed
    record = page.locator(".tm-card[data-class='Class 1'] .tm-record")
    record.hover()
    page.mouse.down()
    page.wait_for_selector(".tm-card[data-class='Class 1'] .tm-recorded")
    page.wait_for_timeout(1500)
    page.wait_for_function(RECORDED_JS, arg=["Class 1", 3], timeout=15_000)  # a loaded machine sends fewer frames
    page.mouse.up()
    page.wait_for_selector(".tm-card[data-class='Class 1']:not(.tm-card-recording)")
    recorded = count(page, "Class 1")
    assert recorded >= 3
    page.wait_for_timeout(1000)
    assert count(page, "Class 1") == recorded  # not a frame more after the release

    # The saved project holds the pictures and embeddings of the frames shown.
    examples = saved_examples(data, "Class 1", recorded)
    matched = []
    for thumbnail, embedding in examples:
        shown = nearest(thumbnail, squares)
        if shown is None:  # a loaded machine held the button past the cat's seconds: the next photo's frames
            wait_until_showing(page, "rocket", settle=0.3)
            squares["rocket"] = center_square(rgb_frame(page), 224)
            shown = nearest(thumbnail, squares)
        assert shown is not None, "an example's picture is none of the frames shown"
        assert cosine(embedding, server_embedding(backbone, squares[shown])) >= 0.999
        matched.append(shown)
    assert matched.count("cat") >= 3, matched
    assert page.evaluate("() => window.teachableBrowser.direct") > 0  # the cards' counts came on the frame route


def saved_examples(data: Path, label: str, expected: int, timeout: float = 30) -> list[tuple[np.ndarray, np.ndarray]]:
    """(picture as RGB, embedding) of each of ``label``'s examples in the autosaved project that has ``expected``
    of them, once the autosaver wrote it."""
    deadline = time.monotonic() + timeout
    while not (kept := [p for p in saved_projects(data) if _examples_of(p, label) == expected]):
        assert time.monotonic() < deadline, "the recorded examples were never saved"
        time.sleep(0.5)
    project = kept[0]
    manifest = json.loads(project.read("manifest.json"))
    embeddings = np.load(io.BytesIO(project.read("embeddings.npy")), allow_pickle=False)
    examples = []
    for row, example in enumerate(manifest["examples"]):
        if example["label"] == label:
            picture = cv2.imdecode(np.frombuffer(project.read(example["thumbnail"]), np.uint8), cv2.IMREAD_COLOR)
            examples.append((cv2.cvtColor(picture, cv2.COLOR_BGR2RGB), embeddings[row]))
    return examples


def nearest(picture: np.ndarray, squares: dict[str, np.ndarray], most: float = 3.0) -> str | None:
    """The photo whose centre square ``picture`` shows (a JPEG at quality 0.95 of it: a mean difference under
    ``most`` grey levels), or None."""
    for name, square in squares.items():
        if picture.shape == square.shape and np.abs(picture.astype(int) - square.astype(int)).mean() < most:
            return name
    return None


def _examples_of(project: zipfile.ZipFile, label: str) -> int:
    return sum(1 for example in json.loads(project.read("manifest.json"))["examples"] if example["label"] == label)


def test_auto_uses_the_server_when_the_model_cannot_load(context, auto_server):
    page = context.new_page()
    page.route(MODEL_URLS, lambda route: route.abort())
    page.goto(auto_server)
    page.wait_for_function("() => document.documentElement.dataset.liveModel === 'server'")
    assert "could not load" in page.inner_text("#model-place")
    assert "the host runs it" in page.inner_text("#model-place")
    load_demo(page)
    start_camera(page)
    wait_until_showing(page, "rocket", settle=0)
    wait_for_label(page, "rocket", 30_000)
    wait_until_showing(page, "cat", settle=0)
    wait_for_label(page, "cat", 30_000)  # predictions keep arriving, from the host
    assert page.evaluate("() => window.teachableBrowser.sent") == 0


def test_auto_hands_a_slow_browser_to_the_server(context, auto_server):
    page = context.new_page()
    page.goto(auto_server)
    wait_for_model_in_browser(page)
    load_demo(page)
    start_camera(page)
    page.wait_for_function("() => window.teachableBrowser.checkedMs > 0")  # its first frames were checked
    assert page.evaluate(SHOWN_JS)["where"] == "browser"
    # Then the computer gets 20 times slower (a phone that heats up; Chromium's throttling also takes a few frames
    # to bite when set before the camera starts).
    devtools = context.new_cdp_session(page)
    devtools.send("Emulation.setCPUThrottlingRate", {"rate": 20})
    try:
        page.wait_for_function("() => window.teachableBrowser.slow > 0", timeout=120_000)
    finally:
        devtools.send("Emulation.setCPUThrottlingRate", {"rate": 1})
    state = page.evaluate("() => ({where: document.documentElement.dataset.liveModel,"
                          " slow: window.teachableBrowser.slow})")
    assert state["where"] == "server" and state["slow"] > SLOW_FRAME_MS, state
    assert "too slow" in page.inner_text("#model-place")
    sent = page.evaluate("() => window.teachableBrowser.sent")
    wait_until_showing(page, "rocket", settle=0)
    wait_for_label(page, "rocket", 30_000)
    wait_until_showing(page, "cat", settle=0)
    wait_for_label(page, "cat", 30_000)  # predictions keep arriving, from the host
    assert page.evaluate("() => window.teachableBrowser.sent") == sent  # and the page sends no embeddings more


def test_hostile_frames_are_refused_and_nothing_is_stored(backbone, context, browser_server):
    page = context.new_page()
    page.goto(browser_server[0])
    load_demo(page)
    start_camera(page)
    wait_until_showing(page, "cat", settle=0)
    wait_for_label(page, "cat", 30_000)
    version = page.evaluate("() => JSON.parse(document.querySelector('#browser-config').dataset.config).version")
    _, square, embedding = same_photo_frame_and_square(page)
    good = {"v": version, "e": half_base64(embedding), "t": jpeg_base64(square)}
    not_finite = embedding.copy()
    not_finite[3] = np.nan
    hostile = [
        ({**good, "v": "an-old-model"}, "another version of the model"),
        ({**good, "e": half_base64(not_finite)}, "not finite"),
        ({**good, "e": half_base64(embedding[:100])}, "embedding of 100 numbers"),
        ({**good, "t": jpeg_base64(np.zeros((640, 640, 3), np.uint8))}, "224x224 JPEG"),
        ({**good, "t": base64.b64encode(b"<svg onload=alert(1)>").decode()}, "224x224 JPEG"),
        ("{not json", "cannot read"),
        ({**good, "t": "A" * 300_000}, "characters for one frame"),
    ]
    page.evaluate(PAUSE_JS)
    page.wait_for_timeout(500)
    before = count(page, "cat")
    page.locator(".tm-card[data-class='cat'] .tm-record").hover()
    page.mouse.down()
    try:
        page.wait_for_selector(".tm-card[data-class='cat'].tm-card-recording")
        for number, (message, words) in enumerate(hostile):
            if isinstance(message, dict):
                message = {**message, "n": 10_000 + number}
            page.evaluate(SEND_JS, message)
            page.wait_for_function("w => document.querySelector('#prediction').textContent.includes(w)", arg=words,
                                   timeout=10_000)  # fmt: skip
            assert count(page, "cat") == before, message
        # The same frame, well formed, is recorded: the refusals above were the frames', not the recording's.
        page.evaluate(SEND_JS, {**good, "n": 20_000})
        page.wait_for_function(COUNT_IS_JS, arg=["cat", before + 1], timeout=10_000)
    finally:
        page.mouse.up()
    page.wait_for_selector(".tm-card[data-class='cat']:not(.tm-card-recording)")
    refused_on_the_frame_route(page, browser_server[0], hostile, good)
    assert count(page, "cat") == before + 1
    # The page keeps working: its own frames go on and predictions come back.
    page.evaluate(RESUME_JS)
    sent = page.evaluate("() => window.teachableBrowser.sent")
    wait_until_showing(page, "rocket", settle=0)
    wait_for_label(page, "rocket", 30_000)
    assert page.evaluate("() => window.teachableBrowser.sent") > sent
    assert count(page, "cat") == before + 1


def refused_on_the_frame_route(page, url: str, hostile: list, good: dict) -> None:
    """The same hostile frames sent straight to the frame route with the page's own token: each answer is the
    refusal (nothing stored); a body past the frame's limit is refused unread, and a token no page holds gets 404."""
    channel = page.evaluate("() => window.teachableBrowser.channel")
    assert channel, "the page never got a channel token"
    route = url.rstrip("/") + FRAME_ROUTE
    headers = {"X-Teachable-Channel": channel, "Content-Type": "application/json"}
    for number, (message, words) in enumerate(hostile):
        body = message if isinstance(message, str) else json.dumps({**message, "n": 30_000 + number})
        answer = httpx.post(route, content=body, headers=headers, timeout=30)
        if len(body) > MAX_SENT_CHARACTERS + 1024:
            assert answer.status_code == 413, (answer.status_code, words)
            continue
        assert answer.status_code == 200 and words in answer.json()["shown"]["prediction"], (answer.text[:300], words)
    good_answer = httpx.post(route, content=json.dumps({**good, "n": 31_000}), headers=headers, timeout=30).json()
    assert good_answer["answered"] == 31_000 and 'data-label="cat"' in good_answer["shown"].get("prediction", ""), good_answer
    stranger = {**headers, "X-Teachable-Channel": "not-a-channel"}
    assert httpx.post(route, content=json.dumps(good), headers=stranger, timeout=30).status_code == 404
    assert httpx.get(route, headers=headers, timeout=30).status_code == 405


def test_browser_mode_over_https_by_a_workshop_name(context, https_server):
    page = context.new_page()
    page.goto(https_server)
    assert page.evaluate("() => window.isSecureContext")
    load_demo(page)
    start_camera(page)
    assert page.evaluate(SHOWN_JS)["where"] == "browser"
    wait_until_showing(page, "cat", settle=0)
    wait_for_label(page, "cat", 30_000)
    assert page.evaluate("() => window.teachableBrowser.sent") > 0


def test_the_model_is_cached_and_unknown_paths_are_not_found(chromium, context, browser_server, tmp_path):
    url, _, inference = browser_server
    model, runtime = url + inference.model_path.lstrip("/"), url + inference.runtime_folder.lstrip("/")
    for address in (model, runtime + "ort.wasm.min.js", runtime + "ort-wasm-simd-threaded.wasm",
                    runtime + "ort-wasm-simd-threaded.mjs"):  # fmt: skip
        answer = httpx.get(address)
        assert answer.status_code == 200, address
        assert "immutable" in answer.headers["cache-control"] and "max-age=31536000" in answer.headers["cache-control"]
    assert httpx.get(model).content == inference.model.onnx
    for address in (url + "teachable/browser/model-0000.onnx", url + "teachable/browser/../app.py",
                    url + "teachable/browser/", runtime + "ort.all.min.js", url + "teachable/browser/x"):  # fmt: skip
        answer = httpx.get(address)
        assert answer.status_code == 404, address
        assert "immutable" not in answer.headers.get("cache-control", "")
    assert httpx.post(model).status_code == 404

    # A reload downloads neither the model nor the runtime again: in a browser with a profile (a participant's usual
    # window), and in a context without one (a private window, whose HTTP cache keeps no file this large).
    profile = chromium.browser_type.launch_persistent_context(
        tmp_path / "profile", executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
    )
    try:
        for context in (profile, context):
            first, again = downloads_over_a_reload(context, url)
            model_file = inference.model_path.rsplit("/", 1)[1]
            assert first.keys() >= {model_file, "ort-wasm-simd-threaded.wasm", "ort.wasm.min.js"}, first
            assert first[model_file] >= len(inference.model.onnx), first
            assert "ort.wasm.min.js" in again and not any(again.values()), again  # asked for, from a cache
    finally:
        profile.close()


def downloads_over_a_reload(context, url: str) -> tuple[dict[str, int], dict[str, int]]:
    """What :func:`downloads_of` counts when a page opens (until its model runs), then over a reload."""
    page = context.new_page()
    downloaded = downloads_of(context, page)
    page.goto(url)
    wait_for_model_in_browser(page)
    first = downloaded.copy()
    downloaded.clear()
    page.reload()
    wait_for_model_in_browser(page)
    page.close()
    return first, downloaded


def downloads_of(context, page) -> dict[str, int]:
    """Bytes that came over the network for each file under /teachable/browser/ the page loads from now on (0:
    from the browser's cache), filled in as they finish (the DevTools protocol's Network events)."""
    devtools = context.new_cdp_session(page)
    devtools.send("Network.enable")
    urls: dict[str, str] = {}
    downloaded: dict[str, int] = {}

    def finished(event) -> None:
        url = urls.get(event["requestId"], "")
        if "/teachable/browser/" in url:
            downloaded[url.rsplit("/", 1)[1]] = event["encodedDataLength"]

    def sent(event) -> None:
        urls[event["requestId"]] = event["request"]["url"]

    devtools.on("Network.requestWillBeSent", sent)
    devtools.on("Network.loadingFinished", finished)
    return downloaded
