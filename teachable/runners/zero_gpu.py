"""ZeroGPU on Hugging Face Spaces: run the backbone's forward pass on a GPU lent for each call.

On a ZeroGPU Space (``SPACES_ZERO_GPU`` set and the ``spaces`` package importable), :func:`gpu` wraps a function
with ``spaces.GPU``, which attaches a GPU for the length of each call. Everywhere else it returns the function
unchanged, so the same code runs on a laptop, a server or a CPU Space. :class:`ZeroGpuRunner` is the runner the
app uses there: the backbone in this process, each call on a lent GPU.

``spaces`` must be imported before anything initialises CUDA; ``app.py`` calls :func:`import_spaces_first` before it
imports the rest of the app (so this module, and the package's ``__init__``, import neither torch nor CUDA).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..settings import read

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..stages import Backbone

__all__ = ["ZeroGpuRunner", "zero_gpu_available", "import_spaces_first", "gpu"]

Function = TypeVar("Function", bound=Callable)


def zero_gpu_available() -> bool:
    """Whether this process runs on a ZeroGPU Space with the ``spaces`` package installed."""
    return read("SPACES_ZERO_GPU") and ("spaces" in sys.modules or importlib.util.find_spec("spaces") is not None)


def import_spaces_first() -> bool:
    """Import ``spaces`` now when on ZeroGPU (it must come before CUDA starts); whether it was imported."""
    if not zero_gpu_available():
        return False
    importlib.import_module("spaces")
    return True


def gpu(function: Function) -> Function:
    """``spaces.GPU(function)`` on ZeroGPU, else ``function`` itself.

    On ZeroGPU the call runs in a worker process and its arguments are pickled, so wrap a function whose arguments
    are small (images and tap names), closing over large objects such as the model.
    """
    if not zero_gpu_available():
        return function
    return importlib.import_module("spaces").GPU(function)


class ZeroGpuRunner:
    """The backbone in this process, each call on a GPU that ZeroGPU lends for its length (elsewhere, as
    :class:`~teachable.runners.local.LocalRunner`)."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self._on_lent_gpu = gpu(self._forward_to_cpu)

    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        return self._on_lent_gpu(images, list(taps))

    def _forward_to_cpu(self, images: np.ndarray, taps: list[str]) -> dict[str, torch.Tensor]:
        # A lent GPU's call runs in another process: only its arguments and results cross, so results come back
        # as CPU tensors and the model stays where it is.
        return {tap: value.cpu() for tap, value in self.backbone.run(images, taps).items()}
