"""Export a project as one ONNX file that keeps what it learned: preprocessing, backbone, classifier and "unknown".

The graph takes an ``image`` (uint8 ``H x W x 3`` RGB, any size) and does what the app does with a frame:

1. **Centre square and resize** as :func:`teachable.frames.center_square` does with OpenCV
   (:class:`teachable.graph_square.CentreSquare`: OpenCV's uint8 ``INTER_LINEAR`` bit for bit when growing, its
   ``INTER_AREA`` as one weight matrix per axis when shrinking, within one grey level). ONNX ``Resize`` is not
   used: its filters differ from OpenCV's.
2. **Normalise** with the backbone's mean and std and run the backbone up to the project's tap (both are
   :meth:`teachable.stages.Backbone.truncated`, the module the app's own forward pass runs), average-pool.
3. **Classify** with the project's rule (see :mod:`teachable.knn`), everything fixed at export time:

   * ``prototype`` (the default): signed square root and unit length, similarity to each class prototype (a
     ``classes x D`` initializer), "unknown" below the project's calibrated boundary (computed once here, for the
     chosen strictness, from the examples' leave-the-take-out scores as the page computes it), confidences ``exp(score / temperature)`` shares with a virtual unknown class;
   * ``knn``: the example matrix (``N x D`` initializer) is searched for the ``k`` nearest, they vote with weight
     ``exp(similarity / temperature)``, "unknown" below the fixed similarity threshold.

Outputs: ``confidences`` float32 ``[C]`` (every class of the project, in its order; empty classes get 0),
``label`` int64 (the class index, -1 when unknown), ``similarity`` float32 (the score the unknown rule compared:
the best prototype similarity, or the nearest example's) and ``embedding`` float32 ``[D]`` (the pooled vector,
before normalisation). The model's ``metadata_props`` hold the class names (JSON list under ``classes``), backbone,
tap, rule, k, strictness/threshold, boundary, temperature and the format version.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .graph_square import CentreSquare
from .knn import DEFAULT_K, DEFAULT_THRESHOLD
from .runtime import onnx_graph_bytes

__all__ = ["ExportError", "ExportInfo", "EXPORT_FORMAT_VERSION", "export_onnx", "onnx_bytes", "read_metadata"]

EXPORT_FORMAT_VERSION = 1


class ExportError(ValueError):
    """A project that cannot be exported, with a message that says what to do."""


@dataclass(frozen=True)
class ExportInfo:
    path: Path | None
    classes: tuple[str, ...]
    rule: str
    boundary: float
    seconds: float
    size_bytes: int


class _Exported(nn.Module):
    def __init__(self, backbone, tap: str, head: nn.Module) -> None:
        super().__init__()
        self.square = CentreSquare(backbone.input_size)
        self.network = backbone.truncated([tap])
        self.head = head

    def forward(self, image: torch.Tensor):
        square = self.square(image)
        (x,) = self.network(square[None])
        embedding = x.mean(dim=(2, 3)) if x.dim() == 4 else x
        embedding = embedding[0]
        confidences, label, similarity = self.head(embedding)
        return confidences, label, similarity, embedding


def _unit(vector: torch.Tensor) -> torch.Tensor:
    return vector / torch.clamp(torch.linalg.vector_norm(vector), min=1e-12)


class _PrototypeHead(nn.Module):
    def __init__(self, prototypes: np.ndarray, placement: np.ndarray, present: np.ndarray, boundary, temperature):
        super().__init__()
        self.register_buffer("prototypes", torch.from_numpy(prototypes.astype(np.float32)))
        self.register_buffer("placement", torch.from_numpy(placement.astype(np.float32)))
        self.register_buffer("present", torch.from_numpy(present.astype(np.int64)))
        self.register_buffer("boundary", torch.tensor([boundary], dtype=torch.float32))
        self.temperature = float(temperature)

    def forward(self, embedding: torch.Tensor):
        vector = _unit(embedding)
        rooted = torch.sign(vector) * torch.sqrt(torch.abs(vector))
        scores = torch.matmul(self.prototypes, _unit(rooted))  # P
        best = torch.argmax(scores)
        top = scores[best]
        weights = torch.exp((torch.cat([scores, self.boundary]) - top) / self.temperature)
        shares = weights[:-1] / weights.sum()
        confidences = torch.matmul(shares, self.placement)  # C
        label = torch.where(top < self.boundary[0], torch.full_like(self.present[best], -1), self.present[best])
        return confidences, label, top


class _VoteHead(nn.Module):
    def __init__(self, examples: np.ndarray, owners: np.ndarray, k: int, threshold, temperature):
        super().__init__()
        self.register_buffer("examples", torch.from_numpy(examples.astype(np.float32)))
        self.register_buffer("owners", torch.from_numpy(owners.astype(np.float32)))  # N x C one-hot
        self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float32))
        self.k = min(int(k), len(examples))
        self.temperature = float(temperature)

    def forward(self, embedding: torch.Tensor):
        similarities = torch.matmul(self.examples, _unit(embedding))
        nearest, indices = torch.topk(similarities, self.k)
        first = nearest[0]
        weights = torch.exp((nearest - first) / self.temperature)
        votes = torch.matmul(weights, self.owners[indices])  # C
        total = votes.sum() + torch.exp((self.threshold - first) / self.temperature)
        best = torch.argmax(votes)
        label = torch.where(first < self.threshold, torch.full_like(best, -1), best)
        return votes / total, label, first


def _head(project, k: int, strictness: float) -> tuple[nn.Module, dict]:
    classifier = copy.deepcopy(project.classifier)  # its own strictness; the project's classifier is left as it is
    classes = list(project.classes)
    counts = project.counts()
    if not len(project):
        raise ExportError("The project has no examples yet. Record or add examples of at least two classes first.")
    taught = [name for name in classes if counts[name]]
    if len(taught) < 2:
        raise ExportError(
            f"Only {len(taught)} class has examples ({', '.join(taught)}); add examples of at least one more class "
            "before exporting, or the model could only answer that class or 'unknown'."
        )
    classifier.threshold = strictness
    info = {"rule": classifier.rule, "temperature": classifier.temperature, "k": int(k)}
    if classifier.rule == "prototype":
        names, prototypes = classifier.prototypes()
        placement = np.zeros((len(names), len(classes)), np.float32)
        present = np.array([classes.index(name) for name in names], np.int64)
        placement[np.arange(len(names)), present] = 1
        boundary = classifier.boundary
        info.update(strictness=float(strictness), boundary=float(boundary))
        return _PrototypeHead(prototypes, placement, present, boundary, classifier.temperature), info
    if classifier.rule == "knn":
        owners = np.zeros((len(classifier), len(classes)), np.float32)
        owners[np.arange(len(classifier)), [classes.index(label) for label in classifier.labels]] = 1
        info.update(threshold=float(classifier.threshold), boundary=float(classifier.threshold))
        return _VoteHead(np.asarray(classifier.vectors), owners, k, classifier.threshold, classifier.temperature), info
    raise ExportError(f"The {classifier.rule!r} rule cannot be exported; only 'prototype' and 'knn' can.")


def onnx_bytes(project, backbone, *, k: int = DEFAULT_K, strictness: float = DEFAULT_THRESHOLD) -> tuple[bytes, dict]:
    """The project as ONNX model bytes (with metadata) and the metadata as a dict."""
    import onnx

    if project.backbone != backbone.name or project.tap not in backbone.taps:
        raise ExportError(
            f"The project was made with {project.backbone}/{project.tap} but {backbone.name} is loaded; re-embed it "
            "first."
        )
    if backbone.device.type != "cpu" or backbone.dtype != torch.float32:
        raise ExportError("Export needs the backbone on the CPU in float32 (load it with device='cpu').")
    head, info = _head(project, k, strictness)
    module = _Exported(backbone, project.tap, head).eval()
    example = torch.zeros((backbone.input_size + 32, backbone.input_size + 64, 3), dtype=torch.uint8)
    graph = onnx_graph_bytes(
        module,
        example,
        ["image"],
        ["confidences", "label", "similarity", "embedding"],
        {"image": {0: "height", 1: "width"}},
    )
    model = onnx.load_from_string(graph)
    metadata = {
        "format": "teachable-onnx",
        "format_version": str(EXPORT_FORMAT_VERSION),
        "classes": json.dumps(list(project.classes), ensure_ascii=False),
        "backbone": project.backbone,
        "tap": project.tap,
        "input_size": str(backbone.input_size),
        "rule": info["rule"],
        "k": str(info["k"]),
        "threshold": str(info.get("strictness", info.get("threshold"))),
        "boundary": repr(info["boundary"]),
        "temperature": repr(info["temperature"]),
        "examples": str(len(project)),
    }
    if info["rule"] == "prototype":
        metadata["threshold_meaning"] = "strictness: share of the project's own examples that would be not sure"
    else:
        metadata["threshold_meaning"] = "cosine similarity of the nearest example below which a frame is unknown"
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "teachable"
    model.doc_string = "teachable project: uint8 HxWx3 RGB image -> confidences, label (-1: unknown), similarity"
    onnx.checker.check_model(model)
    return model.SerializeToString(), metadata


def export_onnx(
    project, backbone, path: str | Path, *, k: int = DEFAULT_K, strictness: float = DEFAULT_THRESHOLD
) -> ExportInfo:
    """Write the project as one ONNX file at ``path`` (atomically: a temporary file renamed over it)."""
    started = time.perf_counter()
    data, metadata = onnx_bytes(project, backbone, k=k, strictness=strictness)
    path = atomic_write(path, data)
    return ExportInfo(
        path,
        tuple(json.loads(metadata["classes"])),
        metadata["rule"],
        float(metadata["boundary"]),
        time.perf_counter() - started,
        len(data),
    )


def read_metadata(model: str | Path | bytes) -> dict:
    """An exported model's metadata_props as a dict, with ``classes`` decoded from JSON."""
    import onnx

    loaded = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    metadata = {entry.key: entry.value for entry in loaded.metadata_props}
    if "classes" in metadata:
        metadata["classes"] = json.loads(metadata["classes"])
    return metadata

