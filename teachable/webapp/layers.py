"""Layers and Activation Atlas: the backbone's stages, the layer the embedding is read at, the layer the grid
shows, and an Activation Atlas of the person's own examples."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import gradio as gr

from ..session import Session
from ..views import architecture_html, atlas_image, image_html, message_html
from .context import AppContext
from .errors import shows_errors
from .wiring import KEEP, PageWiring, wired

__all__ = [
    "LayerHandles",
    "LayerOutputs",
    "build",
    "wire",
    "redraw_step",
    "layers_panel",
    "set_embedding_tap",
    "set_grid_tap",
    "build_atlas",
    "STYLES",
    "SCRIPTS",
]

STYLES = ("layers.css",)
SCRIPTS = ()


@dataclass(frozen=True)
class LayerHandles:
    architecture: gr.HTML
    embedding_tap: gr.Dropdown
    grid_tap: gr.Dropdown
    atlas_button: gr.Button
    atlas: gr.HTML
    atlas_note: gr.Markdown


@dataclass(frozen=True)
class LayerOutputs:
    """What the layer handlers change; a field left at KEEP stays as it is (see wiring.py). ``grid_mode`` is the
    live view's picker (a mode that no longer applies gives way), ``status`` the class panel's line; the
    ``build_atlas`` API answers the atlas, then its note."""

    architecture: object = KEEP
    embedding_tap: object = KEEP
    grid_tap: object = KEEP
    grid_mode: object = KEEP
    status: object = KEEP
    atlas: object = KEEP
    atlas_note: object = KEEP


def build(app: AppContext) -> LayerHandles:
    backbone = app.backbone
    with gr.Accordion("Layers and Activation Atlas", open=False, elem_id="layers"):
        with gr.Row():
            with gr.Column(scale=1):
                architecture = gr.HTML(
                    architecture_html(backbone, backbone.embedding_tap, backbone.grid_tap), elem_id="architecture"
                )
                embedding_tap = gr.Dropdown(
                    list(backbone.taps),
                    value=backbone.embedding_tap,
                    elem_id="embedding-tap",
                    label="Embedding read at (changing it re-embeds every example)",
                )
                spatial = [name for name, tap in backbone.taps.items() if tap.is_spatial]
                grid_tap = gr.Dropdown(spatial, value=backbone.grid_tap, label="Activation grid read at", elem_id="grid-tap")
            with gr.Column(scale=1):
                atlas_button = gr.Button("Build atlas of my examples", elem_id="build-atlas")
                atlas = gr.HTML(elem_id="atlas")
                atlas_note = gr.Markdown()
    return LayerHandles(architecture, embedding_tap, grid_tap, atlas_button, atlas, atlas_note)


def layers_panel(app: AppContext, session: Session) -> LayerOutputs:
    """The architecture table, both layer pickers and the grid mode, as the session has them."""
    return LayerOutputs(
        architecture=architecture_html(app.backbone, session.project.tap, session.grid_tap),
        embedding_tap=gr.Dropdown(value=session.project.tap),
        grid_tap=gr.Dropdown(value=session.grid_tap),
        grid_mode=gr.Radio(value=session.grid_mode),
    )


@shows_errors
def set_embedding_tap(app: AppContext, session: Session, tap: str, progress=gr.Progress()) -> LayerOutputs:
    note = session.set_embedding_tap(tap, lambda done, total: progress(done / max(total, 1), desc="Re-embedding"))
    return dataclasses.replace(layers_panel(app, session), status=message_html(note))


@shows_errors
def set_grid_tap(app: AppContext, session: Session, tap: str) -> LayerOutputs:
    session.views.set_grid_tap(tap)
    return dataclasses.replace(layers_panel(app, session), status=message_html(f"The grid now reads {tap}."))


@shows_errors
def build_atlas(session: Session, progress=gr.Progress()) -> LayerOutputs:
    atlas = session.insights.atlas(lambda fraction, what: progress(fraction, desc=what))
    occupied = int((atlas.majority >= 0).sum())
    note = f"Atlas of {len(session.project)} examples: {occupied} cells, each the icon its activations match best."
    picture = image_html(atlas_image(atlas), "tm-atlas", quality=85, css_class="tm-atlas")
    return LayerOutputs(atlas=picture, atlas_note=note)


# ---------------------------------------------------------------------------------------------- events
def _panel_targets(layers: LayerHandles, grid_mode: gr.Radio) -> LayerOutputs:
    return LayerOutputs(
        architecture=layers.architecture, embedding_tap=layers.embedding_tap, grid_tap=layers.grid_tap,
        grid_mode=grid_mode,
    )  # fmt: skip


def redraw_step(wiring: PageWiring, layers: LayerHandles, grid_mode: gr.Radio) -> tuple:
    """``(handler, inputs, outputs)`` that redraws the layer pickers from the session, for ``.then(...)`` after the
    page opens or a project is loaded (its layer may differ)."""
    handler, outputs = wired(functools.partial(layers_panel, wiring.app), _panel_targets(layers, grid_mode))
    return wiring.own(handler, wiring.session, outputs)


def wire(wiring: PageWiring, layers: LayerHandles, grid_mode: gr.Radio, status: gr.HTML) -> None:
    """The two layer pickers (a change of the embedding layer re-embeds, then refreshes the review) and the
    ``build_atlas`` endpoint. ``grid_mode`` is the live view's picker, ``status`` the class panel's line."""
    app, session = wiring.app, wiring.session
    targets = dataclasses.replace(_panel_targets(layers, grid_mode), status=status)
    handler, outputs = wired(functools.partial(set_embedding_tap, app), targets)
    layers.embedding_tap.input(*wiring.own(handler, [session, layers.embedding_tap], outputs)).then(
        *wiring.after_change
    )
    handler, outputs = wired(functools.partial(set_grid_tap, app), targets)
    layers.grid_tap.input(*wiring.own(handler, [session, layers.grid_tap], outputs))
    handler, outputs = wired(build_atlas, LayerOutputs(atlas=layers.atlas, atlas_note=layers.atlas_note))
    layers.atlas_button.click(*wiring.own(handler, session, outputs), api_name="build_atlas")
