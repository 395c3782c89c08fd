"""The Join panel: the address other people open, as a link and a QR code for phones and tablets."""

import os
from html import escape
from urllib.parse import urlsplit

import gradio as gr

from ..join import join_urls, qr_svg
from ..network import is_loopback

__all__ = ["build", "join_address", "join_html", "join_handler"]


def build() -> gr.HTML:
    with gr.Accordion("Join from another device (link and QR code)", open=False, elem_id="join"):
        return gr.HTML(elem_id="join-panel")


def join_address(page_url: str, served_urls: tuple[str, ...]) -> str:
    """The best address to give others: a Space's own, the address this page was opened at when another computer
    can reach it, else the first address the server printed at start, else this page's."""
    if os.environ.get("SPACE_HOST"):
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
        scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
        page_url = f"{scheme}://{request.headers.get('host', '127.0.0.1')}/"
        return join_html(join_address(page_url, served_urls))

    return show_join
