"""The prediction panel: the top label, one confidence bar per class, and the nearest examples ("because it looks
like these"), sent only when they change."""

from __future__ import annotations

from html import escape

from ..project import Project
from ..session import FrameResult
from .html import class_colour, message_html, thumbnail

__all__ = ["prediction_html", "neighbours_html", "neighbours_key"]


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
            '<div class="tm-neighbours-title" title="Cosine similarity of the embeddings, 1.00 = identical">'
            f"How alike its closest examples are (1.00 = the same picture): {similarities}</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def neighbours_html(result: FrameResult, project: Project) -> str:
    """The nearest examples as pictures ("because it looks like these"). Sent only when they change."""
    if not result.prediction:
        return ""
    figures = "".join(
        f"<figure>{thumbnail(project.examples[n.index].preview)}<figcaption>{escape(n.label)}</figcaption></figure>"
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
        f'like its examples (<span title="The match score; the boundary comes from your own examples">'
        f"it looks {prediction.score:.2f} alike, and is sure from {prediction.boundary:.2f}</span>). "
        "Add examples like this one to teach it.</div>"
    )
