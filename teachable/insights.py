"""What "Under the hood" shows about one person's examples: the leave-one-out review with the coach's hints,
per-class channel summaries (after Summit), the examples a unit responds to most (after Network Dissection), and
the Activation Atlas.

:class:`Insights` belongs to one session: each public method takes the session's lock and looks at the session's
project, grid layer and k as they are then (:class:`Subject`). Each result is cached under the project's ``version``
(which changes with every edit of its examples or classes) and the settings it depends on, and the session empties
the caches when it gets a new project. Reading every example's activations (the atlas, the channel statistics)
gives way to everyone's live frames, as re-embedding does (:mod:`teachable.pacing`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .activations import GridIcons, heat_overlay
from .backbones import Backbone
from .errors import SessionError
from .cache import KeyedCache
from .coach import Review, review
from .frames import decode_image
from .pacing import Pacer
from .project import Project
from .summary import ChannelStats, channel_stats, class_summary, compare_classes, top_examples

__all__ = ["Insights", "Subject"]


class Subject(NamedTuple):
    """What the views look at: the session's project, the grid's layer and the neighbours of the kNN rule."""

    project: Project
    grid_tap: str
    k: int


def locked(method):
    """Run a method while holding the owning session's lock, on what the session holds then."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self.lock:
            return method(self, self._subject(), *args, **kwargs)

    return run


class Insights:
    def __init__(
        self, backbone: Backbone, icons: GridIcons | None, lock, subject: Callable[[], Subject], pacer: Pacer
    ) -> None:
        self.backbone = backbone
        self.pacer = pacer
        """Shared by the server's sessions: reading every example's activations gives way to everyone's frames."""
        self.lock = lock
        """The owning session's lock."""
        self._subject = subject
        self.icons = icons
        self._review: KeyedCache[Review] = KeyedCache()
        self._atlas: KeyedCache = KeyedCache()
        self._channels: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
        """(example uid, tap) -> (spatial mean, spatial max) per channel."""

    def forget(self) -> None:
        """Drop everything computed from the examples (a new project took their place)."""
        self._review.clear()
        self._atlas.clear()
        self._channels = {}

    @locked
    def review(self, subject: Subject) -> Review:
        """Leave-one-out evaluation and data-coach hints; cached until the examples or k change."""
        project, k = subject.project, subject.k
        filled = [name for name, count in project.counts().items() if count]
        if len(filled) < 2 or len(project) < 3:
            raise SessionError("The evaluation needs at least three examples in at least two classes.")
        return self._review.get((project.version, k), lambda: review(project.classifier, project.classes, k))

    @locked
    def atlas(self, subject: Subject, progress=None):
        """The Activation Atlas of the examples at the grid tap; cached until the examples change."""
        from .atlas import build_atlas

        project, grid_tap = subject.project, subject.grid_tap

        if self.icons is None or self.icons.tap != grid_tap:
            raise SessionError("The atlas draws icons, and there are none for this layer; pick the default grid layer.")
        if len(project) < 2:
            raise SessionError("Add a few examples first: the atlas is made of their activations.")
        report = self.pacer.paced(None)

        def paced(fraction: float, text: str) -> None:
            report(round(fraction * 1000), 1000)  # rests between batches while people's frames run
            if progress:
                progress(fraction, text)

        key = (project.version, grid_tap)
        return self._atlas.get(key, lambda: build_atlas(self.backbone, project, self.icons, progress=paced))

    @locked
    def channel_stats(self, subject: Subject, progress=None, batch_size: int = 16) -> ChannelStats:
        """Per-example channel means and maxima at the grid tap, read from the thumbnails once per example."""
        project, tap = subject.project, subject.grid_tap
        missing = [e for e in project.examples if (e.uid, tap) not in self._channels]
        report = self.pacer.paced(progress)  # rests between batches while people's frames run
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            squares = np.stack([self.backbone.prepare(decode_image(e.thumbnail)) for e in chunk])
            stats = channel_stats(tap, self.backbone.run(squares, [tap])[tap].cpu().numpy())
            for example, mean, maximum in zip(chunk, stats.means, stats.maxima):
                self._channels[(example.uid, tap)] = (mean, maximum)
            report(start + len(chunk), len(missing))
        rows = [self._channels[(e.uid, tap)] for e in project.examples]
        channels = self.backbone.tap(tap).channels
        means = np.stack([r[0] for r in rows]) if rows else np.zeros((0, channels))
        maxima = np.stack([r[1] for r in rows]) if rows else np.zeros((0, channels))
        return ChannelStats(tap, means, maxima)

    @locked
    def class_summary(self, subject: Subject, top: int = 8, progress=None) -> dict:
        """Each class's most typical channels at the grid tap (Summit's per-class summary)."""
        if len([c for c in subject.project.counts().values() if c]) < 2:
            raise SessionError("A class summary compares classes: add examples to at least two.")
        return class_summary(self.channel_stats(progress).means, _labels(subject.project), top)

    @locked
    def compare(self, subject: Subject, first: str, second: str, top: int = 6, progress=None) -> dict:
        """The channels that tell ``first`` from ``second`` at the grid tap."""
        counts = subject.project.counts()
        if first == second or not counts.get(first) or not counts.get(second):
            raise SessionError("Pick two different classes that both have examples.")
        means = self.channel_stats(progress).means
        return compare_classes(means, _labels(subject.project), first, second, top)

    @locked
    def unit_view(self, subject: Subject, channel: int, top: int = 8, progress=None) -> list:
        """The examples that excite ``channel`` most, each with a heat map of where it fires."""
        project, tap = subject.project, subject.grid_tap
        if not len(project):
            raise SessionError("There are no examples to look through yet.")
        channels = self.backbone.tap(tap).channels
        if not 0 <= channel < channels:
            raise SessionError(f"Channel {channel} is out of range (0 to {channels - 1}) for {tap}.")
        rows = top_examples(self.channel_stats(progress).maxima, channel, top)
        squares = np.stack([self.backbone.prepare(decode_image(project.examples[r].thumbnail)) for r in rows])
        maps = self.backbone.run(squares, [tap])[tap][:, channel].cpu().numpy()
        return [(row, heat_overlay(unit_map, square)) for row, unit_map, square in zip(rows, maps, squares)]


def _labels(project: Project) -> list[str]:
    return [example.label for example in project.examples]
