"""The web app, served for real on loopback: the API through gradio_client, and the page in headless Chromium
with a fake webcam playing real photos."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pytest

from teachable.webapp import SAMPLES, build_app, serve

from .conftest import photo
from .fakecam import MARKER_JS, fake_camera_page, start_camera, write_y4m
from .serving import free_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(scope="module")
def server(backbone, monkeypatch_module):
    monkeypatch_module.delenv("GRADIO_TEMP_DIR", raising=False)  # the app picks its own file folder, as in use
    port = free_port()
    demo = serve(build_app(backbone), "127.0.0.1", port, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_classify_endpoint_through_gradio_client(server):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    _, details, *_ = client.predict(handle_file(str(SAMPLES / "cat.jpg")), api_name="/classify")
    assert details["label"] == "" and "No examples yet" in details["message"]
    client.predict(None, api_name="/load_demo")
    for name in ["cat", "coffee", "rocket"]:
        html, details, *_ = client.predict(handle_file(str(SAMPLES / f"{name}.jpg")), api_name="/classify")
        assert details["label"] == name, details
        assert details["confidences"][name] > 0.5
        assert f'data-label="{name}"' in html
    # A second client is a second browser: it sees none of the first one's classes.
    other = Client(server, verbose=False)
    _, details, *_ = other.predict(handle_file(str(SAMPLES / "cat.jpg")), api_name="/classify")
    assert details["label"] == "" and "No examples yet" in details["message"]


def test_saved_project_downloads_as_a_zip(server):
    from gradio_client import Client

    from teachable.project import Project

    client = Client(server, verbose=False)
    client.predict(None, api_name="/load_demo")
    path = client.predict(api_name="/save_project")
    project = Project.load(path)
    assert project.counts() == {"cat": 4, "coffee": 4, "rocket": 4}
    # The export button's handler waits for an export slot (a coroutine): through the server it gives the files.
    exported = client.predict(api_name="/export_model")
    assert sorted(Path(f).name for f in exported) == ["model.onnx", "teachable-web.zip"], exported


def test_atlas_is_inlined_and_a_new_session_starts_empty(server):
    import base64
    import re

    from gradio_client import Client
    from PIL import Image

    client = Client(server, verbose=False)
    client.predict(None, api_name="/load_demo")
    html, note = client.predict(api_name="/build_atlas")
    data = re.search(r'src="data:image/jpeg;base64,([^"]+)"', html).group(1)
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        assert image.width == image.height >= 320
    assert "Atlas of 12 examples" in note
    with pytest.raises(Exception, match="Add a few examples first"):
        Client(server, verbose=False).predict(api_name="/build_atlas")


def open_section(page, title: str) -> None:
    """Open a collapsed section of the page by its title."""
    page.get_by_text(title, exact=True).click()


def hold_record(page, class_name: str, seconds: float) -> None:
    """Hold a class card's record button with the mouse for ``seconds``."""
    page.locator(f".tm-card[data-class='{class_name}'] .tm-record").hover()
    page.mouse.down()
    page.wait_for_timeout(seconds * 1000)
    page.mouse.up()


def choose(page, dropdown: str, value: str) -> None:
    """Pick a dropdown value, again if a server update re-rendered the dropdown meanwhile."""
    for _ in range(5):
        page.locator(f"{dropdown} input").fill(value)
        page.keyboard.press("Enter")
        page.wait_for_timeout(200)
        if page.input_value(f"{dropdown} input") == value:
            return
    raise AssertionError(f"{dropdown} did not take {value!r}")


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is not installed (make test installs it)")
def test_coach_finds_a_mislabelled_example_and_one_click_fixes_it(server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        with fake_camera_page(playwright, Path("/dev/null"), viewport={"width": 1280, "height": 1000}) as page:
            page.goto(server)
            open_section(page, "Project: save, open, demo")
            page.get_by_text("Load the demo project").click()
            open_section(page, "Under the hood: evaluation and data coach")
            page.wait_for_selector("#evaluation .tm-accuracy[data-accuracy='1.0000']")
            # Record a cat into "coffee" by mistake: click example #0 in the classification view and move it.
            page.click("#evaluation [data-row='0']")
            assert page.input_value("#example-row input") == "0"
            choose(page, "#move-to", "coffee")
            page.click("#move-example")
            page.wait_for_selector("#evaluation .tm-accuracy:not([data-accuracy='1.0000'])")
            assert page.locator("#evaluation .tm-mistake").count() >= 1
            hint = page.locator("#hints label", has_text="[mislabelled] Example #0")
            hint.click()
            page.locator("#hood").screenshot(path=str(ARTIFACTS / "coach-before.png"))
            page.click("#apply-hint")
            page.wait_for_selector("#evaluation .tm-accuracy[data-accuracy='1.0000']")
            assert page.locator("#evaluation .tm-mistake").count() == 0
            assert page.inner_text("#classes .tm-class[data-class='cat'] .tm-count") == "4 examples"
            choose(page, "#first-class", "cat")
            choose(page, "#second-class", "coffee")
            page.click("#summarise")
            page.wait_for_selector("#summary .tm-channel-row[data-group='shared'] .tm-channel")
            page.fill("#unit-channel input", "7")
            page.click("#show-unit")
            page.wait_for_selector("#unit .tm-unit-example")
            assert page.locator("#unit .tm-unit-example").count() == 8
            page.locator("#hood").screenshot(path=str(ARTIFACTS / "coach-after.png"))


def marker(page) -> str | None:
    rgb = page.evaluate(MARKER_JS)
    if rgb is None:
        return None
    return "A" if rgb[0] > 200 and rgb[2] < 60 else "B" if rgb[2] > 200 and rgb[0] < 60 else None


def wait_for_segment(page, wanted: str, settle: float = 1.0, timeout: float = 30) -> None:
    """Wait until the fake camera shows segment ``wanted`` and has shown it for ``settle`` seconds."""
    deadline = time.monotonic() + timeout
    while marker(page) == wanted:  # mid-segment: wait for the next start, so the whole segment lies ahead
        assert time.monotonic() < deadline
        page.wait_for_timeout(100)
    while marker(page) != wanted:
        assert time.monotonic() < deadline, "the fake camera never showed the expected segment"
        page.wait_for_timeout(100)
    page.wait_for_timeout(settle * 1000)


def shown_label(page) -> str:
    return page.get_attribute("#prediction .tm-label", "data-label") or ""


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is not installed (make test installs it)")
def test_record_two_classes_from_the_webcam_and_prediction_follows(server, tmp_path):
    from playwright.sync_api import sync_playwright

    video = write_y4m(tmp_path / "cam.y4m", [(photo("chelsea"), RED), (photo("coffee"), BLUE)], seconds=6)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        with fake_camera_page(playwright, video, viewport={"width": 1280, "height": 1000}) as page:
            page.goto(server)
            start_camera(page)

            for segment, class_name in [("A", "Class 1"), ("B", "Class 2")]:
                wait_for_segment(page, segment)
                hold_record(page, class_name, 2)
                page.wait_for_function(
                    "name => !document.querySelector(`#classes .tm-class[data-class='${name}'] .tm-count`)"
                    "?.textContent.startsWith('0 ')",
                    arg=class_name,
                )

            for segment, expected in [("A", "Class 1"), ("B", "Class 2"), ("A", "Class 1")]:
                wait_for_segment(page, segment, settle=1.5)
                assert shown_label(page) == expected, page.inner_text("#prediction")
                # The live views follow too: the frame's point on the map is drawn in its class's colour.
                point_colour = page.get_attribute("#tm-live-point", "fill")
                class_colour = page.get_attribute(f"#classes .tm-class[data-class='{expected}'] .tm-swatch", "style")
                assert point_colour in class_colour
            assert page.locator("#map-points .tm-point").count() == page.evaluate(
                "() => [...document.querySelectorAll('#classes .tm-count')].reduce((n, e) => n + parseInt(e.textContent), 0)"
            )
            # The icons view comes as data and is drawn on a canvas from the icon sheet sent once with the page.
            page.wait_for_function("() => Number(document.querySelector('#tm-grid-canvas')?.dataset.frames) >= 2")
            lit = page.evaluate(
                """() => { const c = document.querySelector('#tm-grid-canvas');
                           const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                           let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 90) lit++;
                           return lit / (d.length / 4); }"""
            )
            assert lit > 0.2, lit  # icons, not a black canvas
            page.locator("#grid-box").screenshot(path=str(ARTIFACTS / "grid-icons.png"))
            page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
            for mode in ["factors", "attribution"]:
                page.locator("#grid-mode").get_by_text(mode, exact=True).click()
                page.wait_for_selector("#grid img#tm-grid")
                assert page.get_attribute("#tm-grid", "src").startswith("data:image/jpeg;base64,")
                assert page.locator("#tm-grid-canvas").is_hidden()
                page.locator("#grid").screenshot(path=str(ARTIFACTS / f"grid-{mode}.png"))


def test_uploaded_video_plays_through_the_same_frame_function(server, tmp_path):
    import cv2
    from gradio_client import Client, handle_file

    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    assert writer.isOpened()
    for rgb in [photo("coffee")] * 10:
        writer.write(cv2.cvtColor(cv2.resize(rgb, (320, 240)), cv2.COLOR_RGB2BGR))
    writer.release()
    client = Client(server, verbose=False)
    client.predict(None, api_name="/load_demo")
    html, *_ = client.predict(handle_file(str(path)), api_name="/play_video")
    assert 'data-label="coffee"' in html
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(Exception, match="could not be read|no frames"):
        client.predict(handle_file(str(bad)), api_name="/play_video")


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../../../../etc/passwd",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
        str(Path(__file__).resolve()),  # the app's own source tree
        str(Path(__file__).resolve().parent.parent / "teachable" / "assets" / "demo_project.zip"),
    ],
)
def test_file_route_serves_nothing_outside_its_folders(server, path):
    import httpx

    response = httpx.get(f"{server}gradio_api/file={path}", timeout=30)
    assert response.status_code in (403, 404), (path, response.status_code)
    assert b"root:" not in response.content


def test_uploads_are_capped_and_served_back_only_from_the_cache(server):
    import httpx

    small = httpx.post(
        f"{server}gradio_api/upload", files={"files": ("a.jpg", b"\xff\xd8\xff" + b"0" * 100)}, timeout=30
    )
    assert small.status_code == 200
    (stored,) = small.json()
    assert httpx.get(f"{server}gradio_api/file={stored}", timeout=30).status_code == 200  # positive control
    big = httpx.post(
        f"{server}gradio_api/upload", files={"files": ("big.jpg", b"\xff\xd8\xff" + b"0" * 21_000_000)}, timeout=60
    )
    assert big.status_code == 413


def test_file_route_never_serves_the_autosave_folder(server, autosave_folder):
    import httpx

    saved = autosave_folder / ("0" * 64 + ".autosave")
    saved.write_bytes(b"teachable-autosave 1\nsecret project")
    for path in [str(saved), str(autosave_folder / "page-secret"), str(autosave_folder)]:
        response = httpx.get(f"{server}gradio_api/file={path}", timeout=30)
        assert response.status_code in (403, 404), (path, response.status_code)
        assert b"secret project" not in response.content
