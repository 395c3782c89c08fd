"""Serving the page: Gradio's server limits, HTTPS, and launching with the shared backbone."""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading

import gradio as gr
from starlette.middleware import Middleware

from ..backbones import DEFAULT_BACKBONE, load_backbone_or_default
from ..join import join_urls
from ..projection import warm_up
from ..sent_frames import MAX_SENT_CHARACTERS
from . import browser
from .browser_inference import BrowserFiles
from .frame_channel import BrowserFrames
from .page import build_app, page_css, page_script, page_theme
from .served import UploadLimits, served_files
from .settings import ServerSettings

__all__ = ["prepare", "serve", "launch"]

log = logging.getLogger(__name__)


def serve(
    demo: gr.Blocks,
    host: str,
    port: int,
    share: bool = False,
    prevent_thread_lock: bool = False,
    settings: ServerSettings | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> gr.Blocks:
    """Queue and launch a page made by :func:`build_app` with the server limits this app relies on (HTTPS when
    given a certificate)."""
    settings = settings or ServerSettings.from_env()
    demo.queue(default_concurrency_limit=8)
    # Gradio limits uploads, but not an event's JSON body, where an image can travel inline as a data: URL and
    # reach its decoder whatever its size: FastAPI refuses any request body over the same limit (413), before
    # reading it. The megabyte on top is room for an upload's multipart framing.
    max_body_bytes = (settings.max_upload_mb + 1) * 2**20
    # Uploads are held to each client's share and to the file folder's cap before their bodies are read; the cap is
    # the page's own file budget, which also counts saved projects and exports. The browser's model and runtime are
    # served beside the page. A page not made by build_app (the benchmarks' trivial page) is served as it is.
    app = getattr(demo, "app_context", None)
    middleware = [] if app is None else [
        Middleware(
            UploadLimits,
            budget=app.file_budget,
            per_client_bytes=settings.upload_mb_per_client * 2**20,
            window_seconds=settings.file_max_age_seconds,
        ),
        Middleware(BrowserFiles, files=app.browser.served_files()),
        Middleware(
            BrowserFrames, channels=app.frame_channels, answer=functools.partial(browser.answer_on_channel, app),
            max_bytes=MAX_SENT_CHARACTERS + 1024,
        ),
    ]  # fmt: skip
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=prevent_thread_lock,
        max_file_size=f"{settings.max_upload_mb}mb",
        state_session_capacity=settings.max_sessions,
        theme=page_theme(),
        css=page_css(),
        js=page_script(),
        footer_links=[],  # no "Use via API · Built with Gradio · Settings": the page has a footer of its own
        ssr_mode=False,
        quiet=prevent_thread_lock,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        ssl_verify=ssl_certfile is None,
        app_kwargs={"max_body_size": max_body_bytes, "middleware": middleware},
    )
    return demo


def prepare(
    host: str = "127.0.0.1",
    port: int = 7860,
    backbone: str = DEFAULT_BACKBONE,
    device: str | None = "auto",
    compile_mode: str | None = None,
    runtime: str | None = None,
    https: bool = False,
    live_model: str | None = None,
) -> gr.Blocks:
    """Read the settings, choose the file folder with its one budget, load the backbone once and build the page
    (not served yet: see :func:`serve`). ``live_model`` overrides TEACHABLE_LIVE_MODEL (``--live-model``)."""
    settings = ServerSettings.from_env()
    if live_model is not None:
        settings = dataclasses.replace(settings, live_model=live_model)
    file_budget = served_files(settings.files_max_mb * 2**20)
    threading.Thread(target=warm_up, name="umap-warm-up", daemon=True).start()  # numba JIT off the frame path
    model, warning = load_backbone_or_default(backbone, device, compile_mode, runtime)
    served = tuple(join_urls(host, port, https=https))
    return build_app(model, warning, settings=settings, served_urls=served, file_budget=file_budget)


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    backbone: str = DEFAULT_BACKBONE,
    device: str | None = "auto",
    prevent_thread_lock: bool = False,
    compile_mode: str | None = None,
    runtime: str | None = None,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> gr.Blocks:
    """Build the page (:func:`prepare`) and serve it."""
    demo = prepare(host, port, backbone, device, compile_mode, runtime, https=ssl_certfile is not None)
    return serve(demo, host, port, share, prevent_thread_lock, None, ssl_certfile, ssl_keyfile)
