"""The live view: camera, image and video inputs, the prediction, and the embedding map and activation grid.

``on_frame`` is the frame path. It sends only what changed: the map's points when the layout changed, the class
cards when examples were added, the tray when a frame entered it.
"""

from __future__ import annotations

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
    class_cards_html,
    grid_html,
    icon_sheet_html,
    map_live_html,
    map_points_html,
    message_html,
    neighbours_html,
    neighbours_key,
    prediction_html,
    tray_html,
)
from .context import AppContext, PageState
from .decoding import camera_frame, uploaded_image
from .errors import USER_ERRORS, message_of, shows_errors
from .saving import FRAME_SAVE_INTERVAL, autosave

__all__ = ["CameraHandles", "ViewHandles", "build_camera", "build_views", "on_frame", "classify", "play_video"]


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
            map_method = gr.Radio(list(METHODS), value="umap", label="Projection", elem_id="map-method")
            with gr.Column(elem_id="map-box"):
                map_points = gr.HTML(elem_id="map-points")
                map_live = gr.HTML(elem_id="map-live")
        with gr.Column(scale=1, elem_id="grid-box"):
            gr.Markdown(f"### Activation grid\nWhat each cell of `{backbone.grid_tap}` ({side}x{side}) responds to.")
            default_mode = "icons" if app.icons is not None else "factors"
            grid_mode = gr.Radio(list(MODES), value=default_mode, label="Show", elem_id="grid-mode")
            grid = gr.HTML(elem_id="grid")
            gr.HTML(icon_sheet_html(app.icons), elem_classes="tm-hidden")
    with gr.Accordion("Settings", open=False, elem_id="settings"):
        views_toggle = gr.Checkbox(value=True, label="Live map and activation grid", elem_id="views-toggle")
        k = gr.Slider(1, 20, value=DEFAULT_K, step=1, label="Neighbours (k)")
        threshold = gr.Slider(
            0, 1, value=DEFAULT_THRESHOLD, step=0.01, label="Strictness of \"not sure\"",
            info="The share of your own examples that would come back \"not sure\". Higher: it says \"not sure\" more often.",
        )  # fmt: skip
        smoothing = gr.Slider(0, 0.95, value=0.5, step=0.05, label="Smoothing over frames")
    return ViewHandles(map_method, map_points, map_live, grid_mode, grid, views_toggle, k, threshold, smoothing)


# ---------------------------------------------------------------------------------------------- what a frame sends
def view_outputs(result: FrameResult, session: Session, page: PageState) -> tuple:
    """Map points (only when the layout changed), the moving point, and the activation grid."""
    views = result.views
    if views is None:
        return gr.skip(), gr.skip(), gr.skip()
    grid = grid_html(views.grid)
    if result.prediction is None:
        page.layout_key = None
        return map_points_html(session.project, np.zeros((0, 2)), views.method, False), "", grid
    points = gr.skip()
    if views.layout_key != page.layout_key:
        page.layout_key = views.layout_key
        points = map_points_html(session.project, views.positions, views.method, views.fitting, views.shown_method)
    return points, map_live_html(result, views.positions, list(views.trail), session.project), grid


def cards_output(session: Session, page: PageState):
    """The class cards, or a skip when nothing on them changed since they were last sent."""
    key = (*session.state_key()[:3], session.recording, session.recorded_this_take if session.recording else 0)
    if key == page.cards_key:
        return gr.skip()
    page.cards_key = key
    return class_cards_html(session.project, session.recording, session.recorded_this_take)


def tray_output(session: Session, page: PageState):
    if session.tray.version == page.tray_version:
        return gr.skip()
    page.tray_version = session.tray.version
    return tray_html(session.tray.items, session.project.classes)


def neighbours_output(result: FrameResult, session: Session, page: PageState):
    """The nearest examples' pictures, or a skip when they are the same examples as last sent."""
    key = neighbours_key(result, session.project)
    if key == page.neighbours_key:
        return gr.skip()
    page.neighbours_key = key
    return neighbours_html(result, session.project)


def frame_outputs(result: FrameResult, session: Session, page: PageState) -> tuple:
    """Prediction, nearest examples, map points, map point, grid, class cards, tray."""
    panel = prediction_html(result, session.project, session.recording, session.recorded_this_take)
    nearest = neighbours_output(result, session, page)
    return panel, nearest, *view_outputs(result, session, page), cards_output(session, page), tray_output(session, page)


# ---------------------------------------------------------------------------------------------- handlers
def on_frame(app: AppContext, frame, session: Session, page: PageState):
    """One camera frame, as the camera's raw value (see decoding.py) or an RGB array: the frame outputs, then the
    session (outputting it marks the session as active)."""
    try:
        frame = camera_frame(frame)
    except USER_ERRORS as error:
        app.live_sessions.add(session)
        return message_html(message_of(error)), *[gr.skip()] * 6, session
    return show_frame(app, frame, session, page)


def show_frame(app: AppContext, frame: np.ndarray | None, session: Session, page: PageState):
    """An RGB frame (the camera's or a video's) through the session: the frame outputs, then the session."""
    app.live_sessions.add(session)
    if frame is None:
        return *[gr.skip()] * 7, session
    try:
        result = session.step(frame)
    except USER_ERRORS as error:
        return message_html(message_of(error)), *[gr.skip()] * 6, session
    autosave(app, session, page, FRAME_SAVE_INTERVAL)
    return *frame_outputs(result, session, page), session


@shows_errors
def classify(app: AppContext, image, session: Session, page: PageState):
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
    panel = prediction_html(result, session.project)
    page.neighbours_key = None
    return panel, details, neighbours_html(result, session.project), *view_outputs(result, session, page), session


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
    session.set_views(on, method, mode)
    page.layout_key = None


@shows_errors
def set_live_settings(session: Session, k, threshold, smoothing) -> None:
    session.set_live_settings(k, threshold, smoothing)


GRID_SCRIPT = """
  // The icons view arrives as data (cell indices, strengths, a small backdrop); it is drawn on one canvas that
  // stays on the page, so nothing flickers between frames.
  let drawnCells = null;
  const drawIconGrid = () => {
    const data = document.querySelector('#grid .tm-icon-cells');
    let canvas = document.querySelector('#tm-grid-canvas');
    if (!data) { if (canvas) canvas.style.display = 'none'; drawnCells = null; return; }
    const sheet = document.querySelector('#tm-icon-sheet');
    const key = data.dataset.cells + data.dataset.strength + data.dataset.backdrop;
    if (!sheet || key === drawnCells) return;  // Gradio may update the same element in place
    drawnCells = key;
    const cell = Number(sheet.dataset.cell), sheetColumns = Number(sheet.dataset.columns);
    const rows = Number(data.dataset.rows), columns = Number(data.dataset.columns);
    if (!canvas) {
      canvas = document.createElement('canvas');
      canvas.id = 'tm-grid-canvas';
      canvas.className = 'tm-grid';
      data.closest('#grid').before(canvas);
    }
    const bytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    const indices = new Uint16Array(bytes(data.dataset.cells).buffer);
    const strength = bytes(data.dataset.strength);
    const backdrop = new Image();
    backdrop.onload = () => {
      canvas.width = columns * cell; canvas.height = rows * cell; canvas.style.display = '';
      const context = canvas.getContext('2d');
      context.globalAlpha = 1;
      context.drawImage(backdrop, 0, 0, canvas.width, canvas.height);
      context.fillStyle = 'rgba(0, 0, 0, 0.65)';
      context.fillRect(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < rows * columns; i++) {
        const k = indices[i];
        context.globalAlpha = strength[i] / 255;
        context.drawImage(sheet, (k % sheetColumns) * cell, Math.floor(k / sheetColumns) * cell, cell, cell,
                          (i % columns) * cell, Math.floor(i / columns) * cell, cell, cell);
      }
      canvas.dataset.frames = String(Number(canvas.dataset.frames || 0) + 1);
    };
    backdrop.src = data.dataset.backdrop;
  };
  new MutationObserver(drawIconGrid).observe(
    document.body, {childList: true, subtree: true, attributes: true, attributeFilter: ['data-backdrop']});
"""


CAMERA_SCRIPT = """
  // Camera problems in words, with the fix, instead of Gradio's untranslated keys.
  const cameraHelp = (text) => {
    const box = document.querySelector('#camera-help');
    if (box) box.textContent = text;
  };
  const otherWays = ' Or use the Image and Video tabs.';
  const insecure = () => {
    const address = `https://${location.host}${location.pathname}`;
    return `This page was opened over http:// from another computer, so the browser blocks the camera. Open ${address} instead (the app must be started with --https).` + otherWays;
  };
  const cameraMessages = {
    NotAllowedError: 'The browser was told not to use the camera. Click the camera icon in the address bar, allow the camera, then reload the page.' + otherWays,
    SecurityError: 'The browser blocks the camera on this page.' + otherWays,
    NotFoundError: 'No camera was found. Plug one in and reload the page.' + otherWays,
    OverconstrainedError: 'No camera here can give a picture of the size asked for.' + otherWays,
    NotReadableError: 'The camera is in use by another program (a video call?). Close it, then click the camera button again.' + otherWays,
    AbortError: 'The camera could not start. Close other programs that use it, then try again.' + otherWays,
  };
  const explain = (error) => cameraMessages[error?.name] || `The camera could not start (${error?.name || error}).` + otherWays;
  const showWhenReady = (text) => {
    const tryShow = () => document.querySelector('#camera-help') ? cameraHelp(text) : setTimeout(tryShow, 200);
    tryShow();
  };
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    showWhenReady(window.isSecureContext ? 'This browser gives web pages no camera.' + otherWays : insecure());
  } else {
    const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      document.documentElement.dataset.camera = 'requested';  // the camera opens at most once by itself
      try {
        const stream = await getUserMedia(constraints);
        cameraHelp('');
        return stream;
      } catch (error) {
        cameraHelp(explain(error));
        throw error;
      }
    };
  }
  // One click starts the camera and the predictions. Gradio's webcam takes two (open the camera, then start the
  // stream from a control on the video): here the stream starts by itself as soon as the preview plays, and again
  // whenever it stops while the preview plays (the stream's time limit), and that control is hidden (CSS). Where
  // the browser already lets this page use the camera (a reload, a later visit), the camera opens without a click.
  const GRADIO_START = 'Click to Access Webcam', START = 'Start camera';
  const cameraStartWords = () => {  // the text node of Gradio's button (beside its icon)
    const root = document.querySelector('#cam');
    const walker = root && document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker?.nextNode(); node; node = walker.nextNode()) {
      if ([GRADIO_START, START].includes(node.nodeValue.trim())) return node;
    }
    return null;
  };
  const cameraStart = () => cameraStartWords()?.parentElement.closest('button');
  setInterval(() => {
    const words = cameraStartWords();
    if (words && words.nodeValue.trim() === GRADIO_START) words.nodeValue = START;
    // Frames wait for the page's first draw, which gives this page its session (page.OPENED_MARKER).
    const ready = document.querySelector('[data-page-ready]');
    const video = document.querySelector('#cam video');
    const capture = document.querySelector('#cam .capture-button');
    if (ready && video?.videoWidth > 0 && capture?.querySelector('[title="start recording"]')) capture.click();
  }, 250);
  if (window.isSecureContext && navigator.permissions) {
    navigator.permissions.query({name: 'camera'}).then((status) => {
      if (status.state !== 'granted') return;
      const open = (tries) => {
        if (document.documentElement.dataset.camera === 'requested') return;  // a click got there first
        const start = cameraStart();
        if (start) start.click(); else if (tries) setTimeout(() => open(tries - 1), 200);
      };
      open(50);
    }).catch(() => {});
  }
  // Gradio reports the same problems as toasts whose text is an untranslated key: say them in words too.
  const keys = {'image.no_webcam_support': () => (window.isSecureContext ? 'This browser gives web pages no camera.' + otherWays : insecure()),
                'image.allow_webcam_access': () => cameraMessages.NotAllowedError};
  new MutationObserver(() => {
    for (const node of document.querySelectorAll('.toast-text, .toast-body div')) {
      for (const [key, words] of Object.entries(keys)) {
        if (node.childElementCount === 0 && node.textContent.includes(key)) node.textContent = words();
      }
    }
  }).observe(document.body, {childList: true, subtree: true});
"""
