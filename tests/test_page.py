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
from .fakecam import MARKER_JS, fake_camera_page, start_camera, write_y4m
from .serving import free_port

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
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
        with fake_camera_page(playwright, camera_video, viewport={"width": 1280, "height": 800}) as page:
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


def test_phone_stacks_camera_classes_prediction_and_click_toggle_records(server, camera_video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        with fake_camera_page(playwright, camera_video, **PHONE) as page:
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


ACCENT_JS = """() => {
  const style = (selector, property) => {
    const element = document.querySelector(selector);
    return element ? getComputedStyle(element)[property] : null;
  };
  return {
    record: style(".tm-card[data-class='cat'] .tm-record", 'backgroundColor'),
    theme: getComputedStyle(document.querySelector('.gradio-container')).getPropertyValue('--color-accent').trim(),
    radio: style('#map-method input:checked', 'backgroundColor'),
    radioLabel: style('#map-method label.selected', 'borderColor'),
    save: style('#project .row button.secondary', 'color'),
    startOver: style('#start-over', 'backgroundColor'),
  };
}"""


def channels(css_colour: str) -> list[int]:
    return [int(part) for part in css_colour[css_colour.index("(") + 1 : -1].split(",")[:3]]


def rgb_of(hex_colour: str) -> str:
    red, green, blue = (int(hex_colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({red}, {green}, {blue})"


def record_two_classes(page) -> None:
    """Name the first two cards after what the fake camera shows, and hold each one's button while it shows it."""
    for old, new in [("Class 1", "cat"), ("Class 2", "coffee")]:
        name = page.locator(f".tm-card[data-class='{old}'] .tm-name")
        name.fill(new)
        name.press("Enter")
        page.wait_for_selector(f".tm-card[data-class='{new}']")
    start_camera(page)
    for name in ["cat", "coffee"]:
        wait_until_showing(page, name)
        page.locator(f".tm-card[data-class='{name}'] .tm-record").hover()
        page.mouse.down()
        page.wait_for_timeout(1500)
        page.mouse.up()
        page.wait_for_selector(f".tm-card[data-class='{name}']:not(.tm-card-recording)")
        assert count(page, name) >= 3
    page.mouse.move(0, 0)


def test_the_page_has_its_own_look_and_footer(server, camera_video):
    """One theme above and below the fold: Gradio's controls take the record buttons' colour, "Start over" does not
    look like the main action, and the footer is the page's own (no "Use via API · Built with Gradio"). The
    screenshots the README and the user guide show are taken here (artifacts/look-*.png)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        with fake_camera_page(playwright, camera_video, viewport={"width": 1280, "height": 800}) as page:
            page.goto(server)
            page.wait_for_selector(".tm-card[data-class='Class 1']")
            record_two_classes(page)
            wait_until_showing(page, "rocket", settle=0.2)
            page.wait_for_selector("#tray .tm-tray-item", timeout=20_000)
            page.wait_for_timeout(500)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(ARTIFACTS / "look-1280x800.png"))
            page.evaluate("() => window.scrollBy(0, document.querySelector('#map-method').getBoundingClientRect().top"
                          " - 120)")
            page.screenshot(path=str(ARTIFACTS / "look-lower-1280x800.png"))
            page.get_by_text("Project: save, open, demo", exact=True).click()
            page.wait_for_selector("#start-over", state="visible")
            page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_timeout(300)
            page.screenshot(path=str(ARTIFACTS / "look-bottom-1280x800.png"))

            for words in ["Built with Gradio", "Use via API"]:
                assert page.get_by_text(words).count() == 0, words
            footer = page.locator("#tm-footer")
            assert footer.is_visible() and "teachable" in footer.inner_text()
            assert page.locator("#tm-footer a").count() == 0  # nothing to follow off the page
            colours = page.evaluate(ACCENT_JS)
            blue = rgb_of(colours["theme"])
            assert colours["record"] == blue, colours  # the cards and Gradio's controls share one colour
            assert colours["radio"] == blue, colours
            assert colours["radioLabel"] == blue, colours
            assert colours["save"] == blue, colours
            assert min(channels(colours["startOver"])) >= 240, colours  # a quiet button, not a red slab
            start_over, demo = page.locator("#start-over").bounding_box(), page.locator("#load-demo").bounding_box()
            assert start_over["y"] >= demo["y"] + demo["height"]  # on a line of its own, not beside "Load demo"

        with fake_camera_page(playwright, camera_video, **PHONE) as page:
            page.goto(server)
            page.wait_for_selector(".tm-card[data-class='Class 1']")
            record_two_classes(page)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "look-390x844.png"))
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing sideways
