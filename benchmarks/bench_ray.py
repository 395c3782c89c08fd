"""Live frames through Ray Serve against local inference, in one run: N = 1, 5, 10 and 20 streaming pages.

Usage: ``python benchmarks/bench_ray.py [OUTPUT] [--seconds 12] [--clients 1,5,10,20] [--replicas 1]``

For each inference setting the real app is started in a process of its own and N clients stream to it over
Gradio's streaming protocol exactly as ``bench_stream_load.py`` does (same frames, same calibration, same figures):
answers per second, latency p50/p95 and the fraction of frames skipped (overwritten by a newer one before the server
took them). ``local`` runs the backbone in the app process (``TEACHABLE_INFERENCE=local``); ``ray`` starts a local
Ray cluster in this process, deploys the backbone (``--replicas`` replicas of one CPU each) and starts the app with
``TEACHABLE_INFERENCE=ray`` and ``RAY_ADDRESS``. For Ray it also records the replicas' frames per forward pass (how
much ``@serve.batch`` gathered) and the bytes a frame costs on the wire (JPEG crop in, float16 taps out) against the
raw crop and float32 taps. Writes JSON (default ``benchmarks/results/ray.json``) and prints the comparison.

Everything shares one machine here, so Ray's own processes (its controller, the replica) compete with the app and
the clients for the same cores: the figures say what the engine costs, not what a cluster of GPUs gives.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream_load import CLIENTS, SECONDS, VARIANTS, WARMUP, calibrate, discover, make_frames, run  # noqa: E402
from serving import app_process  # noqa: E402

SETTINGS = ("local", "ray")
SUMMARY_KEYS = (
    "fps_mean", "fps_total", "latency_p50_ms", "latency_p95_ms", "dropped_fraction_mean", "wrong_labels",
    "post_failures", "server_cpu_percent_mean", "other_cpu_percent",
)  # fmt: skip
TAPS = ("blocks.4", "pool")
"""What a frame of the app asks for: the activation grid's tap and the embedding."""


def wire_bytes() -> dict:
    """Bytes one frame costs each way: the JPEG crop a replica gets and its float16 taps, against raw arrays."""
    import skimage.data

    from teachable.backbones import load_backbone
    from teachable.frames import encode_jpeg
    from teachable.runners.ray import JPEG_QUALITY

    backbone = load_backbone("efficientnet_lite0", "cpu", runtime="torch")
    square = backbone.prepare(skimage.data.chelsea())
    taps = backbone.run(square[None], list(TAPS))
    taps_values = sum(value.numel() for value in taps.values())
    return {
        "crop_raw": int(square.nbytes),
        "crop_jpeg": len(encode_jpeg(square, JPEG_QUALITY)),
        "taps_float32": int(taps_values * 4),
        "taps_float16": int(taps_values * 2),
    }


def start_ray(replicas: int) -> tuple[str, object]:
    import ray

    from teachable.runners.ray import RayServeSettings, deploy

    ray.init(num_cpus=max(2, replicas), include_dashboard=False, log_to_driver=False)
    settings = RayServeSettings(min_replicas=replicas, max_replicas=replicas, replica_cpus=1.0)
    handle = deploy("efficientnet_lite0", settings)
    return ray.get_runtime_context().gcs_address, handle


def replica_batches(handle, calls: int = 12) -> dict:
    answers = {a["actor"]: a for a in (handle.describe.remote().result(timeout_s=60) for _ in range(calls))}
    sizes = [size for answer in answers.values() for size in answer["batch_sizes"]]
    return {
        "replicas_seen": len(answers),
        "forward_passes": len(sizes),
        "frames_per_pass_mean": float(np.mean(sizes)) if sizes else None,
        "frames_per_pass_max": max(sizes) if sizes else None,
    }


def measure(setting: str, args: argparse.Namespace, frames) -> dict:
    address, handle = start_ray(args.replicas) if setting == "ray" else (None, None)
    # After Ray started: the app inherits the cluster's authentication mode (RAY_AUTH_MODE) from this process.
    env = {**os.environ, "GRADIO_TEMP_DIR": tempfile.mkdtemp(prefix=f"bench-ray-{setting}-")}
    env["TEACHABLE_INFERENCE"] = setting
    if address:
        env["RAY_ADDRESS"] = address
    outcome: dict = {"runs": []}
    try:
        with app_process(env, log=Path(env["GRADIO_TEMP_DIR"]) / "app.log") as (url, app):
            endpoints = discover(url)
            table = asyncio.run(calibrate(endpoints, frames))
            for clients in args.clients:
                figures = run(
                    endpoints, frames, table, psutil.Process(app.pid), clients, args.warmup, args.seconds,
                    endpoints.stream_every,
                )  # fmt: skip
                figures.pop("server_samples")
                figures.pop("per_client")
                outcome["runs"].append(figures)
                print(setting, json.dumps({k: figures[k] for k in ("clients", *SUMMARY_KEYS)}), flush=True)
        if handle is not None:
            outcome["replicas"] = replica_batches(handle)
    finally:
        if setting == "ray":
            import ray
            from ray import serve

            serve.shutdown()
            ray.shutdown()
    return outcome


def comparison(results: dict) -> list[dict]:
    rows = []
    for local, remote in zip(results["local"]["runs"], results["ray"]["runs"]):
        rows.append(
            {
                "clients": local["clients"],
                "fps_total_ray_over_local": remote["fps_total"] / local["fps_total"] if local["fps_total"] else None,
                "latency_p50_ray_over_local": remote["latency_p50_ms"] / local["latency_p50_ms"],
                "latency_p95_ray_over_local": remote["latency_p95_ms"] / local["latency_p95_ms"],
                "skipped_local": local["dropped_fraction_mean"],
                "skipped_ray": remote["dropped_fraction_mean"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=Path(__file__).parent / "results" / "ray.json")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="measured seconds per N")
    parser.add_argument("--warmup", type=float, default=WARMUP, help="unmeasured seconds of streaming first")
    parser.add_argument("--clients", type=lambda text: [int(n) for n in text.split(",")], default=list(CLIENTS))
    parser.add_argument("--replicas", type=int, default=1, help="backbone replicas on the local Ray cluster")
    args = parser.parse_args(argv)

    frames = make_frames(VARIANTS)
    started = time.monotonic()
    results: dict = {
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "torch": version("torch"),
            "gradio": version("gradio"),
            "ray": version("ray"),
        },
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "replicas": args.replicas,
        "wire_bytes_per_frame": wire_bytes(),
    }
    for setting in SETTINGS:
        results[setting] = measure(setting, args, frames)
    results["ray_over_local"] = comparison(results)
    results["total_s"] = time.monotonic() - started
    for row in results["ray_over_local"]:
        print(json.dumps(row))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))
    print(f"Wrote {args.output} in {results['total_s']:.0f} s")


if __name__ == "__main__":
    main()
