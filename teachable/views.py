"""HTML for the page's live panels: the prediction with its confidence bars and nearest examples, and the class
summary. Pure functions of a session's data; class names are escaped, thumbnails are inlined as data URIs (they
are JPEG already, so nothing is decoded or written to disk per frame)."""

from __future__ import annotations

import base64
from html import escape

from .project import Project
from .session import FrameResult

__all__ = ["prediction_html", "classes_html", "message_html", "class_colour"]

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


def class_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _thumbnail(jpeg: bytes, size: int = 72) -> str:
    data = base64.b64encode(jpeg).decode("ascii")
    return f'<img src="data:image/jpeg;base64,{data}" width="{size}" height="{size}" alt="">'


def message_html(text: str) -> str:
    return f'<div class="tm-message">{escape(text)}</div>' if text else ""


def prediction_html(result: FrameResult, project: Project, recording: str | None = None, recorded: int = 0) -> str:
    """The top label (large), one bar per class, and the nearest examples with their similarity."""
    parts = ['<div class="tm-prediction" id="tm-prediction">']
    if recording:
        parts.append(
            f'<div class="tm-recording">● Recording into <b>{escape(recording)}</b>: '
            f'<span id="tm-recorded">{recorded}</span> examples</div>'
        )
    label = result.label
    shown = escape(label) if label else "–"
    parts.append(f'<div class="tm-label" data-label="{escape(label)}">{shown}</div>')
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
        parts.append('<div class="tm-neighbours-title">Because it looks like these:</div><div class="tm-neighbours">')
        for neighbour in result.prediction.neighbours:
            example = project.examples[neighbour.index]
            parts.append(
                f'<figure>{_thumbnail(example.preview)}<figcaption>{escape(neighbour.label)}<br>'
                f"{neighbour.similarity:.2f}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


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
"""
