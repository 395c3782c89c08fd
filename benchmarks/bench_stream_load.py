"""Load test over Gradio's streaming protocol: N webcam pages streaming to one server, open loop.

`bench_load.py` calls the non-streaming ``classify`` endpoint and waits for every answer, so its latency grows
with N. A browser does not wait: the webcam posts a frame every ``stream_every`` seconds, and the server keeps only
the newest one. This benchmark's clients send the stream's requests as the page does (same endpoints, same JSON),
to show what a workshop gets: under load each page gets fewer answers per second, and each answer stays fresh.
Left out: the page's own loading (HTML, assets, ``/config``, its ``demo.load`` event) and the two ``.then`` steps
after "Load the demo project" (layers panel, evaluation), none of which touch the frame path.

The protocol, as Gradio 6.31 does it (`gradio/routes.py`, `gradio/queueing.py`, and the page's JS in
`gradio/templates/frontend/assets`: `index-*.js` for the client, `Blocks-*.js` for the event loop, the Image
component's `Index-*.js` for the webcam). All paths are under ``/gradio_api``; ``H`` is the page's session hash.

1. On load the page opens ``GET /heartbeat/H`` (SSE, "ALIVE" every 15 s; the config has ``connect_heartbeat``).
   Closing it marks the session's state closed and closes its streams.
2. "Load the demo project" is a click: ``POST /queue/join?`` with ``{"data": [null, null], "event_data": null,
   "fn_index": <dep id>, "trigger_id": <button id>, "session_hash": H}`` -> ``{"event_id": E}``, then
   ``GET /queue/data?session_hash=H`` (SSE): estimation, process_starts, process_completed, close_stream.
3. The webcam grabs its canvas as ``toDataURL("image/jpeg")`` (quality 0.92) and dispatches a ``stream`` event
   whose value and event data are ``{"url": "data:image/jpeg;base64,..."}`` and ``{"value": {"url": ...},
   "is_value_data": true}``: every request carries the JPEG twice. A gr.State input is sent as ``null``.
4. The first frame joins the queue like a click: ``POST /queue/join?`` with ``{"data": [{"url": ...}, null],
   "event_data": {...}, "fn_index": <stream dep>, "trigger_id": <camera id>, "session_hash": H}``; then the SSE as
   above. Until ``process_starts`` arrives the page's stream state is "waiting" and the webcam sends nothing.
5. Then, every ``stream_every`` seconds (a ``setInterval``; no waiting for answers), ``POST /stream/E`` with
   ``{"fn_index": ..., "data": [...], "event_data": {...}, "session_hash": H}`` -> ``{"msg": "success"}``. The server
   overwrites ``event.data`` and sets an ``asyncio.Event``: frames that arrive while the function runs replace each
   other, and the next call takes the newest.
6. Each answer comes as ``{"msg": "process_streaming", "output": {"data": [...full values...], ...}}`` on the SSE
   (no diffs for stream events).
7. Stopping the webcam sends ``POST /stream/E/close`` with ``{}``; the server answers process_completed (the
   last output again, or the call in flight) and close_stream.

Which frame produced an answer. The answer does not echo a counter, but its activation-grid image (the icon
mosaic over the darkened frame) is a pure function of the frame. So the clients cycle through ``VARIANTS``
distinct frames (even: chelsea, odd: coffee, each a different 640x480 crop of a slightly enlarged photo, JPEG
quality 92), and one calibration stream sends each variant once and waits for its answer, which maps the grid
image to the variant (all must differ). A grid that is not byte-identical to a calibrated one (a forward pass run
beside others on a busy CPU can differ in the last bits, which can flip a cell's icon) is matched to the nearest
calibrated grid if it is clearly the nearest ("inexact_grids" counts those). In a run, frame ``i`` is variant
``i % VARIANTS``, so an answer names its frame up to a multiple of ``VARIANTS``; three facts about the server pin
it down:

* the frame was sent before the call that made it began, so at least the answer's ``duration`` (which the server
  reports) before the answer arrived;
* each frame is used at most once (a frame's POST sets the data and wakes the loop once);
* "newest" means the last POST to *land*, and POSTs in flight on different connections can land out of order. So
  the frame is newer than the previous answer's frame, or else it was still being posted when that one was sent.

Answer k is attributed to the *earliest* unused frame of its variant within those bounds. The true frame is among
the candidates, so the latency is never underestimated; it is exact unless two candidates fit, which takes about
``VARIANTS`` frames (6.4 s at 10 fps) between answers ("ambiguous" counts those). A server that queued frames would show a
frame step (index progress per answer) of 1 and latency growing answer by answer.

Latency = answer received - the moment the client started posting the frame that produced it (JPEG encoding in
the browser is not included). Dropped = 1 - answers / frames sent in the window (each answer consumes exactly one
frame). Each client starts its webcam at a random phase of the interval, like independent laptops, and uses its
own connection pool of 6 (a browser's per-host limit; the two SSEs take two of them). All clients run in this
process on one asyncio loop; its CPU is reported next to the server's.

For each N in 1, 5, 10, 20: every client loads the demo project, streams ``--warmup`` seconds (not measured)
and then ``--seconds`` more (measured), then closes its stream and its heartbeat. Server CPU (% of one core) and
memory, and this process's CPU, are sampled every second over the measured window; the whole machine's CPU over the
window, less those two, shows whether anything else competed ("other_cpu_percent"). Everything is on 127.0.0.1 and stops by itself.

    python benchmarks/bench_stream_load.py [OUTPUT.json] [--seconds 12] [--warmup 3] [--clients 1,5,10,20]

Writes benchmarks/results/stream_load.json by default. ``BENCH_STREAM_SECONDS`` sets the default of --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import hashlib
import json
import os
import platform
import random
import re
import string
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import cv2
import httpx
import numpy as np
import orjson
import psutil
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import Sampler, fleet_figures  # noqa: E402
from serving import app_process  # noqa: E402

VARIANTS = 64
PHOTOS = ("chelsea", "coffee")
EXPECTED_LABEL = {"chelsea": "cat", "coffee": "coffee"}
"""The class the demo project gives each photo."""
JPEG_QUALITY = 92  # the browser's default for canvas.toDataURL("image/jpeg")
BROWSER_CONNECTIONS = 6
SECONDS = float(os.environ.get("BENCH_STREAM_SECONDS", 12))
WARMUP = 3.0
CLIENTS = (1, 5, 10, 20)
LABEL = re.compile(r'data-label="([^"]*)"')


# ---------------------------------------------------------------------------------------------- the page's wiring
@dataclass(frozen=True)
class Endpoints:
    """What the page reads from ``/config``: the ids it puts in its requests."""

    api: str
    stream_fn: int
    stream_inputs: tuple[int, ...]
    camera: int
    stream_every: float
    prediction_output: int
    grid_output: int
    demo_fn: int
    demo_trigger: int
    demo_inputs: int


def discover(url: str) -> Endpoints:
    config = httpx.get(f"{url}config", timeout=30).json()
    by_elem = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c["props"].get("elem_id")}
    camera = by_elem["cam"]
    stream = next(d for d in config["dependencies"] if [camera, "stream"] in d["targets"])
    demo = next(d for d in config["dependencies"] if d.get("api_name") == "load_demo")
    return Endpoints(
        api=url.rstrip("/") + config["api_prefix"],
        stream_fn=stream["id"],
        stream_inputs=tuple(stream["inputs"]),
        camera=camera,
        stream_every=float(stream["stream_every"]),
        prediction_output=stream["outputs"].index(by_elem["prediction"]),
        grid_output=stream["outputs"].index(by_elem["grid"]),
        demo_fn=demo["id"],
        demo_trigger=demo["targets"][0][0],
        demo_inputs=len(demo["inputs"]),
    )


@dataclass(frozen=True)
class Frames:
    """``VARIANTS`` distinct 640x480 camera frames, as the JSON value the webcam sends (``{"url": data URL}``)."""

    values: tuple[bytes, ...]
    photos: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.values)


def make_frames(count: int = VARIANTS) -> Frames:
    """Even variants are chelsea, odd ones coffee; each a different crop of the photo resized to 672x504."""
    enlarged = {
        name: cv2.resize(getattr(skimage.data, name)(), (672, 504), interpolation=cv2.INTER_AREA) for name in PHOTOS
    }
    values, photos = [], []
    for variant in range(count):
        name = PHOTOS[variant % len(PHOTOS)]
        shift = variant // len(PHOTOS)
        dx, dy = 4 * (shift % 8), 8 * (shift // 8 % 4)
        frame = enlarged[name][dy : dy + 480, dx : dx + 640]
        ok, jpeg = cv2.imencode(
            ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        assert ok
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")
        values.append(orjson.dumps({"url": data_url}))
        photos.append(name)
    return Frames(tuple(values), tuple(photos))


# ---------------------------------------------------------------------------------------------- one page
@dataclass
class Output:
    received: float
    grid: str
    """The activation-grid output (HTML with the image inlined), from which the frame is named."""
    label: str | None
    final: bool
    """The process_completed message after close (a repeat of the last answer or the call in flight)."""
    duration: float | None
    """Seconds the server's function ran for this answer (Gradio's ``duration``)."""
    variant: int | None = None
    exact: bool = False
    """The grid was byte-identical to the calibrated one (else it was matched to the nearest)."""
    frame: int | None = None
    latency: float | None = None
    ambiguous: bool = False


@dataclass
class StreamClient:
    """One browser tab: a session hash, its heartbeat, and one webcam stream, speaking the page's protocol."""

    endpoints: Endpoints
    frames: Frames
    session_hash: str = field(
        default_factory=lambda: "".join(random.choices(string.ascii_lowercase + string.digits, k=11))
    )
    sent: list[float] = field(default_factory=list)
    """When the client started posting frame i (frame 0 went with the join)."""
    done: list[float] = field(default_factory=list)
    """When the server's answer to frame i's POST arrived (inf: not yet; -inf: it failed)."""
    outputs: list[Output] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    post_failures: int = 0

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=BROWSER_CONNECTIONS, max_keepalive_connections=BROWSER_CONNECTIONS),
            timeout=httpx.Timeout(60.0),
        )
        self.event_id: str | None = None
        self._started = asyncio.Event()
        self._closed = asyncio.Event()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._reader: asyncio.Task | None = None
        self._heartbeat: asyncio.Task | None = None

    # -- page load and the demo button
    async def load_page(self) -> None:
        self._heartbeat = asyncio.create_task(self._drain(f"{self.endpoints.api}/heartbeat/{self.session_hash}"))

    async def load_demo(self) -> None:
        body = {"data": [None] * self.endpoints.demo_inputs, "event_data": None, "fn_index": self.endpoints.demo_fn,
                "trigger_id": self.endpoints.demo_trigger, "session_hash": self.session_hash}  # fmt: skip
        response = await self.http.post(f"{self.endpoints.api}/queue/join?", json=body)
        response.raise_for_status()
        outcome: list[dict] = []

        def handle(message: dict, _received: float) -> bool:
            if message["msg"] == "process_completed":
                outcome.append(message)
            return message["msg"] == "close_stream"

        await self._listen(handle)
        if not (outcome and outcome[0].get("success")):
            raise RuntimeError(f"load_demo failed: {outcome}")

    # -- the webcam stream
    def _body(self, variant: int, join: bool) -> bytes:
        """The JSON the page posts: the join's ``{data, event_data, fn_index, trigger_id}`` or send_chunk's
        ``{fn_index, data, event_data}``, each with the session hash last."""
        value = self.frames.values[variant]
        data = b"[" + b",".join(value if i == self.endpoints.camera else b"null" for i in self.endpoints.stream_inputs)
        event_data = b'{"value":' + value + b',"is_value_data":true}'
        fn_index = str(self.endpoints.stream_fn).encode()
        if join:
            trigger = str(self.endpoints.camera).encode()
            body = b'{"data":' + data + b'],"event_data":' + event_data + b',"fn_index":' + fn_index
            body += b',"trigger_id":' + trigger
        else:
            body = b'{"fn_index":' + fn_index + b',"data":' + data + b'],"event_data":' + event_data
        return body + b',"session_hash":"' + self.session_hash.encode() + b'"}'

    async def open(self, timeout: float = 120) -> None:
        """Join with frame 0, then wait for process_starts (before it the page's webcam sends nothing)."""
        self.sent.append(time.monotonic())
        self.done.append(np.inf)
        response = await self.http.post(
            f"{self.endpoints.api}/queue/join?", content=self._body(0, join=True),
            headers={"content-type": "application/json"},
        )  # fmt: skip
        response.raise_for_status()
        self.done[0] = time.monotonic()
        self.event_id = response.json()["event_id"]
        self._reader = asyncio.create_task(self._read())
        await asyncio.wait_for(self._started.wait(), timeout)

    def send(self) -> asyncio.Task:
        """Post the next frame without waiting for anything, as the page's setInterval does."""
        index = len(self.sent)
        self.sent.append(time.monotonic())
        self.done.append(np.inf)
        task = asyncio.create_task(self._post(index))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _post(self, index: int) -> None:
        try:
            response = await self.http.post(
                f"{self.endpoints.api}/stream/{self.event_id}", content=self._body(index % len(self.frames), join=False),
                headers={"content-type": "application/json"},
            )  # fmt: skip
            if response.status_code == 200:
                self.done[index] = time.monotonic()
                return
        except httpx.HTTPError:
            pass
        self.post_failures += 1
        self.done[index] = -np.inf  # never landed

    async def wait_for_outputs(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.outputs) < count:
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed.is_set():
                raise TimeoutError(f"{len(self.outputs)} of {count} answers; errors: {self.errors[-3:]}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def close(self, timeout: float = 30) -> None:
        """Stop the webcam (close the stream), wait for the server to end it, and close the tab."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.event_id is not None and not self._closed.is_set():
            try:
                await self.http.post(f"{self.endpoints.api}/stream/{self.event_id}/close", json={})
                await asyncio.wait_for(self._closed.wait(), timeout)
            except (httpx.HTTPError, asyncio.TimeoutError) as error:
                self.errors.append(f"close: {error!r}")
        for task in (self._reader, self._heartbeat):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self.http.aclose()

    # -- server-sent events
    async def _listen(self, handle: Callable[[dict, float], bool]) -> None:
        """Read ``/queue/data`` (SSE) and hand each message, with the time its line arrived, to ``handle`` until it
        returns True or the server ends the stream."""
        async with self.http.stream(
            "GET", f"{self.endpoints.api}/queue/data", params={"session_hash": self.session_hash},
            timeout=httpx.Timeout(60.0, read=None),
        ) as response:  # fmt: skip
            response.raise_for_status()
            async for line in response.aiter_lines():
                if line.startswith("data:") and handle(orjson.loads(line[5:]), time.monotonic()):
                    return

    async def _read(self) -> None:
        def handle(message: dict, received: float) -> bool:
            kind = message["msg"]
            if kind == "process_starts":
                self._started.set()
            elif kind in ("process_streaming", "process_completed"):
                self._record(message, received, final=kind == "process_completed")
            elif kind == "unexpected_error":
                self.errors.append(str(message.get("message")))
            self._changed.set()
            return kind == "close_stream"

        try:
            await self._listen(handle)
        except httpx.HTTPError as error:
            self.errors.append(f"stream: {error!r}")
        finally:
            self._closed.set()
            self._changed.set()

    def _record(self, message: dict, received: float, final: bool) -> None:
        output = message.get("output") or {}
        data = output.get("data") if message.get("success") else None
        if not data:
            if not final:
                self.errors.append(str(output.get("error") or output)[:200])
            return
        grid = data[self.endpoints.grid_output]
        prediction = data[self.endpoints.prediction_output]
        match = LABEL.search(prediction) if isinstance(prediction, str) else None
        label = match.group(1) if match else None
        self.outputs.append(Output(received, str(grid), label, final, output.get("duration")))

    async def _drain(self, url: str) -> None:
        try:
            async with self.http.stream("GET", url, timeout=httpx.Timeout(60.0, read=None)) as response:
                async for _ in response.aiter_raw():
                    pass
        except httpx.HTTPError as error:
            self.errors.append(f"heartbeat: {error!r}")


# ---------------------------------------------------------------------------------------------- naming answers
GRID_IMAGE = re.compile(r"base64,([A-Za-z0-9+/=]+)")


def grid_thumbnail(grid: str) -> np.ndarray | None:
    """The grid image, grey, 32x32, as a vector (None if the HTML holds no image)."""
    match = GRID_IMAGE.search(grid)
    if not match:
        return None
    image = cv2.imdecode(np.frombuffer(base64.b64decode(match.group(1)), np.uint8), cv2.IMREAD_GRAYSCALE)
    return cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()


@dataclass(frozen=True)
class Fingerprints:
    """Which variant an answer's grid image came from: the calibrated grid with the same bytes, or else the nearest
    one, if it is clearly nearer than the second nearest (a forward pass run beside others on a busy CPU can differ
    in the last bits, which can change a cell's icon and so the JPEG)."""

    exact: dict[bytes, int]
    thumbnails: np.ndarray

    @staticmethod
    def key(grid: str) -> bytes:
        return hashlib.blake2b(grid.encode(), digest_size=16).digest()

    @classmethod
    def calibrated(cls, grids: list[str]) -> Fingerprints:
        exact = {cls.key(grid): variant for variant, grid in enumerate(grids)}
        if len(exact) != len(grids):
            raise RuntimeError(
                f"Only {len(exact)} distinct grid images for {len(grids)} frames: cannot tell them apart"
            )
        thumbnails = [grid_thumbnail(grid) for grid in grids]
        if any(t is None for t in thumbnails):
            raise RuntimeError("A calibration answer has no grid image: is the activation grid switched off?")
        return cls(exact, np.stack(thumbnails))

    def lookup(self, grid: str) -> tuple[int | None, bool]:
        """(variant or None, whether the bytes matched exactly)."""
        variant = self.exact.get(self.key(grid))
        if variant is not None:
            return variant, True
        thumbnail = grid_thumbnail(grid)
        if thumbnail is None:
            return None, False
        distances = np.linalg.norm(self.thumbnails - thumbnail, axis=1)
        best, second = np.partition(distances, 1)[:2]
        return (int(distances.argmin()), False) if best < 0.5 * second else (None, False)


# ---------------------------------------------------------------------------------------------- calibration
async def calibrate(endpoints: Endpoints, frames: Frames) -> Fingerprints:
    """Send each variant once on one stream and wait for its answer, whose grid image then names the variant.

    The grid image depends on the frame only (the icon mosaic over the darkened frame), not on the session or its
    examples, so one session without examples calibrates for all."""
    client = StreamClient(endpoints, frames)
    try:
        await client.load_page()  # no examples: no predictions or map fits, only the forward pass and the grid
        await client.open()
        await client.wait_for_outputs(1)
        for variant in range(1, len(frames)):
            await client.send()
            await client.wait_for_outputs(variant + 1)
    finally:
        await client.close()
    return Fingerprints.calibrated([output.grid for output in client.outputs[: len(frames)]])


def expected(frames: Frames, variant: int) -> str:
    return EXPECTED_LABEL[frames.photos[variant]]


# ---------------------------------------------------------------------------------------------- attribution
def attribute(sent: list[float], done: list[float], outputs: list[Output], table: Fingerprints, variants: int) -> None:
    """Name each answer's frame (see the module docstring): the earliest unused frame of its variant that was sent
    before the call began, and is newer than the previous answer's frame or was in flight when that was sent.
    Sets ``variant``, ``exact``, ``frame``, ``latency`` and ``ambiguous`` in place."""
    used: set[int] = set()
    previous: int | None = None
    for output in outputs:
        if output.variant is None:
            output.variant, output.exact = table.lookup(output.grid)
        if output.variant is None or output.final:
            continue
        last = bisect.bisect_left(sent, output.received - (output.duration or 0.0)) - 1
        if previous is None:
            first = 0
        else:
            in_flight = [i for i in range(previous) if done[i] > sent[previous]]
            first = min(in_flight, default=previous + 1)
        start = first + (output.variant - first) % variants
        candidates = [i for i in range(start, last + 1, variants) if i not in used and done[i] > -np.inf]
        if not candidates:
            continue  # cannot be: left unnamed, and counted as such
        frame = candidates[0]
        output.frame, output.latency, output.ambiguous = frame, output.received - sent[frame], len(candidates) > 1
        used.add(frame)
        previous = frame


def percentile_ms(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q) * 1000) if values else None


def summarise(client: StreamClient, table: Fingerprints, start: float, end: float) -> dict:
    """Figures of one client over the window [start, end)."""
    attribute(client.sent, client.done, client.outputs, table, len(client.frames))
    seconds = end - start
    frames_sent = sum(start <= t < end for t in client.sent)
    answers = [o for o in client.outputs if start <= o.received < end and not o.final]
    latencies = [o.latency for o in answers if o.latency is not None]
    steps = np.diff([o.frame for o in answers if o.frame is not None])
    wrong = [o for o in answers if o.variant is not None and o.label != expected(client.frames, o.variant)]
    return {
        "frames_sent": frames_sent,
        "send_rate": frames_sent / seconds,
        "outputs": len(answers),
        "outputs_per_s": len(answers) / seconds,
        "latency_p50_ms": percentile_ms(latencies, 50),
        "latency_p95_ms": percentile_ms(latencies, 95),
        "latency_max_ms": percentile_ms(latencies, 100),
        "server_duration_p50_ms": percentile_ms([o.duration for o in answers if o.duration is not None], 50),
        "dropped_fraction": 1 - len(answers) / frames_sent if frames_sent else None,
        "frame_step_mean": float(steps.mean()) if len(steps) else None,
        "unidentified_outputs": sum(o.frame is None for o in answers),
        "inexact_grids": sum(o.variant is not None and not o.exact for o in answers),
        "ambiguous_outputs": sum(o.ambiguous for o in answers),
        "wrong_labels": len(wrong),
        "post_failures": client.post_failures,
        "errors": client.errors[:5],
        "_latencies": latencies,
    }


# ---------------------------------------------------------------------------------------------- a run
async def stream_clients(
    endpoints: Endpoints, frames: Frames, clients: int, warmup: float, seconds: float, interval: float,
    on_window: Callable[[bool], None] | None = None, make_client: Callable[[], StreamClient] | None = None,
) -> tuple[list[StreamClient], float, float]:  # fmt: skip
    """N pages: load, demo, stream open loop for warmup + seconds, close. Returns the pages and the measured window
    [start, end); ``on_window(True)`` is called when it starts and ``on_window(False)`` when it ends. ``make_client``
    makes each page (default: a plain :class:`StreamClient`)."""
    make_client = make_client or (lambda: StreamClient(endpoints, frames))
    pages = [make_client() for _ in range(clients)]
    for page in pages:
        await page.load_page()
    await asyncio.gather(*(page.load_demo() for page in pages))
    begin = time.monotonic() + 0.5
    start, end = begin + warmup, begin + warmup + seconds

    async def webcam(page: StreamClient) -> None:
        await asyncio.sleep(max(0.0, begin + random.uniform(0, interval) - time.monotonic()))
        await page.open()
        tick = time.monotonic() + interval
        while tick < end:
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            page.send()
            tick = max(tick + interval, time.monotonic())  # like setInterval: late ticks are not made up

    async def window() -> None:
        if on_window is None:
            return
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        on_window(True)
        try:
            await asyncio.sleep(max(0.0, end - time.monotonic()))
        finally:
            on_window(False)

    try:
        await asyncio.gather(window(), *(webcam(page) for page in pages))
    finally:
        await asyncio.gather(*(page.close() for page in pages), return_exceptions=True)
    return pages, start, end


def run(
    endpoints: Endpoints, frames: Frames, table: Fingerprints, server: psutil.Process, clients: int,
    warmup: float, seconds: float, interval: float,
) -> dict:  # fmt: skip
    server_sampler, client_sampler = Sampler(server), Sampler(psutil.Process())
    machine: list[float] = []

    def on_window(starts: bool) -> None:
        if starts:
            server_sampler.__enter__()
            client_sampler.__enter__()
            psutil.cpu_percent(None)
        else:
            machine.append(psutil.cpu_percent(None) * (os.cpu_count() or 1))
            server_sampler.__exit__(None, None, None)
            client_sampler.__exit__(None, None, None)

    pages, start, end = asyncio.run(stream_clients(endpoints, frames, clients, warmup, seconds, interval, on_window))
    per_client = [summarise(page, table, start, end) for page in pages]
    latencies = [x for c in per_client for x in c.pop("_latencies")]
    fps = [c["outputs_per_s"] for c in per_client]
    server_cpu = [c for _, c, _ in server_sampler.samples]
    client_cpu = [c for _, c, _ in client_sampler.samples]
    memory = [m for _, _, m in server_sampler.samples]
    return {
        **fleet_figures(clients, seconds, per_client, fps, memory),
        "send_rate_mean": float(np.mean([c["send_rate"] for c in per_client])),
        "latency_p50_ms": percentile_ms(latencies, 50),
        "latency_p95_ms": percentile_ms(latencies, 95),
        "latency_p95_max_over_clients_ms": max((c["latency_p95_ms"] or 0.0) for c in per_client),
        "dropped_fraction_mean": float(np.mean([c["dropped_fraction"] or 0.0 for c in per_client])),
        "frame_step_mean": float(np.mean([c["frame_step_mean"] or 0.0 for c in per_client])),
        "unidentified_outputs": sum(c["unidentified_outputs"] for c in per_client),
        "ambiguous_outputs": sum(c["ambiguous_outputs"] for c in per_client),
        "inexact_grids": sum(c["inexact_grids"] for c in per_client),
        "wrong_labels": sum(c["wrong_labels"] for c in per_client),
        "post_failures": sum(c["post_failures"] for c in per_client),
        "server_cpu_percent_mean": float(np.mean(server_cpu)) if server_cpu else None,
        "client_cpu_percent_mean": float(np.mean(client_cpu)) if client_cpu else None,
        "machine_cpu_percent": machine[0] if machine else None,
        "other_cpu_percent": machine[0] - float(np.mean(server_cpu)) - float(np.mean(client_cpu))
        if machine and server_cpu and client_cpu
        else None,
        "server_duration_p50_ms": float(np.median([c["server_duration_p50_ms"] or 0.0 for c in per_client])),
        "server_samples": server_sampler.samples,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=Path(__file__).parent / "results" / "stream_load.json")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="measured seconds per N")
    parser.add_argument("--warmup", type=float, default=WARMUP, help="unmeasured seconds of streaming first")
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="comma-separated N")
    args = parser.parse_args(argv)

    frames = make_frames(VARIANTS)
    env = {**os.environ, "GRADIO_TEMP_DIR": tempfile.mkdtemp(prefix="bench-stream-load-")}
    with app_process(env) as (url, app):
        server = psutil.Process(app.pid)
        endpoints = discover(url)
        began = time.monotonic()
        table = asyncio.run(calibrate(endpoints, frames))
        results: dict = {
            "machine": {
                "python": platform.python_version(),
                "cpu_count": os.cpu_count(),
                "torch": version("torch"),
                "gradio": version("gradio"),
                "httpx": httpx.__version__,
            },
            "frame_interval_s": endpoints.stream_every,
            "frame": f"640x480 JPEG q{JPEG_QUALITY}, {VARIANTS} variants of chelsea/coffee",
            "warmup_s": args.warmup,
            "seconds": args.seconds,
            "calibration_s": time.monotonic() - began,
            "runs": [],
        }
        for clients in [int(n) for n in args.clients.split(",")]:
            outcome = run(endpoints, frames, table, server, clients, args.warmup, args.seconds, endpoints.stream_every)
            results["runs"].append(outcome)
            shown = {k: v for k, v in outcome.items() if k not in ("per_client", "server_samples")}
            print(json.dumps(shown), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
