"""The simulated participants of bench_room.py: a page in browser inference mode, speaking the page's protocol, and
the counting of the HTTP bodies every simulated page sends and receives.

A page in browser mode (teachable/webapp/static/browser.js) runs the backbone itself and writes one JSON text per
frame, ``{"v": model version, "e": base64 float16 embedding, "n": frame number}`` plus ``"t"`` (a base64 JPEG of
the model's square) while a class records, and otherwise when the answer to the previous frame asked for it
(``picture``: the tray would keep such a frame; at most once a second), into the hidden ``#browser-frame``
box. That box's change event (``browser_frame``) is an ordinary Gradio event, sent as the page's client sends it:

1. ``POST /queue/join?`` with ``{"data": [text, null, null, null], "event_data": null, "fn_index": <dep id>,
   "trigger_id": <box id>, "session_hash": H}`` (the two ``gr.State`` inputs and the browser key travel as null:
   the server keeps the states, and the key is only the page's once its load event ran, which these pages skip,
   as bench_stream_load.py's do) -> ``{"event_id": E}``;
2. unless the session's event stream is open, ``GET /queue/data?session_hash=H`` (SSE), which carries every event
   of the session (estimation, process_starts, process_completed with the outputs) and ends with close_stream once
   none is pending; the next event opens it again.

The answer to a frame sent that way carries a channel token (``data-channel`` beside ``data-frame``); from then on
the page sends each frame as one ``POST /teachable/frame`` with the token in ``X-Teachable-Channel`` and the same
text as the body, and reads the panels from the JSON answer (teachable/webapp/frame_channel.py); a refused token
sends the next frame through the event again.

The page's pace (browser.js ``tick``): a timer every 100 ms; a tick sends a frame unless the answer to the previous
one (``answered``, ``<span data-frame="n">``) has not arrived and less than 2 s have passed. A frame made while the
previous event is still pending waits in Gradio's ``trigger_mode="always_last"`` slot (only the newest) and is
submitted when that event completes. A participant who records holds a class's button: the page sends the
``record`` command (``["record", class, stamp]`` into ``#class-command``), sends a thumbnail with every frame
(quality 0.95) until the ``stop`` command, and shows that class's photo meanwhile. The simulated pages do not run
the model: what they send was computed up front, with the app's backbone, from the same camera frames the
server-mode pages send (bench_stream_load.make_frames), so the labels are the real ones.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import re
import time
from dataclasses import dataclass, field

import cv2
import httpx
import numpy as np
import orjson

from bench_stream_load import BROWSER_CONNECTIONS, EXPECTED_LABEL, LABEL, Frames, StreamClient

ANSWER_WAIT = 2.0  # browser.js ANSWER_WAIT_MS
THUMBNAIL_EVERY = 1.0  # browser.js THUMBNAIL_EVERY_MS
THUMBNAIL_QUALITY, RECORDING_QUALITY = 80, 95  # browser.js: jpegOf(..., recording ? 0.95 : 0.8)
RECORD_TAKE, RECORD_PAUSE = 3.0, 2.0
"""A recording participant holds the button this long, lets go this long, and again."""
RECORDED_PHOTO = "chelsea"
ANSWERED = re.compile(r'data-frame="(\d+)"')
CHANNEL = re.compile(r'data-channel="([A-Za-z0-9_-]+)"')


# ---------------------------------------------------------------------------------------------- bytes on the wire
@dataclass
class Window:
    """Whether the measured window is open: bytes and frames count only then."""

    open: bool = False


@dataclass
class Traffic:
    """Bytes of the HTTP bodies one page sent and received while the window was open."""

    window: Window
    up: int = 0
    down: int = 0


class _CountedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, traffic: Traffic) -> None:
        self.inner, self.traffic = inner, traffic

    async def __aiter__(self):
        async for chunk in self.inner:
            if self.traffic.window.open:
                self.traffic.down += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountingTransport(httpx.AsyncBaseTransport):
    """httpx's transport, counting each request's body and each response's body as it arrives."""

    def __init__(self, traffic: Traffic) -> None:
        limits = httpx.Limits(max_connections=BROWSER_CONNECTIONS, max_keepalive_connections=BROWSER_CONNECTIONS)
        self.inner = httpx.AsyncHTTPTransport(limits=limits)
        self.traffic = traffic

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.traffic.window.open:
            self.traffic.up += len(request.content)
        response = await self.inner.handle_async_request(request)
        response.stream = _CountedStream(response.stream, self.traffic)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class CountedStreamClient(StreamClient):
    """bench_stream_load's server-mode page, its bodies counted while the window is open. A stream the server does
    not start within ``open_timeout`` (an overloaded server) leaves the page without answers, as the real page's
    webcam, which sends nothing before the stream starts."""

    window: Window = field(default_factory=Window)
    open_timeout: float = 120.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.traffic = Traffic(self.window)
        self.http = httpx.AsyncClient(transport=CountingTransport(self.traffic), timeout=httpx.Timeout(60.0))

    async def open(self, timeout: float = 120) -> None:
        try:
            await super().open(min(timeout, self.open_timeout))
        except asyncio.TimeoutError:
            self.errors.append(f"the stream did not start within {min(timeout, self.open_timeout):.0f} s")

    def send(self) -> asyncio.Task | None:
        return super().send() if self._started.is_set() else None


# ---------------------------------------------------------------------------------------------- what pages send
@dataclass(frozen=True)
class BrowserWiring:
    """The ids the page's scripts write into, from ``/config``, and the model version it reads there."""

    frame_fn: int
    frame_box: int
    frame_inputs: int
    answered_output: int
    prediction_output: int
    command_fn: int
    command_box: int
    command_inputs: tuple[int, ...]
    version: str
    input_size: int
    embedding_size: int
    frame_route: str
    """Where frames go once the page has a channel token (webapp/frame_channel.py)."""


def browser_wiring(config: dict, url: str) -> BrowserWiring:
    by_elem = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c["props"].get("elem_id")}
    frame = next(d for d in config["dependencies"] if d.get("api_name") == "browser_frame")
    command = next(d for d in config["dependencies"] if [by_elem["class-command"], "change"] in d["targets"])
    page = browser_config(config)
    if page.get("live_model") != "browser":
        raise RuntimeError(f"The page does not run the model in the browser: {page}")
    return BrowserWiring(
        frame_fn=frame["id"], frame_box=by_elem["browser-frame"], frame_inputs=len(frame["inputs"]),
        answered_output=frame["outputs"].index(by_elem["browser-answered"]),
        prediction_output=frame["outputs"].index(by_elem["prediction"]),
        command_fn=command["id"], command_box=by_elem["class-command"], command_inputs=tuple(command["inputs"]),
        version=page["version"], input_size=page["input_size"], embedding_size=page["embedding_size"],
        frame_route=url.rstrip("/") + "/" + page["frame_route"],
    )  # fmt: skip


def browser_config(config: dict) -> dict:
    """What browser.js reads from the ``#browser-config`` element's data attribute."""
    import html

    for component in config["components"]:
        value = component["props"].get("value")
        if isinstance(value, str) and 'id="browser-config"' in value:
            return json.loads(html.unescape(re.search(r'data-config="([^"]*)"', value).group(1)))
    raise RuntimeError("The page has no #browser-config")


@dataclass(frozen=True)
class Payloads:
    """Per camera-frame variant: the embedding as the page sends it, and its square's JPEG at both qualities."""

    embeddings: tuple[str, ...]
    thumbnails: tuple[str, ...]
    recording_thumbnails: tuple[str, ...]
    photos: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.embeddings)


def make_payloads(frames: Frames, backbone, size: int) -> Payloads:
    """The embeddings and thumbnails of ``frames`` (the server-mode pages' JPEGs, decoded), made with ``backbone``
    from the centre square at ``size``, as the server makes it."""
    from teachable.frames import center_square

    squares = [center_square(_decoded(value), size) for value in frames.values]
    embeddings = backbone.embed(np.stack(squares))
    return Payloads(
        embeddings=tuple(base64.b64encode(e.astype("<f2").tobytes()).decode("ascii") for e in embeddings),
        thumbnails=tuple(_jpeg64(s, THUMBNAIL_QUALITY) for s in squares),
        recording_thumbnails=tuple(_jpeg64(s, RECORDING_QUALITY) for s in squares),
        photos=frames.photos,
    )


def _decoded(value: bytes) -> np.ndarray:
    data = base64.b64decode(orjson.loads(value)["url"].split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _jpeg64(rgb: np.ndarray, quality: int) -> str:
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return base64.b64encode(jpeg.tobytes()).decode("ascii")


# ---------------------------------------------------------------------------------------------- one page
@dataclass
class Answer:
    frame: int
    made: float
    """When the page made the frame (its tick), from which latency counts."""
    received: float
    label: str | None
    expected: str
    message: str | None
    """What the prediction said when it had no label (a refusal)."""


@dataclass
class BrowserPage(CountedStreamClient):
    """One tab in browser mode: its heartbeat, the demo project, and the camera's frames as browser.js sends them."""

    wiring: BrowserWiring | None = None
    payloads: Payloads | None = None
    recording: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ticks: list[float] = []
        self.made: list[tuple[float, int, bool, bool]] = []
        """(time, variant, recording, with a thumbnail) per frame number - 1."""
        self.submitted: list[float] = []
        self.answers: list[Answer] = []
        self.sent = self.answered = 0
        self.sent_at = self.last_thumbnail = -np.inf
        self._pending: dict[str, asyncio.Future] = {}
        self._stream_open = False
        self._frame_in_flight = False
        self._queued: int | None = None
        self._take_started: float | None = None
        self._take_ended = -np.inf
        self.channel: str | None = None
        """The token for the frame route, from the answer to a frame sent through the page's event."""
        self.direct = 0
        """Frames answered on the frame route."""
        self.wants_picture = False
        """The last answer asked for the next frame's picture (the tray would keep a frame like it)."""

    # -- Gradio's client: join, and one event stream per session while events are pending
    async def submit(self, fn: int, trigger: int, data: list, timeout: float = 60) -> tuple[dict, float]:
        body = orjson.dumps({"data": data, "event_data": None, "fn_index": fn, "trigger_id": trigger,
                             "session_hash": self.session_hash})  # fmt: skip
        response = await self.http.post(
            f"{self.endpoints.api}/queue/join?", content=body, headers={"content-type": "application/json"}
        )
        response.raise_for_status()
        event_id = response.json()["event_id"]
        done = self._pending[event_id] = asyncio.get_running_loop().create_future()
        if not self._stream_open:
            self._stream_open = True
            self._keep(self._events())
        return await asyncio.wait_for(done, timeout)

    async def _events(self) -> None:
        ended = []

        def handle(message: dict, received: float) -> bool:
            if message["msg"] == "process_completed":
                waiting = self._pending.pop(message.get("event_id"), None)
                if waiting is not None and not waiting.done():
                    waiting.set_result((message, received))
            elif message["msg"] == "unexpected_error":
                self.errors.append(str(message.get("message"))[:200])
            if message["msg"] == "close_stream":
                self._stream_open = False  # at once, as the page's client does: the next event opens a new one
                ended.append(True)
                return True
            return False

        try:
            await self._listen(handle)
        except httpx.HTTPError as error:
            self.errors.append(f"events: {error!r}")
        finally:
            if not ended:
                self._stream_open = False
                self._fail_pending()

    def _fail_pending(self) -> None:
        """An event stream that broke off: its events fail, as the page's client reports them, and the page goes on
        (the next frame goes after its 2 s wait)."""
        for event_id in [e for e, waiting in self._pending.items() if not waiting.done()]:
            self._pending.pop(event_id).set_exception(RuntimeError("the event stream broke off"))

    def _keep(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the camera: browser.js's tick
    def tick(self, now: float) -> None:
        self.ticks.append(now)
        self._hold_button(now)
        if self.answered < self.sent and now - self.sent_at < ANSWER_WAIT:
            return  # one frame at a time
        self.sent += 1
        self.sent_at = now
        holding = self._take_started is not None
        variant = self._variant(self.sent, holding)
        thumbnail = holding or (self.wants_picture and now - self.last_thumbnail >= THUMBNAIL_EVERY)
        if thumbnail:
            self.last_thumbnail, self.wants_picture = now, False
        self.made.append((now, variant, thumbnail and holding, thumbnail))
        if self._frame_in_flight:
            self._queued = self.sent  # always_last: the newest waits for the pending event
        else:
            self._keep(self._frame(self.sent))

    def _variant(self, number: int, holding: bool) -> int:
        """The camera's frame ``number``; while the button is held, the recorded class's photo."""
        if not holding:
            return number % len(self.payloads)
        recorded = [i for i, photo in enumerate(self.payloads.photos) if photo == RECORDED_PHOTO]
        return recorded[number % len(recorded)]

    def _text(self, number: int) -> str:
        _, variant, recording_quality, thumbnail = self.made[number - 1]
        message = {"v": self.wiring.version, "e": self.payloads.embeddings[variant], "n": number}
        if thumbnail:
            pictures = self.payloads.recording_thumbnails if recording_quality else self.payloads.thumbnails
            message["t"] = pictures[variant]
        return json.dumps(message, separators=(",", ":"))

    async def _frame(self, number: int) -> None:
        self._frame_in_flight = True
        try:
            self.submitted.append(time.monotonic())
            if self.channel is not None and await self._through_channel(number):
                return
            data = [self._text(number)] + [None] * (self.wiring.frame_inputs - 1)
            message, received = await self.submit(self.wiring.frame_fn, self.wiring.frame_box, data)
            self._answer(number, message, received)
        except (httpx.HTTPError, asyncio.TimeoutError, RuntimeError) as error:
            self.errors.append(f"frame {number}: {error!r}"[:200])
        finally:
            self._frame_in_flight = False
            queued, self._queued = self._queued, None
            if queued is not None:
                self._keep(self._frame(queued))

    async def _through_channel(self, number: int) -> bool:
        """The frame as one POST to the frame route with the page's token; False (and no token) when refused."""
        response = await self.http.post(
            self.wiring.frame_route, content=self._text(number),
            headers={"content-type": "application/json", "x-teachable-channel": self.channel}, timeout=60,
        )  # fmt: skip
        if response.status_code != 200:
            self.channel = None
            return False
        answer = response.json()
        self.answered = max(self.answered, answer.get("answered") or number)
        self.wants_picture = bool(answer.get("picture"))
        self.direct += 1
        self._record(number, answer["shown"].get("prediction", ""), time.monotonic())
        return True

    def _answer(self, number: int, message: dict, received: float) -> None:
        output = message.get("output") or {}
        if not message.get("success") or not output.get("data"):
            self.errors.append(str(output.get("error") or output)[:200])
            return
        data = output["data"]
        shown = ANSWERED.search(str(data[self.wiring.answered_output]))
        self.answered = max(self.answered, int(shown.group(1)) if shown else number)
        mark = str(data[self.wiring.answered_output])
        channel = CHANNEL.search(mark)
        self.channel = channel.group(1) if channel else self.channel
        self.wants_picture = 'data-picture="1"' in mark
        self._record(number, data[self.wiring.prediction_output], received)

    def _record(self, number: int, prediction, received: float) -> None:
        match = LABEL.search(prediction) if isinstance(prediction, str) else None
        made, variant, _, _ = self.made[number - 1]
        text = None if match else re.sub(r"<[^>]+>", " ", str(prediction)).strip()[:160]
        label = match.group(1) if match else None
        self.answers.append(Answer(number, made, received, label, EXPECTED_LABEL[self.payloads.photos[variant]], text))

    # -- holding a class's record button
    def _hold_button(self, now: float) -> None:
        if not self.recording:
            return
        if self._take_started is None and now - self._take_ended >= RECORD_PAUSE:
            self._take_started = now
            self._command("record", EXPECTED_LABEL[RECORDED_PHOTO])
        elif self._take_started is not None and now - self._take_started >= RECORD_TAKE:
            self._take_started, self._take_ended = None, now
            self._command("stop")

    def _command(self, *parts) -> None:
        text = json.dumps([*parts, time.time() * 1000 + random.random()])
        data = [text if i == self.wiring.command_box else None for i in self.wiring.command_inputs]

        async def send() -> None:
            try:
                await self.submit(self.wiring.command_fn, self.wiring.command_box, data)
            except (httpx.HTTPError, asyncio.TimeoutError, RuntimeError) as error:
                self.errors.append(f"{parts[0]}: {error!r}"[:200])

        self._keep(send())

    async def stop_recording(self) -> None:
        if self._take_started is not None:
            self._take_started = None
            self._command("stop")
