"""The direct path for frames a participant's browser embedded itself: one small POST per frame, past Gradio's queue.

A frame through a Gradio event costs the host about 20 ms of CPU whatever the handler does (joining the queue,
the event stream's messages, a worker-thread hop and a component rebuilt for every output left unchanged); the
handler itself takes about 1 ms. With 30 participants at 10 frames a second that overhead alone would take six
cores. So after its first frame (which goes through the Gradio event, as before), a page sends its frames to
:data:`FRAME_ROUTE` with the channel token that event handed it, and gets back, as JSON, the same panels the event
would have updated (the page's script writes them into the same places).

A token names one page's session and page state, and nothing else: it is made with :mod:`secrets`, handed only to
that page, and kept for the ``capacity`` pages that used one most recently. An unknown token (pushed out, or the
page's state gone) is a 404, and the page sends its next frame through the Gradio event, which hands it a token
again. Bodies over the frame's size limit are refused (413) before they are read in full.
"""

from __future__ import annotations

import json
import secrets
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import anyio

from .browser_inference import answer_whole

__all__ = ["CHANNEL_HEADER", "FRAME_ROUTE", "FrameChannels", "BrowserFrames"]

FRAME_ROUTE = "/teachable/frame"
CHANNEL_HEADER = b"x-teachable-channel"


class FrameChannels:
    """Token -> (session, page state) of the ``capacity`` pages that sent a frame most recently. Both are held
    weakly: a page whose state Gradio dropped has no channel any more."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self._lock = threading.Lock()
        self._channels: OrderedDict[str, tuple[weakref.ref, weakref.ref]] = OrderedDict()

    def open(self, session, page) -> str:
        """The page's token (made on its first frame), kept as its most recent channel."""
        token = page.channel or secrets.token_urlsafe(18)
        page.channel = token
        with self._lock:
            self._channels[token] = (weakref.ref(session), weakref.ref(page))
            self._channels.move_to_end(token)
            while len(self._channels) > self.capacity:
                self._channels.popitem(last=False)
        return token

    def get(self, token: str):
        """``(session, page)`` for ``token``, or None when it names no live page."""
        with self._lock:
            refs = self._channels.get(token)
            if refs is None:
                return None
            self._channels.move_to_end(token)
        session, page = refs[0](), refs[1]()
        return None if session is None or page is None else (session, page)

    def __len__(self) -> int:
        return len(self._channels)


class BrowserFrames:
    """ASGI middleware that answers ``POST`` :data:`FRAME_ROUTE` with ``answer(session, page, text)`` (run in a
    worker thread) and passes everything else on."""

    def __init__(self, app, channels: FrameChannels, answer: Callable[[object, object, str], dict], max_bytes: int):
        self.app, self.channels, self.answer, self.max_bytes = app, channels, answer, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("path") != FRAME_ROUTE:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await _json(send, 405, {"error": "Frames are sent with POST."})
            return
        token = dict(scope.get("headers", ())).get(CHANNEL_HEADER, b"").decode("latin-1")
        found = self.channels.get(token) if token else None
        if found is None:
            await _json(send, 404, {"error": "No such channel: send the frame through the page's event."})
            return
        body = await _body(receive, self.max_bytes)
        if body is None:
            await _json(send, 413, {"error": "The frame is larger than a frame can be."})
            return
        text = body.decode("utf-8", errors="replace")
        shown = await anyio.to_thread.run_sync(self.answer, *found, text)
        await _json(send, 200, shown)


async def _body(receive, max_bytes: int) -> bytes | None:
    """The request body, or None as soon as it grows past ``max_bytes``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _json(send, status: int, value: dict) -> None:
    await answer_whole(send, status, b"application/json", json.dumps(value, separators=(",", ":")).encode())
