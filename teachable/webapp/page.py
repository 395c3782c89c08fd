"""The page: the panels laid out in the order a newcomer needs them; each panel then wires its own events.

First screen: the camera with the prediction under it, and beside it the class cards with their record buttons
and the "help it learn" tray. Then the embedding map and the activation grid; then "Project", "Under the hood"
and "Layers and Atlas" as collapsed sections, and the page's own footer. Each browser gets its own ``Session`` and
``PageState``.

This module holds the layout, the page's opening (restore this browser's work, draw every panel, then take
input), the page's theme and its own styles and script; everything else about a panel is in its module.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import html
import importlib.metadata
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import faiss
import gradio as gr
from threadpoolctl import threadpool_limits

from ..activations import GridIcons
from ..assets import icon_file
from ..backbones import Backbone
from ..runners import runner_from_setting
from ..session import Session
from ..views import message_html
from . import browser as browser_panel
from . import classes as class_panel
from . import files as file_panel
from . import hood as hood_panel
from . import joining
from . import layers as layer_panel
from . import live
from . import saving
from .browser_inference import BrowserInference
from .frame_channel import FrameChannels
from .context import AppContext, PageState
from .lifecycle import release, start_idle_reaper
from .served import FileBudget, remove_served, served_files
from .settings import ServerSettings
from .static_files import page_script as joined_script
from .static_files import stylesheet
from .wiring import KEEP, PageWiring, wired

__all__ = [
    "build_app",
    "context_of",
    "load_icons",
    "first_draw",
    "OpeningOutputs",
    "page_css",
    "page_script",
    "page_theme",
    "footer_html",
    "OPENED_MARKER",
]

log = logging.getLogger(__name__)

STYLES = ("page.css", "look.css")
SCRIPTS = ("page.js",)
PANELS = (live, browser_panel, class_panel, hood_panel, layer_panel, file_panel, joining)
"""The panel modules, each naming its own style and script files (``STYLES``, ``SCRIPTS``)."""

OPENED_MARKER = "<span data-page-ready></span>"
"""Set by the page's first draw, which gives the page its session. Until then the page takes no input and the
camera does not stream (page.css, live-camera.js): an event that ran before it could get a session of its own
(Gradio makes a page's state on first use, and two events at once can each make one), and its work would land
where the rest of the page never looks."""


SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif")
SYSTEM_MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")
"""The computer's own fonts: a theme font from the web would be a download at run time, and the page needs none."""


def page_theme() -> gr.themes.Base:
    """The page's own look, for ``launch(theme=...)``: Gradio's controls (radio chips, tabs, buttons, sliders) take
    the record buttons' blue; other buttons are pale blue with blue words, so the cards' record buttons stay the one
    strong action; a button that removes work has red words on white; the fonts are the computer's."""
    return gr.themes.Base(
        primary_hue="blue", secondary_hue="blue", neutral_hue="slate", radius_size="lg",
        font=SYSTEM_FONTS, font_mono=SYSTEM_MONO_FONTS,
    ).set(
        color_accent="*primary_600",  # the record buttons' #2563eb (classes.css takes it from here)
        color_accent_soft="*primary_50",
        block_border_color="*neutral_200",
        block_label_text_color="*neutral_500",
        block_title_text_color="*neutral_700",
        checkbox_label_background_fill="white",
        checkbox_label_background_fill_hover="*primary_50",
        checkbox_label_background_fill_selected="*primary_50",
        checkbox_label_border_color="*neutral_200",
        checkbox_label_border_color_selected="*primary_600",
        checkbox_label_border_width="1px",
        checkbox_label_text_color_selected="*primary_700",
        checkbox_background_color_selected="*primary_600",
        checkbox_border_color_selected="*primary_600",
        slider_color="*primary_600",
        button_large_text_size="*text_md",
        button_large_text_weight="600",
        button_medium_text_weight="600",
        button_small_text_weight="600",
        button_primary_background_fill="*primary_600",
        button_primary_background_fill_hover="*primary_700",
        button_primary_text_color="white",
        button_primary_border_color="*primary_600",
        button_border_width="1px",
        button_secondary_background_fill="*primary_50",
        button_secondary_background_fill_hover="*primary_100",
        button_secondary_border_color="*primary_200",
        button_secondary_border_color_hover="*primary_600",
        button_secondary_text_color="*primary_600",
        button_secondary_text_color_hover="*primary_700",
        button_cancel_background_fill="white",  # "Start over", "Delete example": quiet, red words, not a red slab
        button_cancel_background_fill_hover="#fef2f2",
        button_cancel_border_color="#fecaca",
        button_cancel_border_color_hover="#dc2626",
        button_cancel_text_color="#b91c1c",
        button_cancel_text_color_hover="#991b1b",
    )  # fmt: skip


def page_css() -> str:
    """The page's styles and every panel's, for ``launch(css=...)``."""
    return stylesheet([*STYLES, *(name for panel in PANELS for name in panel.STYLES)])


def page_script() -> str:
    """Every panel's script and the page's own, for ``launch(js=...)``."""
    return joined_script([*(name for panel in PANELS for name in panel.SCRIPTS), *SCRIPTS])


def load_icons(backbone: Backbone) -> GridIcons | None:
    path = icon_file(backbone.name, backbone.grid_tap)
    if not path.is_file():
        log.warning(
            "No activation-grid icons at %s; the icons mode is off. Make them with `teachable atlas icons`.", path
        )
        return None
    return GridIcons.load(path)


def one_thread_for_small_math() -> None:
    """Per-frame numpy, scikit-learn and FAISS work is small, and their thread pools keep spinning after each call,
    taking the cores the next forward pass needs: on 2 cores a step in the icons grid mode took 32 ms with the
    default BLAS threads and 16 ms with one (the forward pass alone: 18 ms). Torch keeps its own threads."""
    faiss.omp_set_num_threads(1)  # flat search is memory-bound: one thread per query is fastest
    threadpool_limits(limits=1, user_api="blas")


def footer_html() -> str:
    """The page's own footer, in place of Gradio's: what this is, and that each browser's work is its own."""
    try:
        version = " " + importlib.metadata.version("teachable")
    except importlib.metadata.PackageNotFoundError:  # run from a copy of the source that was never installed
        version = ""
    return (
        f"<footer class='tm-footer'><b>teachable</b>{html.escape(version)} · teach a pretrained network by example"
        " · each browser has its own classes and examples</footer>"
    )


def build_app(
    backbone: Backbone,
    startup_warning: str | None = None,
    settings: ServerSettings | None = None,
    served_urls: tuple[str, ...] = (),
    file_budget: FileBudget | None = None,
) -> gr.Blocks:
    """The whole page for one shared, read-only ``backbone``; ``served_urls`` are the addresses others can open.
    ``file_budget`` is the server's one budget for Gradio's file folder (made here when not given; it chooses the
    folder, so it comes before the Blocks are made). The page keeps its :class:`AppContext` (:func:`context_of`)."""
    settings = settings or ServerSettings.from_env()
    one_thread_for_small_math()
    file_budget = file_budget or served_files(settings.files_max_mb * 2**20)
    app = _app_context(backbone, settings, startup_warning, served_urls, file_budget)
    age = settings.file_max_age_seconds
    with gr.Blocks(title="teachable", delete_cache=(max(1, age // 3), age)) as demo:
        # Gradio counts time_to_live from the last time the state was an *output*; the frame, classify and review
        # handlers output it, so it measures idleness. Gradio also frees a session an hour after its tab closes.
        session = gr.State(lambda: app.new_session(), time_to_live=settings.idle_seconds, delete_callback=release)
        page = gr.State(lambda: app.new_page(), delete_callback=remove_served)
        gr.Markdown(
            "# teachable\nTeach a pretrained network by example: **hold a class's button** while you show it to "
            "the camera, then do the same for another class. The prediction follows at once, with no training step.",
            elem_id="intro",
        )
        if startup_warning:
            gr.Markdown(f"**Note:** {startup_warning}")
        opened = gr.HTML("", elem_id="page-opened")  # the first draw's marker (page.css)
        with gr.Row(equal_height=False, elem_id="first-screen"):
            with gr.Column(scale=5, min_width=320):
                camera = live.build_camera(app)
                browser = browser_panel.build(app)
            with gr.Column(scale=6, min_width=320):
                classes = class_panel.build()
                browser_key, saved = saving.build(app)
                join = joining.build()
        views = live.build_views(app)
        files = file_panel.build(saving.where_work_is_kept(app))
        hood = hood_panel.build()
        layers = layer_panel.build(app)

        review = hood_panel.review_step(app, session, page, hood)
        wiring = PageWiring(app, session, page, browser_key, review)
        wiring = dataclasses.replace(wiring, after_change=wiring.own(*review))  # a dropped page reviews its own work
        shown = live.wire(wiring, camera, views, classes)
        browser_panel.wire(wiring, browser, shown)
        class_panel.wire(wiring, classes, hood.example_row)
        hood_panel.wire(wiring, hood, classes)
        layer_panel.wire(wiring, layers, views.grid_mode, classes.status)
        layers_again = layer_panel.redraw_step(wiring, layers, views.grid_mode)
        file_panel.wire(wiring, files, classes, layers_again)
        opening = OpeningOutputs(
            picker=classes.picker, cards=classes.cards, strip=classes.strip, status=classes.status, tray=classes.tray,
            prediction=camera.prediction, opened=opened, k=views.k, threshold=views.threshold,
            smoothing=views.smoothing, views_toggle=views.views_toggle, map_method=views.map_method, session=session,
            page=page, browser_key=browser_key,
        )  # fmt: skip
        _wire_opening(wiring, demo, opening, saved, layers_again)
        joining.wire(demo, join, app.served_urls)
        gr.HTML(footer_html(), elem_id="tm-footer")
    demo.app_context = app  # for serve(): the upload limits count the same file budget
    return demo


def context_of(demo: gr.Blocks) -> AppContext:
    """The :class:`AppContext` a page built by :func:`build_app` runs with."""
    return demo.app_context


def _app_context(
    backbone: Backbone, settings: ServerSettings, startup_warning, served_urls, file_budget: FileBudget
) -> AppContext:
    """What every panel shares on this server: the runner, the map's executor, the autosaver, the session registry
    (saving each session it pushes out) and the idle reaper."""
    runner = runner_from_setting(settings.inference, backbone)
    log.info("Live frames run through %s (TEACHABLE_INFERENCE=%s).", type(runner).__name__, settings.inference)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding-map")
    autosaver = settings.autosave.autosaver() if settings.autosave else None
    if autosaver is not None:
        atexit.register(autosaver.close)  # what is still waiting is saved when the server stops
        log.info("Autosave keeps each browser's project in %s.", settings.autosave.folder)
    icons = load_icons(backbone)
    app = AppContext(
        backbone, icons, settings, runner, executor, startup_warning=startup_warning,
        served_urls=tuple(served_urls), autosaver=autosaver, file_budget=file_budget,
        browser=BrowserInference.prepare(settings.live_model, backbone, icons),
        frame_channels=FrameChannels(settings.max_sessions),
    )  # fmt: skip
    app.sessions_by_key.capacity = settings.max_sessions
    app.sessions_by_key.on_drop = functools.partial(saving.save_dropped, app)
    start_idle_reaper(app.live_sessions, settings.idle_seconds, functools.partial(saving.save_before_clearing, app))
    return app


# ---------------------------------------------------------------------------------------------- the page's opening
@dataclass(frozen=True)
class OpeningOutputs:
    """What the page's first draw sets: the class panel with the tray, the prediction (what was restored, in words),
    the opened marker, the live settings, the states, and the browser's key (with autosave on)."""

    picker: object = KEEP
    cards: object = KEEP
    strip: object = KEEP
    status: object = KEEP
    tray: object = KEEP
    prediction: object = KEEP
    opened: object = KEEP
    k: object = KEEP
    threshold: object = KEEP
    smoothing: object = KEEP
    views_toggle: object = KEEP
    map_method: object = KEEP
    session: object = KEEP
    page: object = KEEP
    browser_key: object = KEEP


def first_draw(app: AppContext, session: Session, page: PageState, key=None) -> OpeningOutputs:
    """The class panel, the tray and the settings controls, after restoring this browser's session."""
    if app.autosaver is not None:
        session, key = saving.open_session(app, session, page, key)
    page.redraw_everything()
    classes = class_panel.everything_drawn(session)
    return OpeningOutputs(
        picker=classes.picker, cards=classes.cards, strip=classes.strip, status=classes.status, tray=classes.tray,
        prediction=message_html(session.opening_message()),  # what was restored, in words, until the first frame
        opened=OPENED_MARKER,
        k=session.k, threshold=session.threshold, smoothing=session.smoothing, views_toggle=session.views_on,
        map_method=session.map.method,
        # The page state is an output too: Gradio keeps a load event's changes to a state only when it is returned.
        session=session, page=page, browser_key=key,
    )  # fmt: skip


def _wire_opening(wiring: PageWiring, demo: gr.Blocks, opening: OpeningOutputs, saved, layers_again: tuple) -> None:
    """Opening the page restores this browser's work (when autosave is on); then every panel is drawn, and the
    page takes input (``opened``); the "saved" line is refreshed every two seconds."""
    app, inputs = wiring.app, [wiring.session, wiring.page]
    if wiring.browser_key is not None:
        inputs.append(wiring.browser_key)
        gr.Timer(2.0).tick(functools.partial(saving.saved_status, app), wiring.page, saved, show_progress="hidden")
    handler, outputs = wired(functools.partial(first_draw, app), opening)
    demo.load(handler, inputs, outputs, show_progress="hidden").then(*layers_again).then(*wiring.after_change)
