"""A project: named classes and their examples, kept in step with the classifier over their embeddings.

An example is a thumbnail (the centre crop the backbone saw, as JPEG), its embedding, where it came from, when
it was added and its take (the examples recorded with it share one; see teachable/knn.py). The project also records
which backbone, tap and preprocessing made the embeddings, so a file from another backbone is recognised on load
(:class:`BackboneMismatch`) and can be re-embedded from its thumbnails.

Every change goes through a method here (add, remove, move, rename, clear, re-embed), and each one that changes
what the project holds raises :attr:`Project.version`; what is derived from a project (a review, a layout, a save)
can be kept until ``(project, project.version)`` changes.

The file format (``.zip``, its versions, and the checks that refuse a wrong file) is :mod:`teachable.project_file`;
:meth:`Project.load` and :meth:`Project.save` go through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .frames import decode_image
from .knn import KNNClassifier, KNNError, Prediction
from .project_file import FORMAT_VERSION, JPEG_MAGIC, MAX_THUMBNAIL_BYTES, ProjectContents, ProjectFileMethods
from .project_parts import (
    MAX_CLASS_NAME,
    MAX_CLASSES,
    BackboneMismatch,
    Example,
    ProjectError,
    check_class_name,
    find_class,
    new_class_name,
    same_class,
    shown,
)

__all__ = [
    "Project",
    "Example",
    "ProjectError",
    "BackboneMismatch",
    "FORMAT_VERSION",
    "MAX_CLASS_NAME",
    "MAX_CLASSES",
    "check_class_name",
]


class Project(ProjectFileMethods):
    """Classes and examples, kept in step with a :class:`KNNClassifier` over their embeddings.

    Change them through the methods only: each change that alters the classes, the examples or their takes raises
    :attr:`version`.
    """

    def __init__(
        self,
        backbone: str,
        tap: str,
        embedding_dim: int,
        preprocessing: dict | None = None,
        classes: list[str] | tuple[str, ...] = (),
        max_classes: int = MAX_CLASSES,
    ) -> None:
        self.version = 0
        """Raised by every change of the classes, the examples or their takes; never by a read. Caches of what is
        derived from the project key on ``(project, project.version)`` (a project compares by identity)."""
        self.max_classes = max_classes
        """``add_class`` refuses a class past this many."""
        self.backbone = backbone
        self.tap = tap
        self.preprocessing = dict(preprocessing or {})
        self._classifier = KNNClassifier(embedding_dim)
        self.examples: list[Example] = []
        self.classes: list[str] = []
        self._next_uid = 0
        for name in classes:
            self.add_class(name)

    @classmethod
    def for_backbone(
        cls,
        backbone,
        classes: list[str] | tuple[str, ...] = (),
        tap: str | None = None,
        max_classes: int = MAX_CLASSES,
    ) -> "Project":
        """An empty project whose embeddings come from ``backbone`` at ``tap`` (default: its embedding tap)."""
        tap = backbone.tap(tap or backbone.embedding_tap).name
        return cls(backbone.name, tap, backbone.tap(tap).channels, _preprocessing_of(backbone), classes, max_classes)

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}: {n}" for name, n in self.counts().items())
        return f"Project({self.backbone}/{self.tap}, {counts or 'no classes'})"

    def __len__(self) -> int:
        return len(self.examples)

    def _changed(self) -> None:
        self.version += 1

    @property
    def classifier(self) -> KNNClassifier:
        """The classifier over the examples' embeddings, row for row."""
        return self._classifier

    @classifier.setter
    def classifier(self, classifier: KNNClassifier) -> None:
        self._classifier = classifier
        self._changed()

    @property
    def embeddings(self) -> np.ndarray:
        return self.classifier.vectors

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for example in self.examples:
            counts[example.label] += 1
        return counts

    def indices_of(self, label: str) -> list[int]:
        return [i for i, example in enumerate(self.examples) if example.label == label]

    # ----------------------------------------------------------------- classes
    def add_class(self, name: str) -> str:
        """Add a class; returns its cleaned name (see :func:`check_class_name`)."""
        name = new_class_name(self.classes, name, self.max_classes)
        self.classes.append(name)
        self._changed()
        return name

    def rename_class(self, old: str, new: str) -> str:
        old = self._require_class(old)
        new = check_class_name(new)
        if new == old:
            return new
        if same_class(self.classes, new) not in (None, old):
            raise ProjectError(f"There is already a class named {new!r}.")
        self.classifier.rename_class(old, new)
        self.classes[self.classes.index(old)] = new
        self.examples = [_relabelled(e, new) if e.label == old else e for e in self.examples]
        self._changed()
        return new

    def remove_class(self, name: str) -> None:
        name = self._require_class(name)
        self.clear_class(name)
        self.classes.remove(name)
        self._changed()

    def clear_class(self, name: str) -> None:
        name = self._require_class(name)
        self.remove_examples(self.indices_of(name))

    def find_class(self, name: object) -> str | None:
        """The class ``name`` names, compared after normalisation (``"cafe\u0301"`` finds ``"café"``), or None."""
        return find_class(self.classes, name)

    def _require_class(self, name: str) -> str:
        """The class ``name`` names (see :meth:`find_class`), or :class:`ProjectError`."""
        found = self.find_class(name)
        if found is None:
            raise ProjectError(f"There is no class named {shown(name)}.")
        return found

    # ----------------------------------------------------------------- examples
    def add_examples(
        self,
        label: str,
        embeddings: np.ndarray,
        thumbnails: list[bytes],
        source: str = "",
        take: int | list[int] | None = None,
    ) -> None:
        """Add examples of an existing class. Embeddings and thumbnails are validated before anything changes.

        ``take``: the take they belong to (one number, e.g. from :meth:`new_take`, or one per example); None:
        each example a take of its own."""
        label = self._require_class(label)
        embeddings, thumbnails = _checked_examples(embeddings, thumbnails)
        try:
            self.classifier.add(_direction_safe(embeddings), label, take)
        except KNNError as error:
            raise ProjectError(str(error)) from None
        now = time.time()
        self.examples.extend(Example(label, thumb, source, now, self._new_uid()) for thumb in thumbnails)
        self._changed()

    def new_take(self) -> int:
        """A take number no example has yet: pass it to every :meth:`add_examples` of one recording. (Nothing the
        project holds changes until examples are added with it, so :attr:`version` stays.)"""
        return self.classifier.new_take()

    @property
    def takes(self) -> tuple[int, ...]:
        """The take of each example."""
        return self.classifier.takes

    def _new_uid(self) -> int:
        self._next_uid += 1
        return self._next_uid

    @property
    def uids(self) -> list[int]:
        return [example.uid for example in self.examples]

    def remove_examples(self, indices: list[int]) -> None:
        drop = {self._example_index(i) for i in indices}
        try:
            self.classifier.remove(sorted(drop))
        except KNNError as error:
            raise ProjectError(str(error)) from None
        self.examples = [e for i, e in enumerate(self.examples) if i not in drop]
        if drop:
            self._changed()

    def move_example(self, index: int, label: str) -> None:
        label = self._require_class(label)
        index = self._example_index(index)
        moved = self.examples[index].label != label
        self.classifier.relabel(index, label)
        self.examples[index] = _relabelled(self.examples[index], label)
        if moved:
            self._changed()

    def _example_index(self, index: object) -> int:
        """``index`` as the row of an existing example, or :class:`ProjectError`."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ProjectError(f"An example index must be a whole number, not {shown(index)}.")
        if not 0 <= index < len(self.examples):
            raise ProjectError(f"Example index {index} out of range (0 to {len(self.examples) - 1}).")
        return int(index)

    # ----------------------------------------------------------------- prediction
    def predict(self, embedding: np.ndarray, k: int) -> Prediction:
        try:
            return self.classifier.predict(embedding, k, classes=tuple(self.classes))
        except KNNError as error:
            raise ProjectError(str(error)) from None

    # ----------------------------------------------------------------- re-embedding
    def reembed(
        self,
        backbone,
        progress: Callable[[int, int], None] | None = None,
        batch_size: int = 16,
        tap: str | None = None,
    ) -> None:
        """Recompute every embedding from its thumbnail with ``backbone`` at ``tap`` (default: the project's tap
        when ``backbone`` has it, else the backbone's embedding tap), e.g. after loading another backbone's project
        or to embed at another depth. The project only changes once all embeddings are made."""
        tap = tap or (self.tap if self.tap in backbone.taps else backbone.embedding_tap)
        vectors = _embedded_thumbnails(self.examples, backbone, tap, progress, batch_size)
        classifier = KNNClassifier(backbone.tap(tap).channels, self.classifier.threshold, self.classifier.temperature)
        if len(vectors):
            classifier.add(vectors, [e.label for e in self.examples], list(self.takes))
        self.backbone, self.tap = backbone.name, tap
        self.preprocessing = _preprocessing_of(backbone)
        self.classifier = classifier

    # ----------------------------------------------------------------- the file (load, save: ProjectFileMethods)
    def contents(self) -> ProjectContents:
        """What the project file holds, as plain data (the examples and the embeddings as they are now)."""
        return ProjectContents(
            self.backbone,
            self.tap,
            self.classifier.dim,
            self.preprocessing,
            list(self.classes),
            list(self.examples),
            self.embeddings,
            list(self.takes),
        )

    @classmethod
    def from_contents(cls, contents: ProjectContents, max_classes: int = MAX_CLASSES) -> "Project":
        """A project holding ``contents`` (as read from a file): its examples keep their source, time and take."""
        header = (contents.backbone, contents.tap, contents.embedding_dim, contents.preprocessing, contents.classes)
        project = cls(*header, max_classes)
        project._restore(contents.examples, contents.embeddings, contents.takes)
        return project

    def _restore(self, examples: list[Example], embeddings: np.ndarray, takes: list[int]) -> None:
        """Add examples as they were saved: their vectors unchanged (already unit length at stored precision),
        their source and time kept, a fresh uid each."""
        if not examples:
            return
        try:
            self.classifier.add(embeddings, [example.label for example in examples], list(takes))
        except KNNError as error:
            raise ProjectError(str(error)) from None
        self.examples.extend(replace(example, uid=self._new_uid()) for example in examples)
        self._changed()

    def fits(self, backbone) -> bool:
        """Whether ``backbone`` makes embeddings like the project's: the same backbone, tap and dimension."""
        return (
            self.backbone == backbone.name
            and self.tap in backbone.taps
            and backbone.taps[self.tap].channels == self.classifier.dim
        )


def _checked_examples(embeddings: np.ndarray, thumbnails: list[bytes]) -> tuple[np.ndarray, list[bytes]]:
    """Embeddings as float32 rows, one per thumbnail, and the thumbnails (JPEGs under the size limit), or
    :class:`ProjectError`."""
    try:
        embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    except (TypeError, ValueError) as error:
        raise ProjectError(f"Embeddings must be an array of numbers ({error}).") from None
    thumbnails = list(thumbnails)
    if len(embeddings) != len(thumbnails):
        raise ProjectError(f"Got {len(embeddings)} embeddings but {len(thumbnails)} thumbnails.")
    for thumbnail in thumbnails:
        if not isinstance(thumbnail, bytes) or not thumbnail.startswith(JPEG_MAGIC):
            raise ProjectError("A thumbnail must be the bytes of a JPEG.")
        if len(thumbnail) > MAX_THUMBNAIL_BYTES:
            raise ProjectError(f"A thumbnail is {len(thumbnail):,} bytes; the limit is {MAX_THUMBNAIL_BYTES:,}.")
    return embeddings, thumbnails


def _embedded_thumbnails(
    examples: list[Example], backbone, tap: str, progress: Callable[[int, int], None] | None, batch_size: int
) -> np.ndarray:
    """The examples' thumbnails embedded by ``backbone`` at ``tap``, ``batch_size`` at a time (empty: no rows)."""
    vectors = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        images = np.stack([backbone.prepare(decode_image(e.thumbnail)) for e in chunk])
        vectors.append(backbone.embed(images, tap))
        if progress:
            progress(start + len(chunk), len(examples))
    return np.concatenate(vectors) if vectors else np.zeros((0, backbone.tap(tap).channels), np.float32)


def _direction_safe(embeddings: np.ndarray) -> np.ndarray:
    """Finite rows scaled so their largest entry is 1: the same directions, with lengths whose squares cannot
    overflow float32 (a row of 1e19 would otherwise become a zero vector when normalised)."""
    largest = np.abs(embeddings).max(axis=1, keepdims=True, initial=0)
    scalable = np.isfinite(largest) & (largest > 0)
    return np.where(scalable, embeddings / np.where(scalable, largest, 1), embeddings)


def _preprocessing_of(backbone) -> dict:
    return {"input_size": backbone.input_size, "mean": list(backbone.mean), "std": list(backbone.std)}


def _relabelled(example: Example, label: str) -> Example:
    return replace(example, label=label)
