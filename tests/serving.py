"""Serving the app for tests and benchmarks: a free loopback port, and the real app in a process of its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def app_process(
    env: dict[str, str],
    timeout: float = 180,
    port: int | None = None,
    log: Path | None = None,
    command: list[str] | None = None,
    cwd: Path = ROOT,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `python app.py` (or ``command``, which gets ``--port`` and ``--device cpu`` added) in ``cwd`` on a
    loopback port (a free one by default), wait until it answers, and stop it afterwards (if it is still running).
    ``log``: a file for its output (default: discarded)."""
    port = port or free_port()
    output = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [*(command or [sys.executable, "app.py"]), "--port", str(port), "--device", "cpu"],
        cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                said = log.read_text(errors="replace")[-2000:] if log else ""
                raise RuntimeError(f"the app exited before it answered. {said}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer within {timeout:.0f} s")
            time.sleep(1)
        yield url, process
    finally:
        if process.poll() is None:  # the whole group: a wrapper (strace) and the app under it
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        if log:
            output.close()
