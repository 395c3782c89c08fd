"""The embedding map: the examples as points coloured by class (a sample over a density image past
``MAX_DRAWN_POINTS``), each class's reach, and the moving point of the live frame drawn over them."""

from __future__ import annotations

import base64
from html import escape

import cv2
import numpy as np

from ..project import Project
from ..projection import MIN_UMAP_POINTS
from ..session import FrameResult
from .html import class_colour

__all__ = [
    "MAP_SIZE",
    "MAX_DRAWN_POINTS",
    "map_points_html",
    "map_live_html",
    "outside_reach",
    "density_image",
    "drawn_rows",
]

MAP_SIZE = 420
MAP_MARGIN = 16
MAX_HOVER_THUMBNAILS = 300
"""Above this many examples, points show their class on hover but not their thumbnail (keeps the page light)."""
MAX_DRAWN_POINTS = 1500
"""Above this many examples the map draws a random sample of this many as points, over a density image of all."""
DENSITY_CELLS = 105


def _to_svg(xy: np.ndarray) -> np.ndarray:
    """Map coordinates in [-1, 1] (y up) to SVG pixels."""
    half = (MAP_SIZE - 2 * MAP_MARGIN) / 2
    return np.stack([MAP_MARGIN + half * (1 + xy[:, 0]), MAP_MARGIN + half * (1 - xy[:, 1])], axis=1)


def density_image(points: np.ndarray, classes: list[int], colours: list[str]) -> np.ndarray:
    """RGBA image of where the points are: each cell takes the colour mix of its classes, its opacity grows with
    the log of its count. ``points`` in SVG pixels, ``classes`` the class index of each point."""
    cells = np.clip((points / MAP_SIZE * DENSITY_CELLS).astype(int), 0, DENSITY_CELLS - 1)
    counts = np.zeros((len(colours), DENSITY_CELLS, DENSITY_CELLS))
    np.add.at(counts, (np.asarray(classes), cells[:, 1], cells[:, 0]), 1)
    counts = cv2.GaussianBlur(counts.transpose(1, 2, 0), (0, 0), 0.8).reshape(DENSITY_CELLS, DENSITY_CELLS, -1)
    total = counts.sum(axis=2)
    rgb = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colours], dtype=np.float64)
    mix = counts @ rgb / np.maximum(total, 1e-9)[..., None]
    alpha = np.log1p(total) / max(np.log1p(total).max(), 1e-9) * 200
    return np.dstack([mix, alpha]).astype(np.uint8)


def _density_svg(image: np.ndarray) -> str:
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA))
    data = base64.b64encode(png.tobytes()).decode("ascii")
    return (
        f'<image class="tm-density" x="0" y="0" width="{MAP_SIZE}" height="{MAP_SIZE}" preserveAspectRatio="none" '
        f'style="image-rendering:auto" href="data:image/png;base64,{data}"/>'
    )


def drawn_rows(count: int, limit: int = MAX_DRAWN_POINTS, seed: int = 0) -> np.ndarray:
    """Which examples are drawn as points: all of them, or a fixed random sample of ``limit`` (stable per count)."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def map_points_html(
    project: Project, positions: np.ndarray, method: str, fitting: bool, shown_method: str | None = None
) -> str:
    """The examples as points coloured by class; hovering one shows its class (and thumbnail). Past
    ``MAX_DRAWN_POINTS`` examples, a sample is drawn over a density image of all of them. ``method`` is the one
    chosen; the caption names ``shown_method``, the one the drawn layout was fitted with (default: ``method``)."""
    colours = [class_colour(i) for i in range(len(project.classes))]
    colour_of = dict(zip(project.classes, colours))
    points = _to_svg(positions) if len(positions) else np.zeros((0, 2))
    rows = drawn_rows(len(points))
    with_thumbnails = len(points) <= MAX_HOVER_THUMBNAILS
    distinct = len(np.unique(project.embeddings, axis=0)) if len(points) else 0
    shown = {"umap": "UMAP map", "pca": "PCA map"}.get(shown_method or method, "Map")
    waiting = ""
    if method == "umap" and shown != "UMAP map":
        waiting = f" (UMAP from {MIN_UMAP_POINTS} distinct examples)" if distinct < MIN_UMAP_POINTS else ""
    sampled = f", {len(rows):,} drawn over the density of all" if len(rows) < len(points) else ""
    parts = [
        f'<div class="tm-map-status">{shown} of {len(points):,} examples{sampled}{waiting}'
        f"{' — refitting…' if fitting else ''}</div>",
        f'<svg class="tm-map" viewBox="0 0 {MAP_SIZE} {MAP_SIZE}" width="{MAP_SIZE}" height="{MAP_SIZE}">',
        f'<rect width="{MAP_SIZE}" height="{MAP_SIZE}" fill="#fafafa" stroke="#ddd"/>',
    ]
    if len(rows) < len(points):
        position_of = {name: i for i, name in enumerate(project.classes)}
        classes = [position_of[example.label] for example in project.examples]
        parts.append(_density_svg(density_image(points, classes, colours)))
    outside = outside_reach(project) if len(points) == len(project) else np.zeros(len(points), bool)
    reach = _reach_areas(project, points, outside, colour_of)
    parts += reach
    for index in rows:
        (x, y), example = points[index], project.examples[index]
        title = f"{escape(example.label)} #{index}"
        tip = ""
        if with_thumbnails:
            tx, ty = min(x + 6, MAP_SIZE - 70), max(y - 70, 0)
            data = base64.b64encode(example.preview).decode("ascii")
            tip = f'<image class="tm-tip" x="{tx:.0f}" y="{ty:.0f}" width="64" height="64" href="data:image/jpeg;base64,{data}"/>'
        radius = 4 if len(rows) == len(points) else 2.5
        colour = colour_of.get(example.label, "#999")
        if outside[index]:
            title += ": outside its class's reach (a frame like it would be \u201cnot sure\u201d)"
            dot = f'<circle class="tm-outside" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="#fff" stroke="{colour}" stroke-width="2"/>'
        else:
            dot = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}"/>'
        parts.append(f'<g class="tm-point" data-index="{index}"><title>{title}</title>{dot}{tip}</g>')
    parts.append("</svg>")
    if reach or outside.any():
        parts.append(
            '<div class="tm-map-legend">Shaded: each class\'s reach, where its examples are recognised. Hollow points '
            "lie outside it: a frame like them would come out \u201cnot sure\u201d.</div>"
        )
    return "".join(parts)


def outside_reach(project: Project) -> np.ndarray:
    """Per example: whether it lies outside its class's reach, i.e. its own score (against its class without its
    take, ``KNNClassifier.own_scores``) is under the "not sure" boundary, so a new view like it would not be
    recognised. Only the prototype rule has a per-class reach; an example whose take is all of its class is inside
    it."""
    classifier = project.classifier
    if classifier.rule != "prototype" or len(project) == 0:
        return np.zeros(len(project), bool)
    scores = classifier.own_scores()
    return np.isfinite(scores) & (scores < classifier.boundary)


def _reach_areas(project: Project, points: np.ndarray, outside: np.ndarray, colour_of: dict[str, str]) -> list[str]:
    """A soft shape per class around its examples inside its reach (their convex hull, widened by a round stroke)."""
    areas = []
    if len(points) != len(project):
        return areas
    labels = np.array([example.label for example in project.examples])
    for name in project.classes:
        inside = points[(labels == name) & ~outside]
        if len(inside) < 3:
            continue
        hull = cv2.convexHull(inside.astype(np.float32)).reshape(-1, 2)
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in hull)
        colour = colour_of.get(name, "#999")
        areas.append(
            f'<polygon class="tm-reach" data-class="{escape(name)}" points="{path}" fill="{colour}" fill-opacity="0.12" '
            f'stroke="{colour}" stroke-opacity="0.12" stroke-width="18" stroke-linejoin="round"/>'
        )
    return areas


def map_live_html(result: FrameResult, positions: np.ndarray, trail: list[np.ndarray], project: Project) -> str:
    """The moving point: the frame, its trail, and lines to its nearest examples. Drawn over the points layer."""
    parts = [
        '<div class="tm-map-live-spacer"></div>',
        f'<svg class="tm-map-live" viewBox="0 0 {MAP_SIZE} {MAP_SIZE}" width="{MAP_SIZE}" height="{MAP_SIZE}">',
    ]
    if result.map_point is not None and result.prediction is not None:
        point = _to_svg(result.map_point[None])[0]
        for neighbour in result.prediction.neighbours:
            nx, ny = _to_svg(positions[neighbour.index][None])[0]
            parts.append(
                f'<line x1="{point[0]:.1f}" y1="{point[1]:.1f}" x2="{nx:.1f}" y2="{ny:.1f}" stroke="#333" '
                f'stroke-opacity="{max(neighbour.similarity, 0.1):.2f}" stroke-width="1"/>'
            )
        if len(trail) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in _to_svg(np.stack(trail)))
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="#000" stroke-opacity="0.35" stroke-width="2"/>'
            )
        index = project.classes.index(result.prediction.label) if result.prediction.label in project.classes else 0
        fill = "#fff" if result.prediction.is_unknown else class_colour(index)
        parts.append(
            f'<circle id="tm-live-point" cx="{point[0]:.1f}" cy="{point[1]:.1f}" r="8" fill="{fill}" '
            'stroke="#000" stroke-width="2.5"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
