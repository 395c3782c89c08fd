"""Layers and Atlas: the backbone's stages with their shapes, and the Activation Atlas framed by class."""

from __future__ import annotations

from html import escape

import cv2
import numpy as np

from .html import class_colour

__all__ = ["architecture_html", "atlas_image"]


def atlas_image(atlas) -> np.ndarray:
    """The atlas with each occupied cell framed in the colour of its majority class."""
    image = atlas.image.copy()
    size = atlas.cell_px
    for row, column in zip(*np.nonzero(atlas.majority >= 0)):
        hex_colour = class_colour(int(atlas.majority[row, column]))
        colour = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        cv2.rectangle(image, (column * size, row * size), ((column + 1) * size - 1, (row + 1) * size - 1), colour, 2)
    return image


def architecture_html(backbone, embedding_tap: str, grid_tap: str) -> str:
    """The backbone's stages with their output shapes, marking where the embedding and the grid are read."""
    rows = []
    size = backbone.input_size
    for name, tap in backbone.taps.items():
        shape = (
            f"{tap.channels} x {tap.grid_size(size)} x {tap.grid_size(size)}" if tap.is_spatial else f"{tap.channels}"
        )
        marks = " ".join(
            badge for badge, used in [("embedding", name == embedding_tap), ("grid", name == grid_tap)] if used
        )
        rows.append(f"<tr><td><code>{escape(name)}</code></td><td>{shape}</td><td>{marks}</td></tr>")
    return (
        f'<table class="tm-architecture"><caption>{escape(backbone.name)}, input {size} x {size} x 3</caption>'
        "<tr><th>stage</th><th>output</th><th>used for</th></tr>" + "".join(rows) + "</table>"
    )
