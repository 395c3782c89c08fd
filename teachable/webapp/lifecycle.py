"""A session's life on the server: the sessions kept by browser key, freeing idle ones (saved first) and handing
their memory back."""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

from ..session import Session

__all__ = ["SessionRegistry", "start_idle_reaper", "release", "return_memory"]


class SessionRegistry:
    """Browser key -> its live session, for the ``capacity`` most recently used keys.

    It holds its sessions itself, so Gradio dropping a session's state (its own least-recently-used cap, reached
    by anyone opening many pages) frees nothing: the page's next request finds the session again by its key. A
    session pushed out of here is handed to ``on_drop`` first (which saves it), so it comes back from disk.
    """

    def __init__(self, capacity: int, on_drop: Callable[[str, Session], None] | None = None) -> None:
        self.capacity = int(capacity)
        self.on_drop = on_drop
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def get(self, key: str) -> Session | None:
        with self._lock:
            session = self._sessions.get(key)
            if session is not None:
                self._sessions.move_to_end(key)
            return session

    def __setitem__(self, key: str, session: Session) -> None:
        with self._lock:
            self._sessions[key] = session
            self._sessions.move_to_end(key)
            dropped = [self._sessions.popitem(last=False) for _ in range(len(self._sessions) - self.capacity)]
        for old_key, old_session in dropped:
            if self.on_drop is not None:
                self.on_drop(old_key, old_session)

    def __len__(self) -> int:
        return len(self._sessions)

    def key_of(self, session: Session) -> str | None:
        with self._lock:
            return next((key for key, kept in self._sessions.items() if kept is session), None)


def start_idle_reaper(
    sessions: weakref.WeakSet, idle_seconds: float, save_first: Callable[[Session], None] | None = None
) -> threading.Thread:
    """Every few seconds, drop the examples of sessions idle for longer than ``idle_seconds``, each handed to
    ``save_first`` before (which saves it, so it comes back when its page is used again).

    Gradio's own ``time_to_live`` does this for open tabs, but keeps the state of a *closed* tab for an hour in
    case it reconnects; this bounds both.
    """

    def clear(session: Session) -> bool:
        idle = time.monotonic() - session.last_active > idle_seconds
        if idle and len(session.project) and save_first is not None:
            save_first(session)  # a session used again meanwhile is not cleared: clear_if_idle looks again
        return session.clear_if_idle(idle_seconds)

    def reap() -> None:
        trims_due = 0
        while True:
            time.sleep(max(1.0, min(idle_seconds / 4, 30.0)))
            if sum(clear(session) for session in list(sessions)):
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
