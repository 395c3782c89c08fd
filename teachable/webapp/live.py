"""The live view: camera, image and video inputs, the prediction, and the embedding map and activation grid.

``on_frame`` is the frame path. It sends only what changed: the map's points when the layout changed, the class
cards when examples were added, the tray when a frame entered it.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import gradio as gr
import numpy as np

from ..activations import MODES
from ..assets import SAMPLES
from ..knn import DEFAULT_K, DEFAULT_THRESHOLD
from ..projection import METHODS
from ..session import FrameResult, Session
from ..video import sampled_frames
from ..views import (
    grid_html,
    icon_sheet_html,
    map_live_html,
    map_points_html,
    message_html,
    neighbours_html,
    neighbours_key,
    prediction_html,
)
from .classes import ClassHandles, cards_if_changed, tray_if_changed
from .context import AppContext, PageState
from .decoding import camera_frame, uploaded_image
from .errors import USER_ERRORS, message_of, shows_errors
from .saving import FRAME_SAVE_INTERVAL, autosave
from .wiring import KEEP, PageWiring, wired

__all__ = [
    "CameraHandles",
    "ViewHandles",
    "LiveOutputs",
    "build_camera",
    "build_views",
    "wire",
    "on_frame",
    "classify",
    "play_video",
    "STYLES",
    "SCRIPTS",
]

MAP_METHOD_WORDS = {"umap": "UMAP: groups", "pca": "PCA: main directions"}
"""The map's layouts as the page names them (the value each choice sends is the method's own name)."""
STYLES = ("live.css",)
SCRIPTS = ("live-camera.js", "live-grid.js")


@dataclass(frozen=True)
class LiveOutputs:
    """What a frame or a still image changes on the page; a field left at KEEP stays as it is (see wiring.py).
    The order is the API's answer: ``classify`` gives prediction, details, neighbours, map points, map point, grid
    and the session; ``play_video`` the same without details, with the class cards and the tray before the
    session."""

    prediction: object = KEEP
    details: object = KEEP
    neighbours: object = KEEP
    map_points: object = KEEP
    map_live: object = KEEP
    grid: object = KEEP
    cards: object = KEEP
    tray: object = KEEP
    session: object = KEEP


@dataclass(frozen=True)
class CameraHandles:
    camera: gr.Image
    still: gr.Image
    classify_button: gr.Button
    details: gr.JSON
    video: gr.Video
    play_button: gr.Button
    prediction: gr.HTML
    neighbours: gr.HTML


@dataclass(frozen=True)
class ViewHandles:
    map_method: gr.Radio
    map_points: gr.HTML
    map_live: gr.HTML
    grid_mode: gr.Radio
    grid: gr.HTML
    views_toggle: gr.Checkbox
    k: gr.Slider
    threshold: gr.Slider
    smoothing: gr.Slider


def build_camera(app: AppContext) -> CameraHandles:
    """The camera (with Image and Video tabs for people without one) and the prediction under it."""
    with gr.Tab("Camera"):
        camera = gr.Image(
            sources=["webcam"],
            streaming=True,
            type="numpy",
            label="Camera",
            elem_id="cam",
            height=330,
            webcam_options=gr.WebcamOptions(
                mirror=False, constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}}
            ),
        )
        gr.HTML('<div id="camera-help" class="tm-camera-help" role="status" aria-live="polite"></div>')
        # where the model runs, in words (browser.js)
        gr.HTML('<div id="model-place" class="tm-model-place" role="status" aria-live="polite"></div>')
    with gr.Tab("Image"):
        still = gr.Image(sources=["upload", "clipboard"], type="numpy", label="Image to classify", height=330)
        classify_button = gr.Button("Classify")
        if SAMPLES.is_dir():
            gr.Examples(sorted(str(p) for p in SAMPLES.glob("*.jpg")), inputs=still, label="Sample photos")
        details = gr.JSON(label="Details", visible=False)
    with gr.Tab("Video"):
        video = gr.Video(sources=["upload"], label="Short video", height=330)
        play_button = gr.Button("Play through the classifier")
    prediction = gr.HTML(message_html("Record a few examples of each class to start."), elem_id="prediction")
    neighbours = gr.HTML(elem_id="neighbours")
    return CameraHandles(camera, still, classify_button, details, video, play_button, prediction, neighbours)


def build_views(app: AppContext) -> ViewHandles:
    """The embedding map and the activation grid side by side, then the live settings."""
    backbone = app.backbone
    side = backbone.tap(backbone.grid_tap).grid_size(backbone.input_size)
    with gr.Row():
        with gr.Column(scale=1):
            gr.Markdown(
                "### Embedding map\nEach dot is an example; the ringed dot is the camera frame, "
                "with lines to its nearest examples. Hover a dot to see it."
            )
            map_method = gr.Radio(
                [(MAP_METHOD_WORDS[method], method) for method in METHODS], value="umap", label="Map layout",
                info="UMAP keeps similar examples together; PCA shows the two main directions of difference.",
                elem_id="map-method",
            )  # fmt: skip
            with gr.Column(elem_id="map-box"):
                map_points = gr.HTML(elem_id="map-points")
                map_live = gr.HTML(elem_id="map-live")
        with gr.Column(scale=1, elem_id="grid-box"):
            gr.Markdown(
                f"### Activation grid\nWhat the network sees in each part of the picture "
                f"(a {side}x{side} grid from its middle layer, `{backbone.grid_tap}`)."
            )
            default_mode = "icons" if app.icons is not None else "factors"
            grid_mode = gr.Radio(list(MODES), value=default_mode, label="Show", elem_id="grid-mode")
            grid = gr.HTML(elem_id="grid")
            gr.HTML(icon_sheet_html(app.icons), elem_classes="tm-hidden")
    with gr.Accordion("Settings", open=False, elem_id="settings"):
        views_toggle = gr.Checkbox(value=True, label="Live map and activation grid", elem_id="views-toggle")
        k = gr.Slider(
            1, 20, value=DEFAULT_K, step=1, label="Examples that vote (k)",
            info="How many of the closest examples decide the answer.",
        )  # fmt: skip
        threshold = gr.Slider(
            0, 1, value=DEFAULT_THRESHOLD, step=0.01, label="Strictness of \"not sure\"",
            info="The share of your own examples that would come back \"not sure\". Higher: it says \"not sure\" more often.",
        )  # fmt: skip
        smoothing = gr.Slider(0, 0.95, value=0.5, step=0.05, label="Smoothing over frames")
    return ViewHandles(map_method, map_points, map_live, grid_mode, grid, views_toggle, k, threshold, smoothing)


# ---------------------------------------------------------------------------------------------- what a frame sends
def view_outputs(result: FrameResult, session: Session, page: PageState) -> dict:
    """Map points (only when the layout changed), the moving point, and the activation grid, by field name."""
    views = result.views
    if views is None:
        return {}
    grid = grid_html(views.grid)
    if result.prediction is None:
        page.layout_key = None
        points = map_points_html(session.project, np.zeros((0, 2)), views.method, False)
        return {"map_points": points, "map_live": "", "grid": grid}
    shown = {"map_live": map_live_html(result, views.positions, list(views.trail), session.project), "grid": grid}
    if views.layout_key != page.layout_key:
        page.layout_key = views.layout_key
        shown["map_points"] = map_points_html(
            session.project, views.positions, views.method, views.fitting, views.shown_method
        )
    return shown


def neighbours_output(result: FrameResult, session: Session, page: PageState):
    """The nearest examples' pictures, or KEEP when they are the same examples as last sent."""
    key = neighbours_key(result, session.project)
    if key == page.neighbours_key:
        return KEEP
    page.neighbours_key = key
    return neighbours_html(result, session.project)


def frame_outputs(result: FrameResult, session: Session, page: PageState) -> LiveOutputs:
    """Prediction, nearest examples, map points, map point, grid, class cards, tray, and the session."""
    return LiveOutputs(
        prediction=prediction_html(result, session.project, session.recording, session.recorded_this_take),
        neighbours=neighbours_output(result, session, page),
        **view_outputs(result, session, page),
        cards=cards_if_changed(session, page),
        tray=tray_if_changed(session, page),
        session=session,
    )


# ---------------------------------------------------------------------------------------------- handlers
def on_frame(app: AppContext, frame, session: Session, page: PageState) -> LiveOutputs:
    """One camera frame, as the camera's raw value (see decoding.py) or an RGB array. The session is always an
    output: outputting it marks the session as active."""
    try:
        frame = camera_frame(frame)
    except USER_ERRORS as error:
        app.live_sessions.add(session)
        return LiveOutputs(prediction=message_html(message_of(error)), session=session)
    return show_frame(app, frame, session, page)


def show_frame(app: AppContext, frame: np.ndarray | None, session: Session, page: PageState) -> LiveOutputs:
    """An RGB frame (the camera's or a video's) through the session."""
    app.live_sessions.add(session)
    if frame is None:
        return LiveOutputs(session=session)
    try:
        result = session.step(frame)
    except USER_ERRORS as error:
        return LiveOutputs(prediction=message_html(message_of(error)), session=session)
    autosave(app, session, page, FRAME_SAVE_INTERVAL)
    return frame_outputs(result, session, page)


@shows_errors
def classify(app: AppContext, image, session: Session, page: PageState) -> LiveOutputs:
    """A still image (the Image tab and the ``classify`` API): the prediction, details as JSON, and the views."""
    app.live_sessions.add(session)
    image = uploaded_image(image, app.decode_budget)
    if image is None:
        raise gr.Error("Choose an image to classify.")
    result = session.step(image, live=False)
    details = {
        "label": result.label,
        "confidences": result.confidences,
        "message": result.message,
        "nearest_similarity": result.prediction.nearest_similarity if result.prediction else None,
    }
    page.neighbours_key = None
    return LiveOutputs(
        prediction=prediction_html(result, session.project),
        details=details,
        neighbours=neighbours_html(result, session.project),
        **view_outputs(result, session, page),
        session=session,
    )


@shows_errors
def play_video(app: AppContext, video_path, session: Session, page: PageState):
    """Play an uploaded video through the same frame path, at the camera's pace."""
    if not video_path:
        raise gr.Error("Choose a video file first.")
    every = app.settings.stream_every
    for frame in sampled_frames(video_path, every):
        started = time.monotonic()
        yield show_frame(app, frame, session, page)
        time.sleep(max(0.0, every - (time.monotonic() - started)))


@shows_errors
def set_views(session: Session, page: PageState, on: bool, method: str, mode: str) -> None:
    session.views.set_views(on, method, mode)
    page.layout_key = None


@shows_errors
def set_live_settings(session: Session, k, threshold, smoothing) -> None:
    session.set_live_settings(k, threshold, smoothing)


# ---------------------------------------------------------------------------------------------- events
def wire(wiring: PageWiring, camera: CameraHandles, views: ViewHandles, classes: ClassHandles) -> LiveOutputs:
    """The camera's stream, the Image and Video tabs (``classify`` and ``play_video`` endpoints), and the live
    settings. A frame also updates the class cards (the count climbs while recording) and the tray. Returns what a
    live frame draws into, for the frames a browser embeds itself (browser.py)."""
    app, session, page = wiring.app, wiring.session, wiring.page
    drawn = dict(prediction=camera.prediction, neighbours=camera.neighbours, map_points=views.map_points,
                 map_live=views.map_live, grid=views.grid, session=session)  # fmt: skip
    shown = LiveOutputs(**drawn, cards=classes.cards, tray=classes.tray)
    on_frame_handler, key_input = wiring.reattaching(functools.partial(on_frame, app), 1)
    on_frame_handler, outputs = wired(on_frame_handler, shown)
    camera.camera.stream(
        on_frame_handler,
        inputs=[camera.camera, session, page, *key_input],
        outputs=outputs,
        stream_every=app.settings.stream_every,
        time_limit=app.settings.stream_time_limit,
        concurrency_limit=None,
        show_progress="hidden",
        preprocess=False,  # decoded by live.on_frame, with the live frame limit checked first
    )
    still = LiveOutputs(**drawn, details=camera.details)
    handler, outputs = wired(functools.partial(classify, app), still)
    camera.classify_button.click(
        handler, [camera.still, session, page], outputs, api_name="classify",
        preprocess=False,  # decoded by live.classify, within the server's decoding budget
    )  # fmt: skip
    handler, outputs = wired(functools.partial(play_video, app), shown)
    camera.play_button.click(
        handler,
        [camera.video, session, page],
        outputs,
        concurrency_limit=app.settings.video_plays,
        concurrency_id="play-video",
        show_progress="hidden",
        api_name="play_video",
    )
    toggles = [session, page, views.views_toggle, views.map_method, views.grid_mode]
    for control in (views.views_toggle, views.map_method, views.grid_mode):
        control.change(*wiring.own(set_views, toggles, None), show_progress="hidden").then(*wiring.after_change)
    sliders = [session, views.k, views.threshold, views.smoothing]
    for slider in (views.k, views.threshold, views.smoothing):
        slider.change(*wiring.own(set_live_settings, sliders, None), show_progress="hidden").then(
            *wiring.after_change
        )
    return shown
