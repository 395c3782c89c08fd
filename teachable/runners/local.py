"""The backbone in this process, one call per request: the runner of a laptop, a CPU server, and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..stages import Backbone

__all__ = ["LocalRunner"]


class LocalRunner:
    """The backbone in this process, one call per request."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        return self.backbone.run(images, list(taps))
