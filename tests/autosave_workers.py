"""Functions that child processes of tests/test_autosave.py run (kept light to import under ``spawn``)."""

from __future__ import annotations

import time

from teachable.autosave import ProjectStore


def hammer(folder: str, key: str, project_bytes: bytes, settings: dict, seconds: float, started, results) -> None:
    """Save ``project_bytes`` under ``key`` again and again for ``seconds``; puts how many saves were written on the
    ``results`` queue."""
    store = ProjectStore(folder)
    started.set()
    written = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        written += store.save(key, project_bytes, settings)
    results.put(written)


def save_forever(folder: str, key: str, project_bytes: bytes, settings: dict, started) -> None:
    """Save ``project_bytes`` under ``key`` until killed."""
    store = ProjectStore(folder)
    started.set()
    while True:
        store.save(key, project_bytes, settings)
