"""What every frame runner answers to, and the error a runner raises when its inference service cannot answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["FrameRunner", "InferenceError"]


class InferenceError(RuntimeError):
    """The inference service could not answer, with what went wrong."""


class FrameRunner(Protocol):
    """Runs live frames through the backbone, wherever that is; a session holds one and may share it."""

    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        """``N x S x S x 3`` uint8 squares -> ``{tap: float32 tensor with N rows}``; ``caller`` names the session."""
        ...
