"""What a session draws beside each live frame: the embedding map with the frame as a moving point, and the
activation grid of a middle layer in one of its modes (icons, factors, attribution).

:class:`LiveViewState` belongs to one session: each public method takes the session's lock, reads the session's
project and never changes it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import cv2
import numpy as np

from .activations import MODES, GridIcons, IconCells, attribution_map, factor_grid, heat_overlay, icon_cells
from .backbones import Backbone
from .errors import SessionError
from .cache import KeyedCache
from .knn import Prediction
from .locking import locked
from .project import Project
from .projection import METHODS, EmbeddingMap, place

__all__ = ["BACKDROP_SIDE", "LiveViewState", "LiveViews"]

BACKDROP_SIDE = 56
"""Side of the frame copy drawn darkened behind the icons (blurred up to the grid's size; it is only a backdrop)."""
TRAIL_LENGTH = 12


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


class LiveViewState:
    """The map (its layout fitted in the background), the live point's trail, and the grid's layer and mode."""

    def __init__(
        self,
        backbone: Backbone,
        icons: GridIcons | None,
        lock,
        project: Callable[[], Project],
        map_executor: Executor | None = None,
    ) -> None:
        self.backbone = backbone
        self.lock = lock
        """The owning session's lock."""
        self._project = project
        """The owning session's project as it is now (it is replaced when a project is loaded)."""
        self.icons = icons
        """Shared, read-only icons for the backbone's grid tap (None: the icons mode is unavailable)."""
        self.on = True
        self.grid_tap = backbone.grid_tap
        self.grid_mode = "icons" if icons is not None else "factors"
        self.map = EmbeddingMap(map_executor)
        self.trail: deque[np.ndarray] = deque(maxlen=TRAIL_LENGTH)
        self._positions: KeyedCache[np.ndarray] = KeyedCache()
        self._factors: np.ndarray | None = None

    def copy(self, lock, project: Callable[[], Project]) -> LiveViewState:
        """The same settings for another session, with a map of its own (nothing fitted yet); the backbone and icons
        are shared."""
        fresh = LiveViewState(self.backbone, self.icons, lock, project)
        fresh.on, fresh.grid_tap, fresh.grid_mode = self.on, self.grid_tap, self.grid_mode
        fresh.map = self.map.restarted()
        return fresh

    # ----------------------------------------------------------------- the map
    @locked
    def positions(self) -> np.ndarray:
        """Map positions of all examples (``N x 2``). Asks for a background refit when the examples changed."""
        project = self._project()
        uids = project.uids
        self.map.request(uids, project.embeddings)
        key = (self.map.version, self.map.method, tuple(uids))
        return self._positions.get(key, lambda: self.map.positions(uids, np.asarray(project.embeddings)))

    @locked
    def set_map_method(self, method: str, fresh: bool = False) -> None:
        if method not in METHODS:
            raise SessionError(f"Unknown map method {method!r}; choose one of {', '.join(METHODS)}.")
        if method != self.map.method or fresh:
            self.map = self.map.restarted(method)
            self._positions.clear()
            self.trail.clear()

    def restart(self) -> None:
        """After the examples were replaced or re-embedded: a map fitted afresh, no trail, no stale factors."""
        self.set_map_method(self.map.method, fresh=True)
        self._factors = None

    def map_point(self, prediction: Prediction, live: bool) -> np.ndarray:
        """The frame's place on the map, between its nearest examples' places; a live frame extends the trail."""
        rows = np.array([n.index for n in prediction.neighbours])
        point = place(self.positions()[rows], np.array([n.similarity for n in prediction.neighbours]))
        if live:
            self.trail.append(point)
        return point

    # ----------------------------------------------------------------- the grid
    def icons_fit(self) -> bool:
        return self.icons is not None and self.icons.tap == self.grid_tap

    def attribution_possible(self) -> bool:
        stages = list(self.backbone.taps)
        return stages.index(self._project().tap) > stages.index(self.grid_tap)

    @locked
    def set_views(self, on: bool, method: str, mode: str) -> None:
        """Turn the live map and grid on or off, and choose the map's projection and the grid's mode."""
        self.on = bool(on)
        self.set_map_method(method)
        self.set_grid_mode(mode)

    @locked
    def set_grid_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise SessionError(f"Unknown grid mode {mode!r}; choose one of {', '.join(MODES)}.")
        if mode == "icons" and not self.icons_fit():
            raise SessionError(
                f"There are no icons for {self.backbone.name}/{self.grid_tap}; make them with "
                f"`teachable atlas icons --backbone {self.backbone.name} --tap {self.grid_tap}`."
            )
        if mode == "attribution" and not self.attribution_possible():
            raise SessionError("Attribution needs the embedding to be read after the grid layer; pick a later one.")
        self.grid_mode = mode
        self._factors = None

    @locked
    def set_grid_tap(self, tap: str) -> None:
        """Read the activation grid at another spatial tap. The icons mode needs icons made for that tap."""
        if not self.backbone.tap(tap).is_spatial:
            raise SessionError(f"{tap} has no spatial grid; pick a layer with a feature map.")
        self.grid_tap = tap
        self._factors = None
        self.fall_back_to_factors()

    def fall_back_to_factors(self) -> None:
        """After a layer change, a mode that no longer applies gives way to factors, which always do."""
        icons_gone = self.grid_mode == "icons" and not self.icons_fit()
        if icons_gone or self.grid_mode == "attribution" and not self.attribution_possible():
            self.grid_mode = "factors"

    def grid_image(self, prediction, square, grid_activation) -> np.ndarray | IconCells | None:
        """The activation grid of a frame in the current mode: a picture, or for icons the cells as data."""
        if grid_activation is None or square is None:
            return None
        if self.grid_mode == "icons" and self.icons is not None:
            if not self.icons_fit():
                return None
            backdrop = cv2.resize(square, (BACKDROP_SIDE, BACKDROP_SIDE), interpolation=cv2.INTER_AREA)
            return IconCells(*icon_cells(grid_activation, self.icons), backdrop)
        if self.grid_mode == "attribution" and prediction is not None:
            project = self._project()
            rows = project.indices_of(prediction.label)
            attribution = self.backbone.falling_back_to_cpu(
                lambda: attribution_map(
                    self.backbone, square, project.embeddings[rows], tap=self.grid_tap, until=project.tap
                )
            )
            return heat_overlay(attribution, square)
        image, self._factors = factor_grid(grid_activation, square, previous=self._factors)
        return image

    # ----------------------------------------------------------------- one frame
    def draw(self, prediction, square, grid_activation) -> LiveViews | None:
        """The map and grid for one frame (None while the views are off)."""
        if not self.on:
            return None
        project = self._project()
        positions = self.positions() if len(project) else np.zeros((0, 2))
        layout_key = (self.map.version, self.map.method, self.map.fitting, tuple(project.uids))
        grid = self.grid_image(prediction, square, grid_activation)
        return LiveViews(
            grid, positions, layout_key, self.map.method, self.map.fitting, tuple(self.trail), self.map.shown_method
        )
