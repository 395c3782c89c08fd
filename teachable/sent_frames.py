"""What a browser that runs the backbone itself sends for one camera frame, read as hostile input.

In browser inference (see ``browser_model.py``) the page runs the backbone on the camera frame and sends the server
one small JSON text per frame:

``{"v": model version, "e": embedding as base64 float16, "t": optional base64 JPEG of the square the model saw}``

The thumbnail comes with every frame while a class records (it becomes the example's picture, as the server path
stores the square it saw) and with about one frame a second otherwise (for the tray of frames the classifier was
unsure about). Anything else is refused with a :class:`SentFrameError` whose message is shown to the person, and
nothing is stored: a wrong length, NaN or infinity, an embedding of implausible size, another model version (a
stale page after the server changed its backbone or layer must not mix embeddings), a thumbnail that is too large,
not a JPEG, or not the model's square.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

import numpy as np

from .frames import ImageError, decode_image, image_size

__all__ = ["MAX_SENT_CHARACTERS", "MAX_THUMBNAIL_BYTES", "SentFrame", "SentFrameError", "read_sent_frame"]

MAX_THUMBNAIL_BYTES = 96 * 1024
"""A 224x224 JPEG at quality 90 is 10-25 KB; four times that is room for any real frame."""
MAX_SENT_CHARACTERS = 4 * MAX_THUMBNAIL_BYTES // 3 + 16 * 1024
"""The whole text: the thumbnail as base64 plus a 1280-wide float16 embedding (3.4 KB) and the keys."""
EMBEDDING_NORM_RANGE = (1e-3, 1e4)
"""Pooled activations of the bundled backbones have norms of about 3 to 60 (and never 0 for a real picture); a
vector far outside is not something a model produced."""


class SentFrameError(ValueError):
    """What a page sent for a frame cannot be used; the message says why (nothing was stored)."""


@dataclass(frozen=True)
class SentFrame:
    embedding: np.ndarray = field(repr=False)
    """float32 ``[D]``: the pooled embedding, as the server's own path computes it."""
    thumbnail: bytes | None = field(default=None, repr=False)
    """The JPEG of the square the model saw, when the page sent one."""


def read_sent_frame(text: object, version: str, dim: int, square_side: int) -> SentFrame:
    """Check and read one frame's text from a page (see the module docstring)."""
    message = _json_object(text)
    if message.get("v") != version:
        raise SentFrameError("This page runs another version of the model than the server: reload the page.")
    embedding = _embedding(message.get("e"), dim)
    thumbnail = message.get("t")
    return SentFrame(embedding, None if thumbnail is None else _thumbnail(thumbnail, square_side))


def _json_object(text: object) -> dict:
    if not isinstance(text, str) or not text:
        raise SentFrameError("The page sent an empty frame.")
    if len(text) > MAX_SENT_CHARACTERS:
        raise SentFrameError(f"The page sent {len(text):,} characters for one frame; the limit is {MAX_SENT_CHARACTERS:,}.")
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        raise SentFrameError("The page sent a frame the server cannot read: reload the page.")
    return message


def _base64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise SentFrameError(f"The page sent no {what}.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SentFrameError(f"The page sent a {what} that is not base64.") from None


def _embedding(value: object, dim: int) -> np.ndarray:
    data = _base64(value, "embedding")
    if len(data) != 2 * dim:
        raise SentFrameError(f"The page sent an embedding of {len(data) // 2} numbers; this model makes {dim}.")
    embedding = np.frombuffer(data, "<f2").astype(np.float32)
    if not np.isfinite(embedding).all():
        raise SentFrameError("The page sent an embedding with numbers that are not finite.")
    low, high = EMBEDDING_NORM_RANGE
    if not low <= float(np.linalg.norm(embedding)) <= high:
        raise SentFrameError("The page sent an embedding no model of this server could have made.")
    return embedding


def _thumbnail(value: object, side: int) -> bytes:
    data = _base64(value, "thumbnail")
    if len(data) > MAX_THUMBNAIL_BYTES:
        raise SentFrameError(f"The page sent a {len(data) // 1024} KB thumbnail; the limit is {MAX_THUMBNAIL_BYTES // 1024} KB.")
    if not data.startswith(b"\xff\xd8") or image_size(data) != (side, side):
        raise SentFrameError(f"The page's thumbnail must be a {side}x{side} JPEG.")
    try:
        decode_image(data, "The page's thumbnail", max_pixels=side * side)
    except ImageError as error:
        raise SentFrameError(str(error)) from None
    return data
