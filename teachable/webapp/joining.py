"""The Join panel: the address other people open, as a link and a QR code for phones and tablets."""

import re
from html import escape
from urllib.parse import urlsplit

import gradio as gr

from ..join import join_urls, qr_svg
from ..network import is_loopback
from ..settings import read

__all__ = ["build", "wire", "join_address", "join_html", "join_handler", "page_url", "STYLES", "SCRIPTS"]

STYLES = ("joining.css",)
SCRIPTS = ()


def build() -> gr.HTML:
    with gr.Accordion("Join from another device (link and QR code)", open=False, elem_id="join"):
        return gr.HTML(elem_id="join-panel")


def wire(demo: gr.Blocks, join: gr.HTML, served_urls: tuple[str, ...]) -> None:
    """The panel is drawn when the page opens, for the address that browser used."""
    demo.load(join_handler(served_urls), None, join, show_progress="hidden")


def join_address(page_url: str, served_urls: tuple[str, ...]) -> str:
    """The best address to give others: a Space's own, the address this page was opened at when another computer
    can reach it, else the first address the server printed at start, else this page's."""
    if read("SPACE_HOST"):
        return join_urls("", 0, True)[0]
    host = urlsplit(page_url).hostname or ""
    if host and not is_loopback(host):
        return page_url
    return next((url for url in served_urls if not is_loopback(urlsplit(url).hostname or "")), page_url)


def join_html(url: str) -> str:
    """The address as a link, a QR code of it, and what to do when others could not use it."""
    parts = urlsplit(url)
    note = ""
    if is_loopback(parts.hostname or ""):
        note = (
            "Only this computer can open this address. To let others join, start the app with "
            "<code>python app.py --host 0.0.0.0 --https</code>."
        )
    elif parts.scheme == "http":
        note = (
            "This is a plain http:// address: browsers on other devices will block their cameras. Start the app "
            "with <code>--https</code>."
        )
    link = escape(url)
    return (
        f'<div class="tm-join"><div>Open <a href="{link}" target="_blank" rel="noopener"><b>{link}</b></a> '
        f"or scan:</div>{qr_svg(url)}<div class=\"tm-join-note\">{note}</div></div>"
    )


def join_handler(served_urls: tuple[str, ...]):
    """A page-load handler that draws the panel for whoever opened the page, from the address their browser used.
    (Gradio passes the request to a parameter annotated ``gr.Request``.)"""

    def show_join(request: gr.Request) -> str:
        headers = request.headers
        try:
            url = page_url(headers.get("x-forwarded-proto"), headers.get("host"), request.url.scheme)
        except ValueError as error:
            note = f'<div class="tm-join-note">{escape(str(error))}</div>'
            return note + (join_html(served_urls[0]) if served_urls else "")
        return join_html(join_address(url, served_urls))

    return show_join


HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?")
"""A Host header: a name or an address (IPv6 in brackets), and an optional port; nothing else."""


def page_url(forwarded_proto: str | None, host: str | None, scheme: str) -> str:
    """The address the browser opened this page at, from its request's headers. A proxy's X-Forwarded-Proto counts
    only when it says http or https (the first of a list); a Host header that is not a host name or address, with
    an optional port, is a ValueError with a message for the person."""
    proto = (forwarded_proto or "").split(",")[0].strip().lower()
    scheme = proto if proto in ("http", "https") else scheme
    host = "127.0.0.1" if host is None else host.strip()
    valid = HOST.fullmatch(host) is not None
    if valid:
        try:
            urlsplit(f"{scheme}://{host}/").port  # an IPv6 address that does not parse, a port over 65535
        except ValueError:
            valid = False
    if not valid:
        shown = host if len(host) <= 80 else host[:80] + "..."
        raise ValueError(
            f"The address this page was opened at ({shown!r}) is not a valid host name, so no link to share can be "
            "made from it. Open the page by the address the server printed at start."
        )
    return f"{scheme}://{host}/"
