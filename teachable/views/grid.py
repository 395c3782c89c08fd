"""The activation grid: a picture, or (icons) the cells as data that the page's script draws from the icon sheet
sent once with the page."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from ..activations import IconCells, icon_sheet
from ..frames import encode_jpeg
from .html import image_html

__all__ = ["ICON_CELL_PX", "grid_html", "icon_sheet_html"]

ICON_CELL_PX = 24
"""Pixels per grid cell in the icons view."""


def grid_html(grid) -> str:
    """The activation grid for the page: a picture, or (icons) the cells as data that the page script draws onto
    its canvas from the icon sheet sent once with the page (:func:`icon_sheet_html`)."""
    if not isinstance(grid, IconCells):
        return image_html(grid, "tm-grid")
    rows, columns = grid.best.shape
    cells = base64.b64encode(grid.best.astype("<u2").tobytes()).decode("ascii")
    strength = base64.b64encode(np.round(grid.strength * 255).astype(np.uint8).tobytes()).decode("ascii")
    backdrop = base64.b64encode(encode_jpeg(grid.backdrop, 70)).decode("ascii")
    return (
        f'<div class="tm-icon-cells" hidden data-rows="{rows}" data-columns="{columns}" data-cells="{cells}" '
        f'data-strength="{strength}" data-backdrop="data:image/jpeg;base64,{backdrop}"></div>'
    )


def icon_sheet_html(icons, cell_px: int = ICON_CELL_PX) -> str:
    """Every icon in one picture, sent once with the page; the grid's cells are drawn from it."""
    if icons is None:
        return ""
    sheet = icon_sheet(icons, cell_px)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    columns = sheet.shape[1] // cell_px
    data = base64.b64encode(png.tobytes()).decode("ascii")
    return (
        f'<img id="tm-icon-sheet" hidden alt="" data-cell="{cell_px}" data-columns="{columns}" '
        f'src="data:image/png;base64,{data}">'
    )
