"""What the server keeps is bounded: uploads and saved projects older than TEACHABLE_FILE_MAX_AGE_SECONDS are
deleted while it runs, and Gradio keeps at most TEACHABLE_MAX_SESSIONS sessions (real server processes, real files
on disk)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

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


def test_inline_images_are_held_to_the_upload_limit(tmp_path):
    """An event's body can carry an image inline as a data: URL, which Gradio decodes whatever its size; every
    request body is held to the upload limit, before it is read. Ordinary uploads still work."""
    import base64
    import io

    import httpx
    from gradio_client import Client, handle_file
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")  # about 2.4 MB: incompressible
    inline = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert len(inline) > 2.5 * 2**20  # over the 1 MB limit and its 1 MB of room for multipart framing
    env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "served"), "TEACHABLE_MAX_UPLOAD_MB": "1"}
    with serving.app_process(env) as (url, _):
        body = {"data": [{"url": inline, "meta": {"_type": "gradio.FileData"}}], "fn_index": 0, "session_hash": "x"}
        refused = httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=30)
        assert refused.status_code == 413
        assert "larger than" in refused.text or "too large" in refused.text.lower()
        body["data"][0]["url"] = "data:image/png;base64,AAAA"
        assert httpx.post(f"{url}gradio_api/queue/join", json=body, timeout=30).status_code != 413

        small = tmp_path / "small.jpg"
        write_jpeg(small, photo("astronaut"))
        panel, details, *_ = Client(url, verbose=False).predict(handle_file(str(small)), api_name="/classify")
        assert details["message"]  # answered: "record some examples first" on an empty project
