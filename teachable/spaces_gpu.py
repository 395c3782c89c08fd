"""ZeroGPU on Hugging Face Spaces: run the backbone's forward pass on a GPU lent for each call.

On a ZeroGPU Space (``SPACES_ZERO_GPU`` set and the ``spaces`` package importable), :func:`gpu` wraps a function
with ``spaces.GPU``, which attaches a GPU for the length of each call. Everywhere else it returns the function
unchanged, so the same code runs on a laptop, a server or a CPU Space.

``spaces`` must be imported before anything initialises CUDA; ``app.py`` calls :func:`import_spaces_first` before it
imports the rest of the app.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["zero_gpu_available", "import_spaces_first", "gpu"]

Function = TypeVar("Function", bound=Callable)


def zero_gpu_available() -> bool:
    """Whether this process runs on a ZeroGPU Space with the ``spaces`` package installed."""
    flag = os.environ.get("SPACES_ZERO_GPU", "").strip().lower()
    return flag in ("1", "t", "true") and ("spaces" in sys.modules or importlib.util.find_spec("spaces") is not None)


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
