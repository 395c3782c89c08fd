"""Browser inference: each participant's browser runs the backbone on its own camera frames, and the server keeps
the classes and the views.

With the model on the host, every frame of every participant is uploaded (about 100 KB) and run through the
backbone on the host's CPU; a room of 30 laptops shares one laptop's cores. In browser mode the page
(``static/browser.js``) loads onnxruntime-web and the browser's model (``browser_model.py``) from this server,
runs the model on each camera frame, and writes what it sends (``sent_frames.py``: the embedding as float16, a few
KB, and a small JPEG of the frame while a class records, or when the answer to the previous frame asked for one
because the tray would keep it). The first frame goes into the hidden ``#browser-frame`` box, whose input event
runs :func:`on_browser_frame`; its answer hands the page a channel token, and the next frames are one POST each to
the frame route (``frame_channel.py``, :func:`answer_on_channel`), past Gradio's queue, whose per-event cost would
be twenty times the handler's. Either way the server does the rest (the rule, "not sure", recording, the tray, the
map, the cards, autosave) exactly as for a frame it embedded itself. The activation grid's icons come out of the
same graph and are drawn in the browser. Camera frames stay on the participant's computer.

Where the model runs is chosen per participant (``TEACHABLE_LIVE_MODEL``): ``server`` never loads it in the
browser; ``browser`` uses it wherever it loads; ``auto`` (the default) also checks that the frames keep up
(``SLOW_FRAME_MS``) and otherwise hands the camera to the server, as it does when the model cannot load. The grid's
other modes (factors, attribution) need the whole activation, or a backward pass, on the server: while one of them
is shown, the page sends its frames to the host (and says so), and goes back to its own model with the icons.

The model and onnxruntime-web are served by :class:`BrowserFiles` under :data:`ROUTE`, with the version in the
path and a year's ``immutable`` caching, so a reload or a second visit does not download them again (the page also
keeps the two large files, the model and the runtime's .wasm, in Cache Storage: a private window's HTTP cache keeps
no file that large). A participant's page whose project reads its embedding at another layer than the served
model's gets a clear refusal and uses the server; so does a stale page after the server changed its model (the
version is checked on every frame).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
from dataclasses import dataclass

import gradio as gr

from ..sent_frames import MAX_SENT_CHARACTERS, SentFrameError, read_sent_frame
from ..session import Session
from ..views import message_html
from .context import AppContext, PageState
from .errors import USER_ERRORS, message_of
from .frame_channel import FRAME_ROUTE
from .live import LiveOutputs, frame_outputs
from .saving import FRAME_SAVE_INTERVAL, autosave
from .wiring import KEEP, PageWiring, wired

__all__ = ["BrowserHandles", "BrowserOutputs", "answer_on_channel", "build", "on_browser_frame", "wire"]

CHANNEL_PANELS = {"prediction": "#prediction", "neighbours": "#neighbours", "map_points": "#map-points",
                  "map_live": "#map-live", "cards": "#classes", "tray": "#tray"}
"""The panels a frame on the channel may change, and where the page shows them (browser.js writes them there, and
the frame's number into ``#browser-answered``, as the page's event would)."""
PAGE_PANELS = {**CHANNEL_PANELS, "answered": "#browser-answered"}
STYLES = ("browser.css",)
SCRIPTS = ("browser.js",)


# ---------------------------------------------------------------------------------------------- the page's part
@dataclass(frozen=True)
class BrowserHandles:
    frame: gr.Textbox
    answered: gr.HTML


def build(app: AppContext) -> BrowserHandles:
    """The hidden box the page writes each frame into, the frame counter it waits on before sending the next, and
    the settings its script reads."""
    page_config = {**app.browser.page_config(), "frame_route": FRAME_ROUTE.lstrip("/"), "panels": PAGE_PANELS}
    config = html.escape(json.dumps(page_config), quote=True)
    gr.HTML(f'<div id="browser-config" data-config="{config}"></div>', elem_classes="tm-hidden")
    frame = gr.Textbox(elem_id="browser-frame", elem_classes="tm-hidden", max_length=MAX_SENT_CHARACTERS)
    answered = gr.HTML(elem_id="browser-answered", elem_classes="tm-hidden")
    return BrowserHandles(frame, answered)


@dataclass(frozen=True)
class BrowserOutputs(LiveOutputs):
    answered: object = KEEP
    """The number of the frame answered, which the page waits for before it sends the next."""


def on_browser_frame(app: AppContext, text, session: Session, page: PageState) -> BrowserOutputs:
    """One frame the browser embedded (``sent_frames.py``), through the page's Gradio event: its answer also hands
    the page the channel token for its next frames (``frame_channel.py``)."""
    outputs, wants_picture = _answer(app, text, session, page)
    mark = _answered_mark(_frame_number(text), app.frame_channels.open(session, page), wants_picture)
    return dataclasses.replace(outputs, answered=mark)


def answer_on_channel(app: AppContext, session: Session, page: PageState, text: str) -> dict:
    """One frame sent straight to :data:`FRAME_ROUTE`: the panels it changes (name -> HTML), the frame's number
    as ``answered``, and whether the next frame should bring its picture (``picture``)."""
    outputs, wants_picture = _answer(app, text, session, page)
    shown = {name: value for name, value in vars(outputs).items() if name in CHANNEL_PANELS and isinstance(value, str)}
    return {"answered": _frame_number(text), "picture": wants_picture, "shown": shown}


def _answer(app: AppContext, text, session: Session, page: PageState) -> tuple[BrowserOutputs, bool]:
    """What the frame changes on the page (the grid is the browser's own, so it is left alone), and whether the
    tray would have kept it had it brought its picture."""
    app.live_sessions.add(session)
    try:
        if not page.frame_rate.allow():
            raise SentFrameError("This page sends frames faster than the server takes them; some were skipped.")
        model = app.browser.model
        if model is None or session.project.tap != model.embedding_tap:
            raise SentFrameError("This page's model reads another layer than your project: the host runs it now.")
        sent = read_sent_frame(text, model.version, model.embedding_size, model.input_size)
        result = session.step_embedded(sent)
    except (SentFrameError, *USER_ERRORS) as error:
        return BrowserOutputs(prediction=message_html(message_of(error)), session=session), False
    autosave(app, session, page, FRAME_SAVE_INTERVAL)
    shown = frame_outputs(result, session, page)
    return BrowserOutputs(**{**vars(shown), "grid": KEEP}), result.wants_picture


def _frame_number(text) -> int | None:
    """The page's number for this frame (``"n"``), echoed so it knows the answer arrived; None when unreadable."""
    try:
        number = json.loads(text).get("n")
    except (TypeError, ValueError, AttributeError):
        return None
    return int(number) if isinstance(number, int) and not isinstance(number, bool) else None


def _answered_mark(number: int | None, channel: str, wants_picture: bool) -> str:
    """What ``#browser-answered`` shows: the frame answered, the token for the page's next frames, and whether the
    next frame should bring its picture."""
    if number is None:
        return ""
    return f'<span data-frame="{number}" data-channel="{channel}" data-picture="{int(wants_picture)}"></span>'


def wire(wiring: PageWiring, browser: BrowserHandles, shown: LiveOutputs) -> None:
    """The ``browser_frame`` endpoint: what the page's script writes into ``#browser-frame``."""
    outputs = BrowserOutputs(**{**vars(shown), "grid": KEEP}, answered=browser.answered)
    handler, key_input = wiring.reattaching(functools.partial(on_browser_frame, wiring.app), 1)
    handler, components = wired(handler, outputs)
    browser.frame.change(
        handler,
        [browser.frame, wiring.session, wiring.page, *key_input],
        components,
        concurrency_limit=None,  # as the camera's stream: each page waits for its own answer before the next frame
        trigger_mode="always_last",
        show_progress="hidden",
        api_name="browser_frame",
    )
