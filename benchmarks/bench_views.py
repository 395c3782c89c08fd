"""Per-frame cost of the live views, against the frame step without them, in the same run.

A session holds 240 examples (views of real photos, four classes). For each frame we time:
* the step with the views off (the baseline: prepare, forward to the embedding, kNN, smoothing);
* the step with the views on, in each grid mode (icons, factors, attribution): one forward also returns the grid
  tap, the frame is placed on the map, and the grid is drawn;
* drawing the map's moving point (SVG), and encoding the grid for the page.

Writes benchmarks/results/views.json (or the path given as the first argument).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import views  # noqa: E402

from teachable.backbones import load_backbone  # noqa: E402
from teachable.frames import encode_jpeg  # noqa: E402
from teachable.session import Session  # noqa: E402
from teachable.views import grid_html, map_live_html  # noqa: E402
from teachable.webapp import load_icons  # noqa: E402
from teachable.webapp.page import one_thread_for_small_math  # noqa: E402

FRAMES = 60


def stats(samples: list[float]) -> dict:
    return {"p50_ms": float(np.percentile(samples, 50)), "p95_ms": float(np.percentile(samples, 95))}


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1000, out


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "views.json"
    one_thread_for_small_math()  # as the app runs
    backbone = load_backbone(device="cpu")
    names = ["chelsea", "coffee", "rocket", "astronaut"]
    session = Session(backbone, tuple(names), icons=load_icons(backbone))
    for seed, name in enumerate(names):
        squares = [backbone.prepare(v) for v in views(getattr(skimage.data, name)(), 60, seed)]
        session.project.add_examples(name, backbone.embed(np.stack(squares)), [encode_jpeg(s) for s in squares])
    session.views.positions()
    session.map.wait()
    frames = [f for name in names for f in views(getattr(skimage.data, name)(), FRAMES // len(names), 99)]

    results: dict = {"examples": len(session.project), "frames": len(frames)}
    session.views.on = False
    for frame in frames[:5]:
        session.step(frame)
    results["step_views_off"] = stats([timed(lambda: session.step(f))[0] for f in frames])
    session.views.on = True
    # The step draws the grid in the session's mode, so each mode's step is timed in a loop of its own (one
    # mode's work, e.g. attribution's backward pass, does not disturb another's timing); then what the page
    # adds: the map's moving point as SVG and the grid encoded as JPEG.
    step_on, encode_ms, frame_results = {}, {}, []
    for mode in ("icons", "factors", "attribution"):
        session.views.set_grid_mode(mode)
        samples, frame_results = [], []
        for frame in frames:
            elapsed, result = timed(lambda: session.step(frame))
            samples.append(elapsed)
            frame_results.append(result)
        step_on[mode] = stats(samples)
        encode_ms[mode] = stats([timed(lambda: grid_html(r.views.grid))[0] for r in frame_results])
    results["step_views_on"] = step_on["icons"]
    results["step_views_on_by_mode"] = step_on
    positions = session.views.positions()
    map_ms = [timed(lambda: map_live_html(r, positions, list(r.views.trail), session.project))[0] for r in frame_results]
    results["map_point"] = stats(map_ms)
    results["grid"] = encode_ms
    base = results["step_views_off"]["p50_ms"]
    results["added_p50_ms"] = {
        mode: step_on[mode]["p50_ms"] - base + results["map_point"]["p50_ms"] + encode_ms[mode]["p50_ms"]
        for mode in step_on
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
