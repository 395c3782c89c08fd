"""The page: the panels laid out in the order a newcomer needs them, and the events wired between them.

First screen: the camera with the prediction under it, and beside it the class cards with their record buttons
and the "help it learn" tray. Then the embedding map and the activation grid; then "Under the hood", "Layers and
Atlas" and "Project" as collapsed sections. Each browser gets its own ``Session`` and ``PageState``.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import gradio as gr
from threadpoolctl import threadpool_limits

from ..activations import GridIcons
from ..assets import icon_file
from ..backbones import Backbone
from ..inference import runner_from_setting
from ..views import message_html, tray_html
from . import classes as class_panel
from . import files as file_panel
from . import hood as hood_panel
from . import joining
from . import layers as layer_panel
from . import live
from . import saving
from .context import AppContext, PageState
from .errors import shows_errors
from .lifecycle import release, start_idle_reaper
from .served import FileBudget, remove_served
from .settings import ServerSettings

__all__ = ["build_app", "load_icons", "PAGE_CSS", "PAGE_SCRIPT"]

log = logging.getLogger(__name__)

PAGE_CSS = """
#cam video { transform: scaleX(-1); }  /* mirror the preview only; the server gets true frames */
#cam .capture-button { display: none !important; }  /* the stream starts with the camera (CAMERA_SCRIPT) */
.tm-tight p { margin: 0 !important; }
.tm-camera-help:empty { display: none; }
.tm-camera-help { background: #fff4e5; border: 1px solid #f0b45b; border-radius: 6px; padding: 0.5em 0.7em; }
#intro h1 { margin: 0 0 0.1em; font-size: 1.5em; }
#intro p { margin: 0; }
.tm-join svg { display: block; margin: 0.4em 0; }
.tm-join-note { color: #8a5a00; font-size: 0.9em; }
#tm-reconnect { position: fixed; top: 0; left: 0; right: 0; z-index: 1000; background: #1e3a8a; color: #fff;
  padding: 0.6em 1em; text-align: center; font-weight: 600; }
#tm-reconnect button { margin-left: 0.6em; padding: 0.2em 0.8em; border-radius: 4px; border: none; cursor: pointer; }
.tm-saved { color: #3b7a3b; font-size: 0.85em; }
#page-opened { display: none; }
@media (max-width: 640px) {  /* a phone: the camera, then the class cards, then the prediction, then the rest */
  #first-screen { flex-direction: column; }
  #first-screen > .column { display: contents; }
  #first-screen > .column > * { order: 6; }
  #first-screen > .column > .tabs { order: 0; }
  #first-screen > .column > .tm-tight { order: 1; }
  #first-screen > .column > #classes { order: 2; }
  #first-screen > .column > #status { order: 3; }
  #first-screen > .column > #prediction { order: 4; }
  #first-screen > .column > #neighbours { order: 5; }
}
gradio-app:not(:has([data-page-ready])) .gradio-container { pointer-events: none; opacity: 0.6; }
.tm-not-saved { color: #a3341f; font-weight: 600; }
"""

OPENED_MARKER = "<span data-page-ready></span>"
"""Set by the page's first draw, which gives the page its session. Until then the page takes no input and the
camera does not stream (CAMERA_SCRIPT): an event that ran before it could get a session of its own (Gradio makes
a page's state on first use, and two events at once can each make one), and its work would land where the rest of
the page never looks."""

PICK_EXAMPLE_SCRIPT = """
  // Clicking an example in the classification view, the unit view or the strip puts its number in "Example #".
  document.addEventListener('click', (event) => {
    const figure = event.target.closest('#evaluation [data-row], #unit [data-row], #strip [data-row]');
    const input = document.querySelector('#example-row input');
    if (!figure || !input) return;
    input.value = figure.dataset.row;
    input.dispatchEvent(new Event('input', {bubbles: true}));
    input.dispatchEvent(new Event('change', {bubbles: true}));
  });
"""

RECONNECT_SCRIPT = """
  // A server restart: say so in words and offer to reload (the work was saved on the server).
  let appId = null, lost = false;
  const banner = (text) => {
    let box = document.querySelector('#tm-reconnect');
    if (!box) {
      box = document.createElement('div');
      box.id = 'tm-reconnect';
      box.setAttribute('role', 'alert');
      document.body.prepend(box);
    }
    box.innerHTML = '';
    box.append(text);
    if (!lost) {
      const button = document.createElement('button');
      button.textContent = 'Reload now';
      button.onclick = () => location.reload();
      box.append(' ', button);
    }
  };
  const check = async () => {
    try {
      const response = await fetch('gradio_api/app_id', {cache: 'no-store'});
      const id = (await response.json()).app_id;
      if (appId === null) appId = id;
      if (id !== appId || lost) {
        lost = false;
        banner('The server restarted. Reload the page to carry on: your examples were saved.');
      }
    } catch (error) {
      lost = true;
      banner('The connection to the server was lost. Your examples are saved; this page reconnects by itself when the server is back.');
    }
  };
  setInterval(check, 5000);
  check();
  document.addEventListener('click', (event) => {
    if (event.target.closest('#start-over') && !confirm('Remove every example and class, here and on the server?')) {
      event.stopImmediatePropagation();
      event.preventDefault();
    }
  }, true);
"""

PAGE_SCRIPT = "() => {%s}" % "".join(
    [live.CAMERA_SCRIPT, live.GRID_SCRIPT, class_panel.CARD_SCRIPT, PICK_EXAMPLE_SCRIPT, RECONNECT_SCRIPT]
)


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


def build_app(
    backbone: Backbone,
    startup_warning: str | None = None,
    settings: ServerSettings | None = None,
    served_urls: tuple[str, ...] = (),
) -> gr.Blocks:
    """The whole page for one shared, read-only ``backbone``; ``served_urls`` are the addresses others can open."""
    settings = settings or ServerSettings.from_env()
    one_thread_for_small_math()
    # Gradio fixes its file cache when the Blocks are made and serves files only from there, so the folder is
    # chosen first. A folder of our own keeps the app's files apart and is cleaned by delete_cache.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(file_panel.files_folder()))
    runner = runner_from_setting(settings.inference, backbone)
    log.info("Live frames run through %s (TEACHABLE_INFERENCE=%s).", type(runner).__name__, settings.inference)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding-map")
    autosaver = settings.autosave.autosaver() if settings.autosave else None
    if autosaver is not None:
        atexit.register(autosaver.close)  # what is still waiting is saved when the server stops
        log.info("Autosave keeps each browser's project in %s.", settings.autosave.folder)
    file_budget = FileBudget(Path(os.environ["GRADIO_TEMP_DIR"]), settings.files_max_mb * 2**20)
    app = AppContext(
        backbone, load_icons(backbone), settings, runner, executor, startup_warning=startup_warning,
        served_urls=tuple(served_urls), autosaver=autosaver, file_budget=file_budget,
    )  # fmt: skip
    app.sessions_by_key.capacity = settings.max_sessions
    app.sessions_by_key.on_drop = functools.partial(saving.save_dropped, app)
    start_idle_reaper(app.live_sessions, settings.idle_seconds, functools.partial(saving.save_before_clearing, app))
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
        opened = gr.HTML("", elem_id="page-opened")  # the first draw's marker (PAGE_CSS)
        with gr.Row(equal_height=False, elem_id="first-screen"):
            with gr.Column(scale=5, min_width=320):
                camera = live.build_camera(app)
            with gr.Column(scale=6, min_width=320):
                classes = class_panel.build()
                browser_key, saved = saving.build(app)
                join = joining.build()
        views = live.build_views(app)
        files = file_panel.build(saving.where_work_is_kept(app))
        panels = Panels(camera, views, classes, hood_panel.build(), layer_panel.build(app), files)
        _wire(app, session, page, demo, panels, browser_key)
        _wire_opening(app, session, page, demo, panels, browser_key, saved, opened)
        demo.load(joining.join_handler(app.served_urls), None, join, show_progress="hidden")
    return demo


@dataclass(frozen=True)
class Panels:
    """The panels' components, for wiring events between them."""

    camera: live.CameraHandles
    views: live.ViewHandles
    classes: class_panel.ClassHandles
    hood: hood_panel.HoodHandles
    layers: layer_panel.LayerHandles
    files: file_panel.FileHandles

    @property
    def class_tools(self) -> list:
        return [self.classes.picker, self.classes.cards, self.classes.strip, self.classes.status]

    @property
    def layer_outputs(self) -> list:
        return [self.layers.architecture, self.layers.embedding_tap, self.layers.grid_tap, self.views.grid_mode]


def _review(app, session, page, panels: Panels) -> tuple:
    """The step chained after every change: refresh "Under the hood" (which also autosaves)."""
    return functools.partial(hood_panel.refresh_review, app), [session, page], [*panels.hood.refreshed, session]


def _reattaching(app, handler, at: int, browser_key):
    """``handler`` and its inputs, with the browser key as one more, last input when autosave is on: the session
    argument at ``at`` (the page state follows it) becomes the one ``saving.reattach`` finds, so a page whose state
    Gradio dropped carries on with its own session instead of an empty one."""
    if browser_key is None:
        return handler, []

    def run(*args):
        *args, key = args
        args[at] = saving.reattach(app, args[at], args[at + 1], key)
        return handler(*args)

    run.__name__ = getattr(handler, "__name__", "handler")
    return run, [browser_key]


def _wire(app, session, page, demo, panels: Panels, browser_key=None) -> None:
    """Connect the panels' events; every change to the examples ends by refreshing "Under the hood"."""
    classes, hood, tools = panels.classes, panels.hood, panels.class_tools
    review = _review(app, session, page, panels)
    _wire_live(app, session, page, panels, review, browser_key)
    command, key_input = _reattaching(app, class_panel.run_command, 0, browser_key)
    classes.command.change(
        command,
        [session, page, classes.command, *key_input],
        [classes.cards, classes.tray, classes.status, session],
        show_progress="hidden",
        trigger_mode="multiple",
        concurrency_limit=None,  # one slot for the server made everyone wait behind one person's commands
    ).success(*review)  # not after a command refused for its rate
    named = [session, classes.picker, classes.name]
    for button, action in zip(
        [classes.add_button, classes.rename_button, classes.delete_button, classes.clear_button], class_panel.TOOLS
    ):
        button.click(class_panel.tool(action), named, tools, api_name=action.__name__).then(*review)
    classes.picker.input(class_panel.class_tools, [session, classes.picker], tools, show_progress="hidden")
    classes.upload_button.click(
        class_panel.tool(class_panel.uploader(app.decode_budget)), [session, classes.picker, classes.uploads], tools
    ).then(*review)
    classes.remove_button.click(
        class_panel.tool(class_panel.remove_picked_example), [session, classes.picker, hood.example_row], tools
    ).then(*review)
    _wire_hood(app, session, panels, review)
    _wire_layers(app, session, panels, review)
    _wire_files(app, session, page, panels, review)


def _wire_opening(app, session, page, demo, panels: Panels, browser_key, saved, opened) -> None:
    """Opening the page restores this browser's work (when autosave is on); then every panel is drawn, and the
    page takes input (``opened``)."""
    views = panels.views
    controls = [views.k, views.threshold, views.smoothing, views.views_toggle, views.map_method]
    drawn = [*panels.class_tools, panels.classes.tray, panels.camera.prediction, opened]
    inputs, outputs = [session, page], [*drawn, *controls, session, page]
    if browser_key is not None:
        inputs, outputs = [*inputs, browser_key], [*outputs, browser_key]
        gr.Timer(2.0).tick(functools.partial(saving.saved_status, app), page, saved, show_progress="hidden")
    layers_again = (functools.partial(layer_panel.layers_panel, app), session, panels.layer_outputs)
    review = _review(app, session, page, panels)
    demo.load(functools.partial(_first_draw, app), inputs, outputs, show_progress="hidden").then(
        *layers_again
    ).then(*review)
    panels.files.start_over_button.click(
        functools.partial(_start_over, app), [session, page], [*panels.class_tools, panels.classes.tray, session]
    ).then(*review)


def _first_draw(app, session, page: PageState, key=None):
    """The class panel, the tray and the settings controls, after restoring this browser's session."""
    if app.autosaver is not None:
        session, key = saving.open_session(app, session, page, key)
    page.redraw_everything()
    drawn = (
        *class_panel.class_tools(session, None),
        tray_html(session.tray.items, session.project.classes),
        message_html(session.opening_message()),  # what was restored, in words, until the first frame
        OPENED_MARKER,
    )
    controls = (session.k, session.threshold, session.smoothing, session.views_on, session.map.method)
    # The page state is an output too: Gradio keeps a load event's changes to a state only when it is returned.
    return (*drawn, *controls, session, page) if key is None else (*drawn, *controls, session, page, key)


def _start_over(app, session, page: PageState):
    note = saving.start_over(app, session, page)
    drawn = class_panel.class_tools(session, None)
    return *drawn[:3], note, tray_html(session.tray.items, session.project.classes), session


def _wire_live(app, session, page, panels: Panels, review, browser_key=None) -> None:
    camera, views, classes = panels.camera, panels.views, panels.classes
    frame_outputs = [
        camera.prediction, camera.neighbours, views.map_points, views.map_live, views.grid, classes.cards, classes.tray
    ]  # fmt: skip
    on_frame, key_input = _reattaching(app, functools.partial(live.on_frame, app), 1, browser_key)
    camera.camera.stream(
        on_frame,
        inputs=[camera.camera, session, page, *key_input],
        outputs=[*frame_outputs, session],
        stream_every=app.settings.stream_every,
        time_limit=app.settings.stream_time_limit,
        concurrency_limit=None,
        show_progress="hidden",
        preprocess=False,  # decoded by live.on_frame, with the live frame limit checked first
    )
    view_outputs = [
        camera.prediction, camera.details, camera.neighbours, views.map_points, views.map_live, views.grid, session
    ]  # fmt: skip
    camera.classify_button.click(
        functools.partial(live.classify, app), [camera.still, session, page], view_outputs, api_name="classify",
        preprocess=False,  # decoded by live.classify, within the server's decoding budget
    )
    camera.play_button.click(
        functools.partial(live.play_video, app),
        [camera.video, session, page],
        [*frame_outputs, session],
        concurrency_limit=app.settings.video_plays,
        concurrency_id="play-video",
        show_progress="hidden",
        api_name="play_video",
    )
    toggles = [session, page, views.views_toggle, views.map_method, views.grid_mode]
    for control in (views.views_toggle, views.map_method, views.grid_mode):
        control.change(live.set_views, toggles, None, show_progress="hidden").then(*review)
    sliders = [session, views.k, views.threshold, views.smoothing]
    for slider in (views.k, views.threshold, views.smoothing):
        slider.change(live.set_live_settings, sliders, None, show_progress="hidden").then(*review)


def _wire_hood(app, session, panels: Panels, review) -> None:
    hood, classes = panels.hood, panels.classes
    redraw_tools = (class_panel.class_tools, [session, classes.picker], panels.class_tools)
    hood.apply_button.click(hood_panel.apply_hint, [session, hood.hints], classes.status).then(*redraw_tools).then(
        *review
    )
    for button, action in [(hood.move_button, "move"), (hood.delete_button, "delete")]:
        button.click(
            functools.partial(hood_panel.edit_example, action=action),
            [session, hood.example_row, hood.move_target],
            classes.status,
        ).then(*redraw_tools).then(*review)
    hood.summary_button.click(
        functools.partial(hood_panel.summarise, app), [session, hood.first_class, hood.second_class], hood.summary
    )
    hood.unit_button.click(functools.partial(hood_panel.show_unit, app), [session, hood.unit_channel], hood.unit)


def _wire_layers(app, session, panels: Panels, review) -> None:
    layers, outputs = panels.layers, [*panels.layer_outputs, panels.classes.status]
    layers.embedding_tap.input(
        functools.partial(layer_panel.set_embedding_tap, app), [session, layers.embedding_tap], outputs
    ).then(*review)
    layers.grid_tap.input(functools.partial(layer_panel.set_grid_tap, app), [session, layers.grid_tap], outputs)
    layers.atlas_button.click(layer_panel.build_atlas, session, [layers.atlas, layers.atlas_note], api_name="build_atlas")


def _wire_files(app, session, page, panels: Panels, review) -> None:
    files, picker, tools = panels.files, panels.classes.picker, panels.class_tools
    folder, age = Path(os.environ["GRADIO_TEMP_DIR"]), app.settings.file_max_age_seconds
    save = functools.partial(file_panel.save_project, files_folder=folder, max_age_seconds=age, budget=app.file_budget)
    files.save_button.click(shows_errors(save), [session, page], files.saved_file, api_name="save_project")
    file_panel.wire_export(session, page, files, folder, age, app.export_slots, app.file_budget)
    layers_again = (functools.partial(layer_panel.layers_panel, app), session, panels.layer_outputs)
    files.project_file.upload(
        class_panel.tool(file_panel.open_project), [session, picker, files.project_file], tools, api_name="open_project"
    ).then(*layers_again).then(*review)
    files.demo_button.click(
        class_panel.tool(file_panel.load_demo), [session, picker], tools, api_name="load_demo"
    ).then(*layers_again).then(*review)
