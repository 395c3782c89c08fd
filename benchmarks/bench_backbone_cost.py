"""Per-frame forward time of each bundled backbone on the CPU (torch eager), to weigh against few-shot accuracy.

Usage: ``python benchmarks/bench_backbone_cost.py [--frames 40] [--threads 2] [--output DIR]``

For each of ``teachable.backbones.available_backbones()``: one prepared 224 x 224 frame (batch 1) read at ``pool``
only (what the app needs per frame), at the benchmark's taps (bench_fewshot.TAPS_BY_BACKBONE), and a batch of two
at ``pool`` (a frame and its mirror: the cost of querying with a left-right flip). Median and 90th percentile over
``--frames`` frames after a few warm-up frames.

The time of a forward pass does not depend on the weights' values, so a backbone whose pretrained weights are not
on this machine is timed with the same architecture and random weights (``weights`` says which); nothing is
downloaded. Writes ``backbone_cost.json`` and ``backbone_cost.md`` to ``--output`` (default benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fewshot import TAPS_BY_BACKBONE  # noqa: E402

WARMUP = 5


def random_state_dict(weights):
    """Freshly initialised weights for the architecture ``weights`` (a torchvision weights enum) belongs to."""
    from torchvision.models import googlenet, mobilenet_v3_large

    if "MobileNet" in type(weights).__name__:
        return mobilenet_v3_large().state_dict()
    return googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=True).state_dict()


def load(name: str):
    """(backbone on the CPU with torch, "pretrained" or "random (timing only)")."""
    from teachable import backbones

    try:
        return backbones.load_backbone(name, device="cpu", runtime="torch"), "pretrained"
    except backbones.WeightsNotFound:
        original = backbones._cached_torchvision_state_dict
        backbones._cached_torchvision_state_dict = random_state_dict
        try:
            return backbones.load_backbone(name, device="cpu", runtime="torch"), "random (timing only)"
        finally:
            backbones._cached_torchvision_state_dict = original


def timed(run, frames: int) -> dict:
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(frames):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    import torch

    from teachable.backbones import available_backbones

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    results = {}
    for name in available_backbones():
        backbone, weights = load(name)
        frame = rng.integers(0, 256, (1, backbone.input_size, backbone.input_size, 3), dtype=np.uint8)
        pair = np.concatenate([frame, frame[:, :, ::-1]])
        taps = list(TAPS_BY_BACKBONE[name])
        results[name] = {
            "weights": weights,
            "pool": timed(lambda: backbone.run(frame, ["pool"]), args.frames),
            "taps": timed(lambda: backbone.run(frame, taps), args.frames),
            "pool_with_mirror": timed(lambda: backbone.run(pair, ["pool"]), args.frames),
            "tap_names": taps,
        }
        print(name, weights, {k: round(v["median_ms"], 1) for k, v in results[name].items() if isinstance(v, dict)})
    meta = {
        "frames": args.frames,
        "threads": args.threads,
        "runtime": "torch eager, float32",
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "torch": torch.__version__,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "backbone_cost.json").write_text(json.dumps({"meta": meta, "backbones": results}, indent=1))
    lines = [
        "# Per-frame forward time of the bundled backbones (CPU)",
        "",
        f"torch eager, float32, {args.threads} threads, batch 1, {args.frames} frames after {WARMUP} warm-up; "
        "milliseconds, median (90th percentile). A backbone whose pretrained weights are missing here is timed "
        "with random weights of the same architecture (the time does not depend on the values). "
        f"Load average (1 min) at the end: {meta['load_average_1min_at_end']} (other work on the machine slows "
        "every row alike).",
        "",
        "| backbone | weights | pool | benchmark taps | frame + mirror (batch 2), pool |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = [f"{r[k]['median_ms']:.1f} ({r[k]['p90_ms']:.1f})" for k in ("pool", "taps", "pool_with_mirror")]
        lines.append(f"| {name} | {r['weights']} | " + " | ".join(cells) + " |")
    (args.output / "backbone_cost.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
