"""How participants join: the addresses to open, a QR code of one, and the words printed at start.

The web layer shows :func:`join_urls`' first address with :func:`qr_svg` in its Join panel; the command line
prints :func:`startup_message` before the server starts.
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

import segno

from .network import host_names, is_loopback, is_wildcard, lan_addresses
from .settings import read

__all__ = ["join_urls", "qr_svg", "qr_png", "startup_message", "BROWSER_WARNING_STEPS"]

# What each browser shows for a self-signed certificate, and what to click past it, once per browser.
BROWSER_WARNING_STEPS = (
    ("Chrome, Edge", '"Your connection is not private" -> Advanced -> Proceed to <address> (unsafe)'),
    ("Firefox", '"Warning: Potential Security Risk Ahead" -> Advanced... -> Accept the Risk and Continue'),
    ("Safari (Mac, iPhone)", '"This Connection Is Not Private" -> Show Details -> visit this website -> Visit Website'),
)


def join_urls(
    host: str,
    port: int,
    https: bool,
    *,
    addresses: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    space_host: str | None = None,
) -> list[str]:
    """The addresses participants should open, best first, this computer's own (loopback) last.

    For a wildcard ``host`` (0.0.0.0, ::) that is every network address (IPv6 ones only for ::), then the host
    name, then 127.0.0.1; for any other host, just that host. ``addresses`` and ``names`` stand in for this
    computer's (:func:`~teachable.network.lan_addresses`, :func:`~teachable.network.host_names`). On a Hugging
    Face Space (``space_host``, default ``$SPACE_HOST``) the Space's own https address is the only one.
    """
    space_host = read("SPACE_HOST") if space_host is None else space_host
    if space_host:
        return [f"https://{space_host.strip().rstrip('/')}"]
    scheme = "https" if https else "http"
    if not is_wildcard(host):
        return [_url(scheme, host, port)]
    ipv6 = host.strip() in ("::", "[::]")
    if addresses is None:
        addresses = lan_addresses(ipv6=ipv6)
    remote = [a for a in addresses if ipv6 or ipaddress.ip_address(a.strip("[]")).version == 4]
    hosts = [*remote, *(host_names() if names is None else names), "127.0.0.1"]
    urls: list[str] = []
    for name in hosts:
        url = _url(scheme, name, port)
        if url not in urls:
            urls.append(url)
    return urls


def _url(scheme: str, host: str, port: int) -> str:
    host = host.strip().strip("[]")
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    default_port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port == default_port else f"{scheme}://{host}:{port}"


def qr_svg(url: str, *, scale: int = 4, dark: str = "#000", light: str = "#fff") -> str:
    """An inline ``<svg>`` QR code of ``url`` (no XML declaration), sized ``scale`` pixels per module."""
    code = segno.make(url, error="m", micro=False)
    return code.svg_inline(scale=scale, dark=dark, light=light, title=url, svgclass="join-qr")


def qr_png(url: str, *, scale: int = 8) -> bytes:
    """The same QR code as :func:`qr_svg`, as PNG bytes."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=scale)
    return buffer.getvalue()


def startup_message(urls: Sequence[str], https: bool, *, self_signed: bool = True) -> str:
    """What the leader reads at start: which address to give participants, and what their browsers will say.

    ``urls`` are :func:`join_urls`' addresses; ``https`` says whether this server speaks https and ``self_signed``
    whether its certificate is its own (browsers warn once) rather than one browsers trust.
    """
    remote = [url for url in urls if not is_loopback(urlsplit(url).hostname or "")]
    local = [url for url in urls if url not in remote]
    lines: list[str] = []
    if remote:
        lines.append("Participants open one of these addresses (or scan the QR code in the page's Join panel):")
        lines += [f"  {url}" for url in remote]
    if local:
        lines.append(f"On this computer: {local[0]}")
    if any(urlsplit(url).scheme == "http" for url in remote):
        lines += [
            "",
            "Over http:// browsers on other computers block the camera. Start again with --https so participants",
            "can use their cameras (they can still use the Image and Video tabs).",
        ]
    elif remote and https and self_signed:
        lines += [
            "",
            "The certificate is this computer's own (self-signed), so each browser warns once before opening the",
            "page. That is expected here; tell participants what to click:",
        ]
        width = max(len(browser) for browser, _ in BROWSER_WARNING_STEPS)
        lines += [f"  {browser + ':':<{width + 1}}  {steps}" for browser, steps in BROWSER_WARNING_STEPS]
    return "\n".join(lines)
