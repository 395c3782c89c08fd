"""Where live frames are run through the backbone: the seam between the app and its inference.

A session asks a :class:`FrameRunner` for taps of its frames; which runner the app uses is a setting
(``TEACHABLE_INFERENCE``), so moving inference elsewhere needs no change to the app:

* ``local``: the backbone in this process, one call per frame;
* ``batched``: the backbone in this process, frames of concurrent sessions gathered into one forward pass
  (:class:`~teachable.batching.FrameBatcher`);
* ``auto`` (default): ``batched`` when the backbone runs on a GPU, else ``local``; on a ZeroGPU Space always
  ``local``, whose forward pass then runs on a GPU lent for each call (:mod:`teachable.spaces_gpu`);
* ``http://HOST:PORT``: a backbone service, e.g. one GPU machine serving several app replicas. ``teachable
  serve-backbone`` is such a service (it batches too); the protocol is a POST of the images as ``.npy`` to
  ``/run?taps=a,b&caller=SESSION``, answered with an ``.npz`` of the taps. An inference server such as Triton or
  Ray Serve can stand behind the same URL by speaking this protocol.

The app keeps its own copy of the backbone for what is not per frame (tap shapes, icons, attribution, re-embedding).
"""

from __future__ import annotations

import io
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qs, urlparse

import numpy as np
import torch

from .backbones import Backbone, BackboneError
from .batching import FrameBatcher
from .spaces_gpu import gpu, zero_gpu_available

__all__ = [
    "FrameRunner",
    "LocalRunner",
    "RemoteRunner",
    "InferenceError",
    "runner_from_setting",
    "backbone_server",
]

log = logging.getLogger(__name__)

MAX_REQUEST_IMAGES = 64


class InferenceError(RuntimeError):
    """The inference service could not answer, with what went wrong."""


class FrameRunner(Protocol):
    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        """``N x S x S x 3`` uint8 squares -> ``{tap: float32 tensor with N rows}``; ``caller`` names the session."""
        ...


class LocalRunner:
    """The backbone in this process, one call per request; on a ZeroGPU Space, each call on a lent GPU."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone
        self._forward = gpu(self._forward_to_cpu) if zero_gpu_available() else backbone.run

    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        return self._forward(images, list(taps))

    def _forward_to_cpu(self, images: np.ndarray, taps: list[str]) -> dict[str, torch.Tensor]:
        # A lent GPU's call runs in another process: only its arguments and results cross, so results come back
        # as CPU tensors and the model stays where it is.
        return {tap: value.cpu() for tap, value in self.backbone.run(images, taps).items()}


class RemoteRunner:
    """A backbone service over HTTP (see the module docstring for the protocol)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def run(self, images: np.ndarray, taps: Sequence[str], caller: int = 0) -> dict[str, torch.Tensor]:
        body = io.BytesIO()
        np.save(body, np.ascontiguousarray(images, dtype=np.uint8), allow_pickle=False)
        request = urllib.request.Request(
            f"{self.url}/run?taps={','.join(taps)}&caller={caller}",
            data=body.getvalue(),
            headers={"Content-Type": "application/octet-stream"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            reason = error.read().decode(errors="replace")
            raise InferenceError(f"The inference service refused the frame: {reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise InferenceError(f"The inference service at {self.url} did not answer ({error}).") from None
        with np.load(io.BytesIO(payload), allow_pickle=False) as outputs:
            return {tap: torch.from_numpy(outputs[tap].astype(np.float32)) for tap in taps}


def runner_from_setting(setting: str, backbone: Backbone) -> FrameRunner:
    """The runner a ``TEACHABLE_INFERENCE`` value names (see the module docstring)."""
    setting = (setting or "auto").strip()
    if setting == "auto":
        setting = "batched" if backbone.on_accelerator and not zero_gpu_available() else "local"
    if setting == "local":
        return LocalRunner(backbone)
    if setting == "batched":
        return FrameBatcher(backbone)
    if setting.startswith(("http://", "https://")):
        return RemoteRunner(setting)
    raise ValueError(f"Unknown inference setting {setting!r}; use auto, local, batched or an http:// URL.")


def backbone_server(backbone: Backbone, host: str = "127.0.0.1", port: int = 8700) -> ThreadingHTTPServer:
    """An HTTP backbone service (not started: call ``serve_forever``). Requests from all clients are batched."""
    batcher = FrameBatcher(backbone)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            address = urlparse(self.path)
            if address.path != "/run":
                return self._fail(HTTPStatus.NOT_FOUND, "POST /run?taps=a,b")
            query = parse_qs(address.query)
            taps = [t for t in query.get("taps", [""])[0].split(",") if t]
            # A session is its replica's address plus the id the replica gives it (each request has a new port).
            caller = hash((self.client_address[0], query.get("caller", [""])[0]))
            size = backbone.input_size
            limit = MAX_REQUEST_IMAGES * size * size * 3 + 1024
            length = int(self.headers.get("Content-Length") or 0)
            if not taps or not 0 < length <= limit:
                return self._fail(HTTPStatus.BAD_REQUEST, f"need taps and a body of at most {limit} bytes")
            try:
                images = np.load(io.BytesIO(self.rfile.read(length)), allow_pickle=False)
                if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (size, size, 3):
                    raise ValueError(f"images must be N x {size} x {size} x 3 uint8, got {images.shape} {images.dtype}")
                outputs = batcher.run(images, taps, caller=caller)
            except (ValueError, BackboneError) as error:
                return self._fail(HTTPStatus.BAD_REQUEST, str(error))
            body = io.BytesIO()
            np.savez(body, **{tap: value.cpu().numpy() for tap, value in outputs.items()})
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(body.getbuffer().nbytes))
            self.end_headers()
            self.wfile.write(body.getvalue())

        def _fail(self, status: HTTPStatus, message: str) -> None:
            data = message.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:
            log.debug("backbone service: " + format, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
