"""Server memory per session: what each person on a shared server costs, and what comes back when they leave.

The real app runs in its own process (CPU). People arrive in waves until 5, 10, 20 and 40 sessions are open; each
opens a 100-example project (224-pixel JPEG thumbnails cut from real photos, 1280-d embeddings: what three classes
recorded from a webcam hold), adds a class, classifies a photo (map, grid and neighbours are drawn) and reads the
review. After each wave the server's resident memory is read once it has settled.

* ``per_session_mb``: the slope of memory over sessions (least squares over the waves);
* ``project_mb``: what one project's examples hold (thumbnails and embeddings), the floor for that slope;
* ``after_idle_mb``: memory once the idle reaper has cleared every session (``TEACHABLE_SESSION_IDLE_SECONDS``),
  against the baseline before anyone arrived.

Writes benchmarks/results/session_memory.json (or the path given as the first argument).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_autosave import project_of  # noqa: E402
from serving import app_process  # noqa: E402

from teachable.webapp import SAMPLES  # noqa: E402

WAVES = (5, 10, 20, 40)
EXAMPLES = 100
IDLE_SECONDS = 45


def settled_rss_mb(process: psutil.Process, seconds: float = 4.0) -> float:
    time.sleep(seconds)
    return process.memory_info().rss / 2**20


def visit(url: str, index: int, project_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    client.predict(None, handle_file(str(project_path)), api_name="/open_project")
    client.predict(None, f"mine {index}", api_name="/add_class")
    client.predict(handle_file(str(SAMPLES / "coffee.jpg")), api_name="/classify")


def main(output: Path) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="session-memory-"))
    project = project_of(EXAMPLES)
    project_path = project.save(folder / "hundred.zip")
    project_mb = (sum(len(e.thumbnail) for e in project.examples) + project.embeddings.nbytes) / 2**20
    env = {**os.environ, "TEACHABLE_SESSION_IDLE_SECONDS": str(IDLE_SECONDS), "GRADIO_TEMP_DIR": str(folder / "g"),
           "TEACHABLE_DATA_DIR": str(folder / "data")}  # fmt: skip
    with app_process(env) as (url, process):
        server = psutil.Process(process.pid)
        visit(url, -1, project_path)  # every code path once
        time.sleep(IDLE_SECONDS + 20)
        baseline = settled_rss_mb(server)
        readings = {0: baseline}
        opened = 0
        with ThreadPoolExecutor(5) as pool:
            for wave in WAVES:
                list(pool.map(lambda i: visit(url, i, project_path), range(opened, wave)))
                opened = wave
                readings[wave] = settled_rss_mb(server)
                print(f"{wave} sessions: {readings[wave]:.0f} MB", flush=True)
        slope, _ = np.polyfit(list(readings), list(readings.values()), 1)
        deadline = time.monotonic() + IDLE_SECONDS + 90
        after_idle = readings[WAVES[-1]]
        while time.monotonic() < deadline:
            after_idle = settled_rss_mb(server, 5.0)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "examples_per_session": EXAMPLES,
        "project_mb": round(project_mb, 2),
        "rss_mb_by_sessions": {str(k): round(v, 1) for k, v in readings.items()},
        "per_session_mb": round(float(slope), 2),
        "per_session_over_project": round(float(slope) / project_mb, 2),
        "baseline_mb": round(baseline, 1),
        "after_idle_mb": round(after_idle, 1),
        "handed_back_share": round((readings[WAVES[-1]] - after_idle) / max(readings[WAVES[-1]] - baseline, 1e-9), 3),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "session_memory.json"
    print(json.dumps(main(target), indent=2))
