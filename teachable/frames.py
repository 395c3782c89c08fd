"""Frames and images: validate, convert to RGB uint8, crop and resize with OpenCV, encode thumbnails.

Everything that enters the pipeline (a webcam frame, an uploaded file, a folder of photos) passes through here
first, so the rest of the code can assume a C-contiguous ``HxWx3`` ``uint8`` RGB array. Nothing here knows about
models; the target size comes from the backbone.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .pacing import Pacer

__all__ = [
    "ImageError",
    "IMAGE_SUFFIXES",
    "MIN_SIDE",
    "MAX_PIXELS",
    "LIVE_MAX_PIXELS",
    "DECODE_BYTES_PER_PIXEL",
    "DecodeBudget",
    "image_size",
    "as_rgb_uint8",
    "load_image",
    "decode_image",
    "center_square",
    "encode_jpeg",
    "shrink_jpeg",
    "standard_thumbnail",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MIN_SIDE = 16
"""Smaller frames carry too little to classify; they are refused rather than blown up."""
MAX_PIXELS = 50_000_000
"""Decoded-size limit (about 7000x7000). Larger files are refused before decoding (decompression-bomb guard)."""
LIVE_MAX_PIXELS = 4_000_000
"""Decoded-size limit for a live camera frame (the page asks for 640x480; 2560x1440 still fits). Frames come many
times a second from every camera at once, so they get a far lower limit than an upload."""
DECODE_BYTES_PER_PIXEL = 12
"""Peak memory of decoding one image here, per pixel, with room to spare: the decoder's buffers, PIL's RGB image and
the array made from it (measured: a 7050x7050 PNG peaked at +479 MiB, 10.1 bytes a pixel; 858 MiB, 18 bytes a
pixel, before the decode made fewer copies)."""
MAX_FILE_BYTES = 50 * 1024 * 1024
"""Largest image file or upload that is read at all."""
WORKING_SIDE = 1024
"""A large upload (over ``LIVE_MAX_PIXELS``) is decoded or shrunk to about this many pixels on its shorter side:
everything after the decode works on a 224-pixel square at most."""
BUSY_DECODING = "The server is busy decoding other people's large files; try again in a moment."
DECODED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
"""The only decoders PIL may use: the formats of ``IMAGE_SUFFIXES``, and GIF (its first frame). Cameras' multi-picture
JPEGs open through the JPEG decoder. Rarer decoders are never reached by untrusted bytes."""


def limit_pil_decoding(max_pixels: int = MAX_PIXELS) -> None:
    """Make PIL's own decompression-bomb guard refuse images over ``max_pixels``, for every decode in the process.

    PIL warns above ``Image.MAX_IMAGE_PIXELS`` and refuses, from the header, above twice that. Its default (about 89
    megapixels) let a 13,000 x 13,000 PNG of 21 KB through to libraries that decode uploads with PIL before this code
    sees them (Gradio decodes an image input before calling the app). With the guard at half the app's limit, they
    refuse anything over the limit itself, before decoding. This code also checks every image's header against
    ``MAX_PIXELS`` itself (see :func:`decode_image`).
    """
    Image.MAX_IMAGE_PIXELS = max_pixels // 2


limit_pil_decoding()


class ImageError(ValueError):
    """An image or frame that cannot be used, with a message a person can act on."""


class DecodeBudget:
    """Memory and time for decoding, shared by the whole server.

    Memory: each decode reserves what it will take (from the image's header, before any pixel is decoded) and waits
    while others hold the rest, so however many people send large images at once, their decodes together stay
    within ``total_bytes``. A decode that needs more than the whole budget is refused at once; one that cannot
    start within ``wait`` seconds is refused with a message to try again.

    Time: a large image (over :data:`LIVE_MAX_PIXELS`) takes the CPU for most of a second, so large decodes take
    turns, one at a time in the order they came (one person's loop cannot keep another's upload waiting), and while
    people's frames are running (``pacer``) each rests afterwards, holding its turn, long enough that large decodes
    together take at most the pacer's share of the time. Two people classifying 7000x7000 pictures in a loop then
    cannot take the CPU from everyone's cameras.
    """

    def __init__(self, total_bytes: int, wait: float = 10.0, pacer: Pacer | None = None) -> None:
        self.total_bytes = int(total_bytes)
        self.wait = wait
        self.pacer = pacer
        self._in_use = 0
        self._changed = threading.Condition()
        self._large_turns: deque[object] = deque()
        """The large decodes waiting for their turn, in the order they came; the first holds it."""
        self._turn_passed = threading.Condition()

    @property
    def in_use(self) -> int:
        with self._changed:
            return self._in_use

    @contextmanager
    def reserve(self, nbytes: int, what: str = "The image", large: bool = False) -> Iterator[None]:
        """Hold ``nbytes`` of the budget while decoding; a ``large`` image also waits for its turn, and rests in it
        afterwards while people's frames are running."""
        nbytes = int(nbytes)
        if nbytes > self.total_bytes:
            raise ImageError(
                f"{what} would take {nbytes / 2**20:.0f} MB to decode; this server decodes at most "
                f"{self.total_bytes / 2**20:.0f} MB at once. Use a smaller image."
            )
        with self._turn(large), self._memory(nbytes):
            yield

    @contextmanager
    def _memory(self, nbytes: int) -> Iterator[None]:
        with self._changed:
            if not self._changed.wait_for(lambda: self._in_use + nbytes <= self.total_bytes, timeout=self.wait):
                raise ImageError(BUSY_DECODING)
            self._in_use += nbytes
        try:
            yield
        finally:
            with self._changed:
                self._in_use -= nbytes
                self._changed.notify_all()

    @contextmanager
    def _turn(self, large: bool) -> Iterator[None]:
        if not large:
            yield
            return
        ticket = object()
        with self._turn_passed:
            self._large_turns.append(ticket)
            if not self._turn_passed.wait_for(lambda: self._large_turns[0] is ticket, timeout=self.wait):
                self._large_turns.remove(ticket)
                raise ImageError(BUSY_DECODING)
        try:
            report = self.pacer.paced(None) if self.pacer is not None else None
            yield
            if report is not None:
                report(0, 1)  # rests here, in the turn, while frames are running
        finally:
            with self._turn_passed:
                self._large_turns.popleft()
                self._turn_passed.notify_all()


def as_rgb_uint8(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` as a C-contiguous ``HxWx3`` uint8 RGB array.

    Accepts grayscale (``HxW`` or ``HxWx1``), RGB, RGBA (alpha dropped), and uint16 or float images (float in
    [0, 1] or [0, 255]). Raises :class:`ImageError` for anything else, for non-finite values, and for frames smaller
    than ``MIN_SIDE`` pixels on a side.
    """
    if not isinstance(frame, np.ndarray):
        raise ImageError(f"Expected an image array, got {type(frame).__name__}.")
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
        raise ImageError(f"Expected an HxW, HxWx3 or HxWx4 image, got an array of shape {frame.shape}.")
    height, width = frame.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise ImageError(f"Image is {width}x{height}; it must be at least {MIN_SIDE}x{MIN_SIDE} pixels.")
    if height * width > MAX_PIXELS:
        raise ImageError(f"Image is {width}x{height}; the limit is {MAX_PIXELS:,} pixels.")
    if frame.dtype == np.uint8:
        pass
    elif frame.dtype == np.bool_:
        frame = frame.astype(np.uint8) * 255
    elif frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    elif np.issubdtype(frame.dtype, np.floating):
        if not np.isfinite(frame).all():
            raise ImageError("Image contains NaN or infinite values.")
        scale = 255.0 if frame.max(initial=0.0) <= 1.0 else 1.0
        frame = np.clip(frame * scale, 0, 255).astype(np.uint8)
    else:
        raise ImageError(f"Unsupported pixel type {frame.dtype}; use uint8, uint16, float or bool.")
    if frame.shape[2] == 1:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    elif frame.shape[2] == 4:
        frame = cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB)
    return np.ascontiguousarray(frame)


def _open_checked(
    source: io.BytesIO | Path, name: str, max_pixels: int = MAX_PIXELS, budget: DecodeBudget | None = None
) -> np.ndarray:
    """Decode ``source`` after checking, from its header alone, that it has at most ``max_pixels`` pixels; with a
    ``budget``, the decode first reserves its memory there."""
    try:
        with Image.open(source, formats=DECODED_FORMATS) as image:
            if image.width * image.height > max_pixels:
                raise ImageError(f"{name} is {image.width}x{image.height}; the limit is {max_pixels:,} pixels.")
            if budget is None:
                return _decode(image)
            large = image.width * image.height > LIVE_MAX_PIXELS
            if large:  # a JPEG is decoded at 1/2, 1/4 or 1/8 of its size where that keeps WORKING_SIDE
                image.draft("RGB", _working_size(image.size))
            cost = image.width * image.height * DECODE_BYTES_PER_PIXEL
            with budget.reserve(cost, name, large=large):
                return _decode(image, WORKING_SIDE if large else None)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{name} is too large to decode safely; the limit is {max_pixels:,} pixels.") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image file that can be read (jpg, png, webp or bmp).") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"{name} could not be decoded: {error}") from None


def _working_size(size: tuple[int, int]) -> tuple[int, int]:
    """``size`` scaled so that its shorter side is ``WORKING_SIDE`` (never up)."""
    scale = min(1.0, WORKING_SIDE / min(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _decode(image: Image.Image, working_side: int | None = None) -> np.ndarray:
    """An opened image's first frame as RGB uint8, turned as its EXIF says, with as few full-size copies as can be:
    PIL's decoded image and one array (the EXIF turn is done on the array, in place of two more PIL copies). With
    ``working_side``, an image at least twice that on its shorter side is first reduced by a whole factor (box
    averaging), which keeps the shorter side at ``working_side`` or more."""
    image.seek(0)  # first frame of an animated GIF/WebP
    orientation = image.getexif().get(0x0112, 1)
    factor = min(image.size) // working_side if working_side else 1
    if factor >= 2 and image.mode in ("RGB", "RGBA", "L"):
        image = image.reduce(factor)
    if image.mode.startswith("I;16"):
        array = as_rgb_uint8((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
    else:
        array = as_rgb_uint8(np.asarray(image if image.mode == "RGB" else image.convert("RGB")))
    return _orient(array, orientation)


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an ``HxWx3`` array."""
    turns = {3: 2, 6: 3, 8: 1, 5: 1, 7: 3}  # quarter turns anticlockwise
    if orientation in (2, 4, 5, 7):
        array = array[:, ::-1] if orientation in (2, 5, 7) else array[::-1]
    if orientation in turns:
        array = np.rot90(array, turns[orientation])
    return np.ascontiguousarray(array) if orientation != 1 else array


def load_image(
    path: str | Path, max_pixels: int = MAX_PIXELS, budget: DecodeBudget | None = None, name: str | None = None
) -> np.ndarray:
    """Read an image file into RGB uint8, honouring EXIF orientation. Raises :class:`ImageError` on any problem.

    The size in pixels is read from the header and checked against ``max_pixels`` before decoding; with a
    ``budget``, the decode waits for its share of the server's decoding memory. ``name``: how messages call it.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path} does not exist or is not a file.")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"{path} is empty (0 bytes).")
    if size > MAX_FILE_BYTES:
        raise ImageError(f"{path} is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MB.")
    return _open_checked(path, name or str(path), max_pixels, budget)


def decode_image(
    data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS, budget: DecodeBudget | None = None
) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) into RGB uint8.

    The byte size is checked against ``MAX_FILE_BYTES`` and the pixel size, read from the header, against
    ``max_pixels`` before anything is decoded, so a small file that claims a huge image costs nothing. With a
    ``budget``, the decode waits for its share of the server's decoding memory.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"{name} must be the bytes of an image file, not {type(data).__name__}.")
    if not data:
        raise ImageError(f"{name} is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name} is {len(data) / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MB.")
    return _open_checked(io.BytesIO(data), name, max_pixels, budget)


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of encoded image bytes, read from the header alone; None when it is not a readable image."""
    try:
        with Image.open(io.BytesIO(data), formats=DECODED_FORMATS) as image:
            return image.width, image.height
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None


def center_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, then resize to ``size`` x ``size`` (area filter when shrinking, linear when growing)."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = rgb[top : top + side, left : left + side]
    if side == size:
        return np.ascontiguousarray(square)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(square, (size, size), interpolation=interpolation)


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    """Encode an RGB uint8 image as JPEG bytes."""
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("Could not encode the image as JPEG.")
    return buffer.tobytes()


def shrink_jpeg(jpeg: bytes, size: int, quality: int = 85) -> bytes:
    """A smaller square JPEG of a square JPEG thumbnail, for showing many at once."""
    rgb = decode_image(jpeg, "thumbnail")
    return encode_jpeg(cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA), quality)


def standard_thumbnail(jpeg: bytes, side: int, max_side: int, name: str = "thumbnail") -> bytes:
    """``jpeg`` itself if it is a plain square thumbnail of at most ``side`` pixels, else a re-encoded one.

    The image is decoded in full (so a damaged one is refused here, not when it is first shown), after its header
    is checked against ``max_side`` x ``max_side`` pixels. One that is not square, is larger than ``side``, or has
    more bytes than its raw pixels (padding, metadata) becomes the ``side``-pixel centre square, re-encoded.
    """
    rgb = decode_image(jpeg, name, max_pixels=max_side * max_side)
    height, width = rgb.shape[:2]
    if height == width <= side and len(jpeg) <= rgb.nbytes:
        return bytes(jpeg)
    return encode_jpeg(center_square(rgb, min(side, height, width)))
