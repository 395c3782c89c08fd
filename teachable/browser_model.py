"""The backbone as the participant's browser runs it: one ONNX graph per (backbone, taps, icons), cached on disk.

In browser inference the page runs the backbone on the camera frame with onnxruntime-web and sends the server only
what the server needs. :func:`browser_model` gives that graph, built once and then read from
``cache_folder()/browser`` under its :attr:`BrowserModel.version`.

The graph's input is ``square``: uint8 ``S x S x 3`` RGB, the frame's centre square at the backbone's input size,
made by the page as :meth:`~teachable.stages.Backbone.prepare` makes it (``static/browser.js`` does OpenCV's
``INTER_AREA`` in a few milliseconds; in the graph, as ``teachable export`` does it for frames of any size
(:class:`teachable.graph_square.CentreSquare`), that step was half of each frame's time in onnxruntime-web). The
graph runs :meth:`~teachable.stages.Backbone.truncated` up to the embedding tap (and the grid tap when icons are
drawn): the backbone's own normalisation and stages, the module the server's forward pass runs.

Outputs:

* ``embedding`` float32 ``[D]``: the embedding tap's spatial mean, as :func:`teachable.backbones.pooled` computes it
  on the server (not normalised);
* with icons made for the grid tap, ``icon_best`` int32 ``[cells]`` and ``cell_norms`` float32 ``[cells]``: what
  :func:`teachable.activations.icon_cells` computes before its percentile step (each cell's best icon direction by
  cosine, and its norm), cells in row-major order (cell ``y * grid_width + x``, as ``_cells`` orders them). The
  page finishes ``strength = clip(norm / max(percentile95(norms), 1e-6), 0, 1)`` with numpy's default percentile
  (linear between the two nearest ranks of the sorted norms).

The graph stays within what the export already runs in onnxruntime-web's wasm build: the TorchScript exporter at
opset :data:`teachable.runtime.OPSET`, the export's operators plus ``ReduceL2``/``Clip``/``ArgMax``/``Cast`` for the
cells, all in ONNX Runtime's CPU kernels that the wasm build carries.

:attr:`BrowserModel.version` is a short digest of everything that changes the outputs: the graph's format
(:data:`BROWSER_MODEL_FORMAT`, raised whenever this module changes what the graph computes), the
backbone's name, input size, normalisation and weights (:func:`teachable.runtime.weights_hash`), the taps, the
icon directions, the opset and the torch and onnx versions that write the graph. The page can send it with every
embedding, so that the server refuses embeddings of another model (a stale page after a change of backbone or tap).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .activations import GridIcons
from .atomic import atomic_write
from .runtime import OPSET, onnx_graph_bytes, weights_hash
from .settings import cache_folder
from .stages import Backbone, BackboneError

__all__ = ["BROWSER_MODEL_FORMAT", "BrowserModel", "browser_model", "browser_model_folder", "model_version"]

log = logging.getLogger(__name__)

BROWSER_MODEL_FORMAT = 2
"""Raise it whenever the graph computes something else for the same backbone, taps and icons."""

INPUT = "square"
OUTPUTS = ("embedding",)
ICON_OUTPUTS = ("icon_best", "cell_norms")


@dataclass(frozen=True)
class BrowserModel:
    """The browser's graph and what the page needs to know to run it and read its outputs."""

    onnx: bytes = field(repr=False)
    version: str
    backbone: str
    embedding_tap: str
    grid_tap: str | None
    """The tap whose cells ``icon_best`` and ``cell_norms`` describe; None when the graph has no icon outputs."""
    input_size: int
    """Side of ``square``, the backbone's input."""
    embedding_size: int
    grid_height: int
    grid_width: int
    icon_count: int
    """How many icon directions ``icon_best`` indexes; 0 without icon outputs."""
    path: Path | None = None
    """Where it is kept on disk; None when it could not be written."""

    @property
    def outputs(self) -> tuple[str, ...]:
        return OUTPUTS + (ICON_OUTPUTS if self.icon_count else ())

    @property
    def cells(self) -> int:
        return self.grid_height * self.grid_width

    def page_info(self) -> dict:
        """What the page reads before running the graph (JSON-ready)."""
        return {
            "version": self.version,
            "backbone": self.backbone,
            "embedding_tap": self.embedding_tap,
            "grid_tap": self.grid_tap,
            "input": INPUT,
            "outputs": list(self.outputs),
            "input_size": self.input_size,
            "embedding_size": self.embedding_size,
            "grid_height": self.grid_height,
            "grid_width": self.grid_width,
            "icon_count": self.icon_count,
            "bytes": len(self.onnx),
        }


class _BrowserGraph(nn.Module):
    """uint8 ``S x S x 3`` square -> embedding (and each cell's best icon and norm): the traced module."""

    def __init__(self, backbone: Backbone, embedding_tap: str, grid_tap: str | None, directions) -> None:
        super().__init__()
        self.network = backbone.truncated([embedding_tap] + ([grid_tap] if grid_tap else []))
        self.with_icons = directions is not None
        if self.with_icons:
            self.register_buffer("directions", torch.from_numpy(np.ascontiguousarray(directions, np.float32)))

    def forward(self, square: torch.Tensor):
        pixels = square.to(torch.float32).permute(2, 0, 1)  # 3 x S x S
        taps = self.network(pixels[None])
        embedding = taps[0].mean(dim=(2, 3)) if taps[0].dim() == 4 else taps[0]
        if not self.with_icons:
            return (embedding[0],)
        best, norms = self._icon_cells(taps[1][0])
        return embedding[0], best, norms

    def _icon_cells(self, activation: torch.Tensor):
        """As :func:`teachable.activations.icon_cells` before its percentile: ``C x H x W`` -> per cell (row-major)
        the argmax of the cosine with the directions, and the norm."""
        cells = activation.reshape(activation.shape[0], -1).transpose(0, 1)  # (H*W) x C
        norms = torch.linalg.vector_norm(cells, dim=1)
        cosine = torch.matmul(cells, self.directions.transpose(0, 1)) / torch.clamp(norms, min=1e-6)[:, None]
        return torch.argmax(cosine, dim=1).to(torch.int32), norms


def browser_model_folder() -> Path:
    """Where the browser's graphs are kept: the built files' folder (``$TEACHABLE_CACHE_DIR`` or the per-user
    cache), ``browser``."""
    return cache_folder() / "browser"


def _icons_for(backbone: Backbone, grid_tap: str | None, icons: GridIcons | None) -> GridIcons | None:
    """``icons`` when they were made for this backbone's ``grid_tap`` (the icons mode needs exactly those), else
    None: the graph then has no icon outputs, as the page's icons mode gives way when the grid tap has none."""
    if icons is None or grid_tap is None or (icons.backbone, icons.tap) != (backbone.name, grid_tap):
        return None
    channels = backbone.tap(grid_tap).channels
    if icons.directions.ndim != 2 or icons.directions.shape[1] != channels:
        raise ValueError(
            f"The icons for {backbone.name}/{grid_tap} have {icons.directions.shape[-1]}-channel directions; the tap "
            f"has {channels} channels. Make them again with `teachable atlas icons`."
        )
    return icons


def _graph_taps(backbone: Backbone, embedding_tap: str, grid_tap: str | None) -> tuple[str, str | None]:
    embedding = backbone.tap(embedding_tap).name
    if grid_tap is None:
        return embedding, None
    grid = backbone.tap(grid_tap)
    if not grid.is_spatial:
        raise BackboneError(f"The grid tap {grid.name!r} of {backbone.name} is not spatial; pick a tap with cells.")
    return embedding, grid.name


def model_version(
    backbone: Backbone, embedding_tap: str, grid_tap: str | None = None, icons: GridIcons | None = None
) -> str:
    """The :attr:`BrowserModel.version` that :func:`browser_model` gives for the same arguments, without building
    or reading the graph (a hash of the weights: milliseconds)."""
    embedding_tap, grid_tap = _graph_taps(backbone, embedding_tap, grid_tap)
    return _version(backbone, embedding_tap, grid_tap, _icons_for(backbone, grid_tap, icons))


def _version(backbone: Backbone, embedding_tap: str, grid_tap: str | None, icons: GridIcons | None) -> str:
    import onnx

    parts = {
        "format": BROWSER_MODEL_FORMAT,
        "backbone": backbone.name,
        "input_size": backbone.input_size,
        "normalisation": [list(backbone.mean), list(backbone.std)],
        "weights": weights_hash(backbone),
        "embedding_tap": embedding_tap,
        "grid_tap": grid_tap if icons is not None else None,
        "icons": None if icons is None else hashlib.sha256(icons.directions.astype(np.float32).tobytes()).hexdigest(),
        "opset": OPSET,
        "torch": torch.__version__.split("+")[0],
        "onnx": onnx.__version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _build(backbone: Backbone, embedding_tap: str, grid_tap: str | None, icons: GridIcons | None, version: str):
    import onnx

    directions = None if icons is None else icons.directions
    module = _BrowserGraph(backbone, embedding_tap, grid_tap if icons is not None else None, directions).eval()
    if backbone.device.type != "cpu" or backbone.dtype != torch.float32:
        module = copy.deepcopy(module).float().cpu()  # a copy: the backbone's own modules stay where they are
    outputs = list(OUTPUTS + (ICON_OUTPUTS if icons is not None else ()))
    example = torch.zeros((backbone.input_size, backbone.input_size, 3), dtype=torch.uint8)
    graph = onnx_graph_bytes(module, example, [INPUT], outputs, {})
    model = onnx.load_from_string(graph)
    metadata = {
        "format": "teachable-browser",
        "version": version,
        "backbone": backbone.name,
        "embedding_tap": embedding_tap,
    }
    if icons is not None:
        metadata["grid_tap"] = grid_tap
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "teachable"
    model.doc_string = f"teachable browser model: uint8 SxSx3 RGB square -> {', '.join(outputs)}"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _kept(path: Path, version: str) -> bytes | None:
    """The graph kept at ``path``, or None when there is none or it is not this version's graph (then it is built
    again). Parsing takes a few milliseconds: the weights are raw bytes."""
    import onnx

    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        metadata = {entry.key: entry.value for entry in onnx.load_from_string(data).metadata_props}
    except Exception as error:  # noqa: BLE001 - a foreign or damaged file: build it again
        metadata = {"error": str(error)}
    if metadata.get("version") != version:
        log.warning("The browser's model at %s is not version %s; building it again.", path, version)
        return None
    return data


def _keep(path: Path, data: bytes) -> Path | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, data)
    except OSError as error:
        log.warning("Cannot keep the browser's model in %s (%s); it is built again next start.", path, error)
        return None


def browser_model(
    backbone: Backbone,
    embedding_tap: str,
    grid_tap: str | None = None,
    icons: GridIcons | None = None,
    *,
    folder: Path | None = None,
) -> BrowserModel:
    """The graph the browser runs for ``embedding_tap`` (and, when ``icons`` were made for ``grid_tap``, the icon
    cells of that tap), read from ``folder`` (default :func:`browser_model_folder`) when it was built before, else
    built (about a second for EfficientNet-Lite0 on two cores) and kept there.

    Icons made for another tap or backbone (or ``grid_tap=None``) give a graph without icon outputs. Two callers at
    once may both build it; the file is written atomically, so either copy is whole."""
    embedding_tap, grid_tap = _graph_taps(backbone, embedding_tap, grid_tap)
    icons = _icons_for(backbone, grid_tap, icons)
    version = _version(backbone, embedding_tap, grid_tap, icons)
    path = (folder or browser_model_folder()) / f"{backbone.name}-{version}.onnx"
    data = _kept(path, version)
    if data is None:
        started = time.perf_counter()
        data = _build(backbone, embedding_tap, grid_tap, icons, version)
        log.info(
            "Built the browser's model of %s up to %s%s in %.1f s (%.1f MB)", backbone.name, embedding_tap,
            f" with icons at {grid_tap}" if icons is not None else "", time.perf_counter() - started, len(data) / 1e6,
        )  # fmt: skip
        path = _keep(path, data)
    spatial = icons is not None
    side = backbone.tap(grid_tap).grid_size(backbone.input_size) if spatial else 0
    return BrowserModel(
        onnx=data,
        version=version,
        backbone=backbone.name,
        embedding_tap=embedding_tap,
        grid_tap=grid_tap if spatial else None,
        input_size=backbone.input_size,
        embedding_size=backbone.tap(embedding_tap).channels,
        grid_height=side,
        grid_width=side,
        icon_count=len(icons.directions) if spatial else 0,
        path=path,
    )
