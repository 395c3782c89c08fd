"""Joining: the addresses participants open, the QR code of one, and what the leader reads at start."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import cv2
import numpy as np
import pytest

from teachable.join import join_urls, qr_png, qr_svg, startup_message
from teachable.network import lan_addresses

ADDRESSES = ["192.0.2.10", "fd00::5"]  # documentation and unique-local addresses; nothing is sent to them


def test_every_interface_gives_each_network_address_then_the_host_name_then_loopback():
    urls = join_urls("0.0.0.0", 7860, True, addresses=ADDRESSES, names=["laptop"], space_host="")
    assert urls == ["https://192.0.2.10:7860", "https://laptop:7860", "https://127.0.0.1:7860"]


def test_the_ipv6_wildcard_adds_ipv6_addresses_in_brackets():
    urls = join_urls("::", 7860, False, addresses=ADDRESSES, names=[], space_host="")
    assert urls == ["http://192.0.2.10:7860", "http://[fd00::5]:7860", "http://127.0.0.1:7860"]


def test_this_computers_own_addresses_are_offered():
    urls = join_urls("0.0.0.0", 7860, True, space_host="")
    ipv4 = [address for address in lan_addresses() if ":" not in address]
    assert urls[: len(ipv4)] == [f"https://{address}:7860" for address in ipv4]
    assert urls[-1] == "https://127.0.0.1:7860"


@pytest.mark.parametrize(
    "host, port, https, expected",
    [
        ("workshop.test", 7860, True, "https://workshop.test:7860"),
        ("127.0.0.1", 7860, False, "http://127.0.0.1:7860"),
        ("::1", 8443, True, "https://[::1]:8443"),
        ("workshop.test", 443, True, "https://workshop.test"),
    ],
)
def test_a_given_host_is_the_only_address(host, port, https, expected):
    assert join_urls(host, port, https, space_host="") == [expected]


def test_on_a_space_the_spaces_address_is_the_one(monkeypatch):
    monkeypatch.setenv("SPACE_HOST", "someone-teachable.hf.space")
    assert join_urls("0.0.0.0", 7860, False) == ["https://someone-teachable.hf.space"]


@pytest.mark.parametrize("url", ["https://192.0.2.10:7860", "https://[fd00::5]:7860", "https://laptop.local:7860/"])
def test_the_qr_code_decodes_to_the_url(url):
    image = cv2.imdecode(np.frombuffer(qr_png(url), np.uint8), cv2.IMREAD_GRAYSCALE)
    decoded, points, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert points is not None and decoded == url


def test_the_svg_qr_code_is_inline_svg_titled_with_the_url():
    svg = qr_svg("https://192.0.2.10:7860/?a=1&b=2")
    root = ElementTree.fromstring(svg)
    assert root.tag == "svg" and root.get("class") == "join-qr"
    assert root.find("title").text == "https://192.0.2.10:7860/?a=1&b=2"


def test_the_message_for_a_self_signed_certificate_explains_the_browser_warning():
    urls = join_urls("0.0.0.0", 7860, True, addresses=ADDRESSES, names=["laptop"], space_host="")
    message = startup_message(urls, True, self_signed=True)
    assert "  https://192.0.2.10:7860\n  https://laptop:7860\n" in message
    assert "On this computer: https://127.0.0.1:7860" in message
    steps = ["Your connection is not private", "Proceed", "Potential Security Risk", "Accept the Risk", "Show Details"]
    assert all(words in message for words in [*steps, "visit this website"])
    assert "block the camera" not in message


def test_the_message_over_http_says_other_computers_get_no_camera():
    urls = join_urls("0.0.0.0", 7860, False, addresses=ADDRESSES, names=[], space_host="")
    message = startup_message(urls, False)
    assert "http://192.0.2.10:7860" in message
    assert "block the camera" in message and "--https" in message
    assert "Your connection is not private" not in message


def test_the_message_with_a_real_certificate_or_only_loopback_has_no_warning():
    remote = startup_message(["https://workshop.example:7860"], True, self_signed=False)
    assert "https://workshop.example:7860" in remote and "not private" not in remote
    local = startup_message(["http://127.0.0.1:7860"], False)
    assert local == "On this computer: http://127.0.0.1:7860"


def _join_panel(headers: dict[str, str], scheme: str = "http", served: tuple[str, ...] = ()) -> str:
    """The Join panel as the page draws it for a request with these headers."""
    from types import SimpleNamespace

    from teachable.webapp.joining import join_handler

    request = SimpleNamespace(headers={k.lower(): v for k, v in headers.items()}, url=SimpleNamespace(scheme=scheme))
    return join_handler(served)(request)


@pytest.mark.parametrize("proto", ["javascript", "data", "JaVaScRiPt", "ftp", "https\r\nx"])
def test_a_forwarded_scheme_other_than_http_or_https_is_ignored(proto):
    panel = _join_panel({"Host": "workshop.test:7860", "X-Forwarded-Proto": proto})
    assert 'href="http://workshop.test:7860/"' in panel
    assert "javascript" not in panel.lower() and "data:" not in panel


def test_a_proxys_https_is_taken_first_of_its_list():
    panel = _join_panel({"Host": "workshop.test", "X-Forwarded-Proto": "https, http"})
    assert 'href="https://workshop.test/"' in panel


@pytest.mark.parametrize("host", ["[::1", "workshop.test:99999", "a b", 'x"><script>alert(1)</script>', "[zz::1]:80"])
def test_a_malformed_host_header_is_a_message_not_a_traceback(host):
    panel = _join_panel({"Host": host}, served=("https://192.0.2.10:7860",))
    assert "not a valid host name" in panel and "<script>" not in panel
    assert 'href="https://192.0.2.10:7860"' in panel  # the address the server printed instead
