"""Project files: save the project as a .zip, open one, load the demo, or export the model (ONNX, web page)."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..assets import DEMO_PROJECT
from ..session import Session, SessionError
from .errors import USER_ERRORS, message_of
from .served import ExportSlots, FileBudget, keep_served

__all__ = [
    "FileHandles",
    "build",
    "save_project",
    "open_project",
    "load_demo",
    "remove_older_than",
    "export_model",
    "wire_export",
]


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

    project = session.project
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
        model, metadata = onnx_bytes(copy.deepcopy(project), backbone, k=session.k, strictness=session.threshold)
    except ExportError as error:
        raise SessionError(str(error)) from None
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=files_folder))
    if page is not None:
        keep_served(page, "export", folder)
    (folder / "model.onnx").write_bytes(model)
    outputs = [str(folder / "model.onnx")]
    try:
        page = write_page(model, metadata, folder / "teachable-web")
    except WebExportError as error:
        gr.Warning(f"The web page could not be made ({error}); model.onnx is ready.")
        return outputs
    outputs.append(shutil.make_archive(str(folder / "teachable-web"), "zip", page.parent, page.name))
    shutil.rmtree(page, ignore_errors=True)
    return outputs


def wire_export(
    session_state, page_state, files: FileHandles, files_folder: Path, max_age_seconds: float, slots: ExportSlots,
    budget: FileBudget | None = None,
) -> None:  # fmt: skip
    """Connect the export button (called from the page's wiring). Exports wait for one of the server's ``slots``
    without holding a thread, one per person at a time (see :class:`ExportSlots`)."""

    async def export(session: Session, page) -> list[str]:
        try:
            return await slots.run(session, lambda: export_model(session, files_folder, max_age_seconds, page, budget))
        except USER_ERRORS as error:
            raise gr.Error(message_of(error)) from None

    files.export_button.click(
        export, [session_state, page_state], files.exported_files, api_name="export_model", concurrency_limit=None
    )


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
    path = folder / "teachable-project.zip"
    path.write_bytes(data)
    return str(path)


def open_project(session: Session, _selected, file) -> str:
    if file is None:
        raise SessionError("Choose a project .zip file first.")
    if not Path(file).stat().st_size:
        raise SessionError("That file is empty.")
    return session.load_project(Path(file).read_bytes())


def load_demo(session: Session, _selected, _value=None) -> str:
    return session.load_project(DEMO_PROJECT.read_bytes())


def remove_older_than(folders, seconds: float) -> None:
    now = time.time()
    for folder in folders:
        try:
            if now - folder.stat().st_mtime > seconds:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # removed meanwhile by another session's save


def files_folder() -> Path:
    """The folder Gradio serves files from (chosen before the page is built): one per user of this computer, made
    private to them, so a second person's app on a shared machine does not meet a folder it cannot write to. If
    someone else already holds that name, a fresh private folder is used instead."""
    user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    folder = Path(tempfile.gettempdir()) / f"teachable-gradio-{user}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.is_symlink() or (hasattr(os, "getuid") and folder.stat().st_uid != os.getuid()):
            raise PermissionError(f"{folder} belongs to someone else")
        return folder
    except OSError:
        return Path(tempfile.mkdtemp(prefix="teachable-gradio-"))
