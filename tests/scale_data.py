"""Benchmark data for the scale benchmarks: real embeddings, and many vectors on the manifold they span.

* ``real_crops``: augmented crops (random area 15-100 %, aspect, flip, rotation, brightness/contrast) of the
  photos bundled with scikit-image, each photo a class: what a folder of real pictures looks like to the backbone.
* ``manifold_vectors``: ``n`` vectors made from real embeddings, each a random mix of two crops of the same photo
  plus a little noise in the span of the real data. They have the real data's neighbourhood structure (most
  neighbours from the same photo, a low intrinsic dimension), which decides how well an approximate index does;
  isotropic Gaussian noise in 1280 dimensions would make every point nearly equidistant, which no CNN gives.
"""

from __future__ import annotations

import cv2
import numpy as np
import skimage.data

PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text", "logo", "cell",
    "stereo_motorcycle",
)  # fmt: skip


def photos() -> dict[str, np.ndarray]:
    """The bundled scikit-image photos as RGB uint8."""
    images = {}
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        image = image[0] if isinstance(image, tuple) else image
        image = np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]
        images[name] = np.ascontiguousarray(image.astype(np.uint8))
    return images


def augmented_crop(image: np.ndarray, rng: np.random.Generator, size: int = 224) -> np.ndarray:
    height, width = image.shape[:2]
    area = rng.uniform(0.15, 1.0) * height * width
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_w = int(min(width, np.sqrt(area * aspect)))
    crop_h = int(min(height, np.sqrt(area / aspect)))
    top, left = rng.integers(0, height - crop_h + 1), rng.integers(0, width - crop_w + 1)
    crop = image[top : top + crop_h, left : left + crop_w]
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    rotation = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-15, 15), 1.0)
    crop = cv2.warpAffine(crop, rotation, (size, size), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain, offset = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
    return np.clip(crop.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def real_crops(count: int, seed: int = 0, size: int = 224) -> tuple[np.ndarray, list[str]]:
    """``count`` augmented crops (``count x size x size x 3`` uint8) and the photo each came from."""
    rng = np.random.default_rng(seed)
    images = photos()
    names = list(images)
    labels = [names[i % len(names)] for i in range(count)]
    return np.stack([augmented_crop(images[label], rng, size) for label in labels]), labels


def embed_all(backbone, crops: np.ndarray, batch: int = 16) -> np.ndarray:
    """Embeddings of many crops, a batch at a time."""
    return np.concatenate([backbone.embed(crops[i : i + batch]) for i in range(0, len(crops), batch)])


def manifold_vectors(
    real: np.ndarray, labels: list[str], count: int, seed: int = 0, noise: float = 0.02
) -> tuple[np.ndarray, list[str]]:
    """``count`` unit vectors near the real embeddings' manifold (see the module docstring) and their labels."""
    rng = np.random.default_rng(seed)
    real = real / np.linalg.norm(real, axis=1, keepdims=True)
    by_label: dict[str, np.ndarray] = {}
    for row, label in enumerate(labels):
        by_label.setdefault(label, []).append(row)
    by_label = {label: np.array(rows) for label, rows in by_label.items()}
    names = list(by_label)
    chosen = [names[i] for i in rng.integers(0, len(names), count)]
    first = np.array([rng.choice(by_label[name]) for name in chosen])
    second = np.array([rng.choice(by_label[name]) for name in chosen])
    mix = rng.uniform(0, 1, (count, 1)).astype(np.float32)
    _, _, basis = np.linalg.svd(real - real.mean(axis=0), full_matrices=False)
    basis = basis[:64]
    vectors = (1 - mix) * real[first] + mix * real[second]
    vectors += noise * rng.normal(size=(count, len(basis))).astype(np.float32) @ basis
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), chosen
