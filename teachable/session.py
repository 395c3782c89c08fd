"""One person's working state: their project, the live settings, and the per-frame step the UI calls.

``Session.step(frame)`` is the whole per-frame path: prepare the frame, embed it, record it when recording is on
(rate-limited), classify it, smooth the confidences. The web page, the ``classify`` API endpoint and the video
player all call it, so they behave the same. This module knows nothing of Gradio; it can be driven from Python.

The backbone is shared by every session and only read; everything else belongs to one session.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from .backbones import Backbone
from .frames import ImageError, decode_image, encode_jpeg
from .knn import DEFAULT_K, DEFAULT_THRESHOLD, Prediction
from .project import BackboneMismatch, Project

__all__ = ["Session", "FrameResult", "SessionError", "DEFAULT_CLASSES"]

DEFAULT_CLASSES = ("Class 1", "Class 2")
MAX_EXAMPLES = 2000
"""Per-session cap, so one browser cannot exhaust a shared server's memory (about 30 KB per example)."""
RECORD_PER_SECOND = 10


class SessionError(ValueError):
    """Something the person asked for that cannot be done, with a message that says why."""


@dataclass(frozen=True)
class FrameResult:
    prediction: Prediction | None
    """None when there is nothing to compare with yet (see ``message``)."""
    confidences: dict[str, float]
    """Smoothed over recent frames; what the confidence bars show."""
    message: str = ""
    recorded: bool = False
    """Whether this frame was added as an example."""

    @property
    def label(self) -> str:
        """The label to show: a class, "unknown", or "" when there is no prediction."""
        return self.prediction.shown_label if self.prediction else ""


class Session:
    """A person's project plus live settings. Not thread-safe: one browser drives one session."""

    def __init__(
        self,
        backbone: Backbone,
        classes: tuple[str, ...] = DEFAULT_CLASSES,
        *,
        k: int = DEFAULT_K,
        threshold: float = DEFAULT_THRESHOLD,
        smoothing: float = 0.5,
        max_examples: int = MAX_EXAMPLES,
        record_per_second: float = RECORD_PER_SECOND,
    ) -> None:
        self.backbone = backbone
        self.project = Project.for_backbone(backbone, classes)
        self.k = k
        self.threshold = threshold
        self.smoothing = smoothing
        self.max_examples = max_examples
        self.record_interval = 1.0 / record_per_second
        self.recording: str | None = None
        self.recorded_this_take = 0
        self._last_recorded_at = -np.inf
        self._smoothed: dict[str, float] = {}
        self.last_active = time.monotonic()

    def __deepcopy__(self, memo: dict) -> "Session":
        memo[id(self.backbone)] = self.backbone  # the model is read-only and shared, never copied
        clone = copy.copy(self)
        clone.project = copy.deepcopy(self.project, memo)
        clone._smoothed = dict(self._smoothed)
        return clone

    # ----------------------------------------------------------------- the frame path
    def step(self, frame: np.ndarray, now: float | None = None, live: bool = True) -> FrameResult:
        """Embed one frame, record it if recording, and classify it.

        ``live=False`` is for a still image: it is never recorded, and its confidences are not blended with
        earlier frames.
        """
        now = time.monotonic() if now is None else now
        self.last_active = now
        square = self.backbone.prepare(frame)
        embedding = self.backbone.embed(square[None])[0]
        recorded = False
        due = now - self._last_recorded_at >= self.record_interval - 1e-6  # tolerance for clock rounding
        if live and self.recording and due and self._has_room():
            self.project.add_examples(self.recording, embedding[None], [encode_jpeg(square)], "webcam")
            self._last_recorded_at = now
            self.recorded_this_take += 1
            recorded = True
        if not len(self.project):
            return FrameResult(None, {}, "No examples yet: record a few frames of each class.", recorded)
        self.project.classifier.threshold = self.threshold
        prediction = self.project.predict(embedding, self.k)
        message = self._advice(prediction)
        confidences = self._smooth(prediction.confidences) if live else prediction.confidences
        return FrameResult(prediction, confidences, message, recorded)

    def _advice(self, prediction: Prediction) -> str:
        filled = [name for name, count in self.project.counts().items() if count]
        if len(filled) == 1:
            return f"Only '{filled[0]}' has examples: add a second class to compare against."
        if prediction.is_unknown:
            return "This looks like none of your classes."
        return ""

    def _smooth(self, confidences: dict[str, float]) -> dict[str, float]:
        if set(confidences) != set(self._smoothed):
            self._smoothed = dict(confidences)
        else:
            a = self.smoothing
            self._smoothed = {name: a * self._smoothed[name] + (1 - a) * value for name, value in confidences.items()}
        return dict(self._smoothed)

    def _has_room(self) -> bool:
        if len(self.project) < self.max_examples:
            return True
        self.recording = None
        return False

    # ----------------------------------------------------------------- recording and examples
    def start_recording(self, label: str) -> None:
        if label not in self.project.classes:
            raise SessionError(f"There is no class named {label!r}.")
        if len(self.project) >= self.max_examples:
            raise SessionError(self._full_message())
        self.recording = label
        self.recorded_this_take = 0
        self._last_recorded_at = -np.inf

    def stop_recording(self) -> int:
        self.recording = None
        return self.recorded_this_take

    def _full_message(self) -> str:
        return (
            f"This project has reached its limit of {self.max_examples} examples. Remove some examples "
            "(near-duplicates first) before adding more."
        )

    def add_images(self, label: str, images: list[tuple[str, bytes]]) -> tuple[int, list[str]]:
        """Add uploaded images (name, encoded bytes) to a class. Returns how many were added and one message per
        file that was refused; refused files change nothing."""
        if label not in self.project.classes:
            raise SessionError(f"There is no class named {label!r}.")
        added, problems = 0, []
        for name, data in images:
            if len(self.project) >= self.max_examples:
                problems.append(self._full_message())
                break
            try:
                square = self.backbone.prepare(decode_image(data, name))
            except ImageError as error:
                problems.append(str(error))
                continue
            self.project.add_examples(label, self.backbone.embed(square[None]), [encode_jpeg(square)], name)
            added += 1
        return added, problems

    # ----------------------------------------------------------------- projects
    def load_project(self, data: bytes, progress=None) -> str:
        """Replace the project with a saved one. A project from another backbone is re-embedded from its
        thumbnails; the returned message says so."""
        try:
            project = Project.load(data, backbone=self.backbone)
            note = ""
        except BackboneMismatch as mismatch:
            project = mismatch.project
            note = f" It was made with {project.backbone}; its examples were re-embedded for {self.backbone.name}."
            project.reembed(self.backbone, progress)
        if len(project) > self.max_examples:
            raise SessionError(f"The project has {len(project)} examples; this server allows {self.max_examples}.")
        self.project = project
        self.recording = None
        self._smoothed = {}
        return f"Loaded {len(project)} examples in {len(project.classes)} classes.{note}"

    def project_bytes(self) -> bytes:
        return self.project.to_bytes()
