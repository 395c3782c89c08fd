"""Where live frames are run through the backbone: the seam between the app and its inference.

A session asks a :class:`FrameRunner` (:mod:`.base`) for taps of its frames; which runner the app uses is a setting
(``TEACHABLE_INFERENCE``), read by :func:`runner_from_setting`, so moving inference elsewhere needs no change to
the app:

* ``local``: the backbone in this process, one call per frame (:mod:`.local`);
* ``batched``: the backbone in this process, frames of concurrent sessions gathered into one forward pass
  (:class:`~teachable.runners.batched.FrameBatcher`);
* ``auto`` (default): ``batched`` when the backbone runs on a GPU, else ``local``; on a ZeroGPU Space always
  ``local``, whose forward pass then runs on a GPU lent for each call (:mod:`.zero_gpu`);
* ``ray``: the backbone as a Ray Serve deployment on the cluster at ``RAY_ADDRESS`` (a local one when unset),
  shared by every app replica; frames travel as JPEG crops, taps come back as float16, and Serve batches, restarts
  and scales the replicas (:mod:`.ray`, the optional extra ``teachable[ray]``, imported only here and only then).

The app keeps its own copy of the backbone for what is not per frame (tap shapes, icons, attribution, re-embedding).
Importing this package loads neither torch nor Ray (``app.py`` imports :mod:`.zero_gpu` before anything touches
CUDA).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import FrameRunner, InferenceError
from .batched import FrameBatcher
from .local import LocalRunner
from .zero_gpu import ZeroGpuRunner, zero_gpu_available

if TYPE_CHECKING:
    from ..stages import Backbone

__all__ = [
    "FrameBatcher",
    "FrameRunner",
    "InferenceError",
    "LocalRunner",
    "ZeroGpuRunner",
    "ray_runner",
    "runner_from_setting",
]


def runner_from_setting(setting: str, backbone: Backbone) -> FrameRunner:
    """The runner a ``TEACHABLE_INFERENCE`` value names (see the module docstring)."""
    setting = (setting or "auto").strip()
    if setting == "auto":
        setting = "batched" if backbone.on_accelerator and not zero_gpu_available() else "local"
    if setting == "local":
        return ZeroGpuRunner(backbone) if zero_gpu_available() else LocalRunner(backbone)
    if setting == "batched":
        return FrameBatcher(backbone)
    if setting == "ray":
        return ray_runner(backbone)
    raise ValueError(f"Unknown inference setting {setting!r}; use auto, local, batched or ray.")


def ray_runner(backbone: Backbone) -> FrameRunner:
    """A runner on the Ray cluster at ``RAY_ADDRESS`` (or a local one), deploying the backbone there if needed."""
    try:
        from . import ray as ray_serve
    except ImportError as error:
        raise InferenceError(
            f"TEACHABLE_INFERENCE=ray needs Ray Serve: pip install 'teachable[ray]' ({error})."
        ) from None
    ray_serve.connect()
    return ray_serve.RayRunner(ray_serve.backbone_handle(backbone.name))
