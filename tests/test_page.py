"""The Teachable-first page in headless Chromium with a fake webcam: everything a newcomer needs is in the first
screen, recording happens only while a class's button is held (mouse, touch-free keyboard, or the click toggle),
and the "help it learn" tray teaches a frame in one click."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from teachable.webapp import build_app, serve

from .conftest import photo
from .fakecam import MARKER_JS, chromium_args, start_camera, write_y4m
from .serving import free_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
MARKERS = {"cat": (255, 0, 0), "coffee": (0, 0, 255), "rocket": (0, 255, 0)}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is not installed (make test installs it)"),
]


@pytest.fixture(scope="module")
def server(backbone):
    port = free_port()
    demo = serve(build_app(backbone), "127.0.0.1", port, prevent_thread_lock=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def camera_video(tmp_path_factory):
    segments = [(photo(name), colour) for name, colour in [("chelsea", MARKERS["cat"]), ("coffee", MARKERS["coffee"]),
                                                           ("rocket", MARKERS["rocket"])]]  # fmt: skip
    return write_y4m(tmp_path_factory.mktemp("cam") / "cam.y4m", segments, seconds=5)


def showing(page) -> str | None:
    """Which photo the fake camera shows now, read from its marker colour."""
    rgb = page.evaluate(MARKER_JS)
    for name, colour in MARKERS.items():
        if rgb is not None and all(abs(a - b) < 60 for a, b in zip(rgb, colour)):
            return name
    return None


def wait_until_showing(page, name: str, settle: float = 0.8, timeout: float = 40) -> None:
    """Wait for the start of a segment showing ``name``, then ``settle`` seconds into it."""
    deadline = time.monotonic() + timeout
    while showing(page) == name:
        assert time.monotonic() < deadline
        page.wait_for_timeout(100)
    while showing(page) != name:
        assert time.monotonic() < deadline, f"the fake camera never showed {name}"
        page.wait_for_timeout(100)
    page.wait_for_timeout(settle * 1000)


COUNT_IS_JS = """([name, n]) => parseInt(
  document.querySelector(`#classes .tm-card[data-class='${name}'] .tm-count`)?.textContent) === n"""


def count(page, class_name: str) -> int:
    return int(page.inner_text(f"#classes .tm-card[data-class='{class_name}'] .tm-count").split()[0])


def inside_first_view(page, selector: str, height: int) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def test_first_screen_hold_to_record_and_the_tray(server, camera_video):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(camera_video))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server)
            page.click(".tm-add-class")
            page.wait_for_selector(".tm-card[data-class='Class 3']")
            start_camera(page)
            # Everything a newcomer needs is in the first screen, with no scrolling.
            assert page.evaluate("() => window.scrollY") == 0
            for selector in ["#cam", "#prediction .tm-label", ".tm-add-class"]:
                assert inside_first_view(page, selector, 800), selector
            for name in ["Class 1", "Class 2", "Class 3"]:
                assert inside_first_view(page, f".tm-card[data-class='{name}'] .tm-record", 800), name
                assert inside_first_view(page, f".tm-card[data-class='{name}'] .tm-name", 800), name

            # Mouse: records while held, and not a frame more after release.
            wait_until_showing(page, "cat")
            record = page.locator(".tm-card[data-class='Class 1'] .tm-record")
            record.hover()
            page.mouse.down()
            page.wait_for_selector(".tm-card[data-class='Class 1'] .tm-recorded")
            page.wait_for_timeout(1500)
            page.mouse.up()
            page.wait_for_selector(".tm-card[data-class='Class 1']:not(.tm-card-recording)")
            held = count(page, "Class 1")
            assert held >= 3
            page.wait_for_timeout(1500)
            assert count(page, "Class 1") == held

            # Keyboard: holding the space bar on the focused button records; releasing it stops.
            wait_until_showing(page, "coffee")
            page.focus(".tm-card[data-class='Class 2'] .tm-record")
            page.keyboard.down(" ")
            page.wait_for_timeout(1500)
            page.keyboard.up(" ")
            page.wait_for_selector(".tm-card[data-class='Class 2']:not(.tm-card-recording)")
            by_keyboard = count(page, "Class 2")
            assert by_keyboard >= 3
            page.wait_for_timeout(1000)
            assert count(page, "Class 2") == by_keyboard
            page.screenshot(path=str(ARTIFACTS / "page-1280x800.png"))

            # The rocket is neither class: its frames come to the tray, and one click teaches one to Class 3.
            wait_until_showing(page, "rocket", settle=0.2)
            page.wait_for_selector("#tray .tm-tray-item", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "page-tray.png"))
            before = page.locator("#tray .tm-tray-item").count()
            page.locator("#tray .tm-tray-item").first.locator(".tm-tray-to[data-to='Class 3']").click()
            page.wait_for_function(
                "sel => document.querySelector(sel)?.textContent === '1 example'",
                arg=".tm-card[data-class='Class 3'] .tm-count",
            )
            assert count(page, "Class 3") == 1
            assert page.locator("#tray .tm-tray-item").count() <= before
            assert "Added the frame to 'Class 3'" in page.inner_text("#status")

            # A card's picture opens a larger view: move it to another class, or remove it.
            ones, threes = count(page, "Class 1"), count(page, "Class 3")
            page.locator(".tm-card[data-class='Class 1'] .tm-card-thumb").first.click()
            page.wait_for_selector(".tm-example-pop img")
            page.screenshot(path=str(ARTIFACTS / "page-example.png"))
            page.locator(".tm-example-pop [data-pop='move'][data-to='Class 3']").click()
            page.wait_for_function(COUNT_IS_JS, arg=["Class 3", threes + 1])
            assert count(page, "Class 1") == ones - 1 and not page.locator(".tm-example-pop").count()
            assert "Moved the example to 'Class 3'" in page.inner_text("#status")
            twos = count(page, "Class 2")
            page.locator(".tm-card[data-class='Class 2'] .tm-card-thumb").first.click()
            page.locator(".tm-example-pop [data-pop='remove']").click()
            page.wait_for_function(COUNT_IS_JS, arg=["Class 2", twos - 1])
            assert count(page, "Class 1") == ones - 1 and count(page, "Class 3") == threes + 1

            # The image-file tools follow the cards: a class renamed on its card is the one they offer.
            name = page.locator(".tm-card[data-class='Class 3'] .tm-name")
            name.fill("mug")
            name.press("Enter")
            page.wait_for_selector(".tm-card[data-class='mug']")
            page.get_by_text("Add image files to a class", exact=True).click()
            page.wait_for_selector("#class-picker label:has-text('mug')")
            assert page.locator("#class-picker label").all_inner_texts() == ["Class 1", "Class 2", "mug"]
            assert page.locator("#strip img").count() >= 1  # the picked class's latest examples
        finally:
            browser.close()


def test_phone_stacks_camera_classes_prediction_and_click_toggle_records(server, camera_video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(camera_video))
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
            page.goto(server)
            page.wait_for_selector(".tm-card[data-class='Class 1']")
            start_camera(page)
            page.evaluate("() => window.scrollTo(0, 0)")
            top = {s: page.locator(s).bounding_box()["y"] for s in ["#cam", "#prediction", "#classes"]}
            assert top["#cam"] < top["#classes"] < top["#prediction"], top
            # The camera and the first class's record button are both in the first view.
            assert inside_first_view(page, "#cam", 844)
            assert inside_first_view(page, ".tm-card[data-class='Class 1'] .tm-record", 844)
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing sideways
            map_box = page.locator("#map-points svg").bounding_box()
            assert map_box["x"] + map_box["width"] <= 390  # the map fits the phone's width
            # For people who cannot hold a button: one tap starts, another stops.
            page.locator("#record-toggle input").check()
            page.locator(".tm-card[data-class='Class 1'] .tm-record").tap()
            page.wait_for_selector(".tm-card[data-class='Class 1'].tm-card-recording")
            page.wait_for_timeout(1500)
            page.locator(".tm-card[data-class='Class 1'] .tm-record").tap()
            page.wait_for_selector(".tm-card[data-class='Class 1']:not(.tm-card-recording)")
            recorded = count(page, "Class 1")
            assert recorded >= 3
            page.wait_for_timeout(1000)
            assert count(page, "Class 1") == recorded
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(ARTIFACTS / "page-390x844.png"))
        finally:
            browser.close()
