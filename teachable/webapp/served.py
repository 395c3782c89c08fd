"""Disk for the files the server keeps for people: uploads, saved projects and exported models, all in Gradio's file
folder. The folder has a cap for everyone together, checked before anything is written; each client's uploads have
a share of it; each page keeps at most one saved project and one export (a new one replaces the old, and the page's
files go when Gradio frees the page); and exports run a few at a time, one per person.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from ..session import SessionError
from ..settings import use_gradio_files_folder

__all__ = ["FileBudget", "UploadLimits", "ExportSlots", "keep_served", "remove_served", "files_folder", "served_files"]

UPLOAD_PATH = "/gradio_api/upload"
SCAN_SECONDS = 1.0
"""How long a measured folder size is reused before the folder is walked again."""


def _megabytes(size: float) -> str:
    return f"{size / 2**20:,.0f} MB"


class FileBudget:
    """The file folder's size against its cap (walked at most once a second; what is written meanwhile is added)."""

    def __init__(self, folder: Path, max_total_bytes: int) -> None:
        self.folder = Path(folder)
        self.max_total_bytes = int(max_total_bytes)
        self._lock = threading.Lock()
        self._measured: tuple[float, int] | None = None

    def used_bytes(self) -> int:
        with self._lock:
            now = time.monotonic()
            if self._measured is None or now - self._measured[0] > SCAN_SECONDS:
                self._measured = (now, _folder_bytes(self.folder))
            return self._measured[1]

    def room_for(self, size: int) -> bool:
        """Whether ``size`` more bytes fit; if so they are counted at once, before the next walk sees them."""
        used = self.used_bytes()
        with self._lock:
            if used + size > self.max_total_bytes:
                return False
            measured_at, measured = self._measured
            self._measured = (measured_at, measured + size)
        return True

    def reserve(self, size: int, what: str) -> None:
        """Raise a SessionError for the page unless ``size`` bytes of ``what`` fit in the folder."""
        if not self.room_for(size):
            raise SessionError(
                f"The server's space for files ({_megabytes(self.max_total_bytes)}) is full, so {what} cannot be "
                "made now; try again in a few minutes."
            )


def served_files(max_total_bytes: int) -> FileBudget:
    """Gradio's file folder, chosen now, and the one budget that counts it: made once where the server is
    prepared and handed to the page and to the upload limits, so the folder's cap is counted once.

    Gradio fixes its file cache when the Blocks are made and serves files only from there, so this comes first.
    A folder of our own (``GRADIO_TEMP_DIR`` when set) keeps the app's files apart and is cleaned by
    ``delete_cache``."""
    return FileBudget(use_gradio_files_folder(files_folder()), max_total_bytes)


def files_folder() -> Path:
    """The default folder Gradio serves files from: one per user of this computer, made private to them, so a
    second person's app on a shared machine does not meet a folder it cannot write to. If someone else already
    holds that name, a fresh private folder is used instead."""
    user = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    folder = Path(tempfile.gettempdir()) / f"teachable-gradio-{user}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.is_symlink() or (hasattr(os, "getuid") and folder.stat().st_uid != os.getuid()):
            raise PermissionError(f"{folder} belongs to someone else")
        return folder
    except OSError:
        return Path(tempfile.mkdtemp(prefix="teachable-gradio-"))


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue  # removed meanwhile
    return total


# ---------------------------------------------------------------------------------------------- uploads
class UploadLimits:
    """ASGI middleware in front of Gradio's upload route: an upload is refused, before its body is read, when it
    would take its client past ``per_client_bytes`` within ``window_seconds`` (the time files are kept), or the
    folder past its cap. The client is the address the connection comes from; a connection from this machine is
    a local reverse proxy (or a test), so there it is the last address in X-Forwarded-For, and without that header
    such an upload counts against the folder's cap only."""

    def __init__(self, app, budget: FileBudget, per_client_bytes: int, window_seconds: float) -> None:
        self.app = app
        self.budget = budget
        self.per_client_bytes = int(per_client_bytes)
        self.window_seconds = float(window_seconds)
        self._lock = threading.Lock()
        self._recent: dict[str, deque[tuple[float, int]]] = {}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith(UPLOAD_PATH):
            refusal = self.refusal(scope)
            if refusal is not None:
                status, message = refusal
                await _plain_response(send, status, message)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        headers = dict(scope.get("headers") or [])
        try:
            size = int(headers.get(b"content-length", b""))
        except ValueError:
            return 411, "An upload must say its length (Content-Length)."
        client = _client_of(scope, headers)
        if client is None:
            return None if self.budget.room_for(size) else (507, FULL)
        now = time.monotonic()
        with self._lock:
            recent = self._recent.setdefault(client, deque())
            while recent and now - recent[0][0] > self.window_seconds:
                recent.popleft()
            used = sum(part for _, part in recent)
            if used + size > self.per_client_bytes:
                minutes = self.window_seconds / 60
                return 429, (
                    f"You have uploaded {_megabytes(used)} in the last {minutes:g} minutes; each person may upload "
                    f"{_megabytes(self.per_client_bytes)} in that time. Try again later."
                )
            if not self.budget.room_for(size):
                return 507, FULL
            recent.append((now, size))
            for address in [a for a, parts in self._recent.items() if not parts]:
                del self._recent[address]  # forget clients with nothing in the window
        return None


FULL = "The server's space for uploads is full; try again in a few minutes."


def _client_of(scope, headers: dict) -> str | None:
    """Whose upload this is: the peer's address, or behind a proxy on this machine the address it forwards."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if peer not in ("127.0.0.1", "::1", "localhost"):
        return peer
    forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1").split(",")[-1].strip()
    return forwarded or None


async def _plain_response(send, status: int, message: str) -> None:
    body = message.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------------------------- saves and exports
def keep_served(page, kind: str, folder: Path | None) -> None:
    """Remove the page's file of ``kind`` ("project", "export") and remember ``folder`` (if any) as its new one."""
    previous = page.served_files.pop(kind, None)
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    if folder is not None:
        page.served_files[kind] = str(folder)


def remove_served(page) -> None:
    """Remove the files a page was served (Gradio calls this when it frees the page's state)."""
    if page is None:
        return
    for folder in page.served_files.values():
        shutil.rmtree(folder, ignore_errors=True)
    page.served_files.clear()


class ExportSlots:
    """At most ``at_once`` exports run at a time over all people, and a person has one at a time: a second click
    while theirs is waiting or running gets a message at once, so nobody waits behind more than one export per
    other person. Waiting costs no thread (an asyncio semaphore, which serves waiters in order), so waiting exports
    hold up no one else's requests."""

    def __init__(self, at_once: int) -> None:
        self.at_once = int(at_once)
        self._slots: asyncio.Semaphore | None = None
        self._owners: set[int] = set()

    async def run(self, owner: object, work: Callable[[], object]):
        """``work()`` in a worker thread once a slot is free; SessionError if ``owner`` already has one."""
        import anyio

        if id(owner) in self._owners:
            raise SessionError("Your export is still being made; it appears here when it is ready.")
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.at_once)  # made in the server's event loop, on first use
        self._owners.add(id(owner))
        try:
            async with self._slots:
                return await anyio.to_thread.run_sync(work)
        finally:
            self._owners.discard(id(owner))
