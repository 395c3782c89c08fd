"""What a project is made of, shared by the model (:mod:`teachable.project`) and its file format
(:mod:`teachable.project_file`): an :class:`Example`, the rules for class names, and :class:`ProjectError`.

A class name is cleaned before it is kept (NFC, invisible characters removed, whitespace collapsed) and compared
after cleaning, so two names that look the same are the same class:

>>> check_class_name("  cafe\\u0301  ") == "caf\\u00e9"
True
>>> find_class(["caf\\u00e9"], "cafe\\u0301")
'café'
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import cached_property

from .frames import shrink_jpeg

__all__ = [
    "MAX_CLASSES",
    "MAX_CLASS_NAME",
    "BackboneMismatch",
    "Example",
    "ProjectError",
    "check_class_name",
    "class_key",
    "find_class",
    "new_class_name",
    "same_class",
    "shown",
]

MAX_CLASS_NAME = 64
MAX_CLASSES = 50
"""Default limit on a project's classes (the app reads ``TEACHABLE_MAX_CLASSES``). Views that compare every class
with every other grow with its square."""
INVISIBLE = frozenset("\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                      "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u2800\u3164\ufeff\uffa0")
"""Characters that show nothing and only hide what a name is (zero-width spaces, direction overrides, soft hyphens,
fillers). They are removed from names; joiners that shape emoji and scripts are kept."""
BLANK_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Zs", "Zl", "Zp"})
"""Unicode categories that draw nothing on their own: a name needs at least one character outside them."""


class ProjectError(ValueError):
    """A project operation or file that cannot be used, with a message a person can act on."""


class BackboneMismatch(ProjectError):
    """The project's embeddings were made by another backbone or tap. ``Project.reembed`` can fix it. The loaded
    project is its ``project``."""

    project: object

    @classmethod
    def of(cls, project, name: str, backbone) -> "BackboneMismatch":
        """The refusal of ``project`` (read from ``name``) for ``backbone``, carrying the project."""
        error = cls(
            f"{name} was made with {project.backbone}/{project.tap}, but {backbone.name} is loaded. Re-embed "
            "it from its thumbnails (Project.reembed, or `teachable fit` again) to use it here."
        )
        error.project = project
        return error


@dataclass(frozen=True)
class Example:
    label: str
    thumbnail: bytes = field(repr=False)
    """JPEG of the square crop the backbone saw."""
    source: str = ""
    """Where it came from: a file name, "webcam", "upload"..."""
    added_at: float = 0.0
    uid: int = -1
    """Identifies the example within a running project (for the map); not saved."""

    @cached_property
    def preview(self) -> bytes:
        """A 96-pixel JPEG for the page, made on first use (a tenth of the thumbnail's bytes)."""
        return shrink_jpeg(self.thumbnail, 96)


def check_class_name(name: object) -> str:
    """Return the cleaned class name (NFC, invisible characters removed, whitespace collapsed) or raise
    :class:`ProjectError` saying what is wrong with it."""
    if not isinstance(name, str):
        raise ProjectError("A class name must be text.")
    if len(name) > 16 * MAX_CLASS_NAME:
        raise ProjectError(f"A class name can be at most {MAX_CLASS_NAME} characters (got {len(name)}).")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ProjectError("A class name must be valid text (it holds an unpaired surrogate character).") from None
    name = unicodedata.normalize("NFC", name)
    cleaned = " ".join("".join(c for c in name if c not in INVISIBLE).split())
    if any(unicodedata.category(c) == "Cc" for c in cleaned):
        raise ProjectError("A class name cannot contain control characters.")
    if not cleaned and name.strip():
        raise ProjectError("A class name needs at least one visible character.")
    if not cleaned:
        raise ProjectError("A class name cannot be empty.")
    if all(unicodedata.category(c) in BLANK_CATEGORIES for c in cleaned):
        raise ProjectError("A class name needs at least one visible character.")
    if len(cleaned) > MAX_CLASS_NAME:
        raise ProjectError(f"A class name can be at most {MAX_CLASS_NAME} characters (got {len(cleaned)}).")
    if class_key(cleaned).casefold() == "unknown":
        raise ProjectError("'unknown' is reserved for frames that look like no class; pick another name.")
    return cleaned


def class_key(cleaned: str) -> str:
    """What two cleaned names are compared by: the name without the format characters (joiners, tags) it kept."""
    return "".join(c for c in cleaned if unicodedata.category(c) != "Cf")


def same_class(classes: list[str], cleaned: str) -> str | None:
    """The class of ``classes`` whose name is the same as ``cleaned`` once both are normalised, if there is one."""
    key = class_key(cleaned)
    return next((c for c in classes if c == cleaned or class_key(c) == key), None)


def find_class(classes: list[str], name: object) -> str | None:
    """The class of ``classes`` that ``name`` names, compared after normalisation (``"cafe\u0301"`` finds
    ``"café"``), or None."""
    if isinstance(name, str) and name in classes:
        return name
    try:
        return same_class(classes, check_class_name(name))
    except ProjectError:
        return None


def new_class_name(classes: list[str], name: object, max_classes: int) -> str:
    """``name`` cleaned, if it can join ``classes``: a valid name, not the same as one of them, and room for it."""
    name = check_class_name(name)
    if same_class(classes, name) is not None:
        raise ProjectError(f"There is already a class named {name!r}.")
    if len(classes) >= max_classes:
        raise ProjectError(f"A project can have at most {max_classes} classes; remove one to add another.")
    return name


def shown(name: object) -> str:
    """``name`` for a message: its repr (which escapes what cannot be printed), cut short."""
    text = repr(name)
    return text if len(text) <= MAX_CLASS_NAME + 2 else text[:MAX_CLASS_NAME] + "…"
