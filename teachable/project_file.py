"""The project file: one ``.zip`` that holds a project's classes, examples and embeddings, and the checks that
refuse a wrong or hostile file with a message a person can act on.

File layout (format version 2)::

    manifest.json     format version, backbone, tap, preprocessing, classes, one record per example (class,
                      thumbnail, source, added_at, take)
    embeddings.npy    float16 (N, D) unit vectors (float32 is read too), row i belongs to manifest example i;
                      loaded with allow_pickle=False
    thumbs/NNNNNN.jpg one JPEG per example

Reading never extracts anything to disk: members are read by their exact manifest names, after the archive's
names, sizes, compression ratios and counts have been checked, and the limits (classes, examples) before any
embedding or thumbnail is read. Writing goes through :func:`teachable.atomic.atomic_write`, so a crash mid-save
leaves the previous file intact.

Format version 1 (before takes) still loads: its examples' takes come from ``vectors.near_copy_takes`` (examples of
a class that are near-copies of each other share one), and the next save writes version 2.

This module reads and writes :class:`ProjectContents`, plain data. :class:`teachable.project.Project` is made from
it (``Project.from_contents``) and gives it back (``Project.contents``); it gets ``load``, ``save``, ``to_bytes``
and ``manifest`` from :class:`ProjectFileMethods`.
"""

from __future__ import annotations

import io
import json
import lzma
import time
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .atomic import atomic_write
from .frames import ImageError, standard_thumbnail
from .project_parts import (
    MAX_CLASS_NAME,
    MAX_CLASSES,
    BackboneMismatch,
    Example,
    ProjectError,
    find_class,
    new_class_name,
    shown,
)
from .vectors import KNNError, near_copy_takes

__all__ = [
    "FORMAT_VERSION",
    "JPEG_MAGIC",
    "MAX_THUMBNAIL_BYTES",
    "ProjectContents",
    "ProjectFileMethods",
    "archive_bytes",
    "manifest_of",
    "read_project_file",
    "source_name",
    "write_project_file",
]

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1 has no takes."""
MAX_TAKE = 2**53
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
STALE_AFTER_SECONDS = 60
NPY_HEADER_ROOM = 4096
"""Bytes allowed for an .npy file's magic and header (NumPy writes 128)."""


@dataclass(frozen=True)
class ProjectContents:
    """Everything a project file holds, as plain data."""

    backbone: str
    tap: str
    embedding_dim: int
    preprocessing: dict
    classes: list[str]
    examples: list[Example]
    embeddings: np.ndarray
    """Row i is the embedding of ``examples[i]``, at float16 precision."""
    takes: list[int]
    """The take of each example."""


class ProjectFileMethods:
    """The file methods of :class:`teachable.project.Project`, which inherits them. They need three of its own:
    ``contents()``, the class method ``from_contents(contents, max_classes)`` and ``fits(backbone)``."""

    def manifest(self) -> dict:
        return manifest_of(self.contents())

    def to_bytes(self) -> bytes:
        return archive_bytes(self.contents())

    def save(self, path: str | Path) -> Path:
        """Write the project atomically (see :func:`teachable.atomic.atomic_write`); returns the path."""
        return write_project_file(path, self.contents())

    @classmethod
    def load(
        cls,
        source: str | Path | bytes,
        backbone=None,
        *,
        max_examples: int | None = None,
        max_classes: int = MAX_CLASSES,
    ):
        """Load and validate a project file (a path or the file's bytes).

        ``max_examples`` and ``max_classes`` are checked against the manifest before any embedding or thumbnail is
        read, so a file over a limit is refused at once; the project keeps ``max_classes`` for later classes. With
        ``backbone`` given, raise :class:`BackboneMismatch` when the file's embeddings came from another backbone or
        tap. Every thumbnail is decoded (a damaged one is refused) and re-encoded when it is not a plain square.
        """
        name = source_name(source)
        contents = read_project_file(source, max_examples=max_examples, max_classes=max_classes)
        try:
            project = cls.from_contents(contents, max_classes)
        except ProjectError as error:
            raise ProjectError(f"{name}: {error}") from None
        if backbone is not None and not project.fits(backbone):
            raise BackboneMismatch.of(project, name, backbone)
        return project


# ----------------------------------------------------------------- writing
def manifest_of(contents: ProjectContents) -> dict:
    """The manifest.json of ``contents``, as a dict."""
    return {
        "format": "teachable-project",
        "format_version": FORMAT_VERSION,
        "backbone": contents.backbone,
        "tap": contents.tap,
        "embedding_dim": contents.embedding_dim,
        "preprocessing": contents.preprocessing,
        "classes": list(contents.classes),
        "examples": [
            {
                "label": e.label,
                "thumbnail": f"thumbs/{i:06d}.jpg",
                "source": e.source,
                "added_at": e.added_at,
                "take": take,
            }
            for i, (e, take) in enumerate(zip(contents.examples, contents.takes))
        ],
    }


def archive_bytes(contents: ProjectContents) -> bytes:
    """The project file of ``contents``, as bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        manifest = manifest_of(contents)
        archive.writestr("manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False))
        embeddings = io.BytesIO()
        # The classifier keeps vectors at float16 precision, so this is lossless (see knn.py).
        np.save(embeddings, contents.embeddings.astype(np.float16), allow_pickle=False)
        archive.writestr("embeddings.npy", embeddings.getvalue())
        for record, example in zip(manifest["examples"], contents.examples):
            archive.writestr(record["thumbnail"], example.thumbnail, compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def write_project_file(path: str | Path, contents: ProjectContents) -> Path:
    """Write the project file atomically (see :func:`teachable.atomic.atomic_write`); returns the path."""
    path = atomic_write(path, archive_bytes(contents))
    _remove_stale_temporaries(path)
    return path


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that earlier saves of ``path`` left behind when their process was killed."""
    now = time.time()
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - stale.stat().st_mtime > STALE_AFTER_SECONDS:
                stale.unlink()
        except OSError:
            pass  # another process's save finished or cleaned it first


# ----------------------------------------------------------------- reading
def source_name(source: str | Path | bytes) -> str:
    """How messages name a project file given as a path or as its bytes."""
    return "project file" if isinstance(source, (bytes, bytearray)) else str(source)


def read_project_file(
    source: str | Path | bytes, *, max_examples: int | None = None, max_classes: int = MAX_CLASSES
) -> ProjectContents:
    """Read and check a project file (a path or the file's bytes), or raise :class:`ProjectError`.

    ``max_examples`` and ``max_classes`` are checked against the manifest before any embedding or thumbnail is read.
    Every thumbnail is decoded (a damaged one is refused) and re-encoded when it is not a plain square."""
    name = source_name(source)
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")
    except OSError as error:
        raise ProjectError(f"Cannot open {name}: {error.strerror}.") from None
    try:
        with handle, zipfile.ZipFile(handle) as archive:
            return _read_archive(archive, name, max_examples, max_classes)
    except ProjectError:
        raise
    except zipfile.BadZipFile:
        raise ProjectError(f"{name} is not a teachable project (not a valid .zip file).") from None
    except (EOFError, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError, ValueError) as error:
        raise ProjectError(f"{name} is damaged: {error}") from None
    except (zlib.error, lzma.LZMAError) as error:  # a compressed member's data is damaged
        raise ProjectError(f"{name} is damaged: {error}") from None


def _read_archive(archive: zipfile.ZipFile, name: str, max_examples: int | None, max_classes: int) -> ProjectContents:
    """Check the members, the manifest and the limits, then read embeddings, classes and thumbnails (in that
    order)."""
    _check_members(archive, name)
    fields = _read_manifest(archive, name)
    version, backbone, tap, dim, preprocessing, classes, records = fields
    if len(classes) > max_classes:
        raise ProjectError(f"{name} has {len(classes):,} classes; the limit is {max_classes:,}.")
    if max_examples is not None and len(records) > max_examples:
        raise ProjectError(f"{name} has {len(records):,} examples; the limit is {max_examples:,}.")
    members = _thumbnail_members(archive, records, name)
    embeddings = _read_embeddings(archive, name, len(records), dim)
    classes = _checked_classes(classes, name, max_classes)
    side = _thumbnail_side(preprocessing)
    examples = [
        _read_example(archive, name, classes, i, record, member, side)
        for i, (record, member) in enumerate(zip(records, members))
    ]
    takes = _read_takes(records, name) if version >= 2 else _near_copy_takes(embeddings, examples, name)
    return ProjectContents(backbone, tap, dim, preprocessing, classes, examples, embeddings, takes)


def _near_copy_takes(embeddings: np.ndarray, examples: list[Example], name: str) -> list[int]:
    """Takes for a version-1 file, which has none: near-copies within a class share one."""
    if not examples:
        return []
    try:
        return [int(take) for take in near_copy_takes(embeddings, [example.label for example in examples])]
    except KNNError as error:
        raise ProjectError(f"{name}: {error}") from None


def _checked_classes(classes: list, name: str, max_classes: int) -> list[str]:
    """The manifest's classes, cleaned and checked as ``Project.add_class`` checks a new one."""
    checked: list[str] = []
    try:
        for raw in classes:
            checked.append(new_class_name(checked, raw, max_classes))
    except ProjectError as error:
        raise ProjectError(f"{name}: {error}") from None
    return checked


def _shown_member(member: str) -> str:
    """A member's name for a message: as it is when short and printable, else as :func:`shown` gives it."""
    return member if member.isprintable() and len(member) <= MAX_CLASS_NAME else shown(member)


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


def _read_takes(records: list[dict], name: str) -> list[int]:
    """The take of each example record; a record without one is a take of its own."""
    takes = [record.get("take") for record in records]
    for index, take in enumerate(takes):
        if take is not None and (isinstance(take, bool) or not isinstance(take, int) or not 0 <= take < MAX_TAKE):
            raise ProjectError(f"{name}: example {index} has a take of {shown(take)}; it must be a whole number.")
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
            f"{name} has format version {shown(version)}; this version of teachable reads versions "
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
            f"{name}: embeddings.npy has shape {shown(shape)} and type {dtype}; the manifest describes {count} "
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
    archive: zipfile.ZipFile,
    name: str,
    classes: list[str],
    index: int,
    record: dict,
    member: zipfile.ZipInfo,
    side: int,
) -> Example:
    """Example ``index``: its class, its thumbnail (decoded, and re-encoded unless plain), its source and time. (Its
    uid is given by the project it joins.)"""
    label = find_class(classes, record.get("label"))
    if label is None:
        raise ProjectError(f"{name}: example {index} has no valid class.")
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
            f"{name}: example {index} has an added_at of {shown(record.get('added_at'))}; it must be a time in seconds."
        )
    source = _text(record.get("source", ""), MAX_SOURCE)
    return Example(label, thumbnail, source, added_at)


def _seconds(value: object) -> float | None:
    """``value`` as a finite number of seconds, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if np.isfinite(seconds) else None
