"""The activation grid of one frame, after Distill's Activation Atlas and "The Building Blocks of Interpretability".

The grid tap (14x14 for the bundled backbone at 224) gives one activation vector per spatial cell. Three ways to
draw it over the frame:

* **icons**: each cell shows the feature-visualisation icon of the direction it matches best (cosine), faded by the
  cell's activation magnitude. The icons are made once per backbone by :mod:`teachable.atlas`.
* **factors**: the frame's activations are factorised with NMF into a few groups; each cell is tinted with its
  strongest group. Factors are warm-started from the previous frame, so colours stay put while the camera moves.
* **attribution**: gradient x activation of the kNN class score with respect to the tap: which cells push the
  prediction toward the predicted class.

Everything here is a pure function of arrays; nothing is kept between calls except what the caller passes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

__all__ = ["GridIcons", "IconCells", "MODES", "icon_grid", "icon_cells", "icon_sheet", "factor_grid", "attribution_map", "heat_overlay", "cell_of_pixel"]

MODES = ("icons", "factors", "attribution")
FACTOR_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240]], dtype=np.float32
)


@dataclass(frozen=True)
class GridIcons:
    """Directions in a tap's channel space and one icon (what excites the direction) for each."""

    backbone: str
    tap: str
    directions: np.ndarray
    """``D x C`` float32, unit rows."""
    icons: np.ndarray
    """``D x S x S x 3`` uint8 RGB."""
    kinds: tuple[str, ...]
    """Per direction: "channel N" or "typical N" (a cluster centre of real activations)."""

    @classmethod
    def load(cls, path: str | Path) -> "GridIcons":
        with np.load(path, allow_pickle=False) as data:
            return cls(
                str(data["backbone"]), str(data["tap"]), data["directions"].astype(np.float32),
                data["icons"], tuple(str(k) for k in data["kinds"]),
            )  # fmt: skip

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, backbone=self.backbone, tap=self.tap, directions=self.directions, icons=self.icons,
            kinds=np.array(self.kinds),
        )  # fmt: skip
        return path


def cell_of_pixel(y: int, x: int, image_size: int, grid_size: int) -> tuple[int, int]:
    """Which grid cell covers pixel (y, x) of the square input."""
    return min(y * grid_size // image_size, grid_size - 1), min(x * grid_size // image_size, grid_size - 1)


def _cells(activation: np.ndarray) -> np.ndarray:
    """``C x H x W`` -> ``(H*W) x C``."""
    channels = activation.shape[0]
    return activation.reshape(channels, -1).T


@dataclass(frozen=True)
class IconCells:
    """The icons view of a frame as data, for the page to draw from its icon sheet: far fewer bytes than a picture."""

    best: np.ndarray
    """``H x W`` index of each cell's icon."""
    strength: np.ndarray
    """``H x W`` in [0, 1]: how much of the icon shows over the darkened frame."""
    backdrop: np.ndarray
    """A small RGB copy of the frame, drawn darkened behind the icons."""


def icon_cells(activation: np.ndarray, icons: GridIcons) -> tuple[np.ndarray, np.ndarray]:
    """Per cell of a ``C x H x W`` activation: the index of the best-matching icon direction (``H x W`` int) and
    how strongly the cell fires (``H x W`` in [0, 1], its norm over the 95th percentile of the frame's norms)."""
    channels, height, width = activation.shape
    if channels != icons.directions.shape[1]:
        raise ValueError(f"Activation has {channels} channels; the icons were made for {icons.directions.shape[1]}.")
    cells = _cells(activation)
    norms = np.linalg.norm(cells, axis=1)
    cosine = cells @ icons.directions.T / np.maximum(norms[:, None], 1e-6)
    best = cosine.argmax(axis=1)
    strength = np.clip(norms / max(np.percentile(norms, 95), 1e-6), 0, 1)
    return best.reshape(height, width), strength.reshape(height, width)


def icon_sheet(icons: GridIcons, cell_px: int = 24) -> np.ndarray:
    """All icons in one RGB image, ``columns`` to a row (row-major by index), for the page to draw cells from."""
    count = len(icons.icons)
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    tiles = icons.icons
    if tiles.shape[1] != cell_px:
        tiles = np.stack([cv2.resize(t, (cell_px, cell_px), interpolation=cv2.INTER_AREA) for t in tiles])
    sheet = np.zeros((rows * cell_px, columns * cell_px, 3), np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        sheet[row * cell_px : (row + 1) * cell_px, column * cell_px : (column + 1) * cell_px] = tile
    return sheet


def icon_grid(
    activation: np.ndarray, icons: GridIcons, square: np.ndarray, cell_px: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """Mosaic of each cell's best-matching icon over the darkened frame.

    Returns the ``(H*cell_px) x (W*cell_px) x 3`` image and the ``H x W`` index of the chosen direction per cell.
    """
    _, height, width = activation.shape
    best, strength = icon_cells(activation, icons)
    best, strength = best.ravel(), strength.ravel()
    tiles = icons.icons
    if tiles.shape[1] != cell_px:
        tiles = np.stack([cv2.resize(t, (cell_px, cell_px), interpolation=cv2.INTER_AREA) for t in tiles])
    mosaic = tiles[best].reshape(height, width, cell_px, cell_px, 3).transpose(0, 2, 1, 3, 4)
    mosaic = mosaic.reshape(height * cell_px, width * cell_px, 3).astype(np.float32)
    background = cv2.resize(square, (width * cell_px, height * cell_px), interpolation=cv2.INTER_AREA) * 0.35
    alpha = np.repeat(np.repeat(strength.reshape(height, width), cell_px, 0), cell_px, 1)[..., None]
    image = alpha * mosaic + (1 - alpha) * background
    return image.astype(np.uint8), best.reshape(height, width)


def factor_grid(
    activation: np.ndarray, square: np.ndarray, n_factors: int = 4, previous: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tint the frame by the NMF factor that dominates each cell.

    Returns the image (``square``'s size) and the factors' channel loadings (``n_factors x C``), to pass back as
    ``previous`` for the next frame.
    """
    from sklearn.decomposition import non_negative_factorization

    channels, height, width = activation.shape
    cells = np.maximum(_cells(activation), 0).astype(np.float64)
    if previous is not None and previous.shape == (n_factors, channels):
        weights = np.maximum(cells @ np.linalg.pinv(previous), 1e-6)
        weights, components, _ = non_negative_factorization(
            cells, weights, previous.astype(np.float64), n_components=n_factors, init="custom", solver="mu",
            max_iter=30, tol=1e-3,
        )  # fmt: skip
    else:
        weights, components, _ = non_negative_factorization(
            cells, n_components=n_factors, init="nndsvda", solver="mu", max_iter=200, tol=1e-4
        )
    strongest = weights.argmax(axis=1)
    strength = weights.max(axis=1) / max(weights.max(), 1e-9)
    colours = FACTOR_COLOURS[strongest % len(FACTOR_COLOURS)] * strength[:, None]
    overlay = cv2.resize(colours.reshape(height, width, 3), square.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    alpha = cv2.resize(
        strength.reshape(height, width).astype(np.float32), square.shape[1::-1], interpolation=cv2.INTER_NEAREST
    )
    alpha = 0.65 * alpha[..., None]
    image = alpha * overlay / np.maximum(strength.max(), 1e-6) + (1 - alpha) * square.astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), components.astype(np.float32)


def attribution_map(
    backbone,
    square: np.ndarray,
    class_vectors: np.ndarray,
    temperature: float = 0.05,
    tap: str | None = None,
    until: str | None = None,
) -> np.ndarray:
    """``H x W`` gradient x activation, summed over channels, of a class's kNN score with respect to the tap.

    The class score is the smooth maximum of the frame's cosine similarity to the class's examples,
    ``T * logsumexp(similarity / T)``: the same kernel the kNN votes with. Positive cells push toward the class.
    ``until`` is the embedding tap the examples were read at (spatial taps are average-pooled).
    """
    tap = tap or backbone.grid_tap
    until = until or backbone.embedding_tap
    with torch.no_grad():
        activation = backbone.forward_taps(backbone.to_tensor(square[None]), [tap])[tap]
    activation = activation.detach().requires_grad_(True)
    examples = torch.as_tensor(class_vectors, dtype=torch.float32, device=activation.device)
    with torch.enable_grad():
        embedding = backbone.forward_from(tap, activation, until)
        if embedding.ndim == 4:
            embedding = embedding.mean(dim=(2, 3))
        similarity = torch.nn.functional.normalize(embedding, dim=1) @ examples.T
        score = temperature * torch.logsumexp(similarity / temperature, dim=1).sum()
        (gradient,) = torch.autograd.grad(score, activation)
    return (gradient * activation).sum(dim=1)[0].detach().cpu().numpy()


def heat_overlay(values: np.ndarray, square: np.ndarray) -> np.ndarray:
    """A grid of values as a heat overlay on the frame: positive values glow, the rest is left dim."""
    positive = np.maximum(values, 0)
    heat = positive / max(positive.max(), 1e-9)
    heat = cv2.resize(heat.astype(np.float32), square.shape[1::-1], interpolation=cv2.INTER_CUBIC).clip(0, 1)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1].astype(np.float32)
    alpha = 0.25 + 0.6 * heat[..., None]
    return (alpha * colour + (1 - alpha) * square.astype(np.float32) * 0.6).astype(np.uint8)
