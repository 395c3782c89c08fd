"""A person's edits of their classes and examples, as the class cards, the tray and the coach make them.

:class:`ClassEdits` belongs to one session and shares its lock: every method takes it, checks its input (the checks
and words are in ``editing.py``) and changes the session's project, keeping the take being recorded, the smoothed
confidences and the tray consistent with the change. A request that cannot be done is a :class:`SessionError`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from . import editing
from .coach import Hint
from .errors import SessionError
from .live_state import Recorder, Smoother
from .locking import locked
from .project import Project
from .tray import HelpTray

__all__ = ["ClassEdits"]


class ClassEdits:
    def __init__(
        self,
        lock: threading.RLock,
        project: Callable[[], Project],
        recorder: Recorder,
        smoother: Smoother,
        tray: HelpTray,
        embed: Callable[[np.ndarray], np.ndarray],
        prepare: Callable[[np.ndarray], np.ndarray],
        max_examples: int,
    ) -> None:
        self.lock, self._project = lock, project
        self.recorder, self.smoother, self.tray = recorder, smoother, tray
        self._embed, self._prepare, self.max_examples = embed, prepare, max_examples

    # ----------------------------------------------------------------- recording
    @locked
    def start_recording(self, label: str) -> None:
        """Start a take of ``label``: the live frames join it (see ``live_state.Recorder``) until it stops."""
        project = self._project()
        label = editing.existing_class(project, label)
        if len(project) >= self.max_examples:
            raise SessionError(editing.full_message(self.max_examples))
        self.recorder.start(label, project.new_take())

    @locked
    def stop_recording(self) -> int:
        """End the take; returns how many frames it recorded."""
        return self.recorder.stop()

    # ----------------------------------------------------------------- classes
    @locked
    def add_class(self, name: str | None = None) -> str:
        """Add a class; without a name it is called "Class N" with the first free N. Returns the name."""
        project = self._project()
        return project.add_class(editing.free_class_name(project) if name is None else name)

    @locked
    def rename_class(self, old: str | None, new: str) -> str:
        project = self._project()
        old = editing.existing_class(project, old)
        new = project.rename_class(old, new)
        if self.recorder.label == old:
            self.recorder.label = new
        self.smoother.reset()
        return new

    @locked
    def remove_class(self, name: str | None) -> None:
        """Delete a class and its examples; recording into it stops."""
        project = self._project()
        name = editing.existing_class(project, name)
        if self.recorder.label == name:
            self.recorder.stop()
        project.remove_class(name)
        self.smoother.reset()

    @locked
    def clear_class(self, name: str | None) -> int:
        """Remove every example of a class; returns how many there were."""
        project = self._project()
        count = project.counts()[editing.existing_class(project, name)]
        project.clear_class(name)
        return count

    # ----------------------------------------------------------------- examples
    @locked
    def remove_example(self, row: object) -> int:
        project = self._project()
        row = editing.existing_row(project, row)
        project.remove_examples([row])
        return row

    @locked
    def move_example(self, row: object, label: str | None) -> int:
        project = self._project()
        row = editing.existing_row(project, row)
        if not label:
            raise SessionError("Pick the class to move it to.")
        project.move_example(row, editing.existing_class(project, label))
        return row

    @locked
    def add_from_tray(self, item_id: object, label: str | None = None) -> str:
        """Teach one frame from the tray: add it to ``label``, or to a new class when ``label`` is None."""
        project = self._project()
        if len(project) >= self.max_examples:
            raise SessionError(editing.full_message(self.max_examples))
        if not isinstance(item_id, int) or isinstance(item_id, bool) or all(item.id != item_id for item in self.tray.items):
            raise SessionError("That frame is no longer in the tray.")  # checked before a class is made for it
        label = self.add_class() if label is None else editing.existing_class(project, label)
        item = self.tray.take(item_id)
        project.add_examples(label, item.embedding[None], [item.thumbnail], "tray")
        return label

    @locked
    def add_images(self, label: str, images: list[tuple[str, bytes]]) -> tuple[int, list[str]]:
        """Add uploaded images (name, encoded bytes) to a class: see :func:`editing.add_uploads`."""
        return editing.add_uploads(self._project(), label, images, self._embed, self._prepare, self.max_examples)

    @locked
    def apply_hint(self, hint: Hint) -> str:
        """Do what a coach's hint suggests: move or remove its examples."""
        return editing.apply_hint(self._project(), hint)
