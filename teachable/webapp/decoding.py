"""Images from the page, decoded here with this app's limits rather than by Gradio.

Gradio decodes an image input in full before the app sees it, whatever its size up to PIL's own guard. The camera
and the Image tab therefore take Gradio's raw value (``preprocess=False``): a file Gradio has checked is in its
upload folder, or a ``data:`` URL, which the webcam sends. Its size in pixels is read from the header and checked
first (a live frame has a far lower limit than an upload), and an upload's decode waits for its share of the
server's decoding memory (:class:`~teachable.frames.DecodeBudget`).
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from ..frames import LIVE_MAX_PIXELS, MAX_PIXELS, DecodeBudget, ImageError, decode_image, load_image

__all__ = ["image_from_payload", "camera_frame", "uploaded_image"]


def image_from_payload(payload, name: str, max_pixels: int, budget: DecodeBudget | None = None) -> np.ndarray | None:
    """The RGB image in an image input's raw value (None when there is none). A numpy array (a direct call, not
    through the page) is taken as it is, after its size is checked."""
    if payload is None:
        return None
    if isinstance(payload, np.ndarray):
        height, width = payload.shape[:2]
        if height * width > max_pixels:
            raise ImageError(f"{name} is {width}x{height}; the limit is {max_pixels:,} pixels.")
        return payload
    if hasattr(payload, "model_dump"):
        payload = payload.model_dump()
    if not isinstance(payload, dict):
        raise ImageError(f"{name} did not arrive as an image; reload the page.")
    if payload.get("path"):
        return load_image(payload["path"], max_pixels, budget, name=name)
    url = payload.get("url")
    if isinstance(url, str) and url.startswith("data:"):
        header, _, encoded = url.partition(",")
        try:
            data = base64.b64decode(encoded) if header.endswith(";base64") else b""
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            raise ImageError(f"{name} arrived damaged (not base64 image data); reload the page.")
        return decode_image(data, name, max_pixels, budget)
    raise ImageError(f"{name} did not arrive as an image; reload the page.")


def camera_frame(payload) -> np.ndarray | None:
    """A live frame: held to :data:`~teachable.frames.LIVE_MAX_PIXELS`. Live frames are small by that limit and
    come many times a second, so they do not wait on the decoding budget."""
    return image_from_payload(payload, "The camera frame", LIVE_MAX_PIXELS)


def uploaded_image(payload, budget: DecodeBudget | None) -> np.ndarray | None:
    """An image from the Image tab or the ``classify`` API: the upload limit, and the shared decoding budget."""
    return image_from_payload(payload, "The image", MAX_PIXELS, budget)
