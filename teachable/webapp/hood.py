"""Under the hood: leave-one-out evaluation, the classification view, the data coach, class summaries (after
Summit) and the unit view (after Network Dissection)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..session import Session, SessionError
from ..views import channels_html, evaluation_html, message_html, unit_html
from .context import AppContext, PageState
from .saving import autosave
from .errors import USER_ERRORS, shows_errors

__all__ = ["HoodHandles", "build", "refresh_review", "apply_hint", "edit_example", "summarise", "show_unit"]


@dataclass(frozen=True)
class HoodHandles:
    evaluation: gr.HTML
    hints: gr.Radio
    apply_button: gr.Button
    example_row: gr.Number
    move_target: gr.Dropdown
    move_button: gr.Button
    delete_button: gr.Button
    first_class: gr.Dropdown
    second_class: gr.Dropdown
    summary_button: gr.Button
    summary: gr.HTML
    unit_channel: gr.Number
    unit_button: gr.Button
    unit: gr.HTML

    @property
    def refreshed(self) -> list:
        """What ``refresh_review`` updates (the session last)."""
        return [self.evaluation, self.hints, self.move_target, self.first_class, self.second_class]


def build() -> HoodHandles:
    with gr.Accordion("Under the hood: evaluation and data coach", open=False, elem_id="hood"):
        gr.Markdown(
            "Every example classified by all the others (leave-one-out), after every change. "
            "Mistakes are outlined in red; frames show the confidence (green high, red low). "
            "Click an example to pick it, then move or delete it."
        )
        evaluation = gr.HTML(elem_id="evaluation")
        with gr.Row():
            with gr.Column(scale=3):
                hints = gr.Radio(label="Data coach", elem_id="hints", choices=[])
                apply_button = gr.Button("Apply the suggested fix", elem_id="apply-hint", size="sm")
            with gr.Column(scale=2):
                example_row = gr.Number(label="Example #", precision=0, elem_id="example-row")
                move_target = gr.Dropdown(label="Move it to", choices=[], elem_id="move-to")
                with gr.Row():
                    move_button = gr.Button("Move example", size="sm", elem_id="move-example")
                    delete_button = gr.Button("Delete example", size="sm", variant="stop")
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    first_class = gr.Dropdown(label="Compare class", choices=[], elem_id="first-class")
                    second_class = gr.Dropdown(label="with class", choices=[], elem_id="second-class")
                summary_button = gr.Button("Class summary", size="sm", elem_id="summarise")
                summary = gr.HTML(elem_id="summary")
            with gr.Column():
                unit_channel = gr.Number(label="Channel of the grid layer", value=0, precision=0, elem_id="unit-channel")
                unit_button = gr.Button("Show the examples that excite it most", size="sm", elem_id="show-unit")
                unit = gr.HTML(elem_id="unit")
    return HoodHandles(
        evaluation, hints, apply_button, example_row, move_target, move_button, delete_button, first_class,
        second_class, summary_button, summary, unit_channel, unit_button, unit,
    )  # fmt: skip


def refresh_review(app: AppContext, session: Session, page: PageState):
    """Evaluation, classification view, hints and class pickers after any change to the examples (which is also
    when the project is autosaved)."""
    app.live_sessions.add(session)
    session.touch()
    autosave(app, session, page)
    classes = session.project.classes
    pickers = (gr.Dropdown(choices=classes), gr.Dropdown(choices=classes), gr.Dropdown(choices=classes))
    try:
        result = session.review()
    except USER_ERRORS as error:
        return message_html(str(error)), gr.Radio(choices=[], value=None), *pickers, session
    choices = [(f"[{hint.kind}] {hint.message}", index) for index, hint in enumerate(result.hints)]
    return evaluation_html(result, session.project), gr.Radio(choices=choices, value=None), *pickers, session


@shows_errors
def apply_hint(session: Session, index) -> str:
    if index is None:
        raise SessionError("Pick a hint first.")
    hints = session.review().hints
    if not isinstance(index, int) or not 0 <= index < len(hints):
        raise SessionError("That hint is out of date; look again.")
    return message_html(session.apply_hint(hints[index]))


@shows_errors
def edit_example(session: Session, row, move_to: str | None, action: str) -> str:
    if action == "delete":
        return message_html(f"Deleted example #{session.remove_example(row)}.")
    row = session.move_example(row, move_to)
    return message_html(f"Moved example #{row} to '{move_to}'.")


def _reporter(progress):
    return lambda done, total: progress(done / max(total, 1), desc="Reading activations")


@shows_errors
def summarise(app: AppContext, session: Session, first, second, progress=gr.Progress()) -> str:
    report = _reporter(progress)
    tap = session.grid_tap
    summary = session.class_summary(progress=report)
    html = channels_html(summary, app.icons, tap, f"Channels of {tap} most typical of each class")
    if first and second and first != second:
        compared = session.compare(first, second, progress=report)
        caption = f"'{first}' and '{second}': shared, and what tells them apart"
        html += channels_html(compared, app.icons, tap, caption)
    return html


@shows_errors
def show_unit(app: AppContext, session: Session, channel, progress=gr.Progress()) -> str:
    try:
        channel = int(channel or 0)
    except (TypeError, ValueError, OverflowError):
        raise SessionError("Give a channel number.") from None
    examples = session.unit_view(channel, progress=_reporter(progress))
    return unit_html(channel, examples, session.project, app.icons, session.grid_tap)
