"""The one decorator for methods that run under their owner's re-entrant lock (``self.lock``)."""

from __future__ import annotations

import functools

__all__ = ["locked"]


def locked(method):
    """Run a method while holding ``self.lock`` (re-entrant, so locked methods may call each other, and a session's
    collaborators, which share its lock, may be called from the session's own locked methods)."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)

    return run
