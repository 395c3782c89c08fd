"""Under the hood: the leave-one-out evaluation with its confusion matrix and classification view, class summaries
by channel, and the unit view."""

from __future__ import annotations

import base64
from html import escape

import numpy as np

from ..frames import encode_jpeg
from ..project import Project
from .html import thumbnail

__all__ = ["evaluation_html", "channels_html", "unit_html", "CLASSIFICATION_VIEW_EXAMPLES"]


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
        '<span title="Leave-one-out accuracy: each example classified by all the others (its own take left out)">'
        f'Right on its own examples, each guessed from the others: <b>{evaluation.accuracy:.0%}</b></span></div>'
        '<div class="tm-per-class">'
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
        icon = thumbnail(encode_jpeg(icons.icons[channel]), 48)
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
            f'<figure class="tm-unit-example" data-row="{row}">{thumbnail(encode_jpeg(heat), 112)}'
            f"<figcaption>#{row} {label}</figcaption></figure>"
        )
    parts.append("</div>")
    return "".join(parts)
