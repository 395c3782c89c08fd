"""Where live frames are run through the backbone: the seam between the app and its inference.

A session asks a :class:`FrameRunner` for taps of its frames; which runner the app uses is a setting
(``TEACHABLE_INFERENCE``), so moving inference elsewhere needs no change to the app:

* ``local``: the backbone in this process, one call per frame;
* ``batched``: the backbone in this process, frames of concurrent sessions gathered into one forward pass
  (:class:`~teachable.batching.FrameBatcher`);
* ``auto`` (default): ``batched`` when the backbone runs on a GPU, else ``local``; on a ZeroGPU Space always
  ``local``, whose forward pass then runs on a GPU lent for each call (:mod:`teachable.spaces_gpu`);
* ``ray``: the backbone as a Ray Serve deployment on the cluster at ``RAY_ADDRESS`` (a local one when unset),
  shared by every app replica; frames travel as JPEG crops, taps come back as float16, and Serve batches, restarts
  and scales the replicas (:mod:`teachable.ray_serving`, the optional extra ``teachable[ray]``).

The app keeps its own copy of the backbone for what is not per frame (tap shapes, icons, attribution, re-embedding).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from .backbones import Backbone
from .batching import FrameBatcher
from .spaces_gpu import gpu, zero_gpu_available

__all__ = [
    "FrameRunner",
    "LocalRunner",
    "InferenceError",
    "runner_from_setting",
    "ray_runner",
]

log = logging.getLogger(__name__)


class InferenceError(RuntimeError):
    """The inference service could not answer, with what went wrong."""


class FrameRunner(Protocol):
    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        """``N x S x S x 3`` uint8 squares -> ``{tap: float32 tensor with N rows}``; ``caller`` names the session."""
        ...


class LocalRunner:
    """The backbone in this process, one call per request; on a ZeroGPU Space, each call on a lent GPU."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self._forward = gpu(self._forward_to_cpu) if zero_gpu_available() else backbone.run

    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        return self._forward(images, list(taps))

    def _forward_to_cpu(self, images: np.ndarray, taps: list[str]) -> dict[str, torch.Tensor]:
        # A lent GPU's call runs in another process: only its arguments and results cross, so results come back
        # as CPU tensors and the model stays where it is.
        return {tap: value.cpu() for tap, value in self.backbone.run(images, taps).items()}


def runner_from_setting(setting: str, backbone: Backbone) -> FrameRunner:
    """The runner a ``TEACHABLE_INFERENCE`` value names (see the module docstring)."""
    setting = (setting or "auto").strip()
    if setting == "auto":
        setting = "batched" if backbone.on_accelerator and not zero_gpu_available() else "local"
    if setting == "local":
        return LocalRunner(backbone)
    if setting == "batched":
        return FrameBatcher(backbone)
    if setting == "ray":
        return ray_runner(backbone)
    raise ValueError(f"Unknown inference setting {setting!r}; use auto, local, batched or ray.")


def ray_runner(backbone: Backbone) -> FrameRunner:
    """A runner on the Ray cluster at ``RAY_ADDRESS`` (or a local one), deploying the backbone there if needed."""
    try:
        from . import ray_serving
    except ImportError as error:
        raise InferenceError(
            f"TEACHABLE_INFERENCE=ray needs Ray Serve: pip install 'teachable[ray]' ({error})."
        ) from None
    ray_serving.connect()
    return ray_serving.RayRunner(ray_serving.backbone_handle(backbone.name))
