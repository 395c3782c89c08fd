"""The classes: one card per class with its own hold-to-record button, the "help it learn" tray, and the class
tools (picker, rename, upload images, remove examples) that also serve the API.

The cards are HTML; the page's script (``static/classes.js``) turns pointer, key and click events on them into
commands written to a hidden textbox, which ``run_command`` carries out. Holding the button records; releasing it
stops.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import anyio
import gradio as gr

from .. import editing
from ..frames import DECODE_BYTES_PER_PIXEL, MAX_PIXELS, DecodeBudget, image_size
from ..session import Session, SessionError
from ..views import class_cards_html, message_html, strip_html, tray_html
from .context import PageState
from .errors import USER_ERRORS, message_of
from .wiring import KEEP, PageWiring, handler_name, wired

__all__ = [
    "ClassHandles",
    "ClassOutputs",
    "build",
    "wire",
    "run_command",
    "class_tools",
    "cards_if_changed",
    "tray_if_changed",
    "STYLES",
    "SCRIPTS",
]

STYLES = ("classes.css",)
SCRIPTS = ("classes.js",)
THUMBNAILS_SHOWN = 12
MAX_COMMAND_LENGTH = 1000
MAX_WAITING_COMMANDS = 20
"""A page's card commands waiting for their turn at once; more are refused at once (the default rate's burst)."""
TOO_MANY_COMMANDS = "Too many clicks at once: wait a moment, then try again."


@dataclass(frozen=True)
class ClassHandles:
    cards: gr.HTML
    tray: gr.HTML
    command: gr.Textbox
    hold_toggle: gr.Checkbox
    status: gr.HTML
    picker: gr.Radio
    name: gr.Textbox
    add_button: gr.Button
    rename_button: gr.Button
    clear_button: gr.Button
    delete_button: gr.Button
    strip: gr.HTML
    remove_button: gr.Button
    uploads: gr.File
    upload_button: gr.Button

    def outputs(self) -> "ClassOutputs":
        """The class tools' outputs: picker, cards, strip and status."""
        return ClassOutputs(picker=self.picker, cards=self.cards, strip=self.strip, status=self.status)


@dataclass(frozen=True)
class ClassOutputs:
    """What the class panel's handlers change; a field left at KEEP stays as it is (see wiring.py). The order is
    the class tools' API answer: picker, cards, strip, status."""

    picker: object = KEEP
    cards: object = KEEP
    strip: object = KEEP
    status: object = KEEP
    tray: object = KEEP
    session: object = KEEP


def build() -> ClassHandles:
    gr.Markdown("### Your classes\nHold a class's button while you show it to the camera.", elem_classes="tm-tight")
    cards = gr.HTML(elem_id="classes")
    status = gr.HTML(elem_id="status")
    tray = gr.HTML(tray_html([], []), elem_id="tray")
    hold_toggle = gr.Checkbox(
        value=False, label="Click to start and stop recording (instead of holding)", elem_id="record-toggle"
    )
    command = gr.Textbox(elem_id="class-command", elem_classes="tm-hidden", max_length=MAX_COMMAND_LENGTH)
    with gr.Accordion("Add image files to a class", open=False, elem_id="class-tools"):
        picker = gr.Radio(label="Class", elem_id="class-picker")
        uploads = gr.File(file_count="multiple", file_types=["image"], label="Image files for the class")
        upload_button = gr.Button("Add images", size="sm")
        gr.Markdown("Its latest examples (the cards above move or remove one: click its picture)")
        strip = gr.HTML(elem_id="strip")
        # What the cards do, by name, for the API (add_class, rename_class, delete_class, clear_class) and for
        # removing an example by its number: not shown on the page.
        name = gr.Textbox(label="Class name", max_length=64, visible=False)
        add_button = gr.Button("Add class", visible=False)
        rename_button = gr.Button("Rename selected", visible=False)
        clear_button = gr.Button("Clear examples", visible=False)
        delete_button = gr.Button("Delete class", visible=False)
        remove_button = gr.Button("Remove the picked example", elem_id="remove-example", visible=False)
    return ClassHandles(
        cards, tray, command, hold_toggle, status, picker, name, add_button, rename_button, clear_button,
        delete_button, strip, remove_button, uploads, upload_button,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- the cards' commands
def run_command(session: Session, page: PageState, command: str, selected: str | None = None) -> ClassOutputs:
    """Carry out one command from the cards; answers the cards, the tray, a status line, the session, and the
    image-file tools (their class picker and its latest examples follow the cards; ``selected`` is the class picked
    there).

    Commands beyond the page's rate are refused before any work (an error, so the review after them is skipped
    too); a stop never is, or a held record button could not be released."""
    if not _is_stop(command) and not page.command_rate.allow():
        raise gr.Error(TOO_MANY_COMMANDS, duration=3)
    done = True
    try:
        with session.lock:  # held only for the few milliseconds of a command
            parts = _parse(command)
            note = "" if _out_of_order(page, parts) else _carry_out(session, parts[:-1])
    except USER_ERRORS as error:
        note, done = str(error), False  # message_html escapes it
        gr.Warning(message_of(error))
    session.touch()
    page.cards_key = None
    page.tray_version = session.tray.version
    return dataclasses.replace(class_tools(session, selected, note, done), tray=_tray(session), session=session)


def in_page_turn(run: Callable) -> Callable:
    """``run`` (``run_command`` as wired: the session, the page, the command, ...) made to run each page's commands
    one after another, waiting for their turn in the server's event loop rather than in its worker threads.

    The commands of all pages have no server-wide slot, so without this a page that sent a hundred commands at once
    held a hundred of the server's worker threads, and everyone else's command waited behind them. Now a page holds
    at most one, and past ``MAX_WAITING_COMMANDS`` waiting its commands are refused at once (a stop never is)."""

    async def each_in_turn(*args):
        page, command = args[1], args[2]
        if page.commands_waiting >= MAX_WAITING_COMMANDS and not _is_stop(command):
            raise gr.Error(TOO_MANY_COMMANDS, duration=3)
        page.commands_waiting += 1
        try:
            async with page.command_turn:
                return await anyio.to_thread.run_sync(functools.partial(run, *args))
        finally:
            page.commands_waiting -= 1

    each_in_turn.__name__ = handler_name(run)
    return each_in_turn


def _is_stop(command: object) -> bool:
    return isinstance(command, str) and command.startswith('["stop"')


def _parse(command: str) -> list:
    """``[verb, *arguments, timestamp]`` as JSON, written by the page's script; the timestamp makes repeated commands
    distinct and orders a record and its stop. The textbox's length limit is only the browser's, so it is checked
    here too, before the JSON is read."""
    if isinstance(command, str) and len(command) > MAX_COMMAND_LENGTH:
        raise SessionError(f"The page sent a command over {MAX_COMMAND_LENGTH} characters; nothing was changed.")
    try:
        parts = json.loads(command or "")
    except (ValueError, TypeError, RecursionError):
        parts = None
    if not isinstance(parts, list) or len(parts) < 2 or not isinstance(parts[0], str):
        raise SessionError("The page sent a command it does not know; reload the page.")
    return parts


def _out_of_order(page: PageState, parts: list) -> bool:
    """Whether a record or stop was overtaken by a later one of the same page. Commands of different people (and
    of one person) run side by side, so a press and its release can arrive in either order; the page's time stamp
    (the last element) puts them back in order."""
    stamp = parts[-1]
    if parts[0] not in ("record", "stop") or isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        return False
    if stamp <= page.last_take_command:
        return True
    page.last_take_command = stamp
    return False


def _carry_out(session: Session, parts: list) -> str:
    verb, arguments = parts[0], parts[1:]
    text = [a for a in arguments if isinstance(a, str)]
    if verb == "record" and text:
        session.edits.start_recording(text[0])
        return f"Recording into '{text[0]}': keep showing it to the camera."
    if verb == "stop":
        if not session.recording:
            return ""
        label, count = session.recording, session.edits.stop_recording()
        if not count:
            raise SessionError("Nothing was recorded: is the camera on?")
        return f"Recorded {editing.counted(count, 'example')} of '{label}'."
    if verb == "add":
        return f"Added '{session.edits.add_class()}'. Click its name to rename it."
    if verb == "rename" and len(text) == 2:
        return f"Renamed '{text[0]}' to '{session.edits.rename_class(text[0], text[1])}'."
    if verb == "delete" and text:
        session.edits.remove_class(text[0])
        return f"Deleted class '{text[0]}'."
    if verb == "clear" and text:
        return f"Removed {editing.counted(session.edits.clear_class(text[0]), 'example')} of '{text[0]}'."
    if verb == "remove-example" and arguments:
        session.edits.remove_example(editing.row_of_example(session.project, arguments[0]))
        return "Removed the example."
    if verb == "move-example" and len(arguments) >= 2:
        row = editing.row_of_example(session.project, arguments[0])
        session.edits.move_example(row, text[0] if text else None)
        return f"Moved the example to '{text[0]}'."
    if verb == "tray" and arguments:
        target = arguments[1] if len(arguments) > 1 and isinstance(arguments[1], str) else None
        label = session.edits.add_from_tray(arguments[0], target)
        return f"Added the frame to '{label}'." if target else f"Started '{label}' with the frame; rename it."
    raise SessionError("The page sent a command it does not know; reload the page.")


# ---------------------------------------------------------------------------------------------- the class tools
def class_tools(session: Session, selected: str | None, note: str = "", done: bool = False) -> ClassOutputs:
    """Picker, cards, strip and status after a change made with the class tools (``done``: the note says what was
    done, not what went wrong)."""
    classes = session.project.classes
    selected = selected if selected in classes else (classes[0] if classes else None)
    rows = session.project.indices_of(selected)[-THUMBNAILS_SHOWN:][::-1] if selected else []
    return ClassOutputs(
        picker=gr.Radio(choices=classes, value=selected),
        cards=class_cards_html(session.project, session.recording, session.recorded_this_take),
        strip=strip_html(session.project, rows),
        status=message_html(note, done),
    )


def everything_drawn(session: Session, note: str = "") -> ClassOutputs:
    """The whole panel, tray included, as a page that opens (or starts over) draws it."""
    return dataclasses.replace(class_tools(session, None, note), tray=_tray(session), session=session)


def _tray(session: Session) -> str:
    return tray_html(session.tray.items, session.project.classes)


# ---------------------------------------------------------------------------------------------- on the frame path
def cards_if_changed(session: Session, page: PageState):
    """The class cards, or KEEP when nothing on them changed since they were last sent (the count climbs live
    while recording)."""
    key = (session.examples_state(), session.recording, session.recorded_this_take if session.recording else 0)
    if key == page.cards_key:
        return KEEP
    page.cards_key = key
    return class_cards_html(session.project, session.recording, session.recorded_this_take)


def tray_if_changed(session: Session, page: PageState):
    """The tray, or KEEP when no frame entered or left it since it was last sent."""
    if session.tray.version == page.tray_version:
        return KEEP
    page.tray_version = session.tray.version
    return _tray(session)


def tool(action):
    """A class-tools handler: ``action(session, selected, value)`` returns ``(selected, note)`` or a note."""

    def handler(session: Session, selected: str | None, value=None) -> ClassOutputs:
        session.touch()  # an edit: the session is in use
        try:
            outcome = action(session, selected, value)
        except USER_ERRORS as error:
            gr.Warning(message_of(error))
            return class_tools(session, selected)
        selected, note = outcome if isinstance(outcome, tuple) else (selected, outcome)
        return class_tools(session, selected, note, done=True)

    handler.__name__ = action.__name__
    return handler


def add_class(session: Session, _selected, name: str):
    name = session.edits.add_class(name)
    return name, f"Added class '{name}'."


def rename_class(session: Session, selected, name: str):
    return session.edits.rename_class(selected, name), None


def delete_class(session: Session, selected, _name):
    session.edits.remove_class(selected)
    return None, f"Deleted class '{selected}'."


def clear_class(session: Session, selected, _name):
    return f"Removed {editing.counted(session.edits.clear_class(selected), 'example')} of '{selected}'."


def uploader(budget: DecodeBudget | None):
    """The "Add images" action. The files are decoded one at a time, so it holds the decoding memory of its largest
    image (read from the headers) in the server's shared ``budget`` while it adds them."""

    def upload_into_class(session: Session, selected, files):
        if not selected:
            raise SessionError("Select a class first.")
        if not files:
            raise SessionError("Choose one or more image files first.")
        images = [(Path(f).name, Path(f).read_bytes()) for f in files]
        sizes = [image_size(data) or (0, 0) for _, data in images]
        largest = min(max(width * height for width, height in sizes), MAX_PIXELS)  # larger ones are refused unread
        with budget.reserve(largest * DECODE_BYTES_PER_PIXEL, "The largest image") if budget else nullcontext():
            added, problems = session.edits.add_images(selected, images)
        return "; ".join([f"Added {editing.counted(added, 'image')} to '{selected}'.", *problems])

    return upload_into_class


def remove_picked_example(session: Session, _selected, row):
    if row is None:
        raise SessionError("Click an example first (its number appears under Example #), then remove it.")
    return f"Removed example #{session.edits.remove_example(row)}."


TOOLS = [add_class, rename_class, delete_class, clear_class]
"""The four buttons with a name box; each is also an API endpoint of its own name."""


# ---------------------------------------------------------------------------------------------- events
def wire(wiring: PageWiring, classes: ClassHandles, example_row: gr.Number) -> None:
    """The cards' commands, the class tools and their API endpoints; each change ends by refreshing "Under the
    hood". ``example_row`` is the hood's "Example #", the example the remove button removes."""
    session, after_change = wiring.session, wiring.after_change
    command, key_input = wiring.reattaching(run_command, 0)
    drawn = dataclasses.replace(classes.outputs(), tray=classes.tray, session=session)
    command, outputs = wired(in_page_turn(command), drawn)
    classes.command.change(
        command,
        [session, wiring.page, classes.command, classes.picker, *key_input],
        outputs,
        show_progress="hidden",
        trigger_mode="multiple",
        concurrency_limit=None,  # one slot for the server made everyone wait behind one person's commands
    ).success(*after_change)  # not after a command refused for its rate
    named = [session, classes.picker, classes.name]
    buttons = [classes.add_button, classes.rename_button, classes.delete_button, classes.clear_button]
    for button, action in zip(buttons, TOOLS):
        handler, outputs = wired(tool(action), classes.outputs())
        button.click(*wiring.own(handler, named, outputs), api_name=action.__name__).then(*after_change)
    classes.picker.input(*wiring.own(*redraw_tools(classes, session)), show_progress="hidden")
    handler, outputs = wired(tool(uploader(wiring.app.decode_budget)), classes.outputs())
    uploaded = wiring.own(handler, [session, classes.picker, classes.uploads], outputs)
    classes.upload_button.click(*uploaded).then(*after_change)
    handler, outputs = wired(tool(remove_picked_example), classes.outputs())
    classes.remove_button.click(*wiring.own(handler, [session, classes.picker, example_row], outputs)).then(
        *after_change
    )


def redraw_tools(classes: ClassHandles, session: gr.State) -> tuple:
    """``(handler, inputs, outputs)`` that redraws the class tools for the selected class: on picking a class, and
    chained after a change made elsewhere (a hint applied, an example moved)."""
    handler, outputs = wired(class_tools, classes.outputs())
    return handler, [session, classes.picker], outputs
