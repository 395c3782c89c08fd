"""HTML for the page's live panels: the prediction with its confidence bars and nearest examples, and the class
summary. Pure functions of a session's data; class names are escaped, thumbnails are inlined as data URIs (they
are JPEG already, so nothing is decoded or written to disk per frame)."""

from __future__ import annotations

import base64
from html import escape

import cv2
import numpy as np

from .activations import IconCells, icon_sheet
from .frames import encode_jpeg
from .project import Project
from .projection import MIN_UMAP_POINTS
from .session import FrameResult

__all__ = [
    "prediction_html",
    "classes_html",
    "message_html",
    "class_colour",
    "map_points_html",
    "map_live_html",
    "image_html",
    "grid_html",
    "icon_sheet_html",
    "atlas_image",
    "architecture_html",
    "evaluation_html",
    "channels_html",
    "unit_html",
    "strip_html",
    "class_cards_html",
    "neighbours_html",
    "neighbours_key",
    "tray_html",
]

MAP_SIZE = 420
MAP_MARGIN = 16
MAX_HOVER_THUMBNAILS = 300
"""Above this many examples, points show their class on hover but not their thumbnail (keeps the page light)."""
MAX_DRAWN_POINTS = 1500
"""Above this many examples the map draws a random sample of this many as points, over a density image of all."""
DENSITY_CELLS = 105
ICON_CELL_PX = 24
"""Pixels per grid cell in the icons view."""

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


def class_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _thumbnail(jpeg: bytes, size: int = 72) -> str:
    data = base64.b64encode(jpeg).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" width="{size}" height="{size}" alt="">'


def message_html(text: str) -> str:
    return f'<div class="tm-message">{escape(text)}</div>' if text else ""


def prediction_html(result: FrameResult, project: Project, recording: str | None = None, recorded: int = 0) -> str:
    """The top label (large), one bar per class, and the nearest examples' similarities (their pictures are
    :func:`neighbours_html`, sent only when they change)."""
    parts = ['<div class="tm-prediction" id="tm-prediction">']
    if recording:
        parts.append(
            f'<div class="tm-recording">● Recording into <b>{escape(recording)}</b>: '
            f'<span id="tm-recorded">{recorded}</span> examples</div>'
        )
    parts.append(_label_html(result))
    parts.append(message_html(result.message))
    for index, name in enumerate(project.classes):
        value = result.confidences.get(name, 0.0)
        parts.append(
            '<div class="tm-bar">'
            f'<span class="tm-bar-name">{escape(name)}</span>'
            f'<span class="tm-bar-track"><span class="tm-bar-fill" style="width:{100 * value:.1f}%;'
            f'background:{class_colour(index)}"></span></span>'
            f'<span class="tm-bar-value">{100 * value:.0f}%</span></div>'
        )
    if result.prediction:
        similarities = " ".join(f"{n.similarity:.2f}" for n in result.prediction.neighbours)
        parts.append(
            f'<div class="tm-neighbours-title">Nearest examples (similarity, 1.00 = identical): {similarities}</div>'
        )
    parts.append("</div>")
    return "".join(parts)


def neighbours_html(result: FrameResult, project: Project) -> str:
    """The nearest examples as pictures ("because it looks like these"). Sent only when they change."""
    if not result.prediction:
        return ""
    figures = "".join(
        f"<figure>{_thumbnail(project.examples[n.index].preview)}<figcaption>{escape(n.label)}</figcaption></figure>"
        for n in result.prediction.neighbours
    )
    return f'<div class="tm-neighbours-title">Because it looks like these:</div><div class="tm-neighbours">{figures}</div>'


def neighbours_key(result: FrameResult, project: Project) -> tuple:
    """What the neighbour pictures depend on: which examples, under which labels (not their order, which
    shuffles from frame to frame among near-equal neighbours)."""
    if not result.prediction:
        return ()
    examples = project.examples
    return tuple(sorted((examples[n.index].uid, n.label) for n in result.prediction.neighbours))


def _label_html(result: FrameResult) -> str:
    """The top label. When the frame is like no class, it says "Not sure" and still names the best guess."""
    label = result.label
    prediction = result.prediction
    if prediction is None or not prediction.is_unknown:
        shown = escape(label) if label else "–"
        return f'<div class="tm-label" data-label="{escape(label)}">{shown}</div>'
    return (
        f'<div class="tm-label tm-unsure" data-label="{escape(label)}" data-best="{escape(prediction.label)}">'
        f'Not sure</div><div class="tm-guess">Best guess: <b>{escape(prediction.label)}</b>, but it is not much '
        f"like its examples (match {prediction.score:.2f}; sure from {prediction.boundary:.2f}). "
        "Add examples like this one to teach it.</div>"
    )


def strip_html(project: Project, rows: list[int]) -> str:
    """A class's latest examples; clicking one picks it (its number goes to the "Example #" box)."""
    if not rows:
        return '<div class="tm-strip">No examples yet.</div>'
    figures = "".join(
        f'<figure class="tm-example" data-row="{row}" title="#{row}: click to pick">'
        f"{_thumbnail(project.examples[row].preview, 64)}<figcaption>#{row}</figcaption></figure>"
        for row in rows
    )
    return f'<div class="tm-strip">{figures}</div>'


def classes_html(project: Project, selected: str | None) -> str:
    """One row per class: colour, name, example count; the selected class is highlighted."""
    rows = []
    for index, (name, count) in enumerate(project.counts().items()):
        chosen = " tm-selected" if name == selected else ""
        rows.append(
            f'<div class="tm-class{chosen}" data-class="{escape(name)}">'
            f'<span class="tm-swatch" style="background:{class_colour(index)}"></span>'
            f'<span class="tm-class-name">{escape(name)}</span>'
            f'<span class="tm-count">{count} example{"s" if count != 1 else ""}</span></div>'
        )
    return f'<div class="tm-classes">{"".join(rows) or "No classes yet: add one below."}</div>'


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


def _confidence_colour(value: float) -> str:
    """Red (0) through amber to green (1)."""
    red, green = int(220 * (1 - value)), int(170 * value + 40)
    return f"rgb({red},{green},60)"


def evaluation_html(review, project: Project) -> str:
    """Accuracy, a confusion-matrix picture and the classification view (examples under their leave-one-out
    prediction, framed by confidence, mistakes outlined)."""
    evaluation = review.evaluation
    names = evaluation.classes
    parts = [
        f'<div class="tm-eval"><div class="tm-accuracy" data-accuracy="{evaluation.accuracy:.4f}">'
        f'Leave-one-out accuracy: <b>{evaluation.accuracy:.0%}</b></div><div class="tm-per-class">'
    ]
    parts += [
        f"<span>{escape(name)}: {accuracy:.0%}</span> " for name, accuracy in evaluation.per_class_accuracy.items()
    ]
    parts.append("</div>")
    # Confusion matrix as a picture: each cell's shade is the share of the row's examples.
    rows = evaluation.confusion.sum(axis=1, keepdims=True).clip(min=1)
    size = max(24, min(56, 280 // max(len(names), 1)))
    parts.append('<div class="tm-confusion"><div class="tm-confusion-title">true class ↓, predicted →</div><table>')
    parts.append("<tr><th></th>" + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr>")
    for i, name in enumerate(names):
        cells = []
        for j in range(len(names)):
            share = evaluation.confusion[i, j] / rows[i, 0]
            colour = f"rgba(78,121,167,{share:.2f})" if i == j else f"rgba(225,87,89,{share:.2f})"
            cells.append(
                f'<td title="{evaluation.confusion[i, j]} {escape(name)} taken for {escape(names[j])}" '
                f'style="width:{size}px;height:{size}px;background:{colour}">{evaluation.confusion[i, j]}</td>'
            )
        parts.append(f"<tr><th>{escape(name)}</th>{''.join(cells)}</tr>")
    parts.append("</table></div>")
    parts += _classification_view(evaluation, project)
    parts.append("</div>")
    return "".join(parts)


CLASSIFICATION_VIEW_EXAMPLES = 400
"""At most this many example pictures in the classification view, shared out over its columns (at least
``MIN_SHOWN_PER_COLUMN`` each): with 50 classes of 40 examples the review was 20 MB of inlined pictures."""
MIN_SHOWN_PER_COLUMN = 6


def _classification_view(evaluation, project: Project) -> list[str]:
    """One column per predicted class; mistakes first, then the least confident, then "+N more"."""
    names = evaluation.classes
    columns: dict[str, list[int]] = {name: [] for name in names}
    for row, predicted in enumerate(evaluation.predicted_labels):
        if predicted in columns:
            columns[predicted].append(row)
    shown_per_column = max(MIN_SHOWN_PER_COLUMN, CLASSIFICATION_VIEW_EXAMPLES // max(len(columns), 1))
    confidences = evaluation.confidences or [1.0] * len(evaluation.predicted_labels)
    parts = ['<div class="tm-classification">']
    for predicted, members in columns.items():
        parts.append(f'<div class="tm-column"><div class="tm-column-title">taken for {escape(predicted)}</div>')
        members.sort(key=lambda row: (evaluation.true_labels[row] == predicted, confidences[row], row))
        for row in members[:shown_per_column]:
            true = evaluation.true_labels[row]
            mistake = true != predicted
            confidence = confidences[row]
            data = base64.b64encode(project.examples[row].preview).decode("ascii")
            parts.append(
                f'<figure class="tm-example{" tm-mistake" if mistake else ""}" data-row="{row}" '
                f'title="#{row}: {escape(true)}, taken for {escape(predicted)} ({confidence:.0%})">'
                f'<img src="data:image/jpeg;base64,{data}" width="56" height="56" '
                f'style="border-color:{_confidence_colour(confidence)}">'
                f"<figcaption>#{row}{' ✗ ' + escape(true) if mistake else ''}</figcaption></figure>"
            )
        hidden = members[shown_per_column:]
        if hidden:
            right = all(evaluation.true_labels[row] == predicted for row in hidden)
            parts.append(f'<div class="tm-more">+{len(hidden)} more{", all taken right" if right else ""}</div>')
        parts.append("</div>")
    parts.append("</div>")
    return parts


def _channel_chip(channel: int, score: float, icons, tap: str) -> str:
    icon = ""
    if (
        icons is not None
        and icons.tap == tap
        and channel < len(icons.icons)
        and icons.kinds[channel] == f"channel {channel}"
    ):
        icon = _thumbnail(encode_jpeg(icons.icons[channel]), 48)
    return f'<figure class="tm-channel" data-channel="{channel}">{icon}<figcaption>ch {channel}<br>{score:+.1f}</figcaption></figure>'


def channels_html(groups: dict[str, list[tuple[int, float]]], icons, tap: str, caption: str) -> str:
    """Rows of channels with their icons and scores (class summary or comparison)."""
    parts = [f'<div class="tm-channels"><div class="tm-channels-caption">{escape(caption)}</div>']
    for title, channels in groups.items():
        chips = "".join(_channel_chip(c, score, icons, tap) for c, score in channels)
        parts.append(f'<div class="tm-channel-row" data-group="{escape(title)}"><b>{escape(title)}</b>{chips}</div>')
    parts.append("</div>")
    return "".join(parts)


def unit_html(channel: int, examples: list[tuple[int, np.ndarray]], project: Project, icons, tap: str) -> str:
    """A channel's icon beside the examples that excite it most, each with where it fires."""
    parts = [f'<div class="tm-unit">{_channel_chip(channel, 0.0, icons, tap).replace("+0.0", "icon")}']
    for row, heat in examples:
        label = escape(project.examples[row].label)
        parts.append(
            f'<figure class="tm-unit-example" data-row="{row}">{_thumbnail(encode_jpeg(heat), 112)}'
            f"<figcaption>#{row} {label}</figcaption></figure>"
        )
    parts.append("</div>")
    return "".join(parts)


def atlas_image(atlas) -> np.ndarray:
    """The atlas with each occupied cell framed in the colour of its majority class."""
    image = atlas.image.copy()
    size = atlas.cell_px
    for row, column in zip(*np.nonzero(atlas.majority >= 0)):
        hex_colour = class_colour(int(atlas.majority[row, column]))
        colour = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        cv2.rectangle(image, (column * size, row * size), ((column + 1) * size - 1, (row + 1) * size - 1), colour, 2)
    return image


def architecture_html(backbone, embedding_tap: str, grid_tap: str) -> str:
    """The backbone's stages with their output shapes, marking where the embedding and the grid are read."""
    rows = []
    size = backbone.input_size
    for name, tap in backbone.taps.items():
        shape = (
            f"{tap.channels} x {tap.grid_size(size)} x {tap.grid_size(size)}" if tap.is_spatial else f"{tap.channels}"
        )
        marks = " ".join(
            badge for badge, used in [("embedding", name == embedding_tap), ("grid", name == grid_tap)] if used
        )
        rows.append(f"<tr><td><code>{escape(name)}</code></td><td>{shape}</td><td>{marks}</td></tr>")
    return (
        f'<table class="tm-architecture"><caption>{escape(backbone.name)}, input {size} x {size} x 3</caption>'
        "<tr><th>stage</th><th>output</th><th>used for</th></tr>" + "".join(rows) + "</table>"
    )


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


def image_html(rgb: np.ndarray | None, element_id: str, quality: int = 80, css_class: str = "tm-grid") -> str:
    """An RGB image inlined as a JPEG data URI (no temporary file)."""
    if rgb is None:
        return ""
    data = base64.b64encode(encode_jpeg(rgb, quality)).decode("ascii")
    return f'<img id="{element_id}" class="{css_class}" src="data:image/jpeg;base64,{data}" alt="">'


CSS = """
.tm-label { font-size: 2.4em; font-weight: 700; margin: 0.1em 0 0.3em; }
.tm-message { color: #a15c00; margin-bottom: 0.5em; }
.tm-recording { color: #c00; font-weight: 600; margin-bottom: 0.3em; }
.tm-bar { display: flex; align-items: center; gap: 0.5em; margin: 0.25em 0; }
.tm-bar-name { width: 9em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tm-bar-track { flex: 1; height: 1.1em; background: #eee; border-radius: 4px; overflow: hidden; }
.tm-bar-fill { display: block; height: 100%; }
.tm-bar-value { width: 3em; text-align: right; font-variant-numeric: tabular-nums; }
.tm-neighbours-title { margin-top: 0.8em; font-size: 0.9em; color: #555; }
.tm-neighbours { display: flex; gap: 0.4em; flex-wrap: wrap; }
.tm-neighbours figure { margin: 0; text-align: center; font-size: 0.75em; }
.tm-neighbours img { border-radius: 4px; object-fit: cover; }
.tm-class { display: flex; gap: 0.5em; align-items: center; padding: 0.2em 0.4em; border-radius: 4px; }
.tm-selected { background: #eef3fb; font-weight: 600; }
.tm-swatch { width: 0.9em; height: 0.9em; border-radius: 2px; display: inline-block; }
.tm-count { margin-left: auto; color: #555; font-variant-numeric: tabular-nums; }
#map-box { position: relative; }
#map-live { position: absolute !important; top: 0; left: 0; pointer-events: none; z-index: 5; }
#map-live svg, #map-points svg { display: block; }
.tm-map-status, .tm-map-live-spacer { height: 1.6em; font-size: 0.9em; color: #555; }
.tm-point .tm-tip { display: none; }
.tm-point:hover .tm-tip { display: inline; }
.tm-point:hover circle { stroke: #000; stroke-width: 2; }
.tm-architecture td, .tm-architecture th { padding: 0.1em 0.6em; font-size: 0.9em; }
.tm-accuracy { font-size: 1.4em; margin-bottom: 0.2em; }
.tm-per-class span { margin-right: 1em; color: #444; }
.tm-confusion { margin: 0.6em 0; }
.tm-confusion table { border-collapse: collapse; }
.tm-confusion td { text-align: center; border: 1px solid #ddd; font-variant-numeric: tabular-nums; }
.tm-confusion th { font-weight: 500; padding: 0 0.4em; font-size: 0.85em; }
.tm-confusion-title { font-size: 0.85em; color: #555; }
.tm-classification { display: flex; gap: 0.8em; flex-wrap: wrap; align-items: flex-start; }
.tm-column { border: 1px solid #e3e3e3; border-radius: 6px; padding: 0.3em; max-width: 420px; }
.tm-column-title { font-size: 0.85em; color: #555; margin-bottom: 0.2em; }
.tm-more { font-size: 0.8em; color: #555; padding: 0.2em; }
.tm-map-legend { font-size: 0.8em; color: #555; max-width: 420px; margin-top: 0.2em; }
.tm-map, .tm-map-live { max-width: 100%; height: auto; }
#map-live { width: 100%; }
.tm-example { display: inline-block; margin: 2px; text-align: center; font-size: 0.7em; }
.tm-example img { border: 3px solid; border-radius: 4px; object-fit: cover; }
.tm-mistake img { outline: 3px solid #d00; outline-offset: 1px; }
.tm-channel, .tm-unit-example { display: inline-block; margin: 3px; text-align: center; font-size: 0.75em; }
.tm-channel-row { margin: 0.3em 0; }
.tm-channel-row b { display: inline-block; min-width: 7em; }
.tm-atlas { width: 100%; max-width: 760px; }
.tm-strip .tm-example, .tm-unit-example, #evaluation .tm-example { cursor: pointer; }
.tm-unsure { color: #8a6d00; }
.tm-guess { color: #555; margin: -0.2em 0 0.5em; }
.tm-cards { display: flex; flex-direction: column; gap: 0.45em; }
.tm-card { display: block; border: 1px solid #ddd; border-left: 5px solid #bbb; border-radius: 8px; padding: 0.35em 0.5em; }
.tm-card-recording { border-color: #d33; box-shadow: 0 0 0 2px #f6c4c4; }
.tm-card-head { display: flex; align-items: center; gap: 0.45em; }
.tm-name { flex: 1; min-width: 4em; font-weight: 600; font-size: 1.05em; border: 1px solid transparent;
  border-radius: 4px; padding: 0.1em 0.3em; background: transparent; }
.tm-name:hover, .tm-name:focus { border-color: #bbb; background: #fff; }
.tm-card-action { font-size: 0.8em; color: #666; background: none; border: 1px solid #ddd; border-radius: 4px;
  padding: 0.1em 0.45em; cursor: pointer; }
.tm-card-action:hover { color: #b00; border-color: #b00; }
.tm-card-body { display: flex; align-items: center; gap: 0.6em; margin-top: 0.3em; }
.tm-record { flex: none; min-width: 10.5em; padding: 0.55em 0.9em; border-radius: 8px; border: none;
  background: #2563eb; color: #fff; font-weight: 600; cursor: pointer; touch-action: none; user-select: none;
  -webkit-user-select: none; -webkit-touch-callout: none; }
.tm-record:focus-visible { outline: 3px solid #93c5fd; }
.tm-card-recording .tm-record { background: #dc2626; }
.tm-rec-dot { display: inline-block; width: 0.6em; height: 0.6em; border-radius: 50%; background: #fff;
  margin-right: 0.45em; vertical-align: 0.05em; }
.tm-card-recording .tm-rec-dot { animation: tm-blink 1s infinite; }
@keyframes tm-blink { 50% { opacity: 0.2; } }
.tm-card-thumbs { display: flex; gap: 3px; overflow: hidden; min-height: 44px; align-items: center; }
.tm-card-thumbs img { border-radius: 4px; object-fit: cover; flex: none; }
@media (max-width: 600px) { .tm-neighbours img { width: 48px; height: 48px; } .tm-record { min-width: 9em; } }
.tm-empty { color: #888; font-size: 0.85em; }
.tm-add-class { padding: 0.5em; border: 2px dashed #bbb; border-radius: 8px; background: none; color: #444;
  cursor: pointer; font-weight: 600; }
.tm-add-class:hover { border-color: #2563eb; color: #2563eb; }
.tm-tray { margin-top: 0.5em; font-size: 0.9em; }
.tm-tray-empty { color: #777; border: 1px dashed #ccc; border-radius: 8px; padding: 0.4em 0.6em; }
.tm-tray-title { color: #444; margin-bottom: 0.3em; }
.tm-tray-items { display: flex; gap: 0.5em; overflow-x: auto; }
.tm-tray-item { margin: 0; width: 9.5em; flex: none; text-align: center; font-size: 0.8em; }
.tm-tray-item img { border-radius: 4px; }
.tm-tray-buttons { display: flex; flex-wrap: wrap; gap: 2px; justify-content: center; }
.tm-tray-to { font-size: 0.9em; border: 2px solid #ccc; border-radius: 4px; background: #fff; cursor: pointer;
  padding: 0 0.3em; }
.tm-tray-new { border-style: dashed; }
.tm-hidden { display: none !important; }
#tm-grid-canvas { display: block; }
.tm-grid { width: 100%; max-width: 420px; image-rendering: pixelated; border-radius: 4px; }
"""


def class_cards_html(project: Project, recording: str | None = None, recorded: int = 0, thumbnails: int = 6) -> str:
    """One card per class: its colour, its name (editable in place), its count, its latest examples and its own
    hold-to-record button; then an "Add a class" button. The page's script turns the buttons into commands."""
    cards = []
    for index, (name, count) in enumerate(project.counts().items()):
        safe = escape(name)
        live = name == recording
        latest = project.indices_of(name)[-thumbnails:][::-1]
        strip = "".join(
            f'<span class="tm-card-thumb" data-row="{row}" title="#{row}">'
            f"{_thumbnail(project.examples[row].preview, 44)}</span>"
            for row in latest
        )
        button = (
            f'<span class="tm-rec-dot"></span>Recording… <b class="tm-recorded">{recorded}</b>'
            if live
            else '<span class="tm-rec-dot"></span>Hold to record'
        )
        cards.append(
            f'<div class="tm-class tm-card{" tm-card-recording" if live else ""}" data-class="{safe}" '
            f'style="border-left-color:{class_colour(index)}">'
            '<div class="tm-card-head">'
            f'<span class="tm-swatch" style="background:{class_colour(index)}"></span>'
            f'<input class="tm-name" value="{safe}" maxlength="64" aria-label="Name of class {safe}" '
            'title="Click to rename">'
            f'<span class="tm-count">{count} example{"s" if count != 1 else ""}</span>'
            f'<button class="tm-card-action" data-action="clear" title="Remove every example of {safe}">Clear</button>'
            f'<button class="tm-card-action" data-action="delete" title="Delete class {safe}" '
            f'aria-label="Delete class {safe}">✕</button></div>'
            '<div class="tm-card-body">'
            f'<button class="tm-record" data-class="{safe}" aria-pressed="{str(live).lower()}" '
            f'aria-label="Record examples of {safe}">{button}</button>'
            f'<div class="tm-card-thumbs">{strip or "<span class=tm-empty>No examples yet</span>"}</div>'
            "</div></div>"
        )
    cards.append('<button class="tm-add-class" data-action="add">+ Add a class</button>')
    return f'<div class="tm-cards">{"".join(cards)}</div>'


def tray_html(items, classes: list[str]) -> str:
    """The "help it learn" tray: recent frames it was unsure about, each with one button per class."""
    if not items:
        return (
            '<div class="tm-tray tm-tray-empty">Help it learn: frames it is unsure about will appear here while '
            "the camera runs. One click teaches it the right answer.</div>"
        )
    figures = []
    for item in items:
        buttons = "".join(
            f'<button class="tm-tray-to" data-item="{item.id}" data-to="{escape(name)}" '
            f'style="border-color:{class_colour(index)}">{escape(name)}</button>'
            for index, name in enumerate(classes)
        )
        buttons += f'<button class="tm-tray-to tm-tray-new" data-item="{item.id}">+ new class</button>'
        figures.append(
            f'<figure class="tm-tray-item" data-item="{item.id}">{_thumbnail(item.thumbnail, 64)}'
            f"<figcaption>{escape(item.reason)} (maybe {escape(item.guess)})</figcaption>"
            f'<div class="tm-tray-buttons">{buttons}</div></figure>'
        )
    return (
        '<div class="tm-tray"><div class="tm-tray-title">Help it learn: it was unsure about these frames. '
        f'Click the class each one belongs to.</div><div class="tm-tray-items">{"".join(figures)}</div></div>'
    )
