"""One person's working state: their project, the live settings, and the per-frame step the UI calls.

``Session.step(frame)`` is the whole per-frame path: prepare the frame, embed it, record it when recording is on
(rate-limited), classify it, smooth the confidences. The web page, the ``classify`` API endpoint and the video
player all call it, so they behave the same. This module knows nothing of Gradio; it can be driven from Python.

The backbone is shared by every session and only read; everything else belongs to one session.
"""

from __future__ import annotations

import copy
import functools
import math
import threading
import time
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

import cv2
import numpy as np

from .activations import MODES, GridIcons, IconCells, attribution_map, factor_grid, heat_overlay, icon_cells
from .backbones import Backbone, pooled
from .cache import KeyedCache
from .coach import Hint, Review, review
from .frames import ImageError, decode_image, encode_jpeg
from .inference import FrameRunner, LocalRunner
from .knn import DEFAULT_K, DEFAULT_THRESHOLD, Prediction, near_copy_takes
from .project import MAX_CLASSES, BackboneMismatch, Project
from .projection import METHODS, EmbeddingMap, place
from .summary import ChannelStats, channel_stats, class_summary, compare_classes, top_examples
from .tray import HelpTray, uncertainty

__all__ = ["Session", "FrameResult", "LiveViews", "SessionError", "DEFAULT_CLASSES"]

DEFAULT_CLASSES = ("Class 1", "Class 2")
MAX_EXAMPLES = 2000
"""Per-session cap, so one browser cannot exhaust a shared server's memory (about 30 KB per example)."""
RECORD_PER_SECOND = 10
BACKDROP_SIDE = 56
"""Side of the frame copy drawn darkened behind the icons (blurred up to the grid's size; it is only a backdrop)."""
SETTINGS = ("k", "threshold", "smoothing", "views_on", "grid_tap", "grid_mode")
"""The per-person settings that are copied with a session and kept with an autosaved project."""


class SessionError(ValueError):
    """Something the person asked for that cannot be done, with a message that says why."""


def exclusive(method):
    """Run a Session method while holding the session's lock (re-entrant, so methods may call each other)."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)

    return locked


@dataclass(frozen=True)
class LiveViews:
    """What the embedding map and the activation grid draw for one frame."""

    grid: np.ndarray | IconCells | None = field(repr=False)
    """The activation grid in the session's mode: an RGB picture (factors, attribution), the cells as data (icons,
    which the page draws from its icon sheet), or None when the mode has nothing to show."""
    positions: np.ndarray = field(repr=False)
    """Map positions of every example (``N x 2``)."""
    layout_key: tuple
    """Changes exactly when the drawn points must change (a new layout, method, or set of examples)."""
    method: str
    """The map method the person chose."""
    fitting: bool
    """Whether a new layout is being fitted in the background."""
    trail: tuple[np.ndarray, ...] = ()
    """The live point's recent positions, oldest first."""
    shown_method: str = "none"
    """What the layout on screen was fitted with: ``umap``, ``pca`` or ``none`` (see ``projection.layout_method``)."""


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
    """A person's project plus live settings. Methods that read or change the project hold the session's lock, so
    two tabs of one browser may drive the same session.

    Every change the page makes goes through a method here that checks its input and raises
    :class:`SessionError` (or ``ProjectError``) with a message for the person.
    """

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
        """Runs live frames and added images through the backbone; may be shared with other sessions (a batcher,
        an inference service)."""
        self.icons = icons
        """Shared, read-only icons for the backbone's grid tap (None: the icons mode is unavailable)."""
        self.project = Project.for_backbone(backbone, classes, max_classes=max_classes)
        self.k = k
        self.threshold = threshold
        self.smoothing = smoothing
        self.max_examples = max_examples
        self.record_interval = 1.0 / record_per_second
        self.recording: str | None = None
        self.take: int | None = None
        """The take the frames being recorded join (one per hold of the record button)."""
        self.recorded_this_take = 0
        self._last_recorded_at = -np.inf
        self._smoothed: dict[str, float] = {}
        self.last_active = time.monotonic()
        self.views_on = True
        self.grid_tap = backbone.grid_tap
        self.grid_mode = "icons" if icons is not None else "factors"
        self.map = EmbeddingMap(map_executor)
        self.trail: deque[np.ndarray] = deque(maxlen=12)
        self.tray = HelpTray()
        """Recent live frames it was unsure about, for the person to label with one click."""
        self._tray_checked_at: tuple | None = None  # the state_key the tray's items were last predicted at
        self._positions: KeyedCache[np.ndarray] = KeyedCache()
        self._factors: np.ndarray | None = None
        self._atlas: KeyedCache = KeyedCache()
        self._review: KeyedCache[Review] = KeyedCache()
        self._channel_cache: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
        """(example uid, tap) -> (spatial mean, spatial max) per channel."""
        self.max_classes = max_classes
        self.cleared_when_idle = False
        """True after its examples were dropped for idleness (an autosaved copy may bring them back)."""
        self.lock = threading.RLock()

    def __deepcopy__(self, memo: dict) -> "Session":
        # The model, the icons and the map executor are shared and read-only; everything else is copied.
        fresh = Session(self.backbone, (), icons=self.icons, runner=self.runner)
        fresh.max_classes = self.max_classes
        fresh.map = self.map.restarted()
        fresh.project = copy.deepcopy(self.project, memo)
        for name in SETTINGS + ("max_examples", "record_interval"):
            setattr(fresh, name, getattr(self, name))
        return fresh

    # ----------------------------------------------------------------- the frame path
    @exclusive
    def step(self, frame: np.ndarray, now: float | None = None, live: bool = True) -> FrameResult:
        """Embed one frame, record it if recording, and classify it.

        ``live=False`` is for a still image: it is never recorded, never offered to the tray, and its confidences
        are not blended with earlier frames.
        """
        now = time.monotonic() if now is None else now
        self.last_active = time.monotonic()
        square = self.backbone.prepare(frame)
        tap = self.project.tap
        taps = [self.grid_tap, tap] if self.views_on else [tap]
        outputs = self.runner.run(square[None], taps, caller=id(self))
        embedding = pooled(outputs[tap])[0]
        grid_activation = outputs[self.grid_tap][0].cpu().numpy() if self.views_on else None
        recorded = live and self._record_if_due(embedding, square, now)
        if not len(self.project):
            message = "No examples yet: record a few frames of each class."
            views = self._live_views(None, square, grid_activation, None)
            return FrameResult(None, {}, message, recorded, square, grid_activation, None, views)
        self.project.classifier.threshold = self.threshold
        prediction = self.project.predict(embedding, self.k)
        confidences = self._smooth(prediction.confidences) if live else prediction.confidences
        if live and not self.recording:
            self._drop_explained_from_tray()
            self._offer_to_tray(prediction, embedding, square, now)
        map_point = self._map_point(prediction, live) if self.views_on else None
        views = self._live_views(prediction, square, grid_activation, map_point)
        result = FrameResult(
            prediction, confidences, self._advice(prediction), recorded, square, grid_activation, map_point, views
        )
        return result

    def _record_if_due(self, embedding: np.ndarray, square: np.ndarray, now: float) -> bool:
        due = now - self._last_recorded_at >= self.record_interval - 1e-6  # tolerance for clock rounding
        if not (self.recording and due and self._has_room()):
            return False
        self.project.add_examples(self.recording, embedding[None], [encode_jpeg(square)], "webcam", self.take)
        self._last_recorded_at = now
        self.recorded_this_take += 1
        return True

    def _offer_to_tray(self, prediction: Prediction, embedding: np.ndarray, square: np.ndarray, now: float) -> None:
        filled = sum(1 for count in self.project.counts().values() if count)
        reason = uncertainty(prediction, filled)
        if reason and self.tray.wants(now):
            self.tray.offer(embedding, encode_jpeg(square), prediction.label, reason, now)

    def _drop_explained_from_tray(self) -> None:
        """After the examples or settings changed: drop the tray's frames the classifier is now sure about."""
        if not len(self.tray):  # the usual case on the frame path: nothing to check, no key to build
            return
        key = self.state_key()
        if key == self._tray_checked_at:
            return
        self._tray_checked_at = key
        self.project.classifier.threshold = self.threshold
        filled = sum(1 for count in self.project.counts().values() if count)
        self.tray.drop_explained(
            lambda item: uncertainty(self.project.predict(item.embedding, self.k), filled) is not None
        )

    def _map_point(self, prediction: Prediction, live: bool) -> np.ndarray:
        rows = np.array([n.index for n in prediction.neighbours])
        point = place(self.map_positions()[rows], np.array([n.similarity for n in prediction.neighbours]))
        if live:
            self.trail.append(point)
        return point

    def _live_views(self, prediction, square, grid_activation, map_point) -> LiveViews | None:
        if not self.views_on:
            return None
        positions = self.map_positions() if len(self.project) else np.zeros((0, 2))
        layout_key = (self.map.version, self.map.method, self.map.fitting, tuple(self.project.uids))
        grid = self._grid_image(prediction, square, grid_activation)
        return LiveViews(
            grid, positions, layout_key, self.map.method, self.map.fitting, tuple(self.trail), self.map.shown_method
        )

    # ----------------------------------------------------------------- live views
    @exclusive
    def map_positions(self) -> np.ndarray:
        """Map positions of all examples (``N x 2``). Asks for a background refit when the examples changed."""
        uids = self.project.uids
        self.map.request(uids, self.project.embeddings)
        key = (self.map.version, self.map.method, tuple(uids))
        return self._positions.get(key, lambda: self.map.positions(uids, np.asarray(self.project.embeddings)))

    def set_map_method(self, method: str, fresh: bool = False) -> None:
        if method not in METHODS:
            raise SessionError(f"Unknown map method {method!r}; choose one of {', '.join(METHODS)}.")
        if method != self.map.method or fresh:
            self.map = self.map.restarted(method)
            self._positions.clear()
            self.trail.clear()

    @exclusive
    def set_views(self, on: bool, method: str, mode: str) -> None:
        """Turn the live map and grid on or off, and choose the map's projection and the grid's mode."""
        self.views_on = bool(on)
        self.set_map_method(method)
        self.set_grid_mode(mode)

    def _icons_fit(self) -> bool:
        return self.icons is not None and self.icons.tap == self.grid_tap

    def set_grid_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise SessionError(f"Unknown grid mode {mode!r}; choose one of {', '.join(MODES)}.")
        if mode == "icons" and not self._icons_fit():
            raise SessionError(
                f"There are no icons for {self.backbone.name}/{self.grid_tap}; make them with "
                f"`teachable atlas icons --backbone {self.backbone.name} --tap {self.grid_tap}`."
            )
        if mode == "attribution" and not self._attribution_possible():
            raise SessionError("Attribution needs the embedding to be read after the grid layer; pick a later one.")
        self.grid_mode = mode
        self._factors = None

    def _attribution_possible(self) -> bool:
        stages = list(self.backbone.taps)
        return stages.index(self.project.tap) > stages.index(self.grid_tap)

    @exclusive
    def set_grid_tap(self, tap: str) -> None:
        """Read the activation grid at another spatial tap. The icons mode needs icons made for that tap."""
        if not self.backbone.tap(tap).is_spatial:
            raise SessionError(f"{tap} has no spatial grid; pick a layer with a feature map.")
        self.grid_tap = tap
        self._factors = None
        self._fall_back_to_factors()

    def _fall_back_to_factors(self) -> None:
        """After a layer change, a mode that no longer applies gives way to factors, which always do."""
        icons_gone = self.grid_mode == "icons" and not self._icons_fit()
        if icons_gone or self.grid_mode == "attribution" and not self._attribution_possible():
            self.grid_mode = "factors"

    def set_embedding_tap(self, tap: str, progress=None) -> str:
        """Embed at another depth: every example is re-embedded from its thumbnail, and the map starts afresh.

        The re-embedding (minutes for a large project) works on a copy, outside the session's lock, so the page's
        frames, commands and reloads are answered meanwhile; the copy takes the project's place only if its
        examples did not change in between (else nothing changes, and the message says to pick the layer again).
        """
        self.backbone.tap(tap)
        with self.lock:
            if tap == self.project.tap:
                return f"The embedding already comes from {tap}."
            before, project = self._examples_key(), copy.deepcopy(self.project)
        project.reembed(self.backbone, progress, tap=tap)
        with self.lock:
            if self._examples_key() != before:
                raise SessionError("The examples changed while they were re-embedded; pick the layer again.")
            self.project = project
            return self._after_reembedding(tap)

    def _examples_key(self) -> tuple:
        labels = tuple(example.label for example in self.project.examples)
        return tuple(self.project.uids), labels, tuple(self.project.classes), self.project.tap

    def _after_reembedding(self, tap: str) -> str:
        self.set_map_method(self.map.method, fresh=True)
        self._smoothed = {}
        self.tray.clear()  # its embeddings were read at the old tap
        self._fall_back_to_factors()
        return f"Re-embedded {len(self.project)} examples at {tap} ({self.backbone.tap(tap).channels}-d)."

    @exclusive
    def atlas(self, progress=None):
        """The Activation Atlas of this project's examples at the grid tap; cached until the examples change."""
        from .atlas import build_atlas

        if not self._icons_fit():
            raise SessionError("The atlas draws icons, and there are none for this layer; pick the default grid layer.")
        if len(self.project) < 2:
            raise SessionError("Add a few examples first: the atlas is made of their activations.")
        key = (tuple(self.project.uids), tuple(e.label for e in self.project.examples), self.grid_tap)
        return self._atlas.get(key, lambda: build_atlas(self.backbone, self.project, self.icons, progress=progress))

    def _grid_image(self, prediction, square, grid_activation) -> np.ndarray | IconCells | None:
        """The activation grid of a frame in the current mode: a picture, or for icons the cells as data."""
        if grid_activation is None or square is None:
            return None
        if self.grid_mode == "icons" and self.icons is not None:
            if not self._icons_fit():
                return None
            backdrop = cv2.resize(square, (BACKDROP_SIDE, BACKDROP_SIDE), interpolation=cv2.INTER_AREA)
            return IconCells(*icon_cells(grid_activation, self.icons), backdrop)
        if self.grid_mode == "attribution" and prediction is not None:
            rows = self.project.indices_of(prediction.label)
            attribution = self.backbone.falling_back_to_cpu(
                lambda: attribution_map(
                    self.backbone, square, self.project.embeddings[rows], tap=self.grid_tap, until=self.project.tap
                )
            )
            return heat_overlay(attribution, square)
        image, self._factors = factor_grid(grid_activation, square, previous=self._factors)
        return image

    def _advice(self, prediction: Prediction) -> str:
        return self.next_step()  # an unknown frame says so in its label ("Not sure"), with the best guess

    def next_step(self) -> str:
        """What a person should do next while fewer than two classes have examples, from the project as it is;
        empty once there is something to tell apart."""
        counts = self.project.counts()
        filled = [name for name, count in counts.items() if count]
        empty = [name for name, count in counts.items() if not count]
        if not filled:
            return "Record a few examples of each class to start."
        if len(filled) == 1 and empty:
            return f"Now record some examples of '{empty[0]}', so there is something to tell '{filled[0]}' apart from."
        if len(filled) == 1:
            return f"Only '{filled[0]}' has examples: add a second class to compare against."
        return ""

    def opening_message(self) -> str:
        """The prediction panel's words before the first frame: the next step, or that the work is ready."""
        waiting = self.next_step()
        if waiting:
            return waiting
        total, classes = len(self.project), sum(1 for count in self.project.counts().values() if count)
        return f"{total} examples in {classes} classes are ready: start the camera to see what it recognises."

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
        self.recording = self.take = None
        return False

    # ----------------------------------------------------------------- recording and examples
    @exclusive
    def start_recording(self, label: str) -> None:
        if label not in self.project.classes:
            raise SessionError(f"There is no class named {label!r}.")
        if len(self.project) >= self.max_examples:
            raise SessionError(self._full_message())
        self.recording = label
        self.take = self.project.new_take()
        self.recorded_this_take = 0
        self._last_recorded_at = -np.inf

    @exclusive
    def stop_recording(self) -> int:
        """End the take; returns how many frames it recorded."""
        self.recording = self.take = None
        return self.recorded_this_take

    # ----------------------------------------------------------------- classes
    @exclusive
    def add_class(self, name: str | None = None) -> str:
        """Add a class; without a name it is called "Class N" with the first free N. Returns the name."""
        if name is None:
            taken = set(self.project.classes)
            name = next(f"Class {n}" for n in range(1, len(taken) + 2) if f"Class {n}" not in taken)
        return self.project.add_class(name)

    @exclusive
    def rename_class(self, old: str | None, new: str) -> str:
        old = self._existing_class(old)
        new = self.project.rename_class(old, new)
        if self.recording == old:
            self.recording = new
        self._smoothed = {}
        return new

    @exclusive
    def remove_class(self, name: str | None) -> None:
        """Delete a class and its examples; recording into it stops."""
        name = self._existing_class(name)
        if self.recording == name:
            self.stop_recording()
        self.project.remove_class(name)
        self._smoothed = {}

    @exclusive
    def clear_class(self, name: str | None) -> int:
        """Remove every example of a class; returns how many there were."""
        name = self._existing_class(name)
        count = self.project.counts()[name]
        self.project.clear_class(name)
        return count

    def _existing_class(self, name: object) -> str:
        if not name:
            raise SessionError("Select a class first.")
        if name not in self.project.classes:
            raise SessionError(f"There is no class named {name!r}.")
        return name  # type: ignore[return-value]

    # ----------------------------------------------------------------- examples
    def _existing_row(self, row: object) -> int:
        count = len(self.project)
        if not count:
            raise SessionError("There are no examples yet.")
        if isinstance(row, float) and row.is_integer():
            row = int(row)
        if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < count:
            raise SessionError(f"Give an example number from 0 to {count - 1}.")
        return row

    @exclusive
    def remove_example(self, row: object) -> int:
        row = self._existing_row(row)
        self.project.remove_examples([row])
        return row

    @exclusive
    def move_example(self, row: object, label: str | None) -> int:
        row = self._existing_row(row)
        if not label:
            raise SessionError("Pick the class to move it to.")
        self.project.move_example(row, self._existing_class(label))
        return row

    @exclusive
    def add_from_tray(self, item_id: object, label: str | None = None) -> str:
        """Teach one frame from the tray: add it to ``label``, or to a new class when ``label`` is None."""
        if not isinstance(item_id, int) or isinstance(item_id, bool):
            raise SessionError("That frame is no longer in the tray.")
        if len(self.project) >= self.max_examples:
            raise SessionError(self._full_message())
        if all(item.id != item_id for item in self.tray.items):  # checked before a new class is made for it
            raise SessionError("That frame is no longer in the tray.")
        label = self.add_class() if label is None else self._existing_class(label)
        item = self.tray.take(item_id)
        self.project.add_examples(label, item.embedding[None], [item.thumbnail], "tray")
        return label

    # ----------------------------------------------------------------- settings
    @exclusive
    def set_live_settings(self, k: object, threshold: object, smoothing: object) -> None:
        """Neighbours, the unknown threshold and smoothing over frames, each checked before any is changed."""
        k = _number(k, "Neighbours (k)", 1, 50)
        if not float(k).is_integer():
            raise SessionError("Neighbours (k) must be a whole number.")
        threshold = _number(threshold, "The unknown threshold", 0.0, 1.0)
        smoothing = _number(smoothing, "Smoothing", 0.0, 0.99)
        self.k, self.threshold, self.smoothing = int(k), threshold, smoothing

    def settings(self) -> dict:
        """The settings a person chose, as plain JSON values (kept with an autosaved project)."""
        return {name: getattr(self, name) for name in SETTINGS} | {"map_method": self.map.method}

    @exclusive
    def restore_settings(self, settings: dict) -> None:
        """Apply settings saved by :meth:`settings`; anything missing, out of date or invalid is left as it is."""
        try:
            self.set_live_settings(settings.get("k"), settings.get("threshold"), settings.get("smoothing"))
        except SessionError:
            pass
        for change in (
            lambda: self.set_grid_tap(settings["grid_tap"]),
            lambda: self.set_views(settings["views_on"], settings["map_method"], settings["grid_mode"]),
        ):
            try:
                change()
            except (KeyError, TypeError, ValueError):
                pass

    @exclusive
    def state_key(self) -> tuple:
        """Changes whenever the examples, the classes or the settings change (what an autosave must keep)."""
        return (*self._examples_key(), *self.settings().values())

    def _full_message(self) -> str:
        return (
            f"This project has reached its limit of {self.max_examples} examples. Remove some examples "
            "(near-duplicates first) before adding more."
        )

    @exclusive
    def add_images(self, label: str, images: list[tuple[str, bytes]]) -> tuple[int, list[str]]:
        """Add uploaded images (name, encoded bytes) to a class. Returns how many were added and one message per
        file that was refused; refused files change nothing.

        Each image is a take of its own (uploads are usually distinct photos), except that images of one upload
        that are near-copies of each other (``knn.near_copy_takes``, e.g. a burst) share a take."""
        if label not in self.project.classes:
            raise SessionError(f"There is no class named {label!r}.")
        accepted, problems = [], []
        for name, data in images:
            if len(self.project) + len(accepted) >= self.max_examples:
                problems.append(self._full_message())
                break
            try:
                square = self.backbone.prepare(decode_image(data, name))
            except ImageError as error:
                problems.append(str(error))
                continue
            tap = self.project.tap
            embedding = pooled(self.runner.run(square[None], [tap], caller=id(self))[tap])[0]
            accepted.append((name, embedding, encode_jpeg(square)))
        if accepted:
            groups = near_copy_takes(np.stack([embedding for _, embedding, _ in accepted]), [label] * len(accepted))
            takes = [self.project.new_take() for _ in range(int(groups.max()) + 1)]
            for (name, embedding, jpeg), group in zip(accepted, groups):
                self.project.add_examples(label, embedding[None], [jpeg], name, takes[group])
        return len(accepted), problems

    def touch(self) -> None:
        """Mark the session as in use (frames and classifications do this themselves)."""
        self.last_active = time.monotonic()

    def clear_if_idle(self, idle_seconds: float, now: float | None = None) -> bool:
        """Drop the examples of a session unused for ``idle_seconds`` (its class names stay). Returns whether it did."""
        now = time.monotonic() if now is None else now
        with self.lock:
            if now - self.last_active <= idle_seconds or not len(self.project):
                return False
            self.project = Project.for_backbone(
                self.backbone, self.project.classes, self.project.tap, max_classes=self.max_classes
            )
            self._forget_examples()
            self.cleared_when_idle = True
            return True

    def _forget_examples(self) -> None:
        """After the project was replaced or emptied: drop everything computed from its examples."""
        self.recording = self.take = None
        self._smoothed, self._channel_cache = {}, {}
        self._atlas.clear()
        self._review.clear()
        self.tray.clear()
        self.set_map_method(self.map.method, fresh=True)

    # ----------------------------------------------------------------- under the hood
    @exclusive
    def review(self) -> Review:
        """Leave-one-out evaluation and data-coach hints; cached until the examples or k change."""
        filled = [name for name, count in self.project.counts().items() if count]
        if len(filled) < 2 or len(self.project) < 3:
            raise SessionError("The evaluation needs at least three examples in at least two classes.")
        key = (tuple(self.project.uids), tuple(e.label for e in self.project.examples), self.k, self.project.tap)
        return self._review.get(key, lambda: review(self.project.classifier, self.project.classes, self.k))

    @exclusive
    def apply_hint(self, hint: Hint) -> str:
        """Do what a hint suggests: move or remove its examples."""
        if hint.fix == "move":
            for row in hint.examples:
                self.project.move_example(row, hint.move_to)
            return f"Moved {len(hint.examples)} example(s) to '{hint.move_to}'."
        if hint.fix == "remove":
            self.project.remove_examples(list(hint.examples))
            return f"Removed {len(hint.examples)} example(s)."
        raise SessionError("This hint is advice: there is nothing to apply with one click.")

    @exclusive
    def channel_stats(self, progress=None, batch_size: int = 16) -> ChannelStats:
        """Per-example channel means and maxima at the grid tap, read from the thumbnails once per example."""
        tap = self.grid_tap
        missing = [e for e in self.project.examples if (e.uid, tap) not in self._channel_cache]
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            squares = np.stack([self.backbone.prepare(decode_image(e.thumbnail)) for e in chunk])
            stats = channel_stats(tap, self.backbone.run(squares, [tap])[tap].cpu().numpy())
            for example, mean, maximum in zip(chunk, stats.means, stats.maxima):
                self._channel_cache[(example.uid, tap)] = (mean, maximum)
            if progress:
                progress(start + len(chunk), len(missing))
        rows = [self._channel_cache[(e.uid, tap)] for e in self.project.examples]
        channels = self.backbone.tap(tap).channels
        means = np.stack([r[0] for r in rows]) if rows else np.zeros((0, channels))
        maxima = np.stack([r[1] for r in rows]) if rows else np.zeros((0, channels))
        return ChannelStats(tap, means, maxima)

    def class_summary(self, top: int = 8, progress=None) -> dict[str, list[tuple[int, float]]]:
        if len([c for c in self.project.counts().values() if c]) < 2:
            raise SessionError("A class summary compares classes: add examples to at least two.")
        return class_summary(self.channel_stats(progress).means, [e.label for e in self.project.examples], top)

    def compare(self, first: str, second: str, top: int = 6, progress=None) -> dict[str, list[tuple[int, float]]]:
        counts = self.project.counts()
        if first == second or not counts.get(first) or not counts.get(second):
            raise SessionError("Pick two different classes that both have examples.")
        labels = [e.label for e in self.project.examples]
        return compare_classes(self.channel_stats(progress).means, labels, first, second, top)

    def unit_view(self, channel: int, top: int = 8, progress=None) -> list[tuple[int, np.ndarray]]:
        """The examples that excite ``channel`` most, each with a heat map of where it fires."""
        if not len(self.project):
            raise SessionError("There are no examples to look through yet.")
        channels = self.backbone.tap(self.grid_tap).channels
        if not 0 <= channel < channels:
            raise SessionError(f"Channel {channel} is out of range (0 to {channels - 1}) for {self.grid_tap}.")
        rows = top_examples(self.channel_stats(progress).maxima, channel, top)
        squares = np.stack([self.backbone.prepare(decode_image(self.project.examples[r].thumbnail)) for r in rows])
        maps = self.backbone.run(squares, [self.grid_tap])[self.grid_tap][:, channel].cpu().numpy()
        return [(row, heat_overlay(unit_map, square)) for row, unit_map, square in zip(rows, maps, squares)]

    # ----------------------------------------------------------------- projects
    def load_project(self, data: bytes, progress=None) -> str:
        """Replace the project with a saved one. Limits are checked before any work; a project from another
        backbone is re-embedded from its thumbnails, and the returned message says so."""
        limits = {"max_examples": self.max_examples, "max_classes": self.max_classes}
        try:
            project = Project.load(data, backbone=self.backbone, **limits)
            note = ""
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
        self.project = project
        self.cleared_when_idle = False
        self._forget_examples()

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


def _number(value: object, what: str, low: float, high: float) -> float:
    """A finite number in [low, high], or a SessionError that names the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SessionError(f"{what} must be a number.")
    if not low <= value <= high:
        raise SessionError(f"{what} must be between {low:g} and {high:g} (got {value:g}).")
    return float(value)
