"""Twenty people on one server: nobody sees anyone else's classes, and idle sessions give their memory back.

The app runs in its own process (so its memory can be measured), with a short idle timeout.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest

from teachable.frames import encode_jpeg
from teachable.project import Project
from teachable.webapp import SAMPLES

from . import serving

CLIENTS = 20
IDLE_SECONDS = 20
"""Short, so the test can watch idle sessions freed; long enough that a session whose next request waits in the
queue behind nineteen others opening 12 MB projects on two loaded cores is not taken for idle (at 8 s, one was,
once: its classify then found no examples)."""
EXAMPLES_PER_SESSION = 300


@pytest.fixture(scope="module")
def app_process(tmp_path_factory):
    env = {**os.environ, "TEACHABLE_SESSION_IDLE_SECONDS": str(IDLE_SECONDS),
           "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio"))}  # fmt: skip
    with serving.app_process(env) as (url, process):
        yield url, psutil.Process(process.pid)


@pytest.fixture(scope="module")
def big_project(tmp_path_factory):
    """A 300-example project whose thumbnails are real (noise) JPEGs, about 12 MB in memory."""
    rng = np.random.default_rng(0)
    thumbnail = encode_jpeg(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8))
    project = Project("efficientnet_lite0", "pool", 1280, classes=["cup", "hand"])
    for label in ["cup", "hand"]:
        project.add_examples(label, rng.random((EXAMPLES_PER_SESSION // 2, 1280)), [thumbnail] * 150)
    return project.save(tmp_path_factory.mktemp("big") / "big.zip")


def rss_settled(process: psutil.Process, seconds: float = 2.0) -> int:
    time.sleep(seconds)
    return process.memory_info().rss


def use_the_app(url: str, index: int, project_path) -> dict:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    client.predict(None, handle_file(str(project_path)), api_name="/open_project")
    client.predict(None, f"mine {index}", api_name="/add_class")
    _, details, *_ = client.predict(handle_file(str(SAMPLES / "coffee.jpg")), api_name="/classify")
    return details


def test_twenty_sessions_are_isolated_and_idle_ones_are_freed(app_process, big_project):
    url, server = app_process
    use_the_app(url, -1, big_project)  # warm every code path once
    time.sleep(IDLE_SECONDS + 3)
    baseline = rss_settled(server)

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(lambda i: use_the_app(url, i, big_project), range(CLIENTS)))
    for index, details in enumerate(answers):
        assert set(details["confidences"]) == {"cup", "hand", f"mine {index}"}, details  # only its own classes
    loaded = server.memory_info().rss
    growth = loaded - baseline
    assert growth > 100 * 2**20, (
        f"20 sessions of 300 examples should be visible in memory (grew {growth / 2**20:.0f} MB)"
    )

    # Idle: the sessions' examples are dropped and their memory handed back to the system. What the examples
    # themselves take (thumbnails and embeddings) must partly come back (at least 15 %: how much the allocator and
    # kernel hand back varies between runs from 25 % to over 60 %, so this only proves the examples were dropped);
    # Gradio keeps each closed tab's last page
    # outputs for an hour on its own, which is the rest. Poll for up to a minute (queued map fits finish first).
    project = Project.load(big_project)
    examples_bytes = CLIENTS * (sum(len(e.thumbnail) for e in project.examples) + project.embeddings.nbytes)
    deadline = time.monotonic() + IDLE_SECONDS + 60
    readings = []
    while time.monotonic() < deadline:
        readings.append(rss_settled(server, 3.0))
        if loaded - readings[-1] >= 0.15 * examples_bytes:
            break
    assert loaded - readings[-1] >= 0.15 * examples_bytes, (
        f"examples {examples_bytes / 2**20:.0f} MB; baseline {baseline / 2**20:.0f} MB, loaded "
        f"{loaded / 2**20:.0f} MB, after idle {[r // 2**20 for r in readings]} MB"
    )
