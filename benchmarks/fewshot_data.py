"""Few-shot benchmark data: class-per-folder images (cut-outs with alpha are composited onto a background), embedded
once per tap by the real backbone and kept in memory.

Backgrounds for images with transparency:

* ``grey``: plain light grey (RGB 190, 190, 190), like an object held against a wall;
* ``texture``: a random crop of one of scikit-image's brick, grass and gravel photos per image (seeded), so the
  background changes from photo to photo.

The object is centred on a square canvas 1.4 times its longer side, so it fills about 70 % of the frame.

Extra *views* of each image (for enrolment augmentation and test-time flip) can be embedded in the same call, from
the same composited image (same background):

* ``flip``: the prepared frame mirrored left-right;
* ``zoom``: the central 80 % square of the composited image (a step closer);
* ``shift``: an 85 % square in the bottom-right corner (the object moved up-left, still whole).

*Camera-like copies* (``camera_copies``) stand for the frames one hold of the record button stores of a view: each
is a square crop of 90-100 % of the image's side, moved by up to 4 % of the side from the centre, with its
brightness scaled by 0.85-1.15 (seeded per image).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
GREY = 190
CANVAS_SCALE = 1.4
TEXTURES = ("brick", "grass", "gravel")
VIEWS = ("flip", "zoom", "shift")
CROPS = {"zoom": (0.8, 0.5), "shift": (0.85, 1.0)}
JITTER_SCALE = (0.9, 1.0)
JITTER_SHIFT = 0.04
JITTER_BRIGHTNESS = (0.85, 1.15)
"""View name -> (side of the square crop as a fraction of the image's, where it sits: 0.5 centre, 1.0 bottom-right)."""


@dataclass(frozen=True)
class Features:
    """Pooled features of every image at each tap, with the images' class names."""

    by_tap: dict[str, np.ndarray]
    labels: np.ndarray
    classes: tuple[str, ...]
    background: str
    views: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Extra views of every image (view name -> tap -> vectors, rows as in ``by_tap``)."""
    copies: dict[str, np.ndarray] = field(default_factory=dict)
    """Camera-like copies of every image: tap -> ``images x copies x channels``."""


def read_folder(folder: Path) -> tuple[list[Path], list[str]]:
    """Image paths and their class (the name of the sub-folder they are in), sorted."""
    paths, labels = [], []
    for class_dir in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(path)
                labels.append(class_dir.name)
    if len(set(labels)) < 2:
        raise SystemExit(f"{folder} needs at least two class folders with images.")
    return paths, labels


def background_for(side: int, background: str, rng: np.random.Generator) -> np.ndarray:
    """A ``side`` x ``side`` RGB uint8 background."""
    if background == "grey":
        return np.full((side, side, 3), GREY, np.uint8)
    if background == "texture":
        import skimage.data

        texture = np.asarray(getattr(skimage.data, TEXTURES[rng.integers(len(TEXTURES))])())
        texture = np.repeat(texture[..., None], 3, axis=2) if texture.ndim == 2 else texture[..., :3]
        crop = int(min(texture.shape[:2]) * rng.uniform(0.5, 1.0))
        y = rng.integers(texture.shape[0] - crop + 1)
        x = rng.integers(texture.shape[1] - crop + 1)
        return cv2.resize(np.ascontiguousarray(texture[y : y + crop, x : x + crop]), (side, side))
    raise SystemExit(f"Unknown background {background!r}; use grey or texture.")


def composite(path: Path, background: str, rng: np.random.Generator) -> np.ndarray:
    """The image as RGB uint8; one with alpha is centred on a square ``background`` canvas."""
    image = Image.open(path)
    if image.mode not in ("RGBA", "LA") and "transparency" not in image.info:
        return np.asarray(image.convert("RGB"))
    rgba = np.asarray(image.convert("RGBA")).astype(np.float32)
    height, width = rgba.shape[:2]
    side = int(max(height, width) * CANVAS_SCALE)
    canvas = background_for(side, background, rng).astype(np.float32)
    top, left = (side - height) // 2, (side - width) // 2
    alpha = rgba[..., 3:] / 255.0
    region = canvas[top : top + height, left : left + width]
    canvas[top : top + height, left : left + width] = alpha * rgba[..., :3] + (1 - alpha) * region
    return canvas.round().astype(np.uint8)


def view_of(rgb: np.ndarray, view: str, backbone) -> np.ndarray:
    """The prepared (``input_size`` square) frame of ``view`` of the RGB image ``rgb``."""
    if view == "flip":
        return np.ascontiguousarray(backbone.prepare(rgb)[:, ::-1])
    fraction, place = CROPS[view]
    height, width = rgb.shape[:2]
    side = int(round(min(height, width) * fraction))
    top, left = int(round((height - side) * place)), int(round((width - side) * place))
    return backbone.prepare(rgb[top : top + side, left : left + side])


def jittered(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One camera-like copy of ``rgb``: a slightly smaller square, slightly off centre, slightly brighter or darker."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    crop = int(round(side * rng.uniform(*JITTER_SCALE)))
    top, left = ((size - crop) / 2 + rng.uniform(-1, 1) * JITTER_SHIFT * side for size in (height, width))
    top, left = int(round(np.clip(top, 0, height - crop))), int(round(np.clip(left, 0, width - crop)))
    image = rgb[top : top + crop, left : left + crop].astype(np.float32) * rng.uniform(*JITTER_BRIGHTNESS)
    return np.clip(image, 0, 255).round().astype(np.uint8)


def embed_folder(
    folder: Path,
    taps: list[str],
    background: str = "grey",
    backbone=None,
    views: tuple[str, ...] = (),
    camera_copies: int = 0,
) -> Features:
    """Every image of ``folder`` through the backbone once, every tap read in the same pass (batch 1); each of
    ``views`` is one more pass per image, and so is each of ``camera_copies`` jittered copies."""
    from teachable.backbones import load_backbone, pooled

    backbone = backbone or load_backbone("efficientnet_lite0", device="cpu")
    paths, labels = read_folder(folder)
    rng = np.random.default_rng(0)
    rows: dict[str, dict[str, list[np.ndarray]]] = {view: {tap: [] for tap in taps} for view in ("", *views)}
    copies: dict[str, list[np.ndarray]] = {tap: [] for tap in taps}
    for index, path in enumerate(paths):
        rgb = composite(path, background, rng)
        for view in rows:
            image = (view_of(rgb, view, backbone) if view else backbone.prepare(rgb))[None]
            outputs = backbone.run(image, taps)
            for tap in taps:
                rows[view][tap].append(pooled(outputs[tap])[0])
        if camera_copies:
            jitter_rng = np.random.default_rng([index, 27])  # the same copies whatever else is embedded
            images = np.stack([backbone.prepare(jittered(rgb, jitter_rng)) for _ in range(camera_copies)])
            outputs = {tap: [] for tap in taps}
            for image in images:
                for tap, value in backbone.run(image[None], taps).items():
                    outputs[tap].append(pooled(value)[0])
            for tap in taps:
                copies[tap].append(np.stack(outputs[tap]))
    stacked = {
        view: {tap: np.stack(vectors).astype(np.float32) for tap, vectors in by_tap.items()}
        for view, by_tap in rows.items()
    }
    by_tap = stacked.pop("")
    copied = {tap: np.stack(vectors).astype(np.float32) for tap, vectors in copies.items() if vectors}
    return Features(by_tap, np.asarray(labels), tuple(dict.fromkeys(labels)), background, stacked, copied)
