"""Load test: N people using one server at once.

The real app runs in its own process on loopback (`app.py`, CPU). Each client is a `gradio_client` session that
loads the demo project and then sends camera frames (JPEG, 640x480, alternating two real photos) through the
`classify` endpoint, the same per-frame function the webcam stream calls, at up to 10 frames a second, waiting
for each answer before sending the next. Per client: frames per second and latency (send to answer) p50/p95.
Server: CPU (% of one core) and memory, sampled every second. Runs are bounded in time and stop by themselves;
everything listens on 127.0.0.1 only.

Why not N headless browsers: on this 2-core machine N Chromium pages (each decoding a camera file, encoding
JPEGs and rendering the page at 10 fps) starve the server of CPU; at N=5 the server got half a core and the
figures measured the test rig (browser N=1: 10.0 fps, p50 60 ms; N=5: 1.2 fps). In a workshop each browser runs on
its own laptop, so light clients are the honest model of the server's load. bench_stream.py measures the page
itself with one browser.

N = 1, 5, 10, 20 for RUN_SECONDS each, then N = 10 for two minutes to check that memory does not grow.
Writes benchmarks/results/load.json (or the path given as the first argument).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import psutil
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from serving import app_process  # noqa: E402

RUN_SECONDS = 20
SOAK_SECONDS = 120
FRAME_INTERVAL = 0.1


def frames(folder: Path) -> list[Path]:
    paths = []
    for name in ("chelsea", "coffee"):
        frame = cv2.resize(getattr(skimage.data, name)(), (640, 480), interpolation=cv2.INTER_AREA)
        path = folder / f"{name}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        paths.append(path)
    return paths


class Sampler:
    """A process's CPU (% of one core) and memory, once a second, in a background thread."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.process.cpu_percent(None)
        start = time.monotonic()
        while not self._stop.wait(1.0):
            rss = self.process.memory_info().rss / 2**20
            self.samples.append((time.monotonic() - start, self.process.cpu_percent(None), rss))

    def __enter__(self) -> "Sampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def client(url: str, paths: list[Path], seconds: float, start_at: float) -> dict:
    from gradio_client import Client, handle_file

    session = Client(url, verbose=False)
    session.predict(None, api_name="/load_demo")
    latencies = []
    while time.monotonic() < start_at:
        time.sleep(0.01)
    end = start_at + seconds
    sent = 0
    while time.monotonic() < end:
        began = time.monotonic()
        session.predict(handle_file(str(paths[sent % len(paths)])), api_name="/classify")
        latencies.append((time.monotonic() - began) * 1000)
        sent += 1
        time.sleep(max(0.0, FRAME_INTERVAL - (time.monotonic() - began)))
    return {
        "fps": len(latencies) / seconds,
        "latency_p50_ms": float(np.percentile(latencies, 50)),
        "latency_p95_ms": float(np.percentile(latencies, 95)),
    }


def fleet_figures(clients: int, seconds: float, per_client: list[dict], fps: list[float], memory: list) -> dict:
    """What every load run reports: its size, per-client figures, frame rates and fairness, server memory."""
    return {
        "clients": clients,
        "seconds": seconds,
        "per_client": per_client,
        "fps_mean": float(np.mean(fps)),
        "fps_total": float(np.sum(fps)),
        "fps_min_over_max": float(min(fps) / max(fps)) if max(fps) else 0.0,
        "server_rss_mb": {"start": memory[0], "end": memory[-1], "max": max(memory)} if memory else None,
    }


def run(url: str, server: psutil.Process, paths: list[Path], clients: int, seconds: float) -> dict:
    start_at = time.monotonic() + 5 + clients * 0.5  # every client has loaded the demo before the clock starts
    with ThreadPoolExecutor(clients) as pool, Sampler(server) as sampler:
        per_client = list(pool.map(lambda _: client(url, paths, seconds, start_at), range(clients)))
    fps = [c["fps"] for c in per_client]
    measured = [(t, c, m) for t, c, m in sampler.samples]
    memory = [m for _, _, m in measured]
    return {
        **fleet_figures(clients, seconds, per_client, fps, memory),
        "latency_p50_median_ms": float(np.median([c["latency_p50_ms"] for c in per_client])),
        "latency_p95_max_ms": float(max(c["latency_p95_ms"] for c in per_client)),
        "server_cpu_percent_mean": float(np.mean([c for _, c, _ in measured])),
        "server_samples": measured,
    }


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "load.json"
    paths = frames(Path(tempfile.mkdtemp()))
    env = {**os.environ, "GRADIO_TEMP_DIR": tempfile.mkdtemp()}
    with app_process(env) as (url, app):
        server = psutil.Process(app.pid)
        results: dict = {"frame_interval_s": FRAME_INTERVAL, "runs": []}
        for clients in (1, 5, 10, 20):
            outcome = run(url, server, paths, clients, RUN_SECONDS)
            results["runs"].append(outcome)
            print(clients, {k: v for k, v in outcome.items() if k not in ("per_client", "server_samples")}, flush=True)
        soak = run(url, server, paths, 10, SOAK_SECONDS)
        times = np.array([t for t, _, _ in soak["server_samples"]])
        memory = np.array([m for _, _, m in soak["server_samples"]])
        half = len(memory) // 2
        soak["rss_slope_mb_per_minute"] = float(np.polyfit(times, memory, 1)[0] * 60)
        soak["rss_second_half_minus_first_half_mb"] = float(memory[half:].mean() - memory[:half].mean())
        results["soak"] = soak
        print("soak", {k: v for k, v in soak.items() if k not in ("per_client", "server_samples")}, flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
