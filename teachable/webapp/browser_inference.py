"""Browser inference on the server's side: where live frames' model runs (``TEACHABLE_LIVE_MODEL``), the model the
browsers load, and the middleware that serves it and onnxruntime-web. The page's part is webapp/browser.py, which
says how the pieces fit together."""

from __future__ import annotations

import functools
import logging
import lzma
from dataclasses import dataclass
from pathlib import Path

from ..activations import GridIcons
from ..backbones import Backbone
from ..browser_model import BrowserModel, browser_model
from ..webexport import BUNDLED_ORT, ORT_WEB_VERSION, bundled_ort_files

__all__ = ["BrowserFiles", "BrowserInference", "answer_whole", "FRAMES_PER_SECOND", "LIVE_MODELS", "ROUTE", "SLOW_FRAME_MS"]

log = logging.getLogger(__name__)

ROUTE = "/teachable/browser"
LIVE_MODELS = ("auto", "browser", "server")
SLOW_FRAME_MS = 100
"""In ``auto``, a browser whose model takes longer than this per frame (the median of its first five frames, then of
its latest ten) hands the camera to the server: past 100 ms it cannot keep the camera's pace of 10 frames a second."""
FRAMES_PER_SECOND = 15.0
"""What one page may send on average (the camera's pace is 10 a second); twice that at once."""
CACHE_FOREVER = b"public, max-age=31536000, immutable"
MEDIA_TYPES = {".onnx": b"application/octet-stream", ".wasm": b"application/wasm", ".mjs": b"text/javascript",
               ".js": b"text/javascript", ".json": b"application/json"}  # fmt: skip


@dataclass(frozen=True)
class BrowserInference:
    """Where live frames' model runs on this server, and the model the browsers load (None: the server only)."""

    live_model: str
    model: BrowserModel | None = None

    @classmethod
    def prepare(cls, live_model: str, backbone: Backbone, icons: GridIcons | None) -> BrowserInference:
        """Build (or read from the cache) the browser's model when browsers may run it. A model that cannot be made
        is logged, and every participant uses the server."""
        if live_model == "server":
            return cls("server")
        try:
            bundled_ort_files()  # checked once here: a damaged install says so at start, not on every page
            model = browser_model(backbone, backbone.embedding_tap, backbone.grid_tap, icons)
        except Exception as error:  # the product works without it: frames go to the server as before
            log.warning("Browser inference is off: the browser's model could not be made (%s).", error)
            return cls("server")
        log.info("Browsers may run %s themselves (TEACHABLE_LIVE_MODEL=%s).", backbone.name, live_model)
        return cls(live_model, model)

    @property
    def model_path(self) -> str:
        return f"{ROUTE}/model-{self.model.version}.onnx"

    @property
    def runtime_folder(self) -> str:
        return f"{ROUTE}/ort-{ORT_WEB_VERSION}/"

    def page_config(self) -> dict:
        """What static/browser.js reads from the page (paths relative to the page, for a server under a prefix)."""
        if self.model is None:
            return {"live_model": "server"}
        return {
            "live_model": self.live_model,
            "model": self.model_path.lstrip("/"),
            "runtime": self.runtime_folder.lstrip("/"),
            "slow_frame_ms": SLOW_FRAME_MS,
            "frames_per_second": 10,
            **self.model.page_info(),
        }

    def served_files(self) -> dict[str, tuple[Path | bytes, bytes]]:
        """URL path -> (file or bytes, media type) for :class:`BrowserFiles`."""
        if self.model is None:
            return {}
        files: dict[str, tuple[Path | bytes, bytes]] = {self.model_path: (self.model.onnx, MEDIA_TYPES[".onnx"])}
        for name in ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"):
            files[self.runtime_folder + name] = (BUNDLED_ORT / name, MEDIA_TYPES[Path(name).suffix])
        return files


class BrowserFiles:
    """ASGI middleware that answers GET requests for the browser's model and onnxruntime-web under :data:`ROUTE`,
    cached by browsers for a year (each path holds its version), and passes everything else to Gradio."""

    def __init__(self, app, files: dict[str, tuple[Path | bytes, bytes]]) -> None:
        self.app = app
        self.files = files

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(ROUTE + "/"):
            await self.app(scope, receive, send)
            return
        found = self.files.get(path)
        if found is None or scope["method"] not in ("GET", "HEAD"):
            await answer_whole(send, 404, b"text/plain", b"Not found.", cache=False)
            return
        body = _bytes_of(*found[:1])
        await answer_whole(send, 200, found[1], b"" if scope["method"] == "HEAD" else body, cache=True, length=len(body))


@functools.lru_cache(maxsize=8)
def _file_bytes(path: Path) -> bytes:
    """A bundled file's bytes (the .wasm is stored xz-compressed), read once."""
    if path.is_file():
        return path.read_bytes()
    return lzma.decompress(path.with_name(path.name + ".xz").read_bytes())


def _bytes_of(source: Path | bytes) -> bytes:
    return source if isinstance(source, bytes) else _file_bytes(source)


async def answer_whole(
    send, status: int, media_type: bytes, body: bytes, cache: bool = False, length: int | None = None
) -> None:
    """One whole ASGI response: cached for a year (``cache``: the path holds a version) or never stored."""
    headers = [(b"content-type", media_type), (b"content-length", str(len(body) if length is None else length).encode())]
    headers.append((b"cache-control", CACHE_FOREVER if cache else b"no-store"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


