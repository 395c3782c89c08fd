"""A session's life on the server: freeing idle sessions and handing their memory back."""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
import weakref

from ..session import Session

__all__ = ["start_idle_reaper", "release", "return_memory"]


def start_idle_reaper(sessions: weakref.WeakSet, idle_seconds: float) -> threading.Thread:
    """Every few seconds, drop the examples of sessions idle for longer than ``idle_seconds``.

    Gradio's own ``time_to_live`` does this for open tabs, but keeps the state of a *closed* tab for an hour in
    case it reconnects; this bounds both.
    """

    def reap() -> None:
        trims_due = 0
        while True:
            time.sleep(max(1.0, min(idle_seconds / 4, 30.0)))
            if sum(session.clear_if_idle(idle_seconds) for session in list(sessions)):
                trims_due = 3  # now, and twice more: work queued for those sessions (map fits) frees memory later
            if trims_due:
                return_memory()
                trims_due -= 1

    thread = threading.Thread(target=reap, name="idle-session-reaper", daemon=True)
    thread.start()
    return thread


def release(session: Session | None) -> None:
    """Called by Gradio when it frees a session, just *before* it drops its reference: once it has, hand the
    memory of the session's examples back to the system."""
    del session
    threading.Timer(2.0, return_memory).start()


def return_memory() -> None:
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed small blocks for reuse otherwise
        except OSError:
            pass
