"""Keeping each person's project on the server's disk, so a reload, a closed tab or a restart loses nothing.

Each browser holds a random key (:func:`new_key`, 256 bits). The server keeps that browser's project in a
:class:`ProjectStore` folder under ``sha256(key)``, never under the key itself: listing the folder reveals no key,
and a key cannot be guessed. The key is the only credential; whoever has it gets the project back.

An :class:`Autosaver` saves in a background thread shortly after each change (``changed`` only marks a key dirty,
so it costs a few microseconds on the frame path), at most once per ``delay`` seconds per key, and prunes the
folder now and then: entries older than ``keep_hours`` (by their last save) are removed.

Disk is budgeted when a save is written, never by deleting someone's work: a save larger than a person's share
(``max_entry_bytes``), or one that would take the folder past its cap (``max_total_bytes``) once expired entries are
gone, is refused with a :class:`SaveRefused` whose message the page shows; the entry already stored stays as it was.

Stored file layout (``<sha256 hex>.autosave``)::

    teachable-autosave 1\\n
    {"saved_at": ..., "size": ..., "sha256": ..., "settings": {...}}\\n   one line of JSON
    <the project's .zip bytes, exactly "size" of them, whose SHA-256 is "sha256">

Two writers. Several tabs, or several app processes sharing the folder (for example on network storage), may save
the same key. Readers take no lock: every save writes a temporary file in the same folder, fsyncs it and renames it
over the entry (``os.replace``), so a reader sees the old file or the new one, never a mix, and a writer killed
mid-save leaves the previous version in place. Writers of one key are serialised by a POSIX record lock
(``fcntl.lockf``, which network file systems such as NFSv4 forward to the server) on one of 256 lock files, chosen
by the hash, plus a thread lock for writers in the same process. Under that lock a save is skipped when the entry
already holds a snapshot taken later than its own, so an older snapshot never overwrites a newer one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .atomic import TEMP_SUFFIX, fsync_folder, lock_exclusively, write_temporary
from .settings import read

__all__ = [
    "AutosaveSettings",
    "Autosaver",
    "PEOPLE_PER_CAP",
    "ProjectStore",
    "SaveRefused",
    "StoredEntry",
    "default_folder",
    "new_key",
    "restore_project",
    "valid_key",
]

log = logging.getLogger(__name__)

KEY_BYTES = 32
"""Random bytes in a key: 256 bits, written as 43 URL-safe base64 characters."""
KEY_LENGTH = 43
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
MAGIC = b"teachable-autosave 1\n"
ENTRY_SUFFIX = ".autosave"
CORRUPT_SUFFIX = ".corrupt"
LOCK_FOLDER = ".locks"
MAX_HEADER_BYTES = 256 * 1024
"""Longest header line (its settings included) that is read."""
STALE_TEMP_SECONDS = 600
"""A temporary file this old belongs to a save whose process died; prune removes it."""
CLOCK_TOLERANCE_SECONDS = 5.0
"""A stored ``saved_at`` further than this in the future comes from a clock that has since been set back; a
save overwrites it rather than waiting for the clock to catch up."""
MAX_TRACKED_KEYS = 10_000
"""Keys whose last save time an :class:`Autosaver` remembers (the least recently saved are forgotten)."""
PEOPLE_PER_CAP = 32
"""Unless set otherwise, each person may keep 1/32 of the folder's cap (64 MB of the default 2048 MB, about six
times a full 2,000-example project), so the cap holds at least 32 people's largest projects."""


class SaveRefused(Exception):
    """A save that the disk budget does not allow; the message says why, in the person's words."""


# --------------------------------------------------------------------------------------------------- keys
def new_key() -> str:
    """A fresh random key for one browser: 256 bits from the OS's secure generator, URL-safe base64."""
    return secrets.token_urlsafe(KEY_BYTES)


def valid_key(key: object) -> bool:
    """True for a string of exactly the shape :func:`new_key` makes (43 URL-safe base64 characters encoding 32
    bytes). Anything else (None, paths, ``..``, long or non-ASCII strings, other types) is False, so it restores
    nothing and never reaches the file system."""
    if not isinstance(key, str) or len(key) != KEY_LENGTH or not _KEY_SHAPE.fullmatch(key):
        return False
    try:
        raw = base64.urlsafe_b64decode(key + "=")
    except (binascii.Error, ValueError):
        return False
    # The last character carries 2 unused bits; only the canonical spelling of 32 bytes is accepted.
    return len(raw) == KEY_BYTES and base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == key


def key_digest(key: str) -> str:
    """The stored name of ``key``: its SHA-256 in hex. Also what log lines show instead of the key."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def default_folder() -> Path:
    """The per-user data folder's ``sessions`` folder (e.g. ``~/.local/share/teachable/sessions`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("teachable")) / "sessions"


# --------------------------------------------------------------------------------------------------- store
@dataclass(frozen=True)
class StoredEntry:
    """One file in the store's folder, as :meth:`ProjectStore.entries` lists it."""

    path: Path
    size: int
    mtime: float
    kind: str
    """"entry", "corrupt" (moved aside) or "temporary" (a save in progress, or one whose process died)."""


class ProjectStore:
    """Projects and their settings on disk, one file per key, named by the key's SHA-256."""

    def __init__(
        self,
        folder: str | Path,
        keep_hours: float = 72.0,
        max_total_bytes: int = 2048 * 2**20,
        max_entry_bytes: int | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.keep_hours = float(keep_hours)
        self.max_total_bytes = int(max_total_bytes)
        self.max_entry_bytes = int(max_entry_bytes or self.max_total_bytes // PEOPLE_PER_CAP)
        """One person's share: a save larger than this is refused."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.folder / LOCK_FOLDER).mkdir(exist_ok=True, mode=0o700)
        self._thread_locks = [threading.Lock() for _ in range(256)]
        self._budget_lock = threading.Lock()
        """Held from a save's budget check to its rename, so this process's saves never overrun the cap together."""

    def __repr__(self) -> str:
        return (
            f"ProjectStore({str(self.folder)!r}, keep_hours={self.keep_hours}, "
            f"max_total_bytes={self.max_total_bytes}, max_entry_bytes={self.max_entry_bytes})"
        )

    def path_of(self, key: str) -> Path:
        """Where ``key``'s project is kept (whether or not it exists). ``key`` must be valid."""
        if not valid_key(key):
            raise ValueError("not a valid autosave key")
        return self.folder / (key_digest(key) + ENTRY_SUFFIX)

    # ------------------------------------------------------------- writing
    def save(self, key: str, project_bytes: bytes, settings: Mapping, taken_at: float | None = None) -> bool:
        """Store ``project_bytes`` (a project's ``to_bytes()``) and ``settings`` (a JSON object) under ``key``.

        ``taken_at`` is when the snapshot was taken (default: now). Returns False, writing nothing, when the entry
        already holds a snapshot taken later. Raises :class:`SaveRefused` (writing nothing, the stored entry left
        as it was) when the save is over one person's share or would take the folder past its cap; ValueError for
        an invalid key or settings that are not a JSON object, OSError when the disk refuses."""
        path = self.path_of(key)
        taken_at = time.time() if taken_at is None else float(taken_at)
        header = _header(project_bytes, settings, taken_at)
        with self._budget_lock:
            self._check_budget(path, len(MAGIC) + len(header) + len(project_bytes))
            return self._write(path, (MAGIC, header, project_bytes), taken_at)

    def _check_budget(self, path: Path, size: int) -> None:
        """Raise SaveRefused unless ``size`` bytes may replace ``path``'s entry. Expired entries are removed first
        when the folder is full; nobody's live entry ever is."""
        if size > self.max_entry_bytes:
            raise SaveRefused(
                f"Not saved on the server: your project takes {_megabytes(size)}, and each person may keep "
                f"{_megabytes(self.max_entry_bytes)} here. Use Save project to keep it as a file."
            )

        def total_after() -> int:
            return sum(entry.size for entry in self.entries() if entry.path != path) + size

        if total_after() > self.max_total_bytes and (not self.prune() or total_after() > self.max_total_bytes):
            raise SaveRefused(
                f"Not saved on the server: its space for saved work ({_megabytes(self.max_total_bytes)}) is full. "
                "Use Save project to keep your work as a file."
            )

    def _write(self, path: Path, parts: tuple[bytes, ...], taken_at: float) -> bool:
        temporary = self._write_temporary(path, parts)
        try:
            with self._locked(path):
                stored_at = _stored_time(path)
                if stored_at is not None and taken_at < stored_at <= time.time() + CLOCK_TOLERANCE_SECONDS:
                    log.info("Autosave %s: a newer snapshot is already stored; this one is dropped.", path.stem[:12])
                    return False
                os.replace(temporary, path)
                temporary = None
                fsync_folder(self.folder)
                return True
        finally:
            if temporary is not None:
                _unlink(temporary)

    def _write_temporary(self, path: Path, parts: tuple[bytes, ...]) -> Path:
        """A fsynced temporary file beside ``path`` holding ``parts``; its name holds the digest, not the key."""
        return write_temporary(self.folder, f".{path.stem}.", parts)

    def delete(self, key: object) -> None:
        """Forget ``key``'s project (for "Start over"). An invalid or unknown key does nothing."""
        if not valid_key(key):
            return
        path = self.path_of(key)
        with self._locked(path):
            _unlink(path)

    # ------------------------------------------------------------- reading
    def load(self, key: object) -> tuple[bytes, dict] | None:
        """``(project_bytes, settings)`` stored under ``key``, or None when there is none.

        An invalid key is None without touching the file system. A stored file that fails its checks (truncated,
        altered, not this format) is None too: it is logged and moved aside as ``<digest>.corrupt``."""
        if not valid_key(key):
            return None
        path = self.path_of(key)
        try:
            with open(path, "rb") as handle:
                identity = os.fstat(handle.fileno())
                data = handle.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("Autosave %s could not be read: %s", path.stem[:12], error)
            return None
        try:
            _, project_bytes, settings = _parse(data)
        except ValueError as error:
            log.warning("Autosave %s is damaged (%s); it is moved aside and nothing is restored.", path.stem[:12], error)
            self._move_aside(path, identity)
            return None
        return project_bytes, settings

    def saved_at(self, key: object) -> float | None:
        """When the snapshot stored under ``key`` was taken (seconds since the epoch), or None."""
        return _stored_time(self.path_of(key)) if valid_key(key) else None

    def quarantine(self, key: object, reason: str = "refused") -> None:
        """Move ``key``'s entry aside (e.g. when its project bytes do not load), so it is not offered again."""
        if not valid_key(key):
            return
        path = self.path_of(key)
        try:
            identity = os.stat(path)
        except OSError:
            return
        log.warning("Autosave %s %s; it is moved aside.", path.stem[:12], reason)
        self._move_aside(path, identity)

    def _move_aside(self, path: Path, identity: os.stat_result) -> None:
        """Rename ``path`` to ``<digest>.corrupt``, unless a writer has replaced it since it was read."""
        try:
            with self._locked(path):
                now = os.stat(path)
                if (now.st_ino, now.st_mtime_ns) == (identity.st_ino, identity.st_mtime_ns):
                    os.replace(path, path.with_suffix(CORRUPT_SUFFIX))
        except OSError as error:
            log.warning("Autosave %s could not be moved aside: %s", path.stem[:12], error)

    # ------------------------------------------------------------- pruning
    def entries(self) -> list[StoredEntry]:
        """Every file in the folder (lock files aside), oldest first."""
        found = []
        with os.scandir(self.folder) as listing:
            for item in listing:
                kind = _kind_of(item.name)
                if kind is None or not item.is_file(follow_symlinks=False):
                    continue
                try:
                    info = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed meanwhile
                found.append(StoredEntry(Path(item.path), info.st_size, info.st_mtime, kind))
        return sorted(found, key=lambda entry: entry.mtime)

    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.entries())

    def prune(self, now: float | None = None) -> int:
        """Remove entries last saved more than ``keep_hours`` before ``now`` and the temporaries of dead saves.
        Nothing younger is ever removed, however full the folder: the cap is kept by refusing saves instead
        (:meth:`save`). Returns how many files were removed."""
        now = time.time() if now is None else now
        removed = 0
        total = 0
        for entry in self.entries():
            limit = STALE_TEMP_SECONDS if entry.kind == "temporary" else self.keep_hours * 3600
            if now - entry.mtime > limit and self._remove(entry, newer_than=now - limit):
                removed += 1
            else:
                total += entry.size
        if removed:
            log.info("Autosave folder pruned: %d files removed, %.1f MB kept.", removed, total / 2**20)
        return removed

    def _remove(self, entry: StoredEntry, newer_than: float) -> bool:
        """Delete ``entry`` unless it was saved again after ``newer_than``; True when it is gone."""
        try:
            with self._locked(entry.path):
                if os.stat(entry.path).st_mtime > newer_than:
                    return False
                entry.path.unlink()
                return True
        except FileNotFoundError:
            return True
        except OSError as error:
            log.warning("Autosave %s could not be removed: %s", entry.path.name[:12], error)
            return False

    # ------------------------------------------------------------- locking
    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """Hold the lock of ``path``'s stripe: a thread lock, then a POSIX lock shared with other processes."""
        stripe = _stripe_of(path.name)
        with self._thread_locks[stripe]:
            lock_path = self.folder / LOCK_FOLDER / f"{stripe:02x}.lock"
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                lock_exclusively(descriptor)
                yield
            finally:
                os.close(descriptor)  # closing releases the lock


def _stripe_of(name: str) -> int:
    """Which of the 256 lock files guards a file: the first byte of its digest (names start with it, after an
    optional dot for temporaries)."""
    try:
        return int(name.lstrip(".")[:2], 16)
    except ValueError:
        return 0


def _kind_of(name: str) -> str | None:
    if name.startswith(".") and name.endswith(TEMP_SUFFIX):
        return "temporary"
    if name.endswith(ENTRY_SUFFIX):
        return "entry"
    if name.endswith(CORRUPT_SUFFIX):
        return "corrupt"
    return None


def _header(project_bytes: bytes, settings: Mapping, taken_at: float) -> bytes:
    """The header line for a save, with ``settings`` checked to be a JSON object of at most the header's size."""
    if not isinstance(project_bytes, (bytes, bytearray, memoryview)):
        raise ValueError("project_bytes must be bytes")
    if not isinstance(settings, Mapping) or not all(isinstance(name, str) for name in settings):
        raise ValueError("settings must be a mapping with string keys")
    header = {
        "saved_at": taken_at,
        "size": len(project_bytes),
        "sha256": hashlib.sha256(project_bytes).hexdigest(),
        "settings": dict(settings),
    }
    line = json.dumps(header, allow_nan=False, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"
    if len(line) > MAX_HEADER_BYTES:
        raise ValueError(f"settings take {len(line):,} bytes as JSON; the limit is {MAX_HEADER_BYTES:,}")
    return line


def _parse(data: bytes) -> tuple[float, bytes, dict]:
    """``(saved_at, project_bytes, settings)`` from a stored file's bytes; ValueError says what is wrong."""
    if not data.startswith(MAGIC):
        raise ValueError("not an autosave file")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES)
    if end < 0:
        raise ValueError("no complete header")
    header = _read_header(data[len(MAGIC) : end])
    project_bytes = data[end + 1 :]
    if len(project_bytes) != header["size"]:
        raise ValueError(f"holds {len(project_bytes):,} project bytes, not {header['size']:,}")
    if hashlib.sha256(project_bytes).hexdigest() != header["sha256"]:
        raise ValueError("checksum mismatch")
    return header["saved_at"], project_bytes, header["settings"]


def _read_header(line: bytes) -> dict:
    """The header's JSON, with each field's type checked."""
    try:
        header = json.loads(line.decode("ascii"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"header is not JSON: {error}") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    saved_at, size, digest = header.get("saved_at"), header.get("size"), header.get("sha256")
    if isinstance(saved_at, bool) or not isinstance(saved_at, (int, float)):
        raise ValueError("header has no saved_at time")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError("header has no size")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("header has no checksum")
    if not isinstance(header.get("settings"), dict):
        raise ValueError("settings are not a JSON object")
    return header


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _stored_time(path: Path) -> float | None:
    """The ``saved_at`` in ``path``'s header, or None when it is missing or unreadable."""
    try:
        with open(path, "rb") as handle:
            if handle.read(len(MAGIC)) != MAGIC:
                return None
            line = handle.readline(MAX_HEADER_BYTES)
    except OSError:
        return None
    try:
        return float(_read_header(line.rstrip(b"\n"))["saved_at"])
    except ValueError:
        return None


def _megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB"


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------------------------------- autosaver
Snapshot = Callable[[], "tuple[bytes, Mapping] | None"]
"""Returns ``(project_bytes, settings)`` to save, or None when there is nothing to save (any more)."""


@dataclass
class _Dirty:
    snapshot: Snapshot
    due: float
    """``time.monotonic()`` at which the worker saves it."""


class Autosaver:
    """Debounced background saving of many keys into one :class:`ProjectStore`.

    ``changed(key, snapshot)`` marks ``key`` dirty. One worker thread saves it ``delay`` seconds after it first
    became dirty, calling ``snapshot`` then (from the worker thread, so it must be safe to call there), so changes
    within that time make one save and a key is saved at most once per ``delay``. The worker also prunes the store
    every ``prune_every`` seconds. Errors are logged, never raised into callers.
    """

    def __init__(self, store: ProjectStore, delay: float = 2.0, prune_every: float = 600.0) -> None:
        self.store = store
        self.delay = float(delay)
        self.prune_every = float(prune_every)
        self._condition = threading.Condition()
        self._dirty: dict[str, _Dirty] = {}
        self._saving: dict[str, int] = {}
        self._last_saved: OrderedDict[str, float] = OrderedDict()
        self._refused: OrderedDict[str, str] = OrderedDict()
        """Keys whose latest save the disk budget refused, with the reason to show."""
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="teachable-autosave", daemon=True)
        self._thread.start()

    def __enter__(self) -> "Autosaver":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------- what callers use
    def changed(self, key: str, snapshot: Snapshot) -> None:
        """Mark ``key`` as changed; ``snapshot`` is called when it is saved. Cheap enough to call on every edit."""
        with self._condition:
            entry = self._dirty.get(key)
            if entry is not None:
                entry.snapshot = snapshot
                return
            if self._closed or not valid_key(key):
                log.debug("Autosave ignores a change: %s.", "closed" if self._closed else "invalid key")
                return
            self._dirty[key] = _Dirty(snapshot, time.monotonic() + self.delay)
            self._condition.notify_all()

    def pending(self, key: str) -> bool:
        """True while ``key`` has changes not yet on disk (waiting for its save, or being saved)."""
        with self._condition:
            return key in self._dirty or key in self._saving

    def last_saved(self, key: str) -> float | None:
        """When ``key`` was last saved by this autosaver (seconds since the epoch), or None."""
        with self._condition:
            return self._last_saved.get(key)

    def refusal(self, key: str) -> str | None:
        """Why ``key``'s latest save was refused (see :class:`SaveRefused`), or None when it was not."""
        with self._condition:
            return self._refused.get(key)

    def status(self, key: str) -> str:
        """A short line for the page: "Saving…", "Saved at 14:03:12" (the server's local time), why the latest
        save was refused ("Not saved on the server: ...") or ""."""
        with self._condition:
            if key in self._dirty or key in self._saving:
                return "Saving…"
            if key in self._refused:
                return self._refused[key]
            saved = self._last_saved.get(key)
        return time.strftime("Saved at %H:%M:%S", time.localtime(saved)) if saved is not None else ""

    def discard(self, key: str) -> None:
        """Drop ``key``'s pending changes and its stored copy (for "Start over"), after any save in progress."""
        with self._condition:
            self._dirty.pop(key, None)
            while key in self._saving:
                self._condition.wait()
            self._last_saved.pop(key, None)
            self._refused.pop(key, None)
        try:
            self.store.delete(key)
        except OSError as error:
            log.warning("Autosave could not delete a stored project: %s", error)

    def flush(self) -> None:
        """Save every dirty key now, in the calling thread, and wait for saves in progress; for shutdown and tests."""
        with self._condition:
            batch = self._take(list(self._dirty))
        self._save_all(batch)
        with self._condition:
            while self._saving:
                self._condition.wait()

    def close(self) -> None:
        """Stop the worker and save what is still dirty. Later changes are ignored. Safe to call twice."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()

    # ------------------------------------------------------------- the worker
    def _run(self) -> None:
        next_prune = time.monotonic() + self.prune_every
        while True:
            with self._condition:
                due = self._wait_for_work(next_prune)
                if due is None:
                    return
                batch = self._take(due)
            self._save_all(batch)
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + self.prune_every
                self._prune()

    def _wait_for_work(self, next_prune: float) -> list[str] | None:
        """Keys whose save is due (possibly none, when pruning is), or None once closed. Holds the condition."""
        while not self._closed:
            now = time.monotonic()
            due = [key for key, entry in self._dirty.items() if entry.due <= now]
            if due or now >= next_prune:
                return due
            wake = min([next_prune, *(entry.due for entry in self._dirty.values())])
            self._condition.wait(wake - now)
        return None

    def _take(self, keys: list[str]) -> list[tuple[str, Snapshot]]:
        """Move ``keys`` from dirty to saving. Holds the condition."""
        batch = []
        for key in keys:
            entry = self._dirty.pop(key, None)
            if entry is not None:
                self._saving[key] = self._saving.get(key, 0) + 1
                batch.append((key, entry.snapshot))
        return batch

    def _save_all(self, batch: list[tuple[str, Snapshot]]) -> None:
        for key, snapshot in batch:
            saved = self._save_one(key, snapshot)
            with self._condition:
                count = self._saving.pop(key) - 1
                if count:
                    self._saving[key] = count
                if saved is not None:
                    self._remember(key, saved)
                self._condition.notify_all()

    def _save_one(self, key: str, snapshot: Snapshot) -> float | None:
        """Take ``snapshot`` and store it; the time it was taken, or None when nothing was saved."""
        label = key_digest(key)[:12]
        try:
            taken_at = time.time()
            taken = snapshot()
            if taken is None:
                return None
            project_bytes, settings = taken
            self.store.save(key, project_bytes, settings, taken_at=taken_at)
            self._note_refusal(key, None)
            return taken_at
        except SaveRefused as refused:
            log.info("Autosave %s refused: %s", label, refused)
            self._note_refusal(key, str(refused))
            return None
        except Exception as error:  # a failed save must never reach the page or stop the worker
            log.warning("Autosave %s failed: %s: %s", label, type(error).__name__, error, exc_info=True)
            return None

    def _note_refusal(self, key: str, reason: str | None) -> None:
        with self._condition:
            if reason is None:
                self._refused.pop(key, None)
                return
            self._refused[key] = reason
            self._refused.move_to_end(key)
            while len(self._refused) > MAX_TRACKED_KEYS:
                self._refused.popitem(last=False)

    def _remember(self, key: str, saved: float) -> None:
        self._last_saved[key] = saved
        self._last_saved.move_to_end(key)
        while len(self._last_saved) > MAX_TRACKED_KEYS:
            self._last_saved.popitem(last=False)

    def _prune(self) -> None:
        try:
            self.store.prune()
        except Exception as error:
            log.warning("Autosave prune failed: %s: %s", type(error).__name__, error, exc_info=True)


# --------------------------------------------------------------------------------------------------- restoring
def restore_project(store: ProjectStore, key: object, backbone=None, **limits):
    """``(project, settings)`` stored under ``key``, or None when there is none or it cannot be used.

    ``limits`` (``max_examples``, ``max_classes``) go to :meth:`Project.load`. A project that does not load is
    moved aside and None is returned; one made by another backbone or tap is re-embedded from its thumbnails with
    ``backbone``, so the person's examples come back either way."""
    from .project import BackboneMismatch, Project, ProjectError

    stored = store.load(key)
    if stored is None:
        return None
    project_bytes, settings = stored
    try:
        return Project.load(project_bytes, backbone, **limits), settings
    except BackboneMismatch as mismatch:
        project = mismatch.project
    except ProjectError as error:
        store.quarantine(key, f"does not load ({error})")
        return None
    try:
        project.reembed(backbone)
    except Exception as error:
        log.warning("Autosave %s could not be re-embedded: %s", key_digest(key)[:12], error)
        return None
    return project, settings


# --------------------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class AutosaveSettings:
    """Autosave's settings, read once from the environment when the app is launched."""

    folder: Path
    """TEACHABLE_DATA_DIR: where projects are kept (default: the per-user data folder's ``sessions``)."""
    keep_hours: float = 72.0
    """TEACHABLE_KEEP_HOURS: a project not saved for this long is deleted."""
    max_total_bytes: int = 2048 * 2**20
    """TEACHABLE_DATA_MAX_MB: all saved projects together; a save that would pass it is refused (nothing stored is
    deleted to make room, except projects past ``keep_hours``)."""
    delay: float = 2.0
    """TEACHABLE_AUTOSAVE_DELAY: seconds from a change to its save (at most one save per key per delay)."""
    enabled: bool = True
    """TEACHABLE_AUTOSAVE: 0, off, false or no turn autosave off."""
    lasts_restarts: bool = True
    """False on a Hugging Face Space (``SPACE_ID`` set) whose projects are in its default folder: a Space's disk
    starts empty after every restart. TEACHABLE_DATA_DIR on a mounted volume keeps them."""
    max_person_bytes: int | None = None
    """TEACHABLE_DATA_PERSON_MB: one person's saved project (default: the cap / :data:`PEOPLE_PER_CAP`); a larger
    one is refused, and the page says so."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "AutosaveSettings":
        """Settings from the environment (teachable.settings reads and checks every variable)."""
        folder = read("TEACHABLE_DATA_DIR", environ)
        person_mb = read("TEACHABLE_DATA_PERSON_MB", environ)
        return cls(
            folder=folder or default_folder(),
            keep_hours=read("TEACHABLE_KEEP_HOURS", environ),
            max_total_bytes=int(read("TEACHABLE_DATA_MAX_MB", environ) * 2**20),
            max_person_bytes=int(person_mb * 2**20) if person_mb else None,
            delay=read("TEACHABLE_AUTOSAVE_DELAY", environ),
            enabled=read("TEACHABLE_AUTOSAVE", environ),
            lasts_restarts=folder is not None or read("SPACE_ID", environ) is None,
        )

    def store(self) -> ProjectStore:
        """The store these settings describe (its folder is made if missing)."""
        return ProjectStore(self.folder, self.keep_hours, self.max_total_bytes, self.max_person_bytes)

    def autosaver(self, prune_every: float = 600.0) -> Autosaver:
        """An :class:`Autosaver` on :meth:`store`, its worker started."""
        return Autosaver(self.store(), self.delay, prune_every)
