"""Importing a folder of images (one sub-folder per class) into a project: streamed, batched and resumable.

Images are read, cropped and JPEG-encoded by DataLoader workers while the backbone embeds the previous batch.
Every ``checkpoint_seconds`` the project so far is saved (atomically) beside the output as ``<output>.partial``;
a later run on the same folder and output picks it up and embeds only the images not in it yet. Unreadable images
are skipped and counted, never fatal.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from .frames import IMAGE_SUFFIXES, ImageError, as_rgb_uint8, center_square, encode_jpeg, load_image
from .project import MAX_CLASSES, Project, ProjectError

__all__ = [
    "ImageFile",
    "FolderError",
    "ImportReport",
    "list_images",
    "import_folder",
    "partial_path",
    "read_square",
    "run_import",
]

CHECKPOINT_SECONDS = 120.0
PR_SET_PDEATHSIG = 1  # prctl option, from <linux/prctl.h>


class FolderError(ValueError):
    """A folder that cannot be imported, with what to do about it."""


@dataclass(frozen=True)
class ImageFile:
    label: str
    path: Path
    source: str
    """The path relative to the imported folder: the example's ``source``, and how a resumed import knows it."""


@dataclass(frozen=True)
class ImportReport:
    added: int
    skipped: list[str]
    """One message per unreadable image."""
    resumed: int
    """Examples that were already in the partial project when this run started."""


def list_images(folder: str | Path) -> tuple[list[str], list[ImageFile]]:
    """Class names (the sub-folders, sorted) and every image file under them, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError(f"{folder} is not a folder. Give a folder with one sub-folder of images per class.")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise FolderError(f"{folder} has no class sub-folders. Put each class's images in a sub-folder named after it.")
    files = [
        ImageFile(class_folder.name, path, path.relative_to(folder).as_posix())
        for class_folder in classes
        for path in sorted(class_folder.rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    if not files:
        raise FolderError(f"No images ({', '.join(IMAGE_SUFFIXES)}) found under {folder}.")
    return [c.name for c in classes], files


def partial_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".partial")


class _Squares(Dataset):
    """Each file as the square crop the backbone sees and its thumbnail, or the reason it cannot be read."""

    def __init__(self, files: list[ImageFile], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, bytes, str]:
        return (index, *read_square(self.files[index].path, self.size))


def read_square(path: str | Path, size: int) -> tuple[np.ndarray | None, bytes, str]:
    """A file as the ``size`` square the backbone sees and its JPEG thumbnail, or ``(None, b"", why)`` when it
    cannot be read. Shared by every way of importing."""
    try:
        square = center_square(as_rgb_uint8(load_image(path)), size)
    except ImageError as error:
        return None, b"", str(error)
    return square, encode_jpeg(square), ""


def _as_list(items: list) -> list:
    return items


def _die_with_parent(_worker_id: int) -> None:
    """On Linux, a worker is killed when the importing process dies, however it dies (even SIGKILL); otherwise it
    can be left blocked on a full pipe forever."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def default_workers() -> int:
    """One process per spare core, at most four: decoding keeps up with the backbone with few."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


EmbeddedBatch = list[tuple[int, "np.ndarray | None", bytes, str]]
"""What a way of importing yields per batch: for each file, its index in the files to embed, its embedding (None
when unreadable), its JPEG thumbnail, and why it could not be read ("" when it could)."""


def run_import(
    folder: str | Path,
    backbone,
    output: str | Path,
    embed_batches: Callable[[list[ImageFile], str], Iterable[EmbeddedBatch]],
    *,
    tap: str | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    progress: Callable[[int, int], None] | None = None,
    max_classes: int = MAX_CLASSES,
) -> tuple[Project, ImportReport]:
    """The import loop every way of importing shares; ``embed_batches(files, tap)`` does the reading and embedding.

    The project starts from ``<output>.partial`` when there is one, and only files not in it are handed to
    ``embed_batches``. Results are added in the order they come, the partial file is saved every
    ``checkpoint_seconds`` (before ``progress(done, total)`` is called, after every batch), and the project is
    returned, not saved. A folder with more than ``max_classes`` class folders is refused before any image is read.
    """
    classes, files = list_images(folder)
    if len(classes) > max_classes:
        raise FolderError(
            f"{folder} has {len(classes)} class folders; a project can have at most {max_classes} "
            "(TEACHABLE_MAX_CLASSES sets the limit)."
        )
    checkpoint = partial_path(output)
    if checkpoint.exists():
        try:
            project = Project.load(checkpoint, backbone=backbone, max_classes=max_classes)
        except ProjectError as error:
            raise FolderError(f"Cannot resume from {checkpoint}: {error} Delete it to start over.") from None
        wanted = backbone.tap(tap or backbone.embedding_tap).name
        if project.tap != wanted:
            raise FolderError(f"{checkpoint} was embedded at {project.tap}, not {wanted}. Delete it to start over.")
        for name in classes:
            if project.find_class(name) is None:
                project.add_class(name)
    else:
        project = Project.for_backbone(backbone, classes, tap, max_classes)
    done = {example.source for example in project.examples}
    resumed = len(done)
    todo = [file for file in files if file.source not in done]
    finished = len(files) - len(todo)
    if progress:
        progress(finished, len(files))
    skipped: list[str] = []
    last_checkpoint = time.monotonic()
    for batch in embed_batches(todo, project.tap) if todo else ():
        for index, vector, jpeg, error in batch:
            if error:
                skipped.append(error)
                continue
            file = todo[index]
            project.add_examples(file.label, vector[None], [jpeg], source=file.source)
        finished += len(batch)
        if time.monotonic() - last_checkpoint >= checkpoint_seconds and finished < len(files):
            project.save(checkpoint)
            last_checkpoint = time.monotonic()
        if progress:
            progress(finished, len(files))
    return project, ImportReport(len(project) - resumed, skipped, resumed)


def import_folder(
    folder: str | Path,
    backbone,
    output: str | Path,
    *,
    tap: str | None = None,
    batch_size: int = 8,
    workers: int | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    progress: Callable[[int, int], None] | None = None,
    max_classes: int = MAX_CLASSES,
) -> tuple[Project, ImportReport]:
    """Embed every image under ``folder`` into a project (resuming ``<output>.partial`` if there is one): DataLoader
    workers read and crop, this process embeds. See :func:`run_import` for the rest."""
    workers = default_workers() if workers is None else workers

    def embed_batches(todo: list[ImageFile], embedding_tap: str) -> Iterator[EmbeddedBatch]:
        loader = DataLoader(
            _Squares(todo, backbone.input_size),
            batch_size=batch_size,
            num_workers=workers,
            collate_fn=_as_list,
            prefetch_factor=4 if workers else None,
            worker_init_fn=_die_with_parent,
        )
        for batch in loader:
            readable = [(index, square) for index, square, _, error in batch if not error]
            vectors: dict[int, np.ndarray] = {}
            if readable:
                embedded = backbone.embed(np.stack([square for _, square in readable]), embedding_tap)
                vectors = {index: vector for (index, _), vector in zip(readable, embedded)}
            yield [(index, vectors.get(index), jpeg, error) for index, _, jpeg, error in batch]

    return run_import(
        folder, backbone, output, embed_batches,
        tap=tap, checkpoint_seconds=checkpoint_seconds, progress=progress, max_classes=max_classes,
    )  # fmt: skip
