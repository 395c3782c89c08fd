"""Under the hood: leave-one-out evaluation, the classification view, the data coach, class summaries (after
Summit) and the unit view (after Network Dissection)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import gradio as gr

from ..session import Session, SessionError
from ..views import channels_html, evaluation_html, message_html, unit_html
from .classes import ClassHandles, redraw_tools
from .context import AppContext, PageState
from .errors import USER_ERRORS, shows_errors
from .saving import autosave
from .wiring import KEEP, PageWiring, wired

__all__ = [
    "HoodHandles",
    "ReviewOutputs",
    "build",
    "wire",
    "review_step",
    "refresh_review",
    "apply_hint",
    "edit_example",
    "summarise",
    "show_unit",
    "STYLES",
    "SCRIPTS",
]

STYLES = ("hood.css",)
SCRIPTS = ("hood.js",)


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


@dataclass(frozen=True)
class ReviewOutputs:
    """What ``refresh_review`` changes; a field left at KEEP stays as it is (see wiring.py)."""

    evaluation: object = KEEP
    hints: object = KEEP
    move_target: object = KEEP
    first_class: object = KEEP
    second_class: object = KEEP
    session: object = KEEP


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


def refresh_review(app: AppContext, session: Session, page: PageState) -> ReviewOutputs:
    """Evaluation, classification view, hints and class pickers after any change to the examples (which is also
    when the project is autosaved)."""
    app.live_sessions.add(session)
    session.touch()
    autosave(app, session, page)
    classes = session.project.classes
    pickers = {name: gr.Dropdown(choices=classes) for name in ("move_target", "first_class", "second_class")}
    try:
        result = session.insights.review()
    except USER_ERRORS as error:
        no_hints = gr.Radio(choices=[], value=None)
        return ReviewOutputs(evaluation=message_html(str(error)), hints=no_hints, **pickers, session=session)
    choices = [(f"[{hint.kind}] {hint.message}", index) for index, hint in enumerate(result.hints)]
    hints = gr.Radio(choices=choices, value=None)
    return ReviewOutputs(evaluation=evaluation_html(result, session.project), hints=hints, **pickers, session=session)


@shows_errors
def apply_hint(session: Session, index) -> str:
    if index is None:
        raise SessionError("Pick a hint first.")
    hints = session.insights.review().hints
    if not isinstance(index, int) or not 0 <= index < len(hints):
        raise SessionError("That hint is out of date; look again.")
    return message_html(session.edits.apply_hint(hints[index]))


@shows_errors
def edit_example(session: Session, row, move_to: str | None, action: str) -> str:
    if action == "delete":
        return message_html(f"Deleted example #{session.edits.remove_example(row)}.")
    row = session.edits.move_example(row, move_to)
    return message_html(f"Moved example #{row} to '{move_to}'.")


def _reporter(progress):
    return lambda done, total: progress(done / max(total, 1), desc="Reading activations")


@shows_errors
def summarise(app: AppContext, session: Session, first, second, progress=gr.Progress()) -> str:
    report = _reporter(progress)
    tap = session.grid_tap
    summary = session.insights.class_summary(progress=report)
    html = channels_html(summary, app.icons, tap, f"Channels of {tap} most typical of each class")
    if first and second and first != second:
        compared = session.insights.compare(first, second, progress=report)
        caption = f"'{first}' and '{second}': shared, and what tells them apart"
        html += channels_html(compared, app.icons, tap, caption)
    return html


@shows_errors
def show_unit(app: AppContext, session: Session, channel, progress=gr.Progress()) -> str:
    try:
        channel = int(channel or 0)
    except (TypeError, ValueError, OverflowError):
        raise SessionError("Give a channel number.") from None
    examples = session.insights.unit_view(channel, progress=_reporter(progress))
    return unit_html(channel, examples, session.project, app.icons, session.grid_tap)


# ---------------------------------------------------------------------------------------------- events
def review_step(app: AppContext, session: gr.State, page: gr.State, hood: HoodHandles) -> tuple:
    """``(handler, inputs, outputs)`` of the step chained after every change: refresh "Under the hood" (which
    also autosaves). The session is an output, so Gradio counts the change as activity."""
    targets = ReviewOutputs(
        evaluation=hood.evaluation, hints=hood.hints, move_target=hood.move_target, first_class=hood.first_class,
        second_class=hood.second_class, session=session,
    )  # fmt: skip
    handler, outputs = wired(functools.partial(refresh_review, app), targets)
    return handler, [session, page], outputs


def wire(wiring: PageWiring, hood: HoodHandles, classes: ClassHandles) -> None:
    """Applying a hint, moving or deleting an example (each then redraws the class tools and the review), the
    class summary and the unit view."""
    app, session, after_change = wiring.app, wiring.session, wiring.after_change
    own = wiring.own
    tools_again = own(*redraw_tools(classes, session))
    hood.apply_button.click(*own(apply_hint, [session, hood.hints], classes.status)).then(*tools_again).then(
        *after_change
    )
    for button, action in [(hood.move_button, "move"), (hood.delete_button, "delete")]:
        button.click(
            *own(functools.partial(edit_example, action=action), [session, hood.example_row, hood.move_target],
                 classes.status)  # fmt: skip
        ).then(*tools_again).then(*after_change)
    hood.summary_button.click(
        *own(functools.partial(summarise, app), [session, hood.first_class, hood.second_class], hood.summary)
    )
    hood.unit_button.click(*own(functools.partial(show_unit, app), [session, hood.unit_channel], hood.unit))
