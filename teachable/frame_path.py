"""A session's per-frame path, run under the session's lock: embed a camera frame (or take the embedding a browser
made), record it while a take is on, classify it, smooth the confidences, offer it to the tray, and place it on the
live views.

:class:`FramePath` owns none of the state it changes: the recorder, the smoother, the tray and the live views are
the session's, and it reads the session's project and choices through :class:`FrameChoices` on every frame, so a
change the page makes between two frames holds from the next one on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import editing
from .backbones import Backbone, pooled
from .frames import encode_jpeg
from .knn import Prediction
from .live_state import Recorder, Smoother
from .live_views import LiveViews, LiveViewState
from .pacing import Pacer
from .project import Project
from .runners import FrameRunner
from .sent_frames import SentFrame
from .tray import HelpTray, uncertainty

__all__ = ["FrameChoices", "FramePath", "FrameResult"]


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
    wants_picture: bool = False
    """A frame that came without its picture, which the tray would have offered: the next one should bring it."""

    @property
    def label(self) -> str:
        """The label to show: a class, "unknown", or "" when there is no prediction."""
        return self.prediction.shown_label if self.prediction else ""


@dataclass(frozen=True)
class FrameChoices:
    """What a frame's answer depends on besides the examples, read from the session for each frame."""

    project: Project
    k: int
    threshold: float
    """The strictness of "not sure"."""
    smoothing: float
    max_examples: int
    state: Callable[[], tuple]
    """What the predictions depend on (the tray rechecks its frames when it changes)."""


class FramePath:
    """One session's frames, from pixels (or a browser's embedding) to a :class:`FrameResult`."""

    def __init__(
        self,
        backbone: Backbone,
        runner: FrameRunner,
        views: LiveViewState,
        recorder: Recorder,
        smoother: Smoother,
        tray: HelpTray,
        caller: int,
        pacer: Pacer,
    ) -> None:
        self.backbone, self.runner, self.views, self.caller, self.pacer = backbone, runner, views, caller, pacer
        self.recorder, self.smoother, self.tray = recorder, smoother, tray

    def step(self, frame: np.ndarray, choices: FrameChoices, now: float, live: bool) -> FrameResult:
        """Embed a camera frame (with the grid tap while the views are on), then :meth:`classify` it."""
        square = self.backbone.prepare(frame)
        self.pacer.frame()  # long work on the server gives way while people's frames and pictures are run
        tap, grid_tap = choices.project.tap, self.views.grid_tap
        outputs = self.runner.run(square[None], [grid_tap, tap] if self.views.on else [tap], caller=self.caller)
        embedding = pooled(outputs[tap])[0]
        grid_activation = outputs[grid_tap][0].cpu().numpy() if self.views.on else None
        return self.classify(embedding, square, lambda: encode_jpeg(square), grid_activation, choices, now, live)

    def step_embedded(self, sent: SentFrame, choices: FrameChoices, now: float) -> FrameResult:
        """A live frame the person's browser embedded itself: recorded, and offered to the tray, only when it
        brings its thumbnail; the browser draws its own activation grid."""
        thumbnail = None if sent.thumbnail is None else (lambda: sent.thumbnail)
        self.pacer.frame()  # the server's CPU still answers it: long work gives way as for a frame run here
        return self.classify(sent.embedding, None, thumbnail, None, choices, now, live=True)

    def classify(self, embedding, square, thumbnail, grid_activation, choices: FrameChoices, now: float, live: bool):
        """Record, classify, smooth, tray, map. ``thumbnail`` makes the JPEG an example or a tray item keeps
        (None: there is none, so the frame is neither)."""
        project = choices.project
        recorded = live and thumbnail is not None and self._record_if_due(embedding, thumbnail, choices, now)
        if not len(project):
            views = self.views.draw(None, square, grid_activation)
            message = "No examples yet: record a few frames of each class."
            return FrameResult(None, {}, message, recorded, square, grid_activation, None, views)
        prediction = self.predict(embedding, choices)
        confidences = self.smoother(prediction.confidences, choices.smoothing) if live else prediction.confidences
        wants_picture = False
        if live and self.recorder.label is None:
            filled = sum(1 for count in project.counts().values() if count)
            unsure = lambda item: uncertainty(self.predict(item.embedding, choices), filled) is not None  # noqa: E731
            self.tray.recheck(choices.state, unsure)
            if thumbnail is not None:
                self.tray.consider(prediction, embedding, thumbnail, filled, now)
            else:
                wants_picture = self.tray.would_consider(prediction, filled, now)
        map_point = self.views.map_point(prediction, live) if self.views.on else None
        views = self.views.draw(prediction, square, grid_activation)
        message = editing.next_step(project)  # an unknown frame says so in its label, with the best guess
        return FrameResult(
            prediction, confidences, message, recorded, square, grid_activation, map_point, views, wants_picture
        )

    @staticmethod
    def predict(embedding: np.ndarray, choices: FrameChoices) -> Prediction:
        choices.project.classifier.threshold = choices.threshold
        return choices.project.predict(embedding, choices.k)

    def _record_if_due(self, embedding, thumbnail: Callable[[], bytes], choices: FrameChoices, now: float) -> bool:
        if not self.recorder.due(now):
            return False
        if len(choices.project) >= choices.max_examples:
            self.recorder.stop()
            return False
        choices.project.add_examples(self.recorder.label, embedding[None], [thumbnail()], "webcam", self.recorder.take)
        self.recorder.kept(now)
        return True
