"""Every file the product writes is written whole or not at all.

``atomic_write`` writes a temporary file in the target's folder, fsyncs it, and renames it over the target
(``os.replace``), so a reader sees the old file or the new one, never a mix, and a crash or a full disk mid-write
leaves the old file as it was. The temporary's name starts with a dot and ends in ``.tmp``; a crash can leave one
behind, never a half-written target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["NEW_FILE_MODE", "TEMP_SUFFIX", "atomic_write", "fsync_folder", "lock_exclusively", "write_temporary"]

TEMP_SUFFIX = ".tmp"


def atomic_write(path: str | Path, data: bytes | str | Iterable[bytes], mode: int | None = None) -> Path:
    """Write ``data`` (bytes, text as UTF-8, or byte chunks) to ``path`` atomically and durably; return the path.

    ``mode`` sets the file's permissions (the temporary is created 0600, so without it the file keeps
    ``0o666 & ~umask`` like any new file).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "note.txt", "hello").read_text()
    'hello'
    >>> sorted(p.name for p in folder.iterdir())
    ['note.txt']
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview)) else data
    temporary = write_temporary(path.parent, f".{path.name}.", chunks)
    try:
        os.chmod(temporary, NEW_FILE_MODE if mode is None else mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)
    return path


def write_temporary(folder: str | Path, prefix: str, chunks: Iterable[bytes]) -> Path:
    """A new fsynced file in ``folder`` named ``prefix...`` + :data:`TEMP_SUFFIX`, holding ``chunks`` (created 0600;
    removed again when writing fails). The caller renames it into place, as :func:`atomic_write` does, or under a
    lock of its own, as autosave does."""
    descriptor, name = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def fsync_folder(folder: str | Path) -> None:
    """Make a rename inside ``folder`` durable (where the OS and file system allow it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open a folder; its renames are durable enough for us
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some network file systems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(descriptor)


def lock_exclusively(descriptor: int) -> None:
    """Wait until this process holds the exclusive lock of an open file; closing the file releases it.

    POSIX: ``fcntl.lockf``, which network file systems such as NFSv4 forward to the server, so processes on other
    machines sharing the folder wait too. Windows: ``msvcrt.locking`` on the first byte (it retries for 10 s, then
    raises OSError)."""
    try:
        import fcntl
    except ImportError:
        import msvcrt

        msvcrt.locking(descriptor, msvcrt.LK_LOCK, 1)
        return
    fcntl.lockf(descriptor, fcntl.LOCK_EX)


def _new_file_mode() -> int:
    """What ``open()`` gives a new file under this process's umask (read once, at import, before any thread)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


NEW_FILE_MODE = _new_file_mode()
