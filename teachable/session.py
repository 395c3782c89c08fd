"""One person's working state: their project, the live settings, and the per-frame step the UI calls.

``Session.step(frame)`` is the whole per-frame path: prepare the frame, embed it, record it when recording is on
(rate-limited), classify it, smooth the confidences. The web page, the ``classify`` API endpoint and the video
player all call it, so they behave the same. This module knows nothing of Gradio; it can be driven from Python.

:class:`Session` is a thin facade: every public method takes the session's lock and hands the work to what the
session owns: the project (``project.py``), the live views (``live_views.py``), the views under the hood
(``insights.py``) and the tray (``tray.py``); the checks and words of edits are in ``editing.py``. The backbone is
shared by every session and only read; everything else belongs to one session.
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from . import editing
from .activations import GridIcons
from .backbones import Backbone, pooled
from .coach import Hint
from .errors import SessionError
from .frames import encode_jpeg
from .insights import Insights, Subject
from .knn import DEFAULT_K, DEFAULT_THRESHOLD, Prediction
from .live_views import LiveViews, LiveViewState
from .project import MAX_CLASSES, BackboneMismatch, Project
from .live_state import RECORD_PER_SECOND, Recorder, Smoother
from .runners import FrameRunner, LocalRunner
from .sent_frames import SentFrame
from .tray import HelpTray, uncertainty

__all__ = ["Session", "FrameResult", "LiveViews", "SessionError", "DEFAULT_CLASSES"]

DEFAULT_CLASSES = ("Class 1", "Class 2")
MAX_EXAMPLES = 2000
"""Per-session cap, so one browser cannot exhaust a shared server's memory (about 30 KB per example)."""
SETTINGS = ("k", "threshold", "smoothing", "views_on", "grid_tap", "grid_mode")
"""The per-person settings that are copied with a session and kept with an autosaved project."""


def exclusive(method):
    """Run a Session method while holding the session's lock (re-entrant, so methods may call each other)."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)

    return locked


@dataclass(frozen=True)
class FrameResult:
    prediction: Prediction | None
    """None when there is nothing to compare with yet (see ``message``)."""
    confidences: dict[str, float]
    """Smoothed over recent frames; what the confidence bars show."""
    message: str = ""
    recorded: bool = False
    """Whether this frame was added as an example."""
    square: np.ndarray | None = field(default=None, repr=False)
    """The crop the backbone saw."""
    grid_activation: np.ndarray | None = field(default=None, repr=False)
    """``C x H x W`` activation at the grid tap (when the live views are on)."""
    map_point: np.ndarray | None = None
    """The frame's position on the embedding map (when the live views are on and there are examples)."""
    views: LiveViews | None = None
    """The map and grid for this frame, when the live views are on."""

    @property
    def label(self) -> str:
        """The label to show: a class, "unknown", or "" when there is no prediction."""
        return self.prediction.shown_label if self.prediction else ""


class Session:
    """A person's project plus live settings, behind one re-entrant lock, so two tabs of one browser may drive the
    same session. Every change the page makes goes through a method here that checks its input and raises
    :class:`SessionError` (or ``ProjectError``) with a message for the person."""

    def __init__(
        self,
        backbone: Backbone,
        classes: tuple[str, ...] = DEFAULT_CLASSES,
        *,
        k: int = DEFAULT_K,
        threshold: float = DEFAULT_THRESHOLD,
        smoothing: float = 0.5,
        max_examples: int = MAX_EXAMPLES,
        max_classes: int = MAX_CLASSES,
        record_per_second: float = RECORD_PER_SECOND,
        icons: GridIcons | None = None,
        map_executor: Executor | None = None,
        runner: FrameRunner | None = None,
    ) -> None:
        self.backbone = backbone
        self.runner = runner or LocalRunner(backbone)
        """Runs frames and added images through the backbone; may be shared with other sessions (a batcher, Ray)."""
        self.lock = threading.RLock()
        self.project = Project.for_backbone(backbone, classes, max_classes=max_classes)
        self.generation = 0
        """Counts the projects this session has had; with ``project.version`` it names the examples' state."""
        self.k, self.threshold, self.smoothing = k, threshold, smoothing
        self.max_examples, self.max_classes = max_examples, max_classes
        self.recorder = Recorder(record_per_second)
        self.smoother = Smoother()
        self.views = LiveViewState(backbone, icons, self.lock, lambda: self.project, map_executor)
        """The embedding map and the activation grid; its setters take this session's lock."""
        self.insights = Insights(backbone, icons, self.lock, self._subject)
        """The views under the hood (review, summaries, units, atlas); each takes this session's lock."""
        self.tray = HelpTray()
        """Recent live frames it was unsure about, for the person to label with one click."""
        self.last_active = time.monotonic()
        self.cleared_when_idle = False
        """True after its examples were dropped for idleness (an autosaved copy may bring them back)."""

    def __deepcopy__(self, memo: dict) -> Session:
        # The model, the icons and the map executor are shared and read-only; everything else is copied.
        fresh = Session(self.backbone, (), runner=self.runner, max_classes=self.max_classes)
        fresh.project = copy.deepcopy(self.project, memo)
        fresh.views = self.views.copy(fresh.lock, lambda: fresh.project)
        fresh.insights = Insights(self.backbone, self.views.icons, fresh.lock, fresh._subject)
        fresh.k, fresh.threshold, fresh.smoothing = self.k, self.threshold, self.smoothing
        fresh.max_examples, fresh.recorder = self.max_examples, Recorder(1.0 / self.recorder.interval)
        return fresh

    # The live views' settings, as the page and the saved settings name them.
    views_on = property(lambda self: self.views.on)
    grid_tap = property(lambda self: self.views.grid_tap)
    grid_mode = property(lambda self: self.views.grid_mode)
    map = property(lambda self: self.views.map)
    # The take being recorded, as the cards show it.
    recording = property(lambda self: self.recorder.label)
    take = property(lambda self: self.recorder.take)
    recorded_this_take = property(lambda self: self.recorder.count)

    # ----------------------------------------------------------------- the frame path
    @exclusive
    def step(self, frame: np.ndarray, now: float | None = None, live: bool = True) -> FrameResult:
        """Embed one frame, record it if recording, and classify it.

        ``live=False`` is for a still image: it is never recorded, never offered to the tray, and its confidences
        are not blended with earlier frames.
        """
        square = self.backbone.prepare(frame)
        tap, grid_tap = self.project.tap, self.views.grid_tap
        outputs = self.runner.run(square[None], [grid_tap, tap] if self.views.on else [tap], caller=id(self))
        embedding = pooled(outputs[tap])[0]
        grid_activation = outputs[grid_tap][0].cpu().numpy() if self.views.on else None
        return self._classify(embedding, square, lambda: encode_jpeg(square), grid_activation, now, live)

    @exclusive
    def step_embedded(self, sent: SentFrame, now: float | None = None) -> FrameResult:
        """A live frame the person's browser embedded itself (browser inference): recorded only when it brings its
        thumbnail, offered to the tray only then too; the browser draws its own activation grid."""
        thumbnail = None if sent.thumbnail is None else (lambda: sent.thumbnail)
        return self._classify(sent.embedding, None, thumbnail, None, now, live=True)

    def _classify(self, embedding, square, thumbnail, grid_activation, now, live: bool) -> FrameResult:
        """The frame path after the backbone: record, classify, smooth, tray, map. ``thumbnail`` makes the JPEG
        an example or a tray item keeps (None: there is none, so the frame is neither)."""
        now = time.monotonic() if now is None else now
        self.last_active = time.monotonic()
        recorded = live and thumbnail is not None and self._record_if_due(embedding, thumbnail, now)
        if not len(self.project):
            views = self.views.draw(None, square, grid_activation)
            message = "No examples yet: record a few frames of each class."
            return FrameResult(None, {}, message, recorded, square, grid_activation, None, views)
        prediction = self._predict(embedding)
        confidences = self.smoother(prediction.confidences, self.smoothing) if live else prediction.confidences
        if live and not self.recording:
            filled = self._filled_classes()
            self.tray.recheck(self.state_key, lambda item: uncertainty(self._predict(item.embedding), filled) is not None)
            if thumbnail is not None:
                self.tray.consider(prediction, embedding, thumbnail, filled, now)
        map_point = self.views.map_point(prediction, live) if self.views.on else None
        views = self.views.draw(prediction, square, grid_activation)
        message = editing.next_step(self.project)  # an unknown frame says so in its label, with the best guess
        return FrameResult(prediction, confidences, message, recorded, square, grid_activation, map_point, views)

    def _predict(self, embedding: np.ndarray) -> Prediction:
        self.project.classifier.threshold = self.threshold
        return self.project.predict(embedding, self.k)

    def _filled_classes(self) -> int:
        return sum(1 for count in self.project.counts().values() if count)

    def _record_if_due(self, embedding: np.ndarray, thumbnail: Callable[[], bytes], now: float) -> bool:
        if not self.recorder.due(now):
            return False
        if len(self.project) >= self.max_examples:
            self.recorder.stop()
            return False
        self.project.add_examples(self.recorder.label, embedding[None], [thumbnail()], "webcam", self.recorder.take)
        self.recorder.kept(now)
        return True

    @exclusive
    def next_step(self) -> str:
        return editing.next_step(self.project)

    def opening_message(self, wait: float = 0.25) -> str:
        """The prediction panel's first words. A page load never waits for long work on the session (an atlas, a
        re-embedding) for them: after ``wait`` seconds it says the examples are busy instead."""
        if not self.lock.acquire(timeout=wait):
            return "Your examples are busy with a long task (an atlas, a new layer); this page catches up when it ends."
        try:
            return editing.opening_message(self.project)
        finally:
            self.lock.release()

    # ----------------------------------------------------------------- the embedding layer
    def set_embedding_tap(self, tap: str, progress=None) -> str:
        """Embed at another depth: every example is re-embedded from its thumbnail, and the map starts afresh.

        The re-embedding (minutes for a large project) works on a copy, outside the session's lock, so the page's
        frames, commands and reloads are answered meanwhile; the copy takes the project's place only if the
        examples did not change in between (else nothing changes, and the message says to pick the layer again).
        """
        self.backbone.tap(tap)
        with self.lock:
            if tap == self.project.tap:
                return f"The embedding already comes from {tap}."
            before, project = self.examples_state(), copy.deepcopy(self.project)
        project.reembed(self.backbone, progress, tap=tap)
        with self.lock:
            if self.examples_state() != before:
                raise SessionError("The examples changed while they were re-embedded; pick the layer again.")
            self._use(project)
            self.views.fall_back_to_factors()
            return f"Re-embedded {len(project)} examples at {tap} ({self.backbone.tap(tap).channels}-d)."

    # ----------------------------------------------------------------- recording
    @exclusive
    def start_recording(self, label: str) -> None:
        label = editing.existing_class(self.project, label)
        if len(self.project) >= self.max_examples:
            raise SessionError(editing.full_message(self.max_examples))
        self.recorder.start(label, self.project.new_take())

    @exclusive
    def stop_recording(self) -> int:
        """End the take; returns how many frames it recorded."""
        return self.recorder.stop()

    # ----------------------------------------------------------------- classes and examples
    @exclusive
    def add_class(self, name: str | None = None) -> str:
        """Add a class; without a name it is called "Class N" with the first free N. Returns the name."""
        return self.project.add_class(editing.free_class_name(self.project) if name is None else name)

    @exclusive
    def rename_class(self, old: str | None, new: str) -> str:
        old = editing.existing_class(self.project, old)
        new = self.project.rename_class(old, new)
        if self.recorder.label == old:
            self.recorder.label = new
        self.smoother.reset()
        return new

    @exclusive
    def remove_class(self, name: str | None) -> None:
        """Delete a class and its examples; recording into it stops."""
        name = editing.existing_class(self.project, name)
        if self.recording == name:
            self.stop_recording()
        self.project.remove_class(name)
        self.smoother.reset()

    @exclusive
    def clear_class(self, name: str | None) -> int:
        """Remove every example of a class; returns how many there were."""
        count = self.project.counts()[editing.existing_class(self.project, name)]
        self.project.clear_class(name)
        return count

    @exclusive
    def remove_example(self, row: object) -> int:
        row = editing.existing_row(self.project, row)
        self.project.remove_examples([row])
        return row

    @exclusive
    def move_example(self, row: object, label: str | None) -> int:
        row = editing.existing_row(self.project, row)
        if not label:
            raise SessionError("Pick the class to move it to.")
        self.project.move_example(row, editing.existing_class(self.project, label))
        return row

    @exclusive
    def add_from_tray(self, item_id: object, label: str | None = None) -> str:
        """Teach one frame from the tray: add it to ``label``, or to a new class when ``label`` is None."""
        if len(self.project) >= self.max_examples:
            raise SessionError(editing.full_message(self.max_examples))
        if not isinstance(item_id, int) or isinstance(item_id, bool) or all(item.id != item_id for item in self.tray.items):
            raise SessionError("That frame is no longer in the tray.")  # checked before a class is made for it
        label = self.add_class() if label is None else editing.existing_class(self.project, label)
        item = self.tray.take(item_id)
        self.project.add_examples(label, item.embedding[None], [item.thumbnail], "tray")
        return label

    @exclusive
    def add_images(self, label: str, images: list[tuple[str, bytes]]) -> tuple[int, list[str]]:
        """Add uploaded images (name, encoded bytes) to a class: see :func:`editing.add_uploads`."""
        return editing.add_uploads(self.project, label, images, self._embed, self.backbone.prepare, self.max_examples)

    def _embed(self, square: np.ndarray) -> np.ndarray:
        tap = self.project.tap
        return pooled(self.runner.run(square[None], [tap], caller=id(self))[tap])[0]

    # ----------------------------------------------------------------- settings
    @exclusive
    def set_live_settings(self, k: object, threshold: object, smoothing: object) -> None:
        """Neighbours, the unknown threshold and smoothing over frames, each checked before any is changed."""
        self.k, self.threshold, self.smoothing = editing.live_settings(k, threshold, smoothing)

    @exclusive
    def settings(self) -> dict:
        """The settings a person chose, as plain JSON values (kept with an autosaved project)."""
        return {name: getattr(self, name) for name in SETTINGS} | {"map_method": self.views.map.method}

    @exclusive
    def restore_settings(self, settings: dict) -> None:
        """Apply settings saved by :meth:`settings`; anything missing, out of date or invalid is left as it is."""
        for change in (
            lambda: self.set_live_settings(settings.get("k"), settings.get("threshold"), settings.get("smoothing")),
            lambda: self.views.set_grid_tap(settings["grid_tap"]),
            lambda: self.views.set_views(settings["views_on"], settings["map_method"], settings["grid_mode"]),
        ):
            try:
                change()
            except (KeyError, TypeError, ValueError):
                pass

    @exclusive
    def examples_state(self) -> tuple[int, int]:
        """Changes whenever the examples or the classes change: (which project, its version)."""
        return self.generation, self.project.version

    @exclusive
    def state_key(self) -> tuple:
        """Changes whenever the examples, the classes or the settings change (what an autosave must keep)."""
        return (*self.examples_state(), *self.settings().values())

    # ----------------------------------------------------------------- under the hood
    def _subject(self) -> Subject:
        return Subject(self.project, self.views.grid_tap, self.k)

    @exclusive
    def apply_hint(self, hint: Hint) -> str:
        """Do what a hint suggests: move or remove its examples."""
        return editing.apply_hint(self.project, hint)

    # ----------------------------------------------------------------- projects
    def touch(self) -> None:
        """Mark the session as in use (frames and classifications do this themselves)."""
        self.last_active = time.monotonic()

    @exclusive
    def clear_if_idle(self, idle_seconds: float, now: float | None = None) -> bool:
        """Drop the examples of a session unused for ``idle_seconds`` (its class names stay). Returns whether it did."""
        now = time.monotonic() if now is None else now
        if now - self.last_active <= idle_seconds or not len(self.project):
            return False
        classes, tap = self.project.classes, self.project.tap
        self._use(Project.for_backbone(self.backbone, classes, tap, max_classes=self.max_classes))
        self.recorder.stop()
        self.cleared_when_idle = True
        return True

    def load_project(self, data: bytes, progress=None) -> str:
        """Replace the project with a saved one. Limits are checked before any work; a project from another
        backbone is re-embedded from its thumbnails (outside the lock), and the returned message says so."""
        limits = {"max_examples": self.max_examples, "max_classes": self.max_classes}
        try:
            project, note = Project.load(data, backbone=self.backbone, **limits), ""
        except BackboneMismatch as mismatch:
            project = mismatch.project
            note = f" It was made with {project.backbone}; its examples were re-embedded for {self.backbone.name}."
            project.reembed(self.backbone, progress)
        self.replace_project(project)
        return f"Loaded {len(project)} examples in {len(project.classes)} classes.{note}"

    @exclusive
    def resume_after_idle_clear(self) -> None:
        """The page has dealt with an idle clear (restored the saved copy, or found none): work on from here."""
        self.cleared_when_idle = False

    @exclusive
    def replace_project(self, project: Project) -> None:
        """Work on ``project`` from now on (a loaded file, a restored autosave)."""
        if len(project) > self.max_examples:
            raise SessionError(f"The project has {len(project)} examples; this server allows {self.max_examples}.")
        self._use(project)
        self.recorder.stop()
        self.tray.clear()
        self.cleared_when_idle = False

    def _use(self, project: Project) -> None:
        """Work on ``project``; everything computed from the old examples is forgotten."""
        self.project, self.generation = project, self.generation + 1
        self.smoother.reset()
        self.insights.forget()
        self.views.restart()
        self.tray.clear()  # its embeddings may have been read at another tap

    @exclusive
    def start_over(self) -> None:
        """An empty project with the default classes, as a new visitor gets."""
        self.replace_project(Project.for_backbone(self.backbone, DEFAULT_CLASSES, max_classes=self.max_classes))

    @exclusive
    def snapshot(self) -> tuple[Project, dict]:
        """A copy of the project and the settings, taken at once, for saving in another thread."""
        return copy.deepcopy(self.project), self.settings()

    def project_bytes(self) -> bytes:
        return self.snapshot()[0].to_bytes()
