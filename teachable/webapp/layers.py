"""Layers and Activation Atlas: the backbone's stages, the layer the embedding is read at, the layer the grid
shows, and an Activation Atlas of the person's own examples."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..session import Session
from ..views import architecture_html, atlas_image, image_html, message_html
from .context import AppContext
from .errors import shows_errors

__all__ = ["LayerHandles", "build", "layers_panel", "set_embedding_tap", "set_grid_tap", "build_atlas"]


@dataclass(frozen=True)
class LayerHandles:
    architecture: gr.HTML
    embedding_tap: gr.Dropdown
    grid_tap: gr.Dropdown
    atlas_button: gr.Button
    atlas: gr.HTML
    atlas_note: gr.Markdown


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


def layers_panel(app: AppContext, session: Session):
    """The architecture table, both layer pickers and the grid mode, as the session has them."""
    return (
        architecture_html(app.backbone, session.project.tap, session.grid_tap),
        gr.Dropdown(value=session.project.tap),
        gr.Dropdown(value=session.grid_tap),
        gr.Radio(value=session.grid_mode),
    )


@shows_errors
def set_embedding_tap(app: AppContext, session: Session, tap: str, progress=gr.Progress()):
    note = session.set_embedding_tap(tap, lambda done, total: progress(done / max(total, 1), desc="Re-embedding"))
    return *layers_panel(app, session), message_html(note)


@shows_errors
def set_grid_tap(app: AppContext, session: Session, tap: str):
    session.set_grid_tap(tap)
    return *layers_panel(app, session), message_html(f"The grid now reads {tap}.")


@shows_errors
def build_atlas(session: Session, progress=gr.Progress()):
    atlas = session.atlas(lambda fraction, what: progress(fraction, desc=what))
    occupied = int((atlas.majority >= 0).sum())
    note = f"Atlas of {len(session.project)} examples: {occupied} cells, each the icon its activations match best."
    return image_html(atlas_image(atlas), "tm-atlas", quality=85, css_class="tm-atlas"), note
