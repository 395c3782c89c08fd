"""What every panel's HTML shares: the class colours, inlined pictures and the message line."""

from __future__ import annotations

import base64
from html import escape

import numpy as np

from ..frames import encode_jpeg

__all__ = ["PALETTE", "class_colour", "thumbnail", "message_html", "image_html"]

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


def class_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def thumbnail(jpeg: bytes, size: int = 72) -> str:
    data = base64.b64encode(jpeg).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" width="{size}" height="{size}" alt="">'


def message_html(text: str, done: bool = False) -> str:
    """A message to the person: what needs their attention, or (``done``) what was just done, drawn quieter."""
    kind = "tm-message tm-done" if done else "tm-message"
    return f'<div class="{kind}">{escape(text)}</div>' if text else ""


def image_html(rgb: np.ndarray | None, element_id: str, quality: int = 80, css_class: str = "tm-grid") -> str:
    """An RGB image inlined as a JPEG data URI (no temporary file)."""
    if rgb is None:
        return ""
    data = base64.b64encode(encode_jpeg(rgb, quality)).decode("ascii")
    return f'<img id="{element_id}" class="{css_class}" src="data:image/jpeg;base64,{data}" alt="">'
