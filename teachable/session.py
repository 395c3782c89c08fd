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
import threading
import time
from concurrent.futures import Executor

import numpy as np

from . import editing
from .activations import GridIcons
from .backbones import Backbone, pooled
from .class_edits import ClassEdits
from .errors import SessionError
from .frame_path import FrameChoices, FramePath, FrameResult
from .insights import Insights, Subject
from .knn import DEFAULT_K, DEFAULT_THRESHOLD
from .project import MAX_CLASSES, BackboneMismatch, Project
from .live_state import RECORD_PER_SECOND, Recorder, Smoother
from .live_views import LiveViews, LiveViewState
from .locking import locked
from .pacing import Pacer
from .runners import FrameRunner, LocalRunner
from .sent_frames import SentFrame
from .tray import HelpTray

__all__ = ["Session", "FrameResult", "LiveViews", "SessionError", "DEFAULT_CLASSES"]

DEFAULT_CLASSES = ("Class 1", "Class 2")
MAX_EXAMPLES = 2000
"""Per-session cap, so one browser cannot exhaust a shared server's memory (about 30 KB per example)."""
SETTINGS = ("k", "threshold", "smoothing", "views_on", "grid_tap", "grid_mode")
"""The per-person settings that are copied with a session and kept with an autosaved project."""


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
        pacer: Pacer | None = None,
    ) -> None:
        self.backbone = backbone
        self.runner = runner or LocalRunner(backbone)
        """Runs frames and added images through the backbone; may be shared with other sessions (a batcher, Ray)."""
        self.pacer = pacer or Pacer()
        """Shared by the server's sessions: long work (re-embedding, the atlas, channel statistics) gives way to
        everyone's live frames."""
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
        self.insights = Insights(backbone, icons, self.lock, self._subject, self.pacer)
        """The views under the hood (review, summaries, units, atlas); each takes this session's lock."""
        self.tray = HelpTray()
        """Recent live frames it was unsure about, for the person to label with one click."""
        self.frames = FramePath(
            backbone, self.runner, self.views, self.recorder, self.smoother, self.tray, id(self), self.pacer
        )
        """The per-frame path; it changes the recorder, smoother, tray and views above, under this lock."""
        self.edits = ClassEdits(
            self.lock, lambda: self.project, self.recorder, self.smoother, self.tray, self._embed, backbone.prepare,
            max_examples,
        )  # fmt: skip
        """The class cards', the tray's and the coach's edits of the project; each takes this session's lock."""
        self.last_active = time.monotonic()
        self.cleared_when_idle = False
        """True after its examples were dropped for idleness (an autosaved copy may bring them back)."""

    def __deepcopy__(self, memo: dict) -> Session:
        # The model, the icons and the runner are shared and read-only; everything else is copied.
        fresh = Session(
            self.backbone, (), k=self.k, threshold=self.threshold, smoothing=self.smoothing,
            max_examples=self.max_examples, max_classes=self.max_classes,
            record_per_second=1.0 / self.recorder.interval, icons=self.views.icons, runner=self.runner,
            pacer=self.pacer,
        )  # fmt: skip
        fresh.project = copy.deepcopy(self.project, memo)
        fresh.views = fresh.frames.views = self.views.copy(fresh.lock, lambda: fresh.project)
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
    @locked
    def step(self, frame: np.ndarray, now: float | None = None, live: bool = True) -> FrameResult:
        """Embed one frame, record it if recording, and classify it (see :class:`FramePath`).

        ``live=False`` is for a still image: it is never recorded, never offered to the tray, and its confidences
        are not blended with earlier frames.
        """
        self.last_active = time.monotonic()
        return self.frames.step(frame, self._choices(), time.monotonic() if now is None else now, live)

    @locked
    def step_embedded(self, sent: SentFrame, now: float | None = None) -> FrameResult:
        """A live frame the person's browser embedded itself (browser inference)."""
        self.last_active = time.monotonic()
        return self.frames.step_embedded(sent, self._choices(), time.monotonic() if now is None else now)

    def _choices(self) -> FrameChoices:
        return FrameChoices(self.project, self.k, self.threshold, self.smoothing, self.max_examples, self.state_key)

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
        project.reembed(self.backbone, self.pacer.paced(progress), tap=tap)
        with self.lock:
            if self.examples_state() != before:
                raise SessionError("The examples changed while they were re-embedded; pick the layer again.")
            self._use(project)
            self.views.fall_back_to_factors()
            return f"Re-embedded {len(project)} examples at {tap} ({self.backbone.tap(tap).channels}-d)."

    def _embed(self, square: np.ndarray) -> np.ndarray:
        tap = self.project.tap
        return pooled(self.runner.run(square[None], [tap], caller=id(self))[tap])[0]

    # ----------------------------------------------------------------- settings
    @locked
    def set_live_settings(self, k: object, threshold: object, smoothing: object) -> None:
        """Neighbours, the unknown threshold and smoothing over frames, each checked before any is changed."""
        self.k, self.threshold, self.smoothing = editing.live_settings(k, threshold, smoothing)

    @locked
    def settings(self) -> dict:
        """The settings a person chose, as plain JSON values (kept with an autosaved project)."""
        return {name: getattr(self, name) for name in SETTINGS} | {"map_method": self.views.map.method}

    @locked
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

    @locked
    def examples_state(self) -> tuple[int, int]:
        """Changes whenever the examples or the classes change: (which project, its version)."""
        return self.generation, self.project.version

    @locked
    def state_key(self) -> tuple:
        """Changes whenever the examples, the classes or the settings change (what an autosave must keep)."""
        return (*self.examples_state(), *self.settings().values())

    # ----------------------------------------------------------------- under the hood
    def _subject(self) -> Subject:
        return Subject(self.project, self.views.grid_tap, self.k)

    # ----------------------------------------------------------------- projects
    def touch(self) -> None:
        """Mark the session as in use (frames and classifications do this themselves)."""
        self.last_active = time.monotonic()

    @locked
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
            project.reembed(self.backbone, self.pacer.paced(progress))
        self.replace_project(project)
        return f"Loaded {len(project)} examples in {len(project.classes)} classes.{note}"

    @locked
    def resume_after_idle_clear(self) -> None:
        """The page has dealt with an idle clear (restored the saved copy, or found none): work on from here."""
        self.cleared_when_idle = False

    @locked
    def replace_project(self, project: Project) -> None:
        """Work on ``project`` from now on (a loaded file, a restored autosave)."""
        if len(project) > self.max_examples:
            raise SessionError(f"The project has {len(project)} examples; this server allows {self.max_examples}.")
        self._use(project)
        self.recorder.stop()
        self.tray.clear()
        self.cleared_when_idle = False
        self.touch()  # someone is working with it: the idle reaper must not take the examples just loaded

    def _use(self, project: Project) -> None:
        """Work on ``project``; everything computed from the old examples is forgotten."""
        self.project, self.generation = project, self.generation + 1
        self.smoother.reset()
        self.insights.forget()
        self.views.restart()
        self.tray.clear()  # its embeddings may have been read at another tap

    @locked
    def start_over(self) -> None:
        """An empty project with the default classes, as a new visitor gets."""
        self.replace_project(Project.for_backbone(self.backbone, DEFAULT_CLASSES, max_classes=self.max_classes))

    @locked
    def snapshot(self) -> tuple[Project, dict]:
        """A copy of the project and the settings, taken at once, for saving in another thread."""
        return copy.deepcopy(self.project), self.settings()

    def project_bytes(self) -> bytes:
        return self.snapshot()[0].to_bytes()
