"""``teachable fit DIR --ray``: a big folder import on a Ray cluster, through Ray Data.

:func:`import_folder_ray` reads, decodes and crops the images in parallel Ray Data tasks and embeds them in batches on
an actor pool (on GPUs when the cluster has them), then writes the same project file as
:func:`teachable.folder.import_folder`, with the same checkpoint and resume. The CLI's Ray commands reach the
cluster through this module: :func:`connect` and, for ``teachable serve-backbone``, :func:`deploy` come from the Ray
runner (:mod:`teachable.runners.ray`).

Ray is the optional extra ``teachable[ray]``; only the CLI imports this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import ray
import torch

from .backbones import load_backbone
from .folder import CHECKPOINT_SECONDS, EmbeddedBatch, ImportReport, read_square, run_import
from .project import MAX_CLASSES, Project
from .runners.ray import APP_NAME, connect, deploy

__all__ = ["APP_NAME", "connect", "deploy", "import_folder_ray"]


def _decode_and_crop(batch: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Ray Data task: files -> crops, thumbnails (JPEG) and, for unreadable files, why."""
    read = [read_square(path, size) for path in batch["path"]]
    blank = np.zeros((size, size, 3), np.uint8)
    return {
        "index": batch["index"],
        "square": np.stack([blank if square is None else square for square, _, _ in read]),
        "jpeg": np.array([jpeg for _, jpeg, _ in read], dtype=object),
        "error": np.array([error for _, _, error in read], dtype=object),
    }


class _Embedder:
    """Ray Data actor: the backbone loaded once, crops -> embedding vectors (crops are not sent back)."""

    def __init__(self, backbone: str, device: str, tap: str) -> None:
        torch.set_num_threads(1)
        self.backbone = load_backbone(backbone, device)
        self.tap = tap

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        readable = np.array([not e for e in batch["error"]], dtype=bool)
        dim = self.backbone.tap(self.tap).channels
        vectors = np.zeros((len(readable), dim), np.float32)
        if readable.any():
            vectors[readable] = self.backbone.embed(batch["square"][readable], self.tap)
        return {"index": batch["index"], "vector": vectors, "jpeg": batch["jpeg"], "error": batch["error"]}


def import_folder_ray(
    folder: str | Path,
    backbone,
    output: str | Path,
    *,
    tap: str | None = None,
    batch_size: int = 32,
    embedders: int | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    progress: Callable[[int, int], None] | None = None,
    max_classes: int = MAX_CLASSES,
) -> tuple[Project, ImportReport]:
    """Like :func:`teachable.folder.import_folder`, with the reading and embedding done on the Ray cluster.

    Ray Data tasks read and crop, ``embedders`` actors embed (default: one per GPU of the cluster, else one); this
    process only adds the vectors and thumbnails to the project, in :func:`teachable.folder.run_import`'s loop.
    """

    def embed_batches(todo: list, embedding_tap: str) -> Iterator[EmbeddedBatch]:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        items = [{"index": i, "path": str(file.path)} for i, file in enumerate(todo)]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items) // batch_size, 200)))
        dataset.context.execution_options.preserve_order = True  # the project lists examples in folder order
        dataset = dataset.map_batches(
            _decode_and_crop, fn_kwargs={"size": backbone.input_size}, batch_size=batch_size, num_cpus=1
        ).map_batches(
            _Embedder,
            fn_constructor_kwargs={"backbone": backbone.name, "device": "cuda" if gpus else "cpu", "tap": embedding_tap},
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=embedders or max(1, gpus)),
            num_gpus=1 if gpus else 0,
            num_cpus=0 if gpus else 1,
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            yield [
                (int(index), None if error else vector, bytes(jpeg), str(error))
                for index, vector, jpeg, error in zip(batch["index"], batch["vector"], batch["jpeg"], batch["error"])
            ]

    return run_import(
        folder, backbone, output, embed_batches,
        tap=tap, checkpoint_seconds=checkpoint_seconds, progress=progress, max_classes=max_classes,
    )  # fmt: skip
