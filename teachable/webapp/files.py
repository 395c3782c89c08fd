"""Project files: save the project as a .zip, open one, load the demo, start over, or export the model (ONNX and
the offline web page).

What is saved or exported is the session's snapshot, taken under its lock, so a frame recording meanwhile cannot
leave a half-added example in the file; the files are written whole (``atomic_write``) in Gradio's file folder,
which serves them without a copy.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..assets import DEMO_PROJECT
from ..atomic import atomic_write
from ..session import Session, SessionError
from . import saving
from .classes import ClassHandles, ClassOutputs, everything_drawn, tool
from .context import AppContext, PageState
from .errors import USER_ERRORS, message_of, shows_errors
from .served import ExportSlots, FileBudget, keep_served
from .wiring import PageWiring, wired

__all__ = [
    "FileHandles",
    "build",
    "wire",
    "save_project",
    "open_project",
    "load_demo",
    "start_over",
    "remove_older_than",
    "export_model",
    "STYLES",
    "SCRIPTS",
]

STYLES = ()
SCRIPTS = ("files.js",)


@dataclass(frozen=True)
class FileHandles:
    save_button: gr.Button
    saved_file: gr.File
    project_file: gr.File
    demo_button: gr.Button
    start_over_button: gr.Button
    export_button: gr.Button
    exported_files: gr.File


def build(where_work_is_kept: str) -> FileHandles:
    with gr.Accordion("Project: save, open, demo", open=False, elem_id="project"):
        gr.Markdown(where_work_is_kept, elem_id="where-work-is-kept")
        with gr.Row():
            save_button = gr.Button("Save project (.zip)")
            saved_file = gr.File(label="Project file", interactive=False)
            project_file = gr.File(file_types=[".zip"], label="Open a project .zip")
            demo_button = gr.Button("Load the demo project", elem_id="load-demo")
            start_over_button = gr.Button("Start over (removes every example)", variant="stop", elem_id="start-over")
        with gr.Row():
            export_button = gr.Button("Export model (.onnx + offline web page)", elem_id="export-model")
            exported_files = gr.File(
                label="Exported model: model.onnx, and teachable-web.zip (unzip, open index.html)",
                interactive=False,
                file_count="multiple",
                elem_id="exported-files",
            )
    return FileHandles(
        save_button, saved_file, project_file, demo_button, start_over_button, export_button, exported_files
    )


EXPORT_BYTES_ESTIMATE = 64 * 2**20
"""Room an export asks of the file budget before it starts (one measured 46.5 MB: model and web page)."""


def export_model(
    session: Session, files_folder: Path, max_age_seconds: float, page=None, budget: FileBudget | None = None
) -> list[str]:
    """The project as ``model.onnx`` (with its strictness and k as set on the page) and, when onnxruntime-web is
    available, the offline web page as a .zip; each export in a folder of its own under ``files_folder``, which
    replaces the page's previous export."""
    from ..backbones import load_backbone
    from ..export import ExportError, onnx_bytes
    from ..webexport import WebExportError, write_page

    project, settings = session.snapshot()  # a copy taken under the session's lock: frames may be recording
    if not len(project):
        raise SessionError("There is nothing to export yet: record or add examples of at least two classes first.")
    remove_older_than(files_folder.glob("export-*"), max_age_seconds)
    if page is not None:
        keep_served(page, "export", None)  # the page's previous export goes before the new one takes room
    if budget is not None:
        budget.reserve(EXPORT_BYTES_ESTIMATE, "the exported model")
    try:
        # A CPU float32 copy of the backbone of its own: exporting traces the network, while the app's copy (maybe
        # on a GPU, in float16) goes on serving frames.
        backbone = load_backbone(project.backbone, "cpu")
        model, metadata = onnx_bytes(project, backbone, k=settings["k"], strictness=settings["threshold"])
    except ExportError as error:
        raise SessionError(str(error)) from None
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=files_folder))
    if page is not None:
        keep_served(page, "export", folder)
    outputs = [str(atomic_write(folder / "model.onnx", model))]
    try:
        web_page = write_page(model, metadata, folder / "teachable-web")
    except WebExportError as error:
        gr.Warning(f"The web page could not be made ({error}); model.onnx is ready.")
        return outputs
    outputs.append(str(atomic_write(folder / "teachable-web.zip", zipped(web_page))))
    shutil.rmtree(web_page, ignore_errors=True)
    return outputs


def zipped(folder: Path) -> bytes:
    """``folder`` as a .zip that unpacks to a folder of the same name (what ``shutil.make_archive`` made)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(folder, folder.name)
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder.parent).as_posix())
    return buffer.getvalue()


def exporter(files_folder: Path, max_age_seconds: float, slots: ExportSlots, budget: FileBudget | None = None):
    """The export button's handler. Exports wait for one of the server's ``slots`` without holding a thread, one
    per person at a time (see :class:`ExportSlots`)."""

    async def export(session: Session, page) -> list[str]:
        work = functools.partial(export_model, session, files_folder, max_age_seconds, page, budget)
        try:
            return await slots.run(session, work)
        except USER_ERRORS as error:
            raise gr.Error(message_of(error)) from None

    return export


def save_project(
    session: Session, page=None, *, files_folder: Path, max_age_seconds: float, budget: FileBudget | None = None
) -> str:
    """Write the project into a folder of its own under ``files_folder`` and return its path. The file is made in
    Gradio's file folder, so Gradio serves it without a copy; it replaces the page's previous save, and saves older
    than ``max_age_seconds`` are removed."""
    remove_older_than(files_folder.glob("project-*"), max_age_seconds)
    data = session.project_bytes()
    if page is not None:
        keep_served(page, "project", None)  # the page's previous save goes before the new one takes room
    if budget is not None:
        budget.reserve(len(data), "the project file")
    folder = Path(tempfile.mkdtemp(prefix="project-", dir=files_folder))
    if page is not None:
        keep_served(page, "project", folder)
    return str(atomic_write(folder / "teachable-project.zip", data))


def open_project(session: Session, _selected, file) -> str:
    if file is None:
        raise SessionError("Choose a project .zip file first.")
    if not Path(file).stat().st_size:
        raise SessionError("That file is empty.")
    return session.load_project(Path(file).read_bytes())


def load_demo(session: Session, _selected, _value=None) -> str:
    return session.load_project(DEMO_PROJECT.read_bytes())


def start_over(app: AppContext, session: Session, page: PageState) -> ClassOutputs:
    """An empty project, here and on the server; the class panel drawn afresh, with the tray."""
    note = saving.start_over(app, session, page)
    return dataclasses.replace(everything_drawn(session), status=note)


def remove_older_than(folders, seconds: float) -> None:
    now = time.time()
    for folder in folders:
        try:
            if now - folder.stat().st_mtime > seconds:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # removed meanwhile by another session's save


# ---------------------------------------------------------------------------------------------- events
def wire(wiring: PageWiring, files: FileHandles, classes: ClassHandles, layers_again: tuple) -> None:
    """Save (``save_project``), export (``export_model``), open (``open_project``), the demo (``load_demo``) and
    start over. Opening a project or the demo redraws the class tools, then the layer pickers (``layers_again``:
    the project's layer may differ), then the review."""
    app, session, page, after_change = wiring.app, wiring.session, wiring.page, wiring.after_change
    budget = app.file_budget
    folder, age = budget.folder, app.settings.file_max_age_seconds
    save = functools.partial(save_project, files_folder=folder, max_age_seconds=age, budget=budget)
    own = wiring.own
    files.save_button.click(*own(shows_errors(save), [session, page], files.saved_file), api_name="save_project")
    export = exporter(folder, age, app.export_slots, budget)
    files.export_button.click(*own(export, [session, page], files.exported_files), api_name="export_model",
                              concurrency_limit=None)  # fmt: skip
    picker, tools = classes.picker, classes.outputs()
    handler, outputs = wired(tool(open_project), tools)
    opened = own(handler, [session, picker, files.project_file], outputs)
    files.project_file.upload(*opened, api_name="open_project").then(*layers_again).then(*after_change)
    handler, outputs = wired(tool(load_demo), tools)
    files.demo_button.click(*own(handler, [session, picker], outputs), api_name="load_demo").then(
        *layers_again
    ).then(*after_change)
    drawn = dataclasses.replace(tools, tray=classes.tray, session=session)
    handler, outputs = wired(functools.partial(start_over, app), drawn)
    files.start_over_button.click(*own(handler, [session, page], outputs)).then(*after_change)
