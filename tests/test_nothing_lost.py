"""Nothing lost: a person's work survives a reload, a closed tab, and a server killed and restarted, in a real
browser against real app processes sharing one data folder on disk."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from . import serving
from .fakecam import chromium_args

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which("chromium"), reason="Debian chromium is not installed (make test installs it)"),
]

STORAGE_KEY = "teachable-browser-key"


def counts(page) -> dict[str, int]:
    page.wait_for_selector("#classes .tm-card")
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#classes .tm-card')].map(
             card => [card.dataset.class, parseInt(card.querySelector('.tm-count').textContent)]))"""
    )


def wait_for_counts(page, expected: dict[str, int], timeout: float = 60_000) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        _wait_for_counts(page, expected, timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"expected {expected}, the page shows {counts(page)}") from None


def _wait_for_counts(page, expected: dict[str, int], timeout: float) -> None:
    page.wait_for_function(
        """expected => {
             const cards = [...document.querySelectorAll('#classes .tm-card')];
             const seen = Object.fromEntries(cards.map(c => [c.dataset.class, parseInt(c.querySelector('.tm-count').textContent)]));
             return JSON.stringify(seen) === JSON.stringify(expected);
           }""",
        arg=expected,
        timeout=timeout,
    )


def opened(page, url: str) -> None:
    """Open the page and wait until the server has given this browser its key."""
    page.goto(url)
    page.wait_for_function("k => localStorage.getItem(k)", arg=STORAGE_KEY)


def load_demo(page) -> None:
    page.get_by_text("Project: save, open, demo", exact=True).click()
    page.get_by_text("Load the demo project").click()
    wait_for_counts(page, DEMO)


DEMO = {"cat": 4, "coffee": 4, "rocket": 4}


@pytest.fixture
def data_env(tmp_path):
    return {**os.environ, "TEACHABLE_DATA_DIR": str(tmp_path / "data"), "GRADIO_TEMP_DIR": str(tmp_path / "served")}


def test_reload_closed_tab_second_tab_and_a_killed_server_lose_nothing(data_env, tmp_path):
    from playwright.sync_api import sync_playwright

    port = serving.free_port()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(tmp_path / "none"))
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            with serving.app_process(data_env, port=port) as (url, process):
                page = context.new_page()
                opened(page, url)
                load_demo(page)
                page.reload()  # an accidental F5
                wait_for_counts(page, DEMO)
                # The page says the work is back, not "record a few examples to start".
                assert "12 examples in 3 classes are ready" in page.inner_text("#prediction")
                # A second tab of the same browser shares the project: a class added there shows here.
                other = context.new_page()
                other.goto(url)
                wait_for_counts(other, DEMO)
                other.click(".tm-add-class")
                wait_for_counts(other, {**DEMO, "Class 1": 0})
                page.reload()
                wait_for_counts(page, {**DEMO, "Class 1": 0})
                other.close()  # a closed tab
                page.wait_for_selector("#saved .tm-saved:has-text('Saved at')", timeout=20_000)
                process.send_signal(signal.SIGKILL)  # the server dies, with no chance to save anything more
                process.wait(timeout=30)
                page.wait_for_selector("#tm-reconnect", timeout=20_000)
                assert "lost" in page.inner_text("#tm-reconnect")
                page.evaluate("() => { window.beforeRestart = true; }")
            with serving.app_process(data_env, port=port) as (url, _):
                # The open page reconnects by itself (it reloads) and gets the work back from disk.
                page.wait_for_function("() => !window.beforeRestart", timeout=60_000)
                wait_for_counts(page, {**DEMO, "Class 1": 0})
                # A new tab after the restart finds the same work too.
                fresh = context.new_page()
                fresh.goto(url)
                wait_for_counts(fresh, {**DEMO, "Class 1": 0})
                # Start over clears the saved copy as well.
                fresh.on("dialog", lambda dialog: dialog.accept())
                fresh.get_by_text("Project: save, open, demo", exact=True).click()
                fresh.click("#start-over")
                wait_for_counts(fresh, {"Class 1": 0, "Class 2": 0})
                fresh.reload()
                wait_for_counts(fresh, {"Class 1": 0, "Class 2": 0})
        finally:
            browser.close()


def test_another_browser_and_a_garbage_key_restore_nothing(data_env, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, serving.app_process(data_env) as (url, _):
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args(tmp_path / "none"))
        try:
            first = browser.new_context().new_page()
            first.goto(url)
            load_demo(first)
            second = browser.new_context().new_page()  # another browser: its own key, its own empty project
            second.goto(url)
            wait_for_counts(second, {"Class 1": 0, "Class 2": 0})
            third = browser.new_context().new_page()
            third.goto(url)
            third.evaluate("k => localStorage.setItem(k, '../../etc/passwd')", STORAGE_KEY)
            third.reload()
            wait_for_counts(third, {"Class 1": 0, "Class 2": 0})
            stored = third.evaluate("k => localStorage.getItem(k)", STORAGE_KEY)
            assert stored and "passwd" not in stored  # replaced by a key of the server's own making
            assert not list((tmp_path / "data").rglob("*passwd*"))
        finally:
            browser.close()
