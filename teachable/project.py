"""A project: named classes and their examples, and the one-file ``.zip`` format they are saved in.

An example is a thumbnail (the centre crop the backbone saw, as JPEG), its embedding, where it came from, when
it was added and its take (the examples recorded with it share one; see teachable/knn.py). The project also records which backbone, tap and preprocessing made the embeddings, so a file from
another backbone is recognised on load and can be re-embedded from its thumbnails.

File layout (format version 2)::

    manifest.json     format version, backbone, tap, preprocessing, classes, one record per example (class,
                      thumbnail, source, added_at, take)
    embeddings.npy    float16 (N, D) unit vectors (float32 is read too), row i belongs to manifest example i;
                      loaded with allow_pickle=False
    thumbs/NNNNNN.jpg one JPEG per example

Loading never extracts anything to disk: members are read by their exact manifest names, after the archive's
names, sizes, compression ratios and counts have been checked. Saving writes a temporary file beside the target
and renames it over the target, so a crash mid-save leaves the previous file intact.

Format version 1 (before takes) still loads: its examples' takes come from ``knn.near_copy_takes`` (examples of a
class that are near-copies of each other share one), and the next save writes version 2.
"""

from __future__ import annotations

import io
import json
import lzma
import os
import tempfile
import time
import tokenize
import unicodedata
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path, PurePosixPath

import numpy as np

from .frames import ImageError, decode_image, shrink_jpeg, standard_thumbnail
from .knn import KNNClassifier, KNNError, Prediction, near_copy_takes

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

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1 has no takes."""
MAX_TAKE = 2**53
MAX_CLASS_NAME = 64
MAX_CLASSES = 50
"""Default limit on a project's classes (the app reads ``TEACHABLE_MAX_CLASSES``). Views that compare every class
with every other grow with its square."""
MAX_MEMBERS = 250_000
MAX_MEMBER_BYTES = 512 * 2**20
MAX_TOTAL_BYTES = 4 * 2**30
MAX_MANIFEST_BYTES = 64 * 2**20
"""A manifest for ``MAX_MEMBERS`` examples is about 30 MB; JSON takes several times its size once parsed."""
MAX_THUMBNAIL_BYTES = 2**20
"""Largest thumbnail member read; a 224-pixel thumbnail is about 20 KB."""
MAX_THUMBNAIL_SIDE = 640
"""Largest thumbnail decoded (its header is checked first); larger ones are refused."""
THUMBNAIL_SIDE = 224
"""Side of a thumbnail when the manifest names no plausible input size; others are re-encoded to the input size."""
MAX_SOURCE = 1024
"""An example's ``source`` (where it came from) is cut to this many characters."""
JPEG_MAGIC = b"\xff\xd8\xff"
MAX_RATIO = 200
"""Largest uncompressed/compressed size ratio accepted for a member (zip-bomb guard); JPEG and float data
compress far less than this."""


class ProjectError(ValueError):
    """A project operation or file that cannot be used, with a message a person can act on."""


class BackboneMismatch(ProjectError):
    """The project's embeddings were made by another backbone or tap. ``Project.reembed`` can fix it."""


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


INVISIBLE = frozenset("\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                      "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u2800\u3164\ufeff\uffa0")
"""Characters that show nothing and only hide what a name is (zero-width spaces, direction overrides, soft hyphens,
fillers). They are removed from names; joiners that shape emoji and scripts are kept."""
BLANK_CATEGORIES = frozenset({"Cf", "Mn", "Me", "Zs", "Zl", "Zp"})
"""Unicode categories that draw nothing on their own: a name needs at least one character outside them."""


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


class Project:
    """Classes and examples, kept in step with a :class:`KNNClassifier` over their embeddings."""

    def __init__(
        self,
        backbone: str,
        tap: str,
        embedding_dim: int,
        preprocessing: dict | None = None,
        classes: list[str] | tuple[str, ...] = (),
        max_classes: int = MAX_CLASSES,
    ) -> None:
        self.max_classes = max_classes
        """``add_class`` refuses a class past this many."""
        self.backbone = backbone
        self.tap = tap
        self.preprocessing = dict(preprocessing or {})
        self.classifier = KNNClassifier(embedding_dim)
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
        name = check_class_name(name)
        if self._existing(name) is not None:
            raise ProjectError(f"There is already a class named {name!r}.")
        if len(self.classes) >= self.max_classes:
            raise ProjectError(f"A project can have at most {self.max_classes} classes; remove one to add another.")
        self.classes.append(name)
        return name

    def _existing(self, cleaned: str) -> str | None:
        """The class whose name is the same as ``cleaned`` once both are normalised, if there is one."""
        key = class_key(cleaned)
        return next((c for c in self.classes if c == cleaned or class_key(c) == key), None)

    def rename_class(self, old: str, new: str) -> str:
        old = self._require_class(old)
        new = check_class_name(new)
        if new == old:
            return new
        if self._existing(new) not in (None, old):
            raise ProjectError(f"There is already a class named {new!r}.")
        self.classifier.rename_class(old, new)
        self.classes[self.classes.index(old)] = new
        self.examples = [_relabelled(e, new) if e.label == old else e for e in self.examples]
        return new

    def remove_class(self, name: str) -> None:
        name = self._require_class(name)
        self.clear_class(name)
        self.classes.remove(name)

    def clear_class(self, name: str) -> None:
        name = self._require_class(name)
        self.remove_examples(self.indices_of(name))

    def find_class(self, name: object) -> str | None:
        """The class ``name`` names, compared after normalisation (``"cafe\u0301"`` finds ``"café"``), or None."""
        if isinstance(name, str) and name in self.classes:
            return name
        try:
            return self._existing(check_class_name(name))
        except ProjectError:
            return None

    def _require_class(self, name: str) -> str:
        """The class ``name`` names (see :meth:`find_class`), or :class:`ProjectError`."""
        found = self.find_class(name)
        if found is None:
            raise ProjectError(f"There is no class named {_shown(name)}.")
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
        try:
            self.classifier.add(_direction_safe(embeddings), label, take)
        except KNNError as error:
            raise ProjectError(str(error)) from None
        now = time.time()
        self.examples.extend(Example(label, thumb, source, now, self._new_uid()) for thumb in thumbnails)

    def new_take(self) -> int:
        """A take number no example has yet: pass it to every :meth:`add_examples` of one recording."""
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

    def move_example(self, index: int, label: str) -> None:
        label = self._require_class(label)
        index = self._example_index(index)
        self.classifier.relabel(index, label)
        self.examples[index] = _relabelled(self.examples[index], label)

    def _example_index(self, index: object) -> int:
        """``index`` as the row of an existing example, or :class:`ProjectError`."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ProjectError(f"An example index must be a whole number, not {_shown(index)}.")
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
        dim = backbone.tap(tap).channels
        vectors = []
        for start in range(0, len(self.examples), batch_size):
            chunk = self.examples[start : start + batch_size]
            images = np.stack([backbone.prepare(decode_image(e.thumbnail)) for e in chunk])
            vectors.append(backbone.embed(images, tap))
            if progress:
                progress(start + len(chunk), len(self.examples))
        classifier = KNNClassifier(dim, self.classifier.threshold, self.classifier.temperature)
        if vectors:
            classifier.add(np.concatenate(vectors), [e.label for e in self.examples], list(self.takes))
        self.backbone, self.tap = backbone.name, tap
        self.preprocessing = _preprocessing_of(backbone)
        self.classifier = classifier

    # ----------------------------------------------------------------- saving
    def manifest(self) -> dict:
        return {
            "format": "teachable-project",
            "format_version": FORMAT_VERSION,
            "backbone": self.backbone,
            "tap": self.tap,
            "embedding_dim": self.classifier.dim,
            "preprocessing": self.preprocessing,
            "classes": list(self.classes),
            "examples": [
                {
                    "label": e.label,
                    "thumbnail": f"thumbs/{i:06d}.jpg",
                    "source": e.source,
                    "added_at": e.added_at,
                    "take": take,
                }
                for i, (e, take) in enumerate(zip(self.examples, self.takes))
            ],
        }

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            manifest = self.manifest()
            archive.writestr("manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False))
            embeddings = io.BytesIO()
            # The classifier keeps vectors at float16 precision, so this is lossless (see knn.py).
            np.save(embeddings, self.embeddings.astype(np.float16), allow_pickle=False)
            archive.writestr("embeddings.npy", embeddings.getvalue())
            for record, example in zip(manifest["examples"], self.examples):
                archive.writestr(record["thumbnail"], example.thumbnail, compress_type=zipfile.ZIP_STORED)
        return buffer.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the project atomically: a temporary file in the same folder, fsynced, then renamed over ``path``."""
        path = Path(path)
        data = self.to_bytes()
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _remove_stale_temporaries(path)
        return path

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        source: str | Path | bytes,
        backbone=None,
        *,
        max_examples: int | None = None,
        max_classes: int = MAX_CLASSES,
    ) -> "Project":
        """Load and validate a project file (a path or the file's bytes).

        ``max_examples`` and ``max_classes`` are checked against the manifest before any embedding or thumbnail is
        read, so a file over a limit is refused at once; the project keeps ``max_classes`` for later classes. With
        ``backbone`` given, raise :class:`BackboneMismatch` when the file's embeddings came from another backbone or
        tap. Every thumbnail is decoded (a damaged one is refused) and re-encoded when it is not a plain square.
        """
        name = "project file" if isinstance(source, (bytes, bytearray)) else str(source)
        try:
            handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
        except OSError as error:
            raise ProjectError(f"Cannot open {name}: {error.strerror}.") from None
        try:
            with handle, zipfile.ZipFile(handle) as archive:
                project = _read_archive(archive, name, max_examples, max_classes)
        except ProjectError:
            raise
        except zipfile.BadZipFile:
            raise ProjectError(f"{name} is not a teachable project (not a valid .zip file).") from None
        except (EOFError, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError, ValueError) as error:
            raise ProjectError(f"{name} is damaged: {error}") from None
        except (zlib.error, lzma.LZMAError) as error:  # a compressed member's data is damaged
            raise ProjectError(f"{name} is damaged: {error}") from None
        fits = (
            backbone is None
            or project.backbone == backbone.name
            and project.tap in backbone.taps
            and backbone.taps[project.tap].channels == project.classifier.dim
        )
        if not fits:
            error = BackboneMismatch(
                f"{name} was made with {project.backbone}/{project.tap}, but {backbone.name} is loaded. Re-embed "
                "it from its thumbnails (Project.reembed, or `teachable fit` again) to use it here."
            )
            error.project = project
            raise error
        return project


STALE_AFTER_SECONDS = 60


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that earlier saves of ``path`` left behind when their process was killed."""
    now = time.time()
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - stale.stat().st_mtime > STALE_AFTER_SECONDS:
                stale.unlink()
        except OSError:
            pass  # another process's save finished or cleaned it first


def _direction_safe(embeddings: np.ndarray) -> np.ndarray:
    """Finite rows scaled so their largest entry is 1: the same directions, with lengths whose squares cannot
    overflow float32 (a row of 1e19 would otherwise become a zero vector when normalised)."""
    largest = np.abs(embeddings).max(axis=1, keepdims=True, initial=0)
    scalable = np.isfinite(largest) & (largest > 0)
    return np.where(scalable, embeddings / np.where(scalable, largest, 1), embeddings)


def _shown(name: object) -> str:
    """``name`` for a message: its repr (which escapes what cannot be printed), cut short."""
    text = repr(name)
    return text if len(text) <= MAX_CLASS_NAME + 2 else text[:MAX_CLASS_NAME] + "…"


def _shown_member(member: str) -> str:
    """A member's name for a message: as it is when short and printable, else as :func:`_shown` gives it."""
    return member if member.isprintable() and len(member) <= MAX_CLASS_NAME else _shown(member)


def _preprocessing_of(backbone) -> dict:
    return {"input_size": backbone.input_size, "mean": list(backbone.mean), "std": list(backbone.std)}


def _relabelled(example: Example, label: str) -> Example:
    return replace(example, label=label)


def _check_members(archive: zipfile.ZipFile, name: str) -> None:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ProjectError(f"{name} has {len(infos):,} members; the limit is {MAX_MEMBERS:,}.")
    total = 0
    for info in infos:
        member = PurePosixPath(info.filename)
        if (
            info.filename.startswith(("/", "\\"))
            or ".." in member.parts
            or ":" in info.filename
            or "\\" in info.filename
        ):
            raise ProjectError(f"{name} contains an unsafe path {info.filename!r}; refusing to load it.")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise ProjectError(f"{name} contains a symbolic link {info.filename!r}; refusing to load it.")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ProjectError(f"{name}: member {info.filename!r} is too large ({info.file_size:,} bytes).")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            raise ProjectError(f"{name}: member {info.filename!r} is compressed suspiciously well (zip bomb?).")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ProjectError(f"{name} would unpack to {total:,} bytes; the limit is {MAX_TOTAL_BYTES:,}.")


def _read_member(archive: zipfile.ZipFile, member: str, name: str, limit: int = MAX_MEMBER_BYTES) -> bytes:
    """The bytes of ``member``, after checking that it exists and that its header claims at most ``limit`` bytes."""
    info = _member_info(archive, member, name)
    if info.file_size > limit:
        raise ProjectError(f"{name}: {_shown_member(member)} is {info.file_size:,} bytes; the limit is {limit:,}.")
    with archive.open(info) as handle:
        data = handle.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ProjectError(f"{name}: {_shown_member(member)} is not the size its header claims.")
    return data


def _member_info(archive: zipfile.ZipFile, member: str, name: str) -> zipfile.ZipInfo:
    try:
        return archive.getinfo(member)
    except KeyError:
        raise ProjectError(f"{name} is incomplete: {_shown_member(member)} is missing.") from None


def _read_archive(archive: zipfile.ZipFile, name: str, max_examples: int | None, max_classes: int) -> Project:
    """Check the members, the manifest and the limits, then read embeddings and thumbnails (in that order)."""
    _check_members(archive, name)
    fields = _read_manifest(archive, name)
    version, backbone, tap, dim, preprocessing, classes, records = fields
    if len(classes) > max_classes:
        raise ProjectError(f"{name} has {len(classes):,} classes; the limit is {max_classes:,}.")
    if max_examples is not None and len(records) > max_examples:
        raise ProjectError(f"{name} has {len(records):,} examples; the limit is {max_examples:,}.")
    members = _thumbnail_members(archive, records, name)
    embeddings = _read_embeddings(archive, name, len(records), dim)
    try:
        project = Project(backbone, tap, dim, preprocessing, classes, max_classes)
    except ProjectError as error:
        raise ProjectError(f"{name}: {error}") from None
    side = _thumbnail_side(preprocessing)
    for i, (record, member) in enumerate(zip(records, members)):
        project.examples.append(_read_example(archive, name, project, i, record, member, side))
    if records:
        labels = [example.label for example in project.examples]
        try:
            takes = _read_takes(records, name) if version >= 2 else near_copy_takes(embeddings, labels)
            project.classifier.add(embeddings, labels, list(takes))
        except KNNError as error:
            raise ProjectError(f"{name}: {error}") from None
    return project


def _read_takes(records: list[dict], name: str) -> list[int]:
    """The take of each example record; a record without one is a take of its own."""
    takes = [record.get("take") for record in records]
    for index, take in enumerate(takes):
        if take is not None and (isinstance(take, bool) or not isinstance(take, int) or not 0 <= take < MAX_TAKE):
            raise ProjectError(f"{name}: example {index} has a take of {_shown(take)}; it must be a whole number.")
    unused = max((take for take in takes if take is not None), default=-1) + 1
    own = iter(range(unused, unused + len(takes)))
    return [next(own) if take is None else take for take in takes]


def _read_manifest(archive: zipfile.ZipFile, name: str) -> tuple[int, str, str, int, dict, list, list]:
    """format version, backbone, tap, embedding_dim, preprocessing, classes and example records, each checked for
    its type."""
    try:
        manifest = json.loads(_read_member(archive, "manifest.json", name, MAX_MANIFEST_BYTES))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ProjectError(f"{name}: manifest.json is not valid JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "teachable-project":
        raise ProjectError(f"{name} is not a teachable project (its manifest has no 'teachable-project' format).")
    version = manifest.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ProjectError(
            f"{name} has format version {_shown(version)}; this version of teachable reads versions "
            f"{READABLE_VERSIONS[0]} to {READABLE_VERSIONS[-1]}."
        )
    try:
        backbone, tap, dim = _text(manifest["backbone"]), _text(manifest["tap"]), manifest["embedding_dim"]
        classes, records = manifest["classes"], manifest["examples"]
        preprocessing = manifest.get("preprocessing") or {}
    except KeyError as error:
        raise ProjectError(f"{name}: manifest.json is missing the field {error}.") from None
    for field_name, value, kind in [
        ("embedding_dim", dim, int),
        ("classes", classes, list),
        ("examples", records, list),
        ("preprocessing", preprocessing, dict),
    ]:
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ProjectError(f"{name}: manifest.json has a wrong {field_name} (expected {kind.__name__}).")
    if not 0 < dim <= 65536:
        raise ProjectError(f"{name}: embedding_dim {dim} is not plausible.")
    try:
        json.dumps(preprocessing, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError):
        raise ProjectError(f"{name}: manifest.json has a wrong preprocessing (not plain text and numbers).") from None
    return version, backbone, tap, dim, preprocessing, classes, records


def _text(value: object, limit: int = 200) -> str:
    """``value`` as printable, encodable text of at most ``limit`` characters."""
    text = str(value)[:limit]
    return text.encode("utf-8", "replace").decode("utf-8")


def _thumbnail_members(archive: zipfile.ZipFile, records: list, name: str) -> list[zipfile.ZipInfo]:
    """Each example's thumbnail member, checked before any is read: present, small, and not shared with another
    example (many examples naming one large member would multiply it in memory and in every later save)."""
    first_user: dict[str, int] = {}
    members = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ProjectError(f"{name}: example {i} is not a record.")
        member = str(record.get("thumbnail"))
        if member in first_user:
            raise ProjectError(
                f"{name}: examples {first_user[member]} and {i} share the thumbnail {_shown_member(member)}; "
                "each example needs its own."
            )
        first_user[member] = i
        info = _member_info(archive, member, name)
        if info.file_size > MAX_THUMBNAIL_BYTES:
            raise ProjectError(
                f"{name}: the thumbnail of example {i} is {info.file_size:,} bytes; the limit is {MAX_THUMBNAIL_BYTES:,}."
            )
        members.append(info)
    return members


NPY_HEADER_ROOM = 4096
"""Bytes allowed for an .npy file's magic and header (NumPy writes 128)."""


def _read_embeddings(archive: zipfile.ZipFile, name: str, count: int, dim: int) -> np.ndarray:
    """The ``count`` x ``dim`` float array in embeddings.npy. Its header is checked before any data is read, so a
    header that claims a huge shape, an .npz archive or pickled objects cost nothing."""
    limit = NPY_HEADER_ROOM + count * dim * 8
    handle = io.BytesIO(_read_member(archive, "embeddings.npy", name, limit))
    try:
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version} is not supported")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(handle)
    except (ValueError, TypeError, SyntaxError, OverflowError, tokenize.TokenError) as error:
        # NumPy parses the header as a Python literal; a damaged one fails in the tokenizer or the parser
        raise ProjectError(f"{name}: embeddings.npy cannot be read safely ({error}).") from None
    if dtype.hasobject:
        raise ProjectError(f"{name}: embeddings.npy cannot be read safely (it holds Python objects).")
    if dtype.kind != "f" or dtype.itemsize > 8 or shape != (count, dim):
        raise ProjectError(
            f"{name}: embeddings.npy has shape {_shown(shape)} and type {dtype}; the manifest describes {count} "
            f"examples of dimension {dim} (float)."
        )
    data = handle.read()
    if len(data) != count * dim * dtype.itemsize:
        raise ProjectError(f"{name}: embeddings.npy holds {len(data):,} bytes of data, not the {count} x {dim} it claims.")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")


def _thumbnail_side(preprocessing: dict) -> int:
    """The side thumbnails are stored at: the manifest's input size when it is plausible."""
    size = preprocessing.get("input_size")
    plausible = isinstance(size, int) and not isinstance(size, bool) and 16 <= size <= MAX_THUMBNAIL_SIDE
    return size if plausible else THUMBNAIL_SIDE


def _read_example(
    archive: zipfile.ZipFile, name: str, project: Project, index: int, record: dict, member: zipfile.ZipInfo, side: int
) -> Example:
    """Example ``index``: its class, its thumbnail (decoded, and re-encoded unless plain), its source and time."""
    try:
        label = project._require_class(record.get("label"))
    except ProjectError:
        raise ProjectError(f"{name}: example {index} has no valid class.") from None
    data = _read_member(archive, member.filename, name, MAX_THUMBNAIL_BYTES)
    if not data.startswith(JPEG_MAGIC):
        raise ProjectError(f"{name}: the thumbnail of example {index} is not a JPEG.")
    try:
        thumbnail = standard_thumbnail(data, side, MAX_THUMBNAIL_SIDE, f"the thumbnail of example {index}")
    except ImageError as error:
        raise ProjectError(f"{name}: {error}") from None
    added_at = _seconds(record.get("added_at", 0.0))
    if added_at is None:
        raise ProjectError(
            f"{name}: example {index} has an added_at of {_shown(record.get('added_at'))}; it must be a time in seconds."
        )
    source = _text(record.get("source", ""), MAX_SOURCE)
    return Example(label, thumbnail, source, added_at, project._new_uid())


def _seconds(value: object) -> float | None:
    """``value`` as a finite number of seconds, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if np.isfinite(seconds) else None
