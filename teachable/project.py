"""A project: named classes and their examples, and the one-file ``.zip`` format they are saved in.

An example is a thumbnail (the centre crop the backbone saw, as JPEG), its embedding, where it came from and when
it was added. The project also records which backbone, tap and preprocessing made the embeddings, so a file from
another backbone is recognised on load and can be re-embedded from its thumbnails.

File layout (format version 1)::

    manifest.json     format version, backbone, tap, preprocessing, classes, one record per example
    embeddings.npy    float16 (N, D) unit vectors (float32 is read too), row i belongs to manifest example i;
                      loaded with allow_pickle=False
    thumbs/NNNNNN.jpg one JPEG per example

Loading never extracts anything to disk: members are read by their exact manifest names, after the archive's
names, sizes, compression ratios and counts have been checked. Saving writes a temporary file beside the target
and renames it over the target, so a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path, PurePosixPath

import numpy as np

from .frames import decode_image, shrink_jpeg
from .knn import KNNClassifier, KNNError, Prediction

__all__ = ["Project", "Example", "ProjectError", "BackboneMismatch", "FORMAT_VERSION", "MAX_CLASS_NAME"]

FORMAT_VERSION = 1
MAX_CLASS_NAME = 64
MAX_MEMBERS = 250_000
MAX_MEMBER_BYTES = 512 * 2**20
MAX_TOTAL_BYTES = 4 * 2**30
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


def check_class_name(name: object) -> str:
    """Return a cleaned class name or raise :class:`ProjectError` saying what is wrong with it."""
    if not isinstance(name, str):
        raise ProjectError("A class name must be text.")
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ProjectError("A class name cannot be empty.")
    if len(cleaned) > MAX_CLASS_NAME:
        raise ProjectError(f"A class name can be at most {MAX_CLASS_NAME} characters (got {len(cleaned)}).")
    if cleaned.lower() == "unknown":
        raise ProjectError("'unknown' is reserved for frames that look like no class; pick another name.")
    return cleaned


class Project:
    """Classes and examples, kept in step with a :class:`KNNClassifier` over their embeddings."""

    def __init__(
        self,
        backbone: str,
        tap: str,
        embedding_dim: int,
        preprocessing: dict | None = None,
        classes: list[str] | tuple[str, ...] = (),
    ) -> None:
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
    def for_backbone(cls, backbone, classes: list[str] | tuple[str, ...] = (), tap: str | None = None) -> "Project":
        """An empty project whose embeddings come from ``backbone`` at ``tap`` (default: its embedding tap)."""
        tap = backbone.tap(tap or backbone.embedding_tap).name
        return cls(backbone.name, tap, backbone.tap(tap).channels, _preprocessing_of(backbone), classes)

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
        name = check_class_name(name)
        if name in self.classes:
            raise ProjectError(f"There is already a class named {name!r}.")
        self.classes.append(name)
        return name

    def rename_class(self, old: str, new: str) -> str:
        self._require_class(old)
        new = check_class_name(new)
        if new == old:
            return new
        if new in self.classes:
            raise ProjectError(f"There is already a class named {new!r}.")
        self.classifier.rename_class(old, new)
        self.classes[self.classes.index(old)] = new
        self.examples = [_relabelled(e, new) if e.label == old else e for e in self.examples]
        return new

    def remove_class(self, name: str) -> None:
        self._require_class(name)
        self.clear_class(name)
        self.classes.remove(name)

    def clear_class(self, name: str) -> None:
        self._require_class(name)
        self.remove_examples(self.indices_of(name))

    def _require_class(self, name: str) -> None:
        if name not in self.classes:
            raise ProjectError(f"There is no class named {name!r}.")

    # ----------------------------------------------------------------- examples
    def add_examples(self, label: str, embeddings: np.ndarray, thumbnails: list[bytes], source: str = "") -> None:
        """Add examples of an existing class. Embeddings and thumbnails are validated before anything changes."""
        self._require_class(label)
        embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if len(embeddings) != len(thumbnails):
            raise ProjectError(f"Got {len(embeddings)} embeddings but {len(thumbnails)} thumbnails.")
        try:
            self.classifier.add(embeddings, label)
        except KNNError as error:
            raise ProjectError(str(error)) from None
        now = time.time()
        self.examples.extend(Example(label, thumb, source, now, self._new_uid()) for thumb in thumbnails)

    def _new_uid(self) -> int:
        self._next_uid += 1
        return self._next_uid

    @property
    def uids(self) -> list[int]:
        return [example.uid for example in self.examples]

    def remove_examples(self, indices: list[int]) -> None:
        try:
            self.classifier.remove(indices)
        except KNNError as error:
            raise ProjectError(str(error)) from None
        drop = set(int(i) for i in indices)
        self.examples = [e for i, e in enumerate(self.examples) if i not in drop]

    def move_example(self, index: int, label: str) -> None:
        self._require_class(label)
        self.classifier.relabel(index, label)
        self.examples[index] = _relabelled(self.examples[index], label)

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
            classifier.add(np.concatenate(vectors), [e.label for e in self.examples])
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
                }
                for i, e in enumerate(self.examples)
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
    def load(cls, source: str | Path | bytes, backbone=None) -> "Project":
        """Load and validate a project file (a path or the file's bytes).

        With ``backbone`` given, raise :class:`BackboneMismatch` when the file's embeddings came from another
        backbone or tap.
        """
        name = "project file" if isinstance(source, bytes) else str(source)
        try:
            handle = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
        except OSError as error:
            raise ProjectError(f"Cannot open {name}: {error.strerror}.") from None
        try:
            with handle, zipfile.ZipFile(handle) as archive:
                project = _read_archive(archive, name)
        except zipfile.BadZipFile:
            raise ProjectError(f"{name} is not a teachable project (not a valid .zip file).") from None
        except (EOFError, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError) as error:
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


def _read_member(archive: zipfile.ZipFile, member: str, name: str) -> bytes:
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise ProjectError(f"{name} is incomplete: {member} is missing.") from None
    with archive.open(info) as handle:
        data = handle.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ProjectError(f"{name}: {member} is not the size its header claims.")
    return data


def _read_archive(archive: zipfile.ZipFile, name: str) -> Project:
    _check_members(archive, name)
    try:
        manifest = json.loads(_read_member(archive, "manifest.json", name))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ProjectError(f"{name}: manifest.json is not valid JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "teachable-project":
        raise ProjectError(f"{name} is not a teachable project (its manifest has no 'teachable-project' format).")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ProjectError(
            f"{name} has format version {version!r}; this version of teachable reads version {FORMAT_VERSION}."
        )
    try:
        backbone, tap, dim = str(manifest["backbone"]), str(manifest["tap"]), int(manifest["embedding_dim"])
        classes, records = list(manifest["classes"]), list(manifest["examples"])
        preprocessing = dict(manifest.get("preprocessing") or {})
    except (KeyError, TypeError, ValueError) as error:
        raise ProjectError(f"{name}: manifest.json is missing or has a wrong field ({error}).") from None
    if not 0 < dim <= 65536:
        raise ProjectError(f"{name}: embedding_dim {dim} is not plausible.")
    try:
        embeddings = np.load(io.BytesIO(_read_member(archive, "embeddings.npy", name)), allow_pickle=False)
    except ValueError as error:
        raise ProjectError(f"{name}: embeddings.npy cannot be read safely ({error}).") from None
    if embeddings.dtype.kind != "f" or embeddings.shape != (len(records), dim):
        raise ProjectError(
            f"{name}: embeddings.npy has shape {embeddings.shape} and type {embeddings.dtype}; the manifest "
            f"describes {len(records)} examples of dimension {dim} (float)."
        )
    try:
        project = Project(backbone, tap, dim, preprocessing, classes)
    except ProjectError as error:
        raise ProjectError(f"{name}: {error}") from None
    labels = []
    for i, record in enumerate(records):
        if not isinstance(record, dict) or record.get("label") not in project.classes:
            raise ProjectError(f"{name}: example {i} has no valid class.")
        thumbnail = _read_member(archive, str(record.get("thumbnail")), name)
        if not thumbnail.startswith(JPEG_MAGIC):  # full decoding waits until a thumbnail is shown or re-embedded
            raise ProjectError(f"{name}: the thumbnail of example {i} is not a JPEG.")
        labels.append(record["label"])
        source, added_at = str(record.get("source", "")), float(record.get("added_at", 0.0))
        project.examples.append(Example(record["label"], thumbnail, source, added_at, project._new_uid()))
    if records:
        try:
            project.classifier.add(embeddings, labels)
        except KNNError as error:
            raise ProjectError(f"{name}: {error}") from None
    return project
