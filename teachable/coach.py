"""The data coach: leave-one-out evaluation of a project and plain-words hints about its examples.

With a kNN there is no training run to wait for: every example can be classified by all the others at once
(one FAISS search), after every change. "The others" are the examples of other takes (``KNNClassifier.takes``):
the frames recorded in the same hold are near-copies of it, and would make every check look easier than a new
view is. An example whose take is all of its class is checked against its take-mates (nothing else is left). ``review`` turns that into

* the evaluation (accuracy overall and per class, confusion matrix), with each example's leave-one-out prediction
  and the confidence it got;
* hints for non-experts, each naming the examples involved and, where there is one, the fix to apply.

Rules and thresholds (all similarities are cosine, in the embedding the project uses):

============== =================================================================================================
mislabelled    its nearest example of another take and more than half of its k nearest belong to one other class
               -> move it there
outlier        its nearest example of another take is less similar than ``OUTLIER_SIMILARITY`` -> remove it
duplicate      a same-class example more similar than ``DUPLICATE_SIMILARITY`` came earlier -> remove the copy
too few        a class with fewer than ``MIN_EXAMPLES`` examples
imbalance      the largest class has more than ``IMBALANCE_RATIO`` times the examples of the smallest
overlap        more than ``OVERLAP_RATE`` of two classes' examples are taken for each other
background     the median similarity of a class's examples to the nearest "nothing" example is above
               ``BACKGROUND_SIMILARITY`` (a "nothing" class is one named nothing, none, background, empty...)
spread         more than ``SPREAD_SHARE`` of a class's examples (and at least ``MIN_EXAMPLES`` of them) match their
               own class less well than the "not sure" boundary (``KNNClassifier.own_scores`` against
               ``KNNClassifier.boundary``): new photos of it will often come back "not sure" -> split it, or
               record examples that cover its variety
============== =================================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .knn import Evaluation, KNNClassifier

__all__ = ["Hint", "Review", "review", "BACKGROUND_NAMES"]

OUTLIER_SIMILARITY = 0.45
DUPLICATE_SIMILARITY = 0.995
MIN_EXAMPLES = 5
IMBALANCE_RATIO = 3.0
OVERLAP_RATE = 0.2
BACKGROUND_SIMILARITY = 0.85
BACKGROUND_NAMES = ("nothing", "none", "background", "empty", "empty scene", "no object", "neutral")
SPREAD_SHARE = 0.5


@dataclass(frozen=True)
class Hint:
    kind: str
    """One of: mislabelled, outlier, duplicate, too_few, imbalance, overlap, background, spread."""
    message: str
    examples: tuple[int, ...] = ()
    """Rows of the examples involved."""
    move_to: str | None = None
    """For mislabelled examples: the class they probably belong to."""

    @property
    def fix(self) -> str | None:
        """What one click does: "move" or "remove" the examples, or nothing (advice only)."""
        if self.kind == "mislabelled":
            return "move"
        if self.kind in ("outlier", "duplicate"):
            return "remove"
        return None


@dataclass(frozen=True)
class Review:
    evaluation: Evaluation
    hints: tuple[Hint, ...]

    @property
    def mistakes(self) -> list[int]:
        e = self.evaluation
        return [i for i, (t, p) in enumerate(zip(e.true_labels, e.predicted_labels)) if t != p]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def review(classifier: KNNClassifier, classes: list[str], k: int = 5) -> Review:
    """Evaluate ``classifier`` by leave-one-out and collect hints. ``classes`` includes empty ones."""
    evaluation = classifier.leave_one_out(k, tuple(classes))
    labels = np.asarray(classifier.labels)
    vectors = classifier.vectors
    hints: list[Hint] = []
    for row, (sims, ids) in enumerate(zip(*classifier.others_nearest(k))):
        other = labels[ids[0]] if len(ids) else labels[row]
        if other != labels[row] and (labels[ids] == other).sum() * 2 > len(ids):
            hints.append(
                Hint(
                    "mislabelled",
                    f"Example #{row} is in '{labels[row]}', but most of its nearest examples are '{other}'. "
                    f"Was it recorded into the wrong class?",
                    (row,),
                    move_to=str(other),
                )
            )
        elif len(sims) and sims[0] < OUTLIER_SIMILARITY:
            hints.append(
                Hint(
                    "outlier",
                    f"Example #{row} ('{labels[row]}') looks like no other example (closest similarity "
                    f"{sims[0]:.2f}). If it shows something else, remove it.",
                    (row,),
                )
            )
    hints += _duplicates(vectors, labels)
    hints += _class_hints(classes, labels, evaluation, vectors)
    hints += _spread_out(classifier, labels)
    return Review(evaluation, tuple(hints))


def _spread_out(classifier: KNNClassifier, labels: np.ndarray) -> list[Hint]:
    """Classes whose own examples mostly fall below the "not sure" boundary (prototype rule only)."""
    if classifier.rule != "prototype" or len(classifier.classes) < 1:
        return []
    scores, boundary = classifier.own_scores(), classifier.boundary
    hints = []
    for name in classifier.classes:
        rows = np.flatnonzero(labels == name)
        below = rows[scores[rows] < boundary]
        if len(rows) >= MIN_EXAMPLES and len(below) > SPREAD_SHARE * len(rows):
            hints.append(
                Hint(
                    "spread",
                    f"'{name}' is spread out: {len(below)} of its {len(rows)} examples look less like the rest of "
                    f"'{name}' than the 'not sure' boundary allows, so new photos of it will often come back "
                    "'not sure'. Split it into narrower classes, or record more examples that cover its variety.",
                    tuple(int(r) for r in below),
                )
            )
    return hints


def _duplicates(vectors: np.ndarray, labels: np.ndarray) -> list[Hint]:
    copies = []
    for label in dict.fromkeys(labels):
        rows = np.flatnonzero(labels == label)
        similar = vectors[rows] @ vectors[rows].T
        for position, row in enumerate(rows):
            if position and (similar[position, :position] > DUPLICATE_SIMILARITY).any():
                copies.append(int(row))
    if not copies:
        return []
    return [
        Hint(
            "duplicate",
            f"{_plural(len(copies), 'example')} are near-copies of earlier ones in the same class and add nothing: "
            f"#{', #'.join(map(str, copies[:12]))}{'…' if len(copies) > 12 else ''}. Vary the pose, distance and "
            "light instead.",
            tuple(copies),
        )
    ]


def _class_hints(classes: list[str], labels: np.ndarray, evaluation: Evaluation, vectors: np.ndarray) -> list[Hint]:
    hints = []
    counts = {name: int((labels == name).sum()) for name in classes}
    for name, count in counts.items():
        if count < MIN_EXAMPLES:
            hints.append(
                Hint("too_few", f"'{name}' has only {_plural(count, 'example')}: record at least {MIN_EXAMPLES}.")
            )
    filled = {name: count for name, count in counts.items() if count}
    if len(filled) >= 2 and max(filled.values()) > IMBALANCE_RATIO * min(filled.values()):
        big, small = max(filled, key=filled.get), min(filled, key=filled.get)
        hints.append(
            Hint(
                "imbalance",
                f"'{big}' has {filled[big]} examples and '{small}' only {filled[small]}: the model leans toward "
                f"'{big}'. Record more of '{small}'.",
            )
        )
    confusion, names = evaluation.confusion, evaluation.classes
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            total = confusion[i].sum() + confusion[j].sum()
            mixed = confusion[i, j] + confusion[j, i]
            if total and mixed / total > OVERLAP_RATE:
                rows = tuple(
                    int(r)
                    for r, (t, p) in enumerate(zip(evaluation.true_labels, evaluation.predicted_labels))
                    if {t, p} == {names[i], names[j]}
                )
                hints.append(
                    Hint(
                        "overlap",
                        f"'{names[i]}' and '{names[j]}' look alike to the model ({mixed} of {total} examples are "
                        "taken for the other): record them from more angles, closer, or against the same background.",
                        rows,
                    )
                )
    background = [name for name in filled if name.strip().lower() in BACKGROUND_NAMES]
    for empty in background:
        empty_vectors = vectors[labels == empty]
        for name in filled:
            if name == empty:
                continue
            rows = np.flatnonzero(labels == name)
            closeness = (vectors[rows] @ empty_vectors.T).max(axis=1)
            if np.median(closeness) > BACKGROUND_SIMILARITY:
                hints.append(
                    Hint(
                        "background",
                        f"Most '{name}' examples look almost like your '{empty}' frames (median similarity "
                        f"{np.median(closeness):.2f}): the model may be learning the background. Bring the object "
                        "closer so it fills more of the frame.",
                        tuple(int(r) for r in rows),
                    )
                )
    return hints
