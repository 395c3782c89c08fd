"""The workshop room on one machine: a laptop that reaches the server by a name other than localhost (Chromium's
host-resolver rules map workshop.test to 127.0.0.1). Over https with the self-signed certificate the camera
streams and predictions arrive; over plain http, and with the camera denied, the page says what to do, in words."""

from __future__ import annotations

import re
import shutil

import pytest

from teachable.certs import ensure_certificate
from teachable.webapp import build_app, serve

from .conftest import photo
from .fakecam import chromium_args, start_camera, write_y4m
from .serving import free_port

NAME = "workshop.test"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is not installed (make test installs it)"),
]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_y4m(tmp_path_factory.mktemp("cam") / "cam.y4m", [(photo("chelsea"), (255, 0, 0))], seconds=4)


@pytest.fixture(scope="module")
def https_server(backbone, tmp_path_factory):
    certificate = ensure_certificate(tmp_path_factory.mktemp("cert"), names=["localhost", "127.0.0.1", NAME])
    port = free_port()
    demo = build_app(backbone, served_urls=(f"https://{NAME}:{port}",))
    serve(demo, "127.0.0.1", port, prevent_thread_lock=True, ssl_certfile=str(certificate.certfile),
          ssl_keyfile=str(certificate.keyfile))  # fmt: skip
    yield port
    demo.close()


@pytest.fixture(scope="module")
def http_server(backbone):
    port = free_port()
    demo = serve(build_app(backbone), "127.0.0.1", port, prevent_thread_lock=True)
    yield port
    demo.close()


def browser_for(playwright, video, fake_ui: bool = True):
    args = chromium_args(video) + [f"--host-resolver-rules=MAP {NAME} 127.0.0.1", "--ignore-certificate-errors"]
    if not fake_ui:
        args = [a for a in args if a != "--use-fake-ui-for-media-stream"] + ["--deny-permission-prompts"]
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)


def no_raw_keys(page) -> None:
    text = page.inner_text("body")
    assert not re.search(r"\bimage\.[a-z_]+\b", text), text


def test_over_https_by_name_the_camera_streams_and_predictions_arrive(https_server, video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = browser_for(playwright, video)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"https://{NAME}:{https_server}/")
            assert page.evaluate("() => window.isSecureContext")
            start_camera(page, wait_for_prediction=False)
            page.locator(".tm-card[data-class='Class 1'] .tm-record").hover()
            page.mouse.down()
            page.wait_for_selector(".tm-card[data-class='Class 1'] .tm-recorded")
            page.wait_for_timeout(1200)
            page.mouse.up()
            page.wait_for_selector("#prediction .tm-label[data-label='Class 1']")
            assert page.inner_text("#camera-help") == ""
            # The Join panel gives the address this browser used, with a QR code of it.
            page.get_by_text("Join from another device (link and QR code)").click()
            page.wait_for_selector("#join-panel svg.join-qr, #join-panel svg")
            assert f"https://{NAME}:{https_server}/" in page.inner_text("#join-panel")
            no_raw_keys(page)
        finally:
            browser.close()


def test_over_plain_http_by_name_the_page_says_to_use_https(http_server, video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = browser_for(playwright, video)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"http://{NAME}:{http_server}/")
            assert not page.evaluate("() => window.isSecureContext")
            page.wait_for_function("() => document.querySelector('#camera-help')?.textContent.length > 0")
            help_text = page.inner_text("#camera-help")
            assert "http://" in help_text and f"https://{NAME}:{http_server}/" in help_text
            page.get_by_text("Start camera", exact=True).click()
            page.wait_for_timeout(1500)
            no_raw_keys(page)
            page.get_by_text("Join from another device (link and QR code)").click()
            page.wait_for_selector("#join-panel .tm-join-note")
            assert "--https" in page.inner_text("#join-panel")
        finally:
            browser.close()


def test_a_denied_camera_is_explained(http_server, video):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = browser_for(playwright, video, fake_ui=False)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"http://127.0.0.1:{http_server}/")  # loopback is a secure context
            page.get_by_text("Start camera", exact=True).click()
            page.wait_for_function("() => document.querySelector('#camera-help')?.textContent.length > 0")
            assert "allow the camera" in page.inner_text("#camera-help")
            page.wait_for_timeout(500)
            no_raw_keys(page)
        finally:
            browser.close()
