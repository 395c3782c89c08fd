"""Project files: save the project as a .zip, open one, or load the demo."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ..assets import DEMO_PROJECT
from ..session import Session, SessionError

__all__ = ["FileHandles", "build", "save_project", "open_project", "load_demo", "remove_older_than"]


@dataclass(frozen=True)
class FileHandles:
    save_button: gr.Button
    saved_file: gr.File
    project_file: gr.File
    demo_button: gr.Button
    start_over_button: gr.Button


def build() -> FileHandles:
    with gr.Accordion("Project: save, open, demo", open=False, elem_id="project"):
        with gr.Row():
            save_button = gr.Button("Save project (.zip)")
            saved_file = gr.File(label="Project file", interactive=False)
            project_file = gr.File(file_types=[".zip"], label="Open a project .zip")
            demo_button = gr.Button("Load the demo project", elem_id="load-demo")
            start_over_button = gr.Button("Start over (removes every example)", variant="stop", elem_id="start-over")
    return FileHandles(save_button, saved_file, project_file, demo_button, start_over_button)


def save_project(session: Session, files_folder: Path, max_age_seconds: float) -> str:
    """Write the project into a folder of its own under ``files_folder`` and return its path.

    Gradio serves a copy from its cache and deletes that on schedule; the original is ours to delete, so older
    saves are removed first.
    """
    remove_older_than(files_folder.glob("project-*"), max_age_seconds)
    folder = Path(tempfile.mkdtemp(prefix="project-", dir=files_folder))
    return str(session.project.save(folder / "teachable-project.zip"))


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
    """The folder Gradio serves files from (chosen before the page is built)."""
    return Path(tempfile.gettempdir()) / "teachable-gradio"
