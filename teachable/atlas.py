"""Feature visualisation for the activation grid: one icon per direction of a tap, made once per backbone.

An icon is an input image optimised so that the tap's activations point along a direction (Olah et al.,
"Feature Visualization", and the Lucid library). For robustness, as in Lucid:

* the image is parameterised in a scaled Fourier basis with decorrelated colour (so the optimiser favours natural
  low frequencies over adversarial noise);
* every step sees it padded, jittered, scaled and rotated at random (so the result cannot rely on pixel alignment).

The objective is Lucid's cosine-weighted direction: ``dot(a, d) * max(cos(a, d), 0.1) ** 2`` averaged over the
tap's cells. Directions are the tap's channels plus "typical" directions: k-means centres of activation vectors of
real photos (the bundled sample photos, :mod:`teachable.assets`).

``teachable atlas icons --backbone NAME`` runs :func:`make_icons` and writes ``NAME.TAP.npz`` into
``teachable/assets/icons/`` (or, for a read-only install, the per-user folder; see :func:`teachable.assets.icon_file`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dataclasses import dataclass

from .activations import GridIcons

__all__ = [
    "make_icons",
    "typical_directions",
    "render_directions",
    "direction_scores",
    "build_atlas",
    "Atlas",
]

# Square root of the colour correlation of natural images (Lucid's color_correlation_svd_sqrt).
COLOUR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_SQRT = COLOUR_SQRT / COLOUR_SQRT.norm(dim=0).max()


def _fourier_image(spectrum: torch.Tensor, size: int, decay: float = 1.0) -> torch.Tensor:
    """``B x 3 x size x size`` image in [0, 1] from a ``B x 3 x size x (size//2+1) x 2`` spectrum parameter."""
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    scale = 1.0 / torch.clamp(torch.sqrt(fx**2 + fy**2), min=1.0 / size) ** decay
    scale = scale * (size / math.sqrt(size * size))
    image = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(size, size), norm="ortho")
    image = torch.einsum("bchw,dc->bdhw", image / 4.0, COLOUR_SQRT)
    return torch.sigmoid(image)


def _random_transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Lucid's standard robustness: pad, jitter, scale, rotate, jitter."""
    batch, _, size, _ = images.shape
    images = F.pad(images, (12, 12, 12, 12), mode="reflect")
    shift = torch.randint(-8, 9, (2,), generator=generator)
    images = torch.roll(images, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
    scale = 1.0 + (torch.rand(batch, generator=generator) - 0.5) * 0.2
    angle = (torch.rand(batch, generator=generator) - 0.5) * math.radians(20)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, torch.zeros(batch)], 1), torch.stack([sin, cos, torch.zeros(batch)], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    margin = (images.shape[-1] - size) // 2
    jitter = torch.randint(-4, 5, (2,), generator=generator)
    top, left = margin + int(jitter[0]), margin + int(jitter[1])
    return images[:, :, top : top + size, left : left + size]


def direction_scores(activation: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Lucid's cosine-weighted direction objective per (image, direction): ``B x D``, averaged over cells."""
    cells = activation.flatten(2).transpose(1, 2)  # B x cells x C
    dot = cells @ directions.T  # B x cells x D
    cosine = dot / cells.norm(dim=2, keepdim=True).clamp(min=1e-6)
    return (dot * cosine.clamp(min=0.1) ** 2).mean(dim=1)


def render_directions(
    backbone,
    tap: str,
    directions: np.ndarray,
    size: int = 128,
    steps: int = 160,
    batch: int = 16,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Optimise one image per direction; returns ``D x size x size x 3`` uint8."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.tensor(backbone.mean).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std).view(1, 3, 1, 1)
    all_directions = torch.as_tensor(directions, dtype=torch.float32)
    icons = []
    for start in range(0, len(directions), batch):
        targets = all_directions[start : start + batch]
        count = len(targets)
        spectrum = (0.01 * torch.randn(count, 3, size, size // 2 + 1, 2, generator=generator)).requires_grad_(True)
        optimiser = torch.optim.Adam([spectrum], lr=0.05)
        for _ in range(steps):
            images = _random_transform(_fourier_image(spectrum, size), generator)
            batch_input = ((images - mean) / std).to(backbone.device, backbone.dtype)
            activation = backbone.forward_taps(batch_input, [tap])[tap]
            scores = direction_scores(activation, targets.to(activation.device))
            loss = -scores.diagonal().sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            final = _fourier_image(spectrum, size).permute(0, 2, 3, 1).numpy()
        icons.append((final * 255).round().astype(np.uint8))
        if progress:
            progress(count)
    return np.concatenate(icons)


def typical_directions(backbone, tap: str, images: list[np.ndarray], count: int = 32, seed: int = 0) -> np.ndarray:
    """K-means centres (unit length) of the tap's cell vectors over real photos."""
    from sklearn.cluster import KMeans

    squares = np.stack([backbone.prepare(image) for image in images])
    activation = backbone.run(squares, [tap])[tap].cpu().numpy()
    cells = activation.transpose(0, 2, 3, 1).reshape(-1, activation.shape[1])
    cells = cells[np.linalg.norm(cells, axis=1) > 1e-6]
    cells = cells / np.linalg.norm(cells, axis=1, keepdims=True)
    centres = KMeans(n_clusters=count, n_init=4, random_state=seed).fit(cells).cluster_centers_
    return (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)


def make_icons(
    backbone,
    images: list[np.ndarray],
    tap: str | None = None,
    typical: int = 32,
    icon_size: int = 48,
    steps: int = 160,
    progress: Callable[[int], None] | None = None,
) -> GridIcons:
    """Icons for every channel of ``tap`` plus ``typical`` k-means directions of ``images``' activations."""
    import cv2

    tap = tap or backbone.grid_tap
    channels = backbone.tap(tap).channels
    typical_ones = [typical_directions(backbone, tap, images, typical)] if typical else []
    directions = np.concatenate([np.eye(channels, dtype=np.float32), *typical_ones])
    kinds = tuple([f"channel {i}" for i in range(channels)] + [f"typical {i}" for i in range(typical)])
    rendered = render_directions(backbone, tap, directions, steps=steps, progress=progress)
    small = np.stack([cv2.resize(icon, (icon_size, icon_size), interpolation=cv2.INTER_AREA) for icon in rendered])
    return GridIcons(backbone.name, tap, directions, small, kinds)


@dataclass(frozen=True)
class Atlas:
    """An Activation Atlas of a project's examples."""

    image: np.ndarray
    """RGB uint8, ``grid * cell_px`` square."""
    counts: np.ndarray
    """``grid x grid`` number of activation vectors per cell."""
    directions: np.ndarray
    """``grid x grid`` index of the icon drawn in each cell (-1 where empty)."""
    majority: np.ndarray
    """``grid x grid`` index into ``classes`` of each cell's most frequent class (-1 where empty)."""
    classes: tuple[str, ...]
    cell_px: int


def build_atlas(
    backbone,
    project,
    icons: GridIcons,
    grid: int = 16,
    per_example: int = 16,
    max_vectors: int = 6000,
    cell_px: int = 40,
    min_count: int = 3,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> Atlas:
    """Activation Atlas (Carter et al., 2019) of the examples at the icons' tap.

    Sample spatial activation vectors from every example (re-read from its thumbnail), lay them out with UMAP,
    put a ``grid x grid`` lattice over the layout, average the vectors in each cell, and draw each occupied cell as
    the icon of the direction its average matches best (cosine). ``majority`` records the class each cell's
    vectors mostly came from (drawn as the cell's border by :func:`teachable.views.atlas_html`).
    """
    import cv2

    from .frames import decode_image
    from .projection import fit_layout

    rng = np.random.default_rng(seed)
    per_example = max(1, min(per_example, max_vectors // max(len(project.examples), 1)))
    vectors, labels = [], []
    batch_size = 16
    for start in range(0, len(project.examples), batch_size):
        chunk = project.examples[start : start + batch_size]
        squares = np.stack([backbone.prepare(decode_image(e.thumbnail)) for e in chunk])
        activation = backbone.run(squares, [icons.tap])[icons.tap].cpu().numpy()
        cells = activation.transpose(0, 2, 3, 1).reshape(len(chunk), -1, activation.shape[1])
        for example, example_cells in zip(chunk, cells):
            picked = rng.choice(len(example_cells), size=min(per_example, len(example_cells)), replace=False)
            vectors.append(example_cells[picked])
            labels += [project.classes.index(example.label)] * len(picked)
        if progress:
            progress(0.6 * (start + len(chunk)) / len(project.examples), "Reading activations")
    vectors = np.concatenate(vectors)
    labels = np.asarray(labels)
    if progress:
        progress(0.6, "Laying out with UMAP")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    layout = fit_layout(vectors / np.maximum(norms, 1e-6), "umap", seed=seed)
    cell_of = np.clip(((layout + 1) / 2 * grid).astype(int), 0, grid - 1)
    flat = cell_of[:, 1] * grid + cell_of[:, 0]  # row from y, column from x
    counts = np.bincount(flat, minlength=grid * grid)
    image = np.full((grid * cell_px, grid * cell_px, 3), 255, np.uint8)
    chosen = np.full(grid * grid, -1)
    majority = np.full(grid * grid, -1)
    for cell in np.flatnonzero(counts >= min_count):
        members = flat == cell
        mean = vectors[members].mean(axis=0)
        chosen[cell] = int(np.argmax(icons.directions @ (mean / max(np.linalg.norm(mean), 1e-6))))
        majority[cell] = int(np.bincount(labels[members]).argmax())
        row, column = grid - 1 - cell // grid, cell % grid  # y up, as on the map
        tile = cv2.resize(icons.icons[chosen[cell]], (cell_px - 4, cell_px - 4), interpolation=cv2.INTER_AREA)
        y, x = row * cell_px, column * cell_px
        image[y + 2 : y + cell_px - 2, x + 2 : x + cell_px - 2] = tile
    if progress:
        progress(1.0, "Done")

    def as_drawn(per_cell: np.ndarray) -> np.ndarray:  # rows from the top, like the image
        return per_cell.reshape(grid, grid)[::-1]

    return Atlas(image, as_drawn(counts), as_drawn(chosen), as_drawn(majority), tuple(project.classes), cell_px)
