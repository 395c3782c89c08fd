"""The checks and words of a person's edits: which class or example they mean, whether there is room, what to do
next, and the live settings' ranges. Each function reads the project it is given; a request that cannot be done is
a :class:`SessionError` whose message is shown to the person as it is."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .coach import Hint
from .errors import SessionError
from .frames import ImageError, decode_image, encode_jpeg
from .knn import near_copy_takes
from .project import Project

__all__ = [
    "add_uploads",
    "apply_hint",
    "counted",
    "existing_class",
    "existing_row",
    "free_class_name",
    "full_message",
    "live_settings",
    "next_step",
    "opening_message",
    "row_of_example",
]


def free_class_name(project: Project) -> str:
    """ "Class N" with the first N no class has."""
    taken = set(project.classes)
    return next(f"Class {n}" for n in range(1, len(taken) + 2) if f"Class {n}" not in taken)


def existing_class(project: Project, name: object) -> str:
    if not name:
        raise SessionError("Select a class first.")
    if name not in project.classes:
        raise SessionError(f"There is no class named {name!r}.")
    return name  # type: ignore[return-value]


def existing_row(project: Project, row: object) -> int:
    count = len(project)
    if not count:
        raise SessionError("There are no examples yet.")
    if isinstance(row, float) and row.is_integer():
        row = int(row)
    if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < count:
        raise SessionError(f"Give an example number from 0 to {count - 1}.")
    return row


def row_of_example(project: Project, uid: object) -> int:
    """The row of the example the page names by its ``uid`` (rows shift as examples come and go; uids do not)."""
    if isinstance(uid, int) and not isinstance(uid, bool):
        for row, example in enumerate(project.examples):
            if example.uid == uid:
                return row
    raise SessionError("That example is no longer there.")


def full_message(max_examples: int) -> str:
    return (
        f"This project has reached its limit of {max_examples} examples. Remove some examples "
        "(near-duplicates first) before adding more."
    )


def add_uploads(
    project: Project,
    label: str,
    images: list[tuple[str, bytes]],
    embed: Callable[[np.ndarray], np.ndarray],
    prepare: Callable[[np.ndarray], np.ndarray],
    max_examples: int,
) -> tuple[int, list[str]]:
    """Add uploaded images (name, encoded bytes) to a class. Returns how many were added and one message per file
    that was refused; refused files change nothing.

    Each image is a take of its own (uploads are usually distinct photos), except that images of one upload that
    are near-copies of each other (``knn.near_copy_takes``, e.g. a burst) share a take."""
    existing_class(project, label)
    accepted, problems = [], []
    for name, data in images:
        if len(project) + len(accepted) >= max_examples:
            problems.append(full_message(max_examples))
            break
        try:
            square = prepare(decode_image(data, name))
        except ImageError as error:
            problems.append(str(error))
            continue
        accepted.append((name, embed(square), encode_jpeg(square)))
    if accepted:
        groups = near_copy_takes(np.stack([embedding for _, embedding, _ in accepted]), [label] * len(accepted))
        takes = [project.new_take() for _ in range(int(groups.max()) + 1)]
        for (name, embedding, jpeg), group in zip(accepted, groups):
            project.add_examples(label, embedding[None], [jpeg], name, takes[group])
    return len(accepted), problems


def counted(count: int, noun: str) -> str:
    """``count`` and ``noun`` in plain words: "1 example", "10 examples".

    >>> counted(1, "example"), counted(0, "image"), counted(26, "example")
    ('1 example', '0 images', '26 examples')
    """
    return f"{count} {noun}{'' if count == 1 else 's'}"


def apply_hint(project: Project, hint: Hint) -> str:
    """Do what a data-coach hint suggests: move or remove its examples; returns what was done, in words."""
    if hint.fix == "move":
        for row in hint.examples:
            project.move_example(row, hint.move_to)
        return f"Moved {counted(len(hint.examples), 'example')} to '{hint.move_to}'."
    if hint.fix == "remove":
        project.remove_examples(list(hint.examples))
        return f"Removed {counted(len(hint.examples), 'example')}."
    raise SessionError("This hint is advice: there is nothing to apply with one click.")


def next_step(project: Project) -> str:
    """What a person should do next while fewer than two classes have examples; empty once there is something to
    tell apart."""
    counts = project.counts()
    filled = [name for name, count in counts.items() if count]
    empty = [name for name, count in counts.items() if not count]
    if not filled:
        return "Record a few examples of each class to start."
    if len(filled) == 1 and empty:
        return f"Now record some examples of '{empty[0]}', so there is something to tell '{filled[0]}' apart from."
    if len(filled) == 1:
        return f"Only '{filled[0]}' has examples: add a second class to compare against."
    return ""


def opening_message(project: Project) -> str:
    """The prediction panel's words before the first frame: the next step, or that the work is ready."""
    waiting = next_step(project)
    if waiting:
        return waiting
    total, classes = len(project), sum(1 for count in project.counts().values() if count)
    return f"{total} examples in {classes} classes are ready: start the camera to see what it recognises."


def live_settings(k: object, threshold: object, smoothing: object) -> tuple[int, float, float]:
    """Neighbours, the unknown threshold and smoothing over frames, each checked before any is used."""
    k = _number(k, "Examples that vote (k)", 1, 50)
    if not float(k).is_integer():
        raise SessionError("Examples that vote (k) must be a whole number.")
    return int(k), _number(threshold, "The unknown threshold", 0.0, 1.0), _number(smoothing, "Smoothing", 0.0, 0.99)


def _number(value: object, what: str, low: float, high: float) -> float:
    """A finite number in [low, high], or a SessionError that names the setting."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SessionError(f"{what} must be a number.")
    if not low <= value <= high:
        raise SessionError(f"{what} must be between {low:g} and {high:g} (got {value:g}).")
    return float(value)
