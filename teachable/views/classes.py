"""The class panel: one card per class with its hold-to-record button, the "help it learn" tray, and the class
tools' strip of a class's latest examples."""

from __future__ import annotations

from html import escape

from ..project import Project
from .html import class_colour, thumbnail

__all__ = ["class_cards_html", "tray_html", "strip_html", "classes_html"]


def class_cards_html(project: Project, recording: str | None = None, recorded: int = 0, thumbnails: int = 6) -> str:
    """One card per class: its colour, its name (editable in place), its count, its latest examples and its own
    hold-to-record button; then an "Add a class" button. The page's script turns the buttons into commands."""
    cards = []
    for index, (name, count) in enumerate(project.counts().items()):
        safe = escape(name)
        live = name == recording
        latest = project.indices_of(name)[-thumbnails:][::-1]
        strip = "".join(
            f'<button class="tm-card-thumb" data-uid="{project.examples[row].uid}" '
            f'title="See it larger, remove it or move it" aria-label="Example of {safe}">'
            f"{thumbnail(project.examples[row].preview, 44)}</button>"
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
            f'<figure class="tm-tray-item" data-item="{item.id}">{thumbnail(item.thumbnail, 64)}'
            f"<figcaption>{escape(item.reason)} (maybe {escape(item.guess)})</figcaption>"
            f'<div class="tm-tray-buttons">{buttons}</div></figure>'
        )
    return (
        '<div class="tm-tray"><div class="tm-tray-title">Help it learn: it was unsure about these frames. '
        f'Click the class each one belongs to.</div><div class="tm-tray-items">{"".join(figures)}</div></div>'
    )


def strip_html(project: Project, rows: list[int]) -> str:
    """A class's latest examples; clicking one picks it (its number goes to the "Example #" box)."""
    if not rows:
        return '<div class="tm-strip">No examples yet.</div>'
    figures = "".join(
        f'<figure class="tm-example" data-row="{row}" title="#{row}: click to pick">'
        f"{thumbnail(project.examples[row].preview, 64)}<figcaption>#{row}</figcaption></figure>"
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
