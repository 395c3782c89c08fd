"""What the server keeps is bounded: uploads and saved projects older than TEACHABLE_FILE_MAX_AGE_SECONDS are
deleted while it runs, and Gradio keeps at most TEACHABLE_MAX_SESSIONS sessions (real server processes, real files
on disk)."""

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


def test_sessions_beyond_the_cap_are_dropped_least_recently_used_first(tmp_path):
    """Gradio keeps every session's state (and a closed tab's last outputs) until its session cap: with the cap at 2,
    the third person to arrive pushes out the first, whose next request starts a fresh session."""
    from gradio_client import Client

    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "served"), "TEACHABLE_MAX_SESSIONS": "2"}
    with serving.app_process(env) as (url, _):
        people = [Client(url, verbose=False) for _ in range(3)]

        def classes_after_adding(person, name: str) -> list[str]:
            picker, *_ = person.predict(None, name, api_name="/add_class")
            return [value for value, _ in picker["choices"]]

        for index, person in enumerate(people):
            assert f"mine {index}" in classes_after_adding(person, f"mine {index}")
        assert "mine 2" in classes_after_adding(people[2], "more 2")  # the newest session is kept
        assert "mine 0" not in classes_after_adding(people[0], "more 0")  # the oldest was dropped: a fresh one
