"""Files the server keeps are bounded: uploads and saved projects older than TEACHABLE_FILE_MAX_AGE_SECONDS are
deleted while it runs (real server process, real files on disk)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from . import serving
from .conftest import photo, write_jpeg

AGE = 4


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if path.is_file()}


def test_old_uploads_and_saved_projects_are_deleted(tmp_path):
    from gradio_client import Client, handle_file

    folder = tmp_path / "served"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(folder), "TEACHABLE_FILE_MAX_AGE_SECONDS": str(AGE)}
    with serving.app_process(env) as (url, _):
        client = Client(url, verbose=False)
        upload = tmp_path / "upload.jpg"  # not one of the page's example photos, which Gradio keeps on purpose
        write_jpeg(upload, photo("astronaut"))
        client.predict(handle_file(str(upload)), api_name="/classify")
        client.predict(None, api_name="/load_demo")
        first_save = Path(client.predict(api_name="/save_project"))
        first = files_under(folder)
        uploads = {path for path in first if path.name == "upload.jpg"}
        projects = {path for path in first if path.parent.name.startswith("project-")}
        assert uploads and projects and first_save.is_file()

        time.sleep(AGE + AGE / 3 + 2)  # older than AGE, and one deletion round later
        client.predict(None, "another class", api_name="/add_class")  # the next save is a different file
        client.predict(api_name="/save_project")
        left = files_under(folder)
        assert not uploads & left, "an old upload was kept"
        assert not projects & left, "an old saved project was kept"
        assert any(path.parent.name.startswith("project-") for path in left)  # the new save is there
