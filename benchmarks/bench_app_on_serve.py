"""Can Ray Serve host the app's replicas? The page's own protocol, against the app on its own and inside Ray Serve.

Usage: ``python benchmarks/bench_app_on_serve.py [OUTPUT] [--sessions 6] [--replicas 1]``

Each session does what a page does first (``bench_stream_load.StreamClient``): open its heartbeat, click "Load the
demo project" (a queued event answered over server-sent events), open the webcam stream and wait for three answers.
It is run against

* ``direct``: ``python app.py`` (Gradio's own server), the way app replicas run behind a sticky load balancer;
* ``serve``: the same page built in a Ray Serve replica by Ray's ``GradioServer`` (``ray.serve.gradio_integrations``)
  behind Serve's HTTP proxy, with ``--replicas`` replicas.

Writes, per setting, each session's outcome (``ok`` or the step that failed and why) and how long the sessions took
(default ``benchmarks/results/app_on_serve.json``). A step waits at most 20 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream_load import StreamClient, discover, make_frames  # noqa: E402
from serving import app_process, free_port  # noqa: E402

STEP_SECONDS = 20.0


async def page_session(url: str, frames) -> str:
    """One page: heartbeat, the demo button, the webcam stream until three answers; ``ok`` or what failed."""
    client = StreamClient(discover(url), frames)
    step = "heartbeat"
    try:
        await client.load_page()
        step = "load the demo (queued event)"
        await asyncio.wait_for(client.load_demo(), STEP_SECONDS)
        step = "open the webcam stream"
        await client.open(timeout=STEP_SECONDS)
        step = "answers to frames"
        deadline = time.monotonic() + STEP_SECONDS
        while len(client.outputs) < 3:  # a webcam sends a frame every 0.1 s; the server answers the newest
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(client.outputs)} of 3 answers; errors: {client.errors[-2:]}")
            client.send()
            await asyncio.sleep(0.1)
        return "ok"
    except Exception as error:  # noqa: BLE001 (the outcome is what this measures)
        return f"{step}: {type(error).__name__} {str(error)[:120]}".strip()
    finally:
        try:
            await asyncio.wait_for(client.close(timeout=5), 10)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 (closing a failed session may fail too)
            pass


def sessions(url: str, count: int) -> dict:
    frames = make_frames(8)

    async def together() -> list[str]:
        return await asyncio.gather(*(page_session(url, frames) for _ in range(count)))

    started = time.monotonic()
    outcomes = asyncio.run(together())
    return {"outcomes": outcomes, "ok": outcomes.count("ok"), "seconds": round(time.monotonic() - started, 1)}


def build_page():
    """The page as ``python app.py`` builds it (the shared backbone loaded in the replica), queue included."""
    from teachable.backbones import load_backbone
    from teachable.webapp.page import build_app

    demo = build_app(load_backbone("efficientnet_lite0", "cpu"))
    demo.queue(default_concurrency_limit=8)
    return demo


def on_serve(count: int, replicas: int) -> dict:
    import ray
    from ray import serve
    from ray.serve.gradio_integrations import GradioServer

    ray.init(num_cpus=max(2, replicas), include_dashboard=False, log_to_driver=False)
    try:
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        deployment = GradioServer.options(num_replicas=replicas, ray_actor_options={"num_cpus": 1})
        serve.run(deployment.bind(build_page), name="teachable-app", route_prefix="/")
        return {"replicas": replicas, **sessions(f"http://127.0.0.1:{port}/", count)}
    finally:
        serve.shutdown()
        ray.shutdown()


def direct(count: int) -> dict:
    env = {**os.environ, "GRADIO_TEMP_DIR": tempfile.mkdtemp(prefix="bench-app-direct-")}
    with app_process(env) as (url, _):
        return sessions(url, count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=Path(__file__).parent / "results" / "app_on_serve.json")
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args(argv)
    results = {
        "versions": {name: version(name) for name in ("ray", "gradio")},
        "step_timeout_s": STEP_SECONDS,
        "direct": direct(args.sessions),
        "serve": on_serve(args.sessions, args.replicas),
    }
    for setting in ("direct", "serve"):
        print(setting, json.dumps(results[setting]))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
