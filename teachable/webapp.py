"""The Gradio page: layout and wiring only. Every handler is a thin call into the person's :class:`Session`.

Per-user data lives in one ``gr.State`` holding a ``Session``; the backbone is the only object shared between
browsers, and it is only read. Handlers turn :class:`SessionError`, ``ProjectError`` and ``ImageError`` into
messages on the page, never stack traces.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import faiss
import gradio as gr
import numpy as np

from .activations import MODES, GridIcons
from .atlas import icon_path
from .backbones import DEFAULT_BACKBONE, Backbone, BackboneError, load_backbone_or_default
from .projection import METHODS, warm_up
from .frames import ImageError
from .knn import DEFAULT_K, DEFAULT_THRESHOLD, KNNError
from .project import ProjectError
from .inference import InferenceError, runner_from_setting
from .session import MAX_EXAMPLES, Session, SessionError
from .views import (
    CSS,
    architecture_html,
    atlas_image,
    channels_html,
    classes_html,
    evaluation_html,
    image_html,
    map_live_html,
    map_points_html,
    message_html,
    prediction_html,
    strip_html,
    unit_html,
)

__all__ = ["build_app", "serve", "launch", "ASSETS"]

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_PROJECT = ASSETS / "demo_project.zip"
SAMPLES = ASSETS / "try"
STREAM_EVERY = 0.1
STREAM_TIME_LIMIT = 30 * 60
"""A stream is closed after 30 minutes; clicking the camera button again resumes it."""
SESSION_IDLE_SECONDS = float(os.environ.get("TEACHABLE_SESSION_IDLE_SECONDS", 2 * 60 * 60))
"""A session with no frames, classifications or edits for this long is freed, with its examples."""
MAX_EXAMPLES_PER_SESSION = int(os.environ.get("TEACHABLE_MAX_EXAMPLES", MAX_EXAMPLES))
"""A shared server's limit per person; one person with a large imported project can raise it."""
INFERENCE = os.environ.get("TEACHABLE_INFERENCE", "auto")
"""Where live frames run: local, batched (across sessions), auto (batched on a GPU; on a small CPU a batch costs
about as much as its frames one by one) or the URL of a backbone service. See inference.py."""
MAX_SESSIONS = int(os.environ.get("TEACHABLE_MAX_SESSIONS", 200))
"""Sessions whose state Gradio keeps; past it the least recently used is dropped. Gradio otherwise keeps a closed
tab's last outputs (a few MB each) for as long as the server runs, so this bounds the memory of a long-lived server.
Keep it well above the number of people using the server at once."""
FILE_MAX_AGE_SECONDS = int(os.environ.get("TEACHABLE_FILE_MAX_AGE_SECONDS", 30 * 60))
"""Uploads, saved projects and other served files older than this are deleted (checked every third of it)."""
THUMBNAILS_SHOWN = 12
MAX_UPLOAD = f"{int(os.environ.get('TEACHABLE_MAX_UPLOAD_MB', 20))}mb"
"""Largest upload (images, videos, project files); raise it to open large projects on a server of your own."""
USER_ERRORS = (SessionError, ProjectError, ImageError, KNNError, BackboneError, InferenceError)
CAMERA_CSS = "#cam video { transform: scaleX(-1); }"  # mirror the preview only; the server gets true frames
# Clicking an example in the classification view or the unit view puts its number in the "Example #" box.
PICK_EXAMPLE_JS = """() => {
  document.addEventListener('click', (event) => {
    const figure = event.target.closest('#evaluation [data-row], #unit [data-row], #strip [data-row]');
    const input = document.querySelector('#example-row input');
    if (!figure || !input) return;
    input.value = figure.dataset.row;
    input.dispatchEvent(new Event('input', {bubbles: true}));
    input.dispatchEvent(new Event('change', {bubbles: true}));
  });
}"""


def _strip_indices(session: Session, label: str | None) -> list[int]:
    """Example rows shown in a class's thumbnail strip: the latest first."""
    if not label or label not in session.project.classes:
        return []
    return session.project.indices_of(label)[-THUMBNAILS_SHOWN:][::-1]


def _thumbnail_strip(session: Session, label: str | None) -> str:
    # HTML with inlined previews rather than a gr.Gallery: Gradio caches gallery images by content and rewrites
    # the file on every save, so two sessions showing the same picture (e.g. the demo project) can be served a
    # half-written file.
    return strip_html(session.project, _strip_indices(session, label))


def load_icons(backbone: Backbone) -> GridIcons | None:
    path = icon_path(ASSETS, backbone.name, backbone.grid_tap)
    if not path.is_file():
        log.warning(
            "No activation-grid icons at %s; the icons mode is off. Make them with `teachable atlas icons`.", path
        )
        return None
    return GridIcons.load(path)


def build_app(
    backbone: Backbone, startup_warning: str | None = None, idle_seconds: float = SESSION_IDLE_SECONDS
) -> gr.Blocks:
    """The whole page for one shared, read-only ``backbone``. A session idle for ``idle_seconds`` is freed."""
    # Gradio fixes its file cache when the Blocks are made and serves files only from there, so the folder is
    # chosen first. A folder of our own keeps the app's files apart and is cleaned by delete_cache.
    os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(tempfile.gettempdir()) / "teachable-gradio"))
    icons = load_icons(backbone)
    map_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedding-map")
    runner = runner_from_setting(INFERENCE, backbone)
    log.info("Live frames run through %s (TEACHABLE_INFERENCE=%s).", type(runner).__name__, INFERENCE)
    live_sessions: weakref.WeakSet[Session] = weakref.WeakSet()
    _start_idle_reaper(live_sessions, idle_seconds)

    def new_session() -> Session:
        return Session(
            backbone, icons=icons, map_executor=map_executor, max_examples=MAX_EXAMPLES_PER_SESSION, runner=runner
        )

    # ------------------------------------------------------------------ handlers (pure calls into the session)
    def views_of(result, session: Session):
        """Map points (skipped when unchanged), the moving point, and the activation grid."""
        if not session.views_on:
            return gr.skip(), gr.skip(), gr.skip()
        if result.prediction is None:
            return (
                map_points_html(session.project, np.zeros((0, 2)), session.map.method, False),
                "",
                image_html(session.grid_image(result), "tm-grid"),
            )
        positions = session.map_positions()
        key = (session.map.version, session.map.method, session.map.fitting, tuple(session.project.uids))
        points = gr.skip()
        if key != session.map_shown_key:
            session.map_shown_key = key
            points = map_points_html(session.project, positions, session.map.method, session.map.fitting)
        live = map_live_html(result, positions, list(session.trail), session.project)
        return points, live, image_html(session.grid_image(result), "tm-grid")

    def on_frame(frame, session: Session):
        """Returns the panel, the three views, and the session (outputting it marks the session as active)."""
        live_sessions.add(session)
        if frame is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), session
        try:
            result = session.step(frame)
        except USER_ERRORS as error:
            return message_html(str(error)), gr.skip(), gr.skip(), gr.skip(), session
        panel = prediction_html(result, session.project, session.recording, session.recorded_this_take)
        return panel, *views_of(result, session), session

    def classify(image, session: Session):
        live_sessions.add(session)
        if image is None:
            raise gr.Error("Choose an image to classify.")
        try:
            result = session.step(image, live=False)
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None
        details = {
            "label": result.label,
            "confidences": result.confidences,
            "message": result.message,
            "nearest_similarity": result.prediction.nearest_similarity if result.prediction else None,
        }
        return prediction_html(result, session.project), details, *views_of(result, session), session

    def class_panel(session: Session, selected: str | None):
        classes = session.project.classes
        selected = selected if selected in classes else (classes[0] if classes else None)
        return (
            gr.Radio(choices=classes, value=selected),
            classes_html(session.project, selected),
            _thumbnail_strip(session, selected),
        )

    def guarded(action: Callable[..., str | None]):
        """Run a class/example action; show its message, or the error it raised, and refresh the class panel."""

        def handler(session: Session, selected: str | None, *args):
            try:
                outcome = action(session, selected, *args)
            except USER_ERRORS as error:
                gr.Warning(str(error))
                return *class_panel(session, selected), ""
            new_selected, note = outcome if isinstance(outcome, tuple) else (selected, outcome)
            return *class_panel(session, new_selected), note or ""

        return handler

    def add_class(session: Session, _selected, name: str):
        return session.project.add_class(name), f"Added class '{name.strip()}'."

    def rename_class(session: Session, selected, name: str):
        _require(selected)
        return session.project.rename_class(selected, name), None

    def delete_class(session: Session, selected, _name):
        _require(selected)
        session.project.remove_class(selected)
        if session.recording == selected:
            session.stop_recording()
        return None, f"Deleted class '{selected}'."

    def clear_class(session: Session, selected, _name):
        _require(selected)
        session.project.clear_class(selected)
        return f"Removed every example of '{selected}'."

    def upload_into_class(session: Session, selected, files):
        _require(selected)
        if not files:
            raise SessionError("Choose one or more image files first.")
        images = [(Path(f).name, Path(f).read_bytes()) for f in files]
        added, problems = session.add_images(selected, images)
        return "; ".join([f"Added {added} image(s) to '{selected}'.", *problems])

    def remove_thumbnail(session: Session, selected, row):
        if row is None or not 0 <= int(row) < len(session.project):
            raise SessionError("Click an example first (its number appears under Example #), then remove it.")
        session.project.remove_examples([int(row)])
        return f"Removed example #{int(row)}."

    def toggle_recording(session: Session, selected):
        if session.recording:
            count = session.stop_recording()
            return (
                gr.Button("● Record", variant="primary"),
                *class_panel(session, selected),
                f"Recorded {count} example(s).",
            )
        try:
            _require(selected)
            session.start_recording(selected)
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None
        return (
            gr.Button("■ Stop recording", variant="stop"),
            *class_panel(session, selected),
            (f"Recording into '{selected}': show it to the camera."),
        )

    def save_project(session: Session):
        # Gradio serves a copy from its cache (and deletes that on schedule); the original is ours to delete.
        files = Path(os.environ["GRADIO_TEMP_DIR"])
        _remove_older_than(files.glob("project-*"), FILE_MAX_AGE_SECONDS)
        folder = Path(tempfile.mkdtemp(prefix="project-", dir=files))
        return str(session.project.save(folder / "teachable-project.zip"))

    def load_project(session: Session, selected, file):
        if file is None:
            raise SessionError("Choose a project .zip file first.")
        size = Path(file).stat().st_size
        return session.load_project(Path(file).read_bytes()) if size else "That file is empty."

    def load_demo(session: Session, selected):
        return session.load_project(DEMO_PROJECT.read_bytes())

    def set_settings(session: Session, k, threshold, smoothing):
        session.k, session.threshold, session.smoothing = int(k), float(threshold), float(smoothing)

    def set_views(session: Session, on: bool, method: str, mode: str):
        session.views_on = bool(on)
        session.set_map_method(method)
        session.map_shown_key = None
        try:
            session.set_grid_mode(mode)
        except SessionError as error:
            gr.Warning(str(error))

    def layers_panel(session: Session):
        return (
            architecture_html(backbone, session.project.tap, session.grid_tap),
            gr.Dropdown(value=session.project.tap),
            gr.Dropdown(value=session.grid_tap),
            gr.Radio(value=session.grid_mode),
        )

    def set_embedding_tap(session: Session, tap: str, progress=gr.Progress()):
        try:
            note = session.set_embedding_tap(
                tap, lambda done, total: progress(done / max(total, 1), desc="Re-embedding")
            )
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None
        session.map_shown_key = None
        return *layers_panel(session), note

    def set_grid_tap(session: Session, tap: str):
        try:
            session.set_grid_tap(tap)
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None
        return *layers_panel(session), f"The grid now reads {tap}."

    def build_atlas(session: Session, progress=gr.Progress()):
        try:
            atlas = session.atlas(lambda fraction, what: progress(fraction, desc=what))
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None
        occupied = int((atlas.majority >= 0).sum())
        note = f"Atlas of {len(session.project)} examples: {occupied} cells, each the icon its activations match best."
        return image_html(atlas_image(atlas), "tm-atlas", quality=85, css_class="tm-atlas"), note

    def refresh_review(session: Session):
        """Evaluation, classification view, hints and class pickers after any change to the examples."""
        live_sessions.add(session)
        session.touch()
        classes = session.project.classes
        pickers = (gr.Dropdown(choices=classes), gr.Dropdown(choices=classes), gr.Dropdown(choices=classes))
        try:
            result = session.review()
        except USER_ERRORS as error:
            return message_html(str(error)), gr.Radio(choices=[], value=None), *pickers, session
        choices = [(f"[{hint.kind}] {hint.message}", index) for index, hint in enumerate(result.hints)]
        return evaluation_html(result, session.project), gr.Radio(choices=choices, value=None), *pickers, session

    def apply_hint(session: Session, index):
        if index is None:
            raise gr.Error("Pick a hint first.")
        try:
            hints = session.review().hints
            return session.apply_hint(hints[int(index)])
        except (*USER_ERRORS, IndexError) as error:
            raise gr.Error(str(error) or "That hint is out of date; look again.") from None

    def edit_example(session: Session, row, move_to: str | None, action: str):
        if row is None or not 0 <= int(row) < len(session.project):
            raise gr.Error(f"Give an example number from 0 to {len(session.project) - 1}.")
        try:
            if action == "delete":
                session.project.remove_examples([int(row)])
                return f"Deleted example #{int(row)}."
            if not move_to:
                raise SessionError("Pick the class to move it to.")
            session.project.move_example(int(row), move_to)
            return f"Moved example #{int(row)} to '{move_to}'."
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None

    def summarise(session: Session, first, second, progress=gr.Progress()):
        report = lambda done, total: progress(done / max(total, 1), desc="Reading activations")  # noqa: E731
        try:
            summary = session.class_summary(progress=report)
            html = channels_html(
                summary, icons, session.grid_tap, f"Channels of {session.grid_tap} most typical of each class"
            )
            if first and second and first != second:
                compared = session.compare(first, second, progress=report)
                html += channels_html(
                    compared, icons, session.grid_tap, f"'{first}' and '{second}': shared, and what tells them apart"
                )
            return html
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None

    def show_unit(session: Session, channel, progress=gr.Progress()):
        report = lambda done, total: progress(done / max(total, 1), desc="Reading activations")  # noqa: E731
        try:
            examples = session.unit_view(int(channel or 0), progress=report)
        except USER_ERRORS as error:
            raise gr.Error(str(error)) from None
        return unit_html(int(channel or 0), examples, session.project, icons, session.grid_tap)

    def play_video(video_path, session: Session):
        if not video_path:
            raise gr.Error("Choose a video file first.")
        capture = cv2.VideoCapture(video_path)
        if not capture.isOpened():
            raise gr.Error("That file could not be read as a video.")
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        step = max(1, round(fps * STREAM_EVERY))
        index, played = 0, 0
        try:
            while played < 600:
                ok, frame = capture.read()
                if not ok:
                    break
                if index % step == 0:
                    started = time.monotonic()
                    yield on_frame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), session)
                    played += 1
                    time.sleep(max(0.0, STREAM_EVERY - (time.monotonic() - started)))
                index += 1
        finally:
            capture.release()
        if played == 0:
            raise gr.Error("That video has no frames that could be read.")

    # ------------------------------------------------------------------ layout
    with gr.Blocks(title="teachable", delete_cache=(max(1, FILE_MAX_AGE_SECONDS // 3), FILE_MAX_AGE_SECONDS)) as demo:
        # Gradio counts time_to_live from the last time the state was an *output*; the frame, classify and review
        # handlers output it, so it measures idleness. Gradio also frees a session an hour after its tab closes.
        session = gr.State(new_session, time_to_live=idle_seconds, delete_callback=_release)
        gr.Markdown(
            "# teachable\nTeach a pretrained network by example. Pick a class, press **Record** and show it "
            "to the camera; do the same for the other class. The prediction follows at once — no training step."
        )
        if startup_warning:
            gr.Markdown(f"**Note:** {startup_warning}")
        with gr.Row():
            with gr.Column(scale=5):
                with gr.Tab("Camera"):
                    camera = gr.Image(
                        sources=["webcam"],
                        streaming=True,
                        type="numpy",
                        label="Camera",
                        elem_id="cam",
                        webcam_options=gr.WebcamOptions(
                            mirror=False,
                            constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}},
                        ),
                    )
                    gr.Markdown(
                        "No camera, or the browser blocked it? Allow camera access in the address bar, or use "
                        "the **Image** and **Video** tabs.",
                        elem_classes="tm-hint",
                    )
                with gr.Tab("Image"):
                    still = gr.Image(sources=["upload", "clipboard"], type="numpy", label="Image to classify")
                    classify_button = gr.Button("Classify")
                    if SAMPLES.is_dir():
                        gr.Examples(sorted(str(p) for p in SAMPLES.glob("*.jpg")), inputs=still, label="Sample photos")
                    details = gr.JSON(label="Details", visible=False)
                with gr.Tab("Video"):
                    video = gr.Video(sources=["upload"], label="Short video")
                    play_button = gr.Button("Play through the classifier")
            with gr.Column(scale=4):
                prediction = gr.HTML(
                    message_html("Record a few examples of each class to start."), elem_id="prediction"
                )
                with gr.Accordion("Settings", open=False, elem_id="settings"):
                    views_toggle = gr.Checkbox(value=True, label="Live map and activation grid", elem_id="views-toggle")
                    k_slider = gr.Slider(1, 20, value=DEFAULT_K, step=1, label="Neighbours (k)")
                    threshold_slider = gr.Slider(
                        0, 1, value=DEFAULT_THRESHOLD, step=0.01, label="Unknown below similarity"
                    )
                    smoothing_slider = gr.Slider(0, 0.95, value=0.5, step=0.05, label="Smoothing over frames")
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
            with gr.Column(scale=1):
                gr.Markdown(
                    f"### Activation grid\nWhat each cell of `{backbone.grid_tap}` "
                    f"({backbone.tap(backbone.grid_tap).grid_size(backbone.input_size)}x"
                    f"{backbone.tap(backbone.grid_tap).grid_size(backbone.input_size)}) responds to."
                )
                grid_mode = gr.Radio(
                    list(MODES), value="icons" if icons is not None else "factors", label="Show", elem_id="grid-mode"
                )
                grid = gr.HTML(elem_id="grid")
        with gr.Accordion("Layers and Activation Atlas", open=False, elem_id="layers"):
            with gr.Row():
                with gr.Column(scale=1):
                    architecture = gr.HTML(
                        architecture_html(backbone, backbone.embedding_tap, backbone.grid_tap), elem_id="architecture"
                    )
                    spatial = [name for name, tap in backbone.taps.items() if tap.is_spatial]
                    embedding_tap = gr.Dropdown(
                        list(backbone.taps),
                        value=backbone.embedding_tap,
                        elem_id="embedding-tap",
                        label="Embedding read at (changing it re-embeds every example)",
                    )
                    grid_tap = gr.Dropdown(
                        spatial, value=backbone.grid_tap, label="Activation grid read at", elem_id="grid-tap"
                    )
                with gr.Column(scale=1):
                    atlas_button = gr.Button("Build atlas of my examples", elem_id="build-atlas")
                    atlas_view = gr.HTML(elem_id="atlas")
                    atlas_note = gr.Markdown()
        with gr.Accordion("Under the hood: evaluation and data coach", open=True, elem_id="hood"):
            gr.Markdown(
                "Every example classified by all the others (leave-one-out), after every change. "
                "Mistakes are outlined in red; frames show the confidence (green high, red low). "
                "Click an example to pick it, then move or delete it."
            )
            evaluation = gr.HTML(elem_id="evaluation")
            with gr.Row():
                with gr.Column(scale=3):
                    hints = gr.Radio(label="Data coach", elem_id="hints", choices=[])
                    apply_button = gr.Button("Apply the suggested fix", elem_id="apply-hint", size="sm")
                with gr.Column(scale=2):
                    example_row = gr.Number(label="Example #", precision=0, elem_id="example-row")
                    move_target = gr.Dropdown(label="Move it to", choices=[], elem_id="move-to")
                    with gr.Row():
                        move_button = gr.Button("Move example", size="sm", elem_id="move-example")
                        delete_example_button = gr.Button("Delete example", size="sm", variant="stop")
            with gr.Row():
                with gr.Column():
                    with gr.Row():
                        first_class = gr.Dropdown(label="Compare class", choices=[], elem_id="first-class")
                        second_class = gr.Dropdown(label="with class", choices=[], elem_id="second-class")
                    summary_button = gr.Button("Class summary", size="sm", elem_id="summarise")
                    summary = gr.HTML(elem_id="summary")
                with gr.Column():
                    unit_channel = gr.Number(
                        label="Channel of the grid layer", value=0, precision=0, elem_id="unit-channel"
                    )
                    unit_button = gr.Button("Show the examples that excite it most", size="sm", elem_id="show-unit")
                    unit = gr.HTML(elem_id="unit")
        with gr.Row():
            with gr.Column(scale=4):
                gr.Markdown("### Classes")
                class_summary = gr.HTML(elem_id="classes")
                class_picker = gr.Radio(label="Selected class", elem_id="class-picker")
                record_button = gr.Button("● Record", variant="primary", elem_id="record")
                class_name = gr.Textbox(label="Class name", placeholder="e.g. thumbs up", max_length=64)
                with gr.Row():
                    add_button = gr.Button("Add class", size="sm")
                    rename_button = gr.Button("Rename selected", size="sm")
                    clear_button = gr.Button("Clear examples", size="sm")
                    delete_button = gr.Button("Delete class", size="sm", variant="stop")
            with gr.Column(scale=5):
                gr.Markdown("Latest examples of the selected class (click one to pick it)")
                gallery = gr.HTML(elem_id="strip")
                remove_button = gr.Button("Remove the picked example", size="sm", elem_id="remove-example")
                uploads = gr.File(
                    file_count="multiple", file_types=["image"], label="Add image files to the selected class"
                )
                upload_button = gr.Button("Add images", size="sm")
        with gr.Row():
            save_button = gr.Button("Save project (.zip)")
            saved_file = gr.File(label="Project file", interactive=False)
            project_file = gr.File(file_types=[".zip"], label="Open a project .zip")
            demo_button = gr.Button("Load the demo project")
        status = gr.Markdown(elem_id="status")

        # ------------------------------------------------------------------ wiring
        panel = [class_picker, class_summary, gallery]
        layers = [architecture, embedding_tap, grid_tap, grid_mode]
        hood = [evaluation, hints, move_target, first_class, second_class, session]
        demo.load(lambda s: (*class_panel(s, None), s), inputs=session, outputs=[*panel, session])
        views = [map_points, map_live, grid]
        camera.stream(
            on_frame,
            inputs=[camera, session],
            outputs=[prediction, *views, session],
            stream_every=STREAM_EVERY,
            time_limit=STREAM_TIME_LIMIT,
            concurrency_limit=None,
            show_progress="hidden",
        )
        classify_button.click(classify, [still, session], [prediction, details, *views, session], api_name="classify")
        play_button.click(
            play_video,
            [video, session],
            [prediction, *views, session],
            concurrency_limit=None,
            show_progress="hidden",
            api_name="play_video",
        )
        record_button.click(toggle_recording, [session, class_picker], [record_button, *panel, status]).then(
            refresh_review, session, hood
        )
        class_picker.input(lambda s, c: class_panel(s, c), [session, class_picker], panel, show_progress="hidden")
        for button, action in [
            (add_button, add_class),
            (rename_button, rename_class),
            (delete_button, delete_class),
            (clear_button, clear_class),
        ]:
            button.click(
                guarded(action), [session, class_picker, class_name], [*panel, status], api_name=action.__name__
            ).then(refresh_review, session, hood)
        upload_button.click(guarded(upload_into_class), [session, class_picker, uploads], [*panel, status]).then(
            refresh_review, session, hood
        )
        remove_button.click(guarded(remove_thumbnail), [session, class_picker, example_row], [*panel, status]).then(
            refresh_review, session, hood
        )
        save_button.click(save_project, session, saved_file, api_name="save_project")
        project_file.upload(
            guarded(load_project), [session, class_picker, project_file], [*panel, status], api_name="open_project"
        ).then(layers_panel, session, layers).then(refresh_review, session, hood)
        demo_button.click(guarded(load_demo), [session, class_picker], [*panel, status], api_name="load_demo").then(
            layers_panel, session, layers
        ).then(refresh_review, session, hood)
        embedding_tap.input(set_embedding_tap, [session, embedding_tap], [*layers, status]).then(
            refresh_review, session, hood
        )
        grid_tap.input(set_grid_tap, [session, grid_tap], [*layers, status])
        atlas_button.click(build_atlas, session, [atlas_view, atlas_note], api_name="build_atlas")
        apply_button.click(apply_hint, [session, hints], status).then(
            lambda s, c: class_panel(s, c), [session, class_picker], panel
        ).then(refresh_review, session, hood)
        for button, action in [(move_button, "move"), (delete_example_button, "delete")]:
            button.click(
                lambda s, row, target, action=action: edit_example(s, row, target, action),
                [session, example_row, move_target],
                status,
            ).then(lambda s, c: class_panel(s, c), [session, class_picker], panel).then(refresh_review, session, hood)
        summary_button.click(summarise, [session, first_class, second_class], summary)
        unit_button.click(show_unit, [session, unit_channel], unit)
        for control in (views_toggle, map_method, grid_mode):
            control.change(set_views, [session, views_toggle, map_method, grid_mode], None, show_progress="hidden")
        settings = [session, k_slider, threshold_slider, smoothing_slider]
        for slider in (threshold_slider, smoothing_slider):
            slider.change(set_settings, settings, None, show_progress="hidden")
        k_slider.change(set_settings, settings, None, show_progress="hidden").then(refresh_review, session, hood)
    return demo


def _start_idle_reaper(sessions: weakref.WeakSet, idle_seconds: float) -> None:
    """Every few seconds, drop the examples of sessions idle for longer than ``idle_seconds``.

    Gradio's own ``time_to_live`` does this for open tabs, but keeps the state of a *closed* tab for an hour in
    case it reconnects; this bounds both.
    """

    def reap() -> None:
        while True:
            time.sleep(max(1.0, min(idle_seconds / 4, 30.0)))
            if sum(session.clear_if_idle(idle_seconds) for session in list(sessions)):
                _return_memory()

    threading.Thread(target=reap, name="idle-session-reaper", daemon=True).start()


def _release(session: Session | None) -> None:
    """Called by Gradio when it frees a session, just *before* it drops its reference: once it has, hand the
    memory of the session's examples back to the system."""
    del session
    threading.Timer(2.0, _return_memory).start()


def _return_memory() -> None:
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed small blocks for reuse otherwise
        except OSError:
            pass


def _require(selected: str | None) -> None:
    if not selected:
        raise SessionError("Select a class first.")


def _remove_older_than(folders, seconds: float) -> None:
    now = time.time()
    for folder in folders:
        try:
            if now - folder.stat().st_mtime > seconds:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # removed meanwhile by another session's save


def serve(demo: gr.Blocks, host: str, port: int, share: bool = False, prevent_thread_lock: bool = False) -> gr.Blocks:
    """Queue and launch a built page with the server limits this app relies on."""
    demo.queue(default_concurrency_limit=8)
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=prevent_thread_lock,
        max_file_size=MAX_UPLOAD,
        state_session_capacity=MAX_SESSIONS,
        css=CSS + CAMERA_CSS,
        js=PICK_EXAMPLE_JS,
        ssr_mode=False,
        quiet=prevent_thread_lock,
    )
    return demo


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    backbone: str = DEFAULT_BACKBONE,
    device: str | None = "auto",
    prevent_thread_lock: bool = False,
    compile_mode: str | None = None,
) -> gr.Blocks:
    """Load the backbone once and serve the page."""
    faiss.omp_set_num_threads(1)  # flat search is memory-bound: one thread per query is fastest
    threading.Thread(target=warm_up, name="umap-warm-up", daemon=True).start()  # numba JIT off the frame path
    model, warning = load_backbone_or_default(backbone, device, compile_mode)
    return serve(build_app(model, warning), host, port, share, prevent_thread_lock)
