"""ONNX Runtime for a backbone's forward pass on the CPU.

``TEACHABLE_RUNTIME`` (or ``--runtime``) picks what runs the stages a frame needs:

* ``torch``: always torch;
* ``onnxruntime``: ONNX Runtime whenever the backbone runs on the CPU (a GPU stays with torch);
* ``auto`` (default): ONNX Runtime on the CPU only where a timed check on this machine found it at least
  :data:`AUTO_MIN_SPEEDUP` times faster than torch for a live frame *and* giving the same ImageNet labels on the
  bundled sample photos. The check runs once per backbone and version set (about two seconds) and its verdict is
  kept next to the exported graphs, so later starts only read a small JSON file.

For each (backbone, set of taps) the backbone's :meth:`~teachable.stages.Backbone.truncated` network is exported
once, from the uint8 ``NxHxWx3`` image (normalisation included) to those taps, and kept in the per-user cache folder
(``$TEACHABLE_CACHE_DIR/onnx`` when that is set). The file name holds the backbone, the taps, the
torch/onnx/onnxruntime versions and a hash of the weights, so a change to any of them exports again; files are
written atomically and one that does not load is exported again.

:func:`cpu_runtime` is what :func:`teachable.backbones.load_backbone` plugs into a backbone
(:attr:`~teachable.stages.Backbone.cpu_runtime`): it decides on first use, and says in one log line which runtime
runs the frames and why.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .atomic import atomic_write
from .settings import cache_folder as built_files_folder
from .settings import read
from .stages import Backbone, BackboneError, Truncated

__all__ = [
    "RUNTIMES",
    "AUTO_MIN_SPEEDUP",
    "RuntimeChoiceError",
    "runtime_setting",
    "cache_folder",
    "cpu_runtime",
    "OnnxRuntimeChoice",
    "OrtForward",
]

log = logging.getLogger(__name__)

RUNTIMES = ("torch", "onnxruntime", "auto")
AUTO_MIN_SPEEDUP = 1.3
OPSET = 17


class RuntimeChoiceError(ValueError):
    """A runtime setting that is not one of :data:`RUNTIMES`."""


def runtime_setting(value: str | None = None) -> str:
    """``value``, else ``$TEACHABLE_RUNTIME`` (a :class:`~teachable.settings.SettingsError` when that is not one of
    :data:`RUNTIMES`), else ``auto``; checked against :data:`RUNTIMES`."""
    if value is None:
        return read("TEACHABLE_RUNTIME")
    text = value.strip().lower() or "auto"
    if text not in RUNTIMES:
        choices = ", ".join(RUNTIMES)
        raise RuntimeChoiceError(f"Unknown runtime {text!r} (TEACHABLE_RUNTIME / --runtime); use {choices}.")
    return text


def cache_folder() -> Path:
    """The built files' folder's ``onnx`` (``$TEACHABLE_CACHE_DIR``, else the per-user cache folder)."""
    return built_files_folder() / "onnx"


def default_threads() -> int:
    """Intra-op threads: the cores, up to 4 (torch uses as many). On 2 cores, 2 threads (which sleep when idle)
    ran a frame 1.8x faster than torch and 1 thread only 1.3x (benchmarks/bench_runtime.py)."""
    return max(1, min(os.cpu_count() or 1, 4))


class _FromImages(nn.Module):
    """uint8 NHWC images -> the taps of a truncated backbone: the interface of the graphs ONNX Runtime runs."""

    def __init__(self, truncated: Truncated) -> None:
        super().__init__()
        self.truncated = truncated

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.truncated(images.permute(0, 3, 1, 2).float())


def weights_hash(backbone: Backbone) -> str:
    digest = hashlib.sha256()
    for key, value in backbone.model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _versions() -> str:
    import onnx
    import onnxruntime

    return f"torch{torch.__version__.split('+')[0]}-onnx{onnx.__version__}-ort{onnxruntime.__version__}"


def _keep(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


def onnx_graph_bytes(
    module: torch.nn.Module,
    example: torch.Tensor,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
) -> bytes:
    """``module`` traced on ``example`` into an ONNX graph (as bytes) by the TorchScript exporter: quick on these plain
    CNNs (torch names it legacy with a DeprecationWarning). Shared by the live runtime and ``teachable export``."""
    import io

    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (example,),
            buffer,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def export_bytes(backbone: Backbone, taps: Sequence[str]) -> bytes:
    """The ONNX graph (as bytes) from uint8 images to ``taps``, with a dynamic batch size, in float32."""
    module = _FromImages(backbone.truncated(taps)).eval()
    if backbone.device.type != "cpu" or backbone.dtype != torch.float32:
        # A copy: the backbone's own modules stay on their device and dtype.
        module = copy.deepcopy(module).float().cpu()
    example = torch.zeros(1, backbone.input_size, backbone.input_size, 3, dtype=torch.uint8)
    outputs = [t.replace(".", "_") for t in taps]
    axes = {"images": {0: "batch"}, **{name: {0: "batch"} for name in outputs}}
    return onnx_graph_bytes(module, example, ["images"], outputs, axes)


class OrtForward:
    """ONNX Runtime sessions for one backbone, one per set of taps, exported on first use and cached on disk."""

    def __init__(self, backbone: Backbone, threads: int | None = None, folder: Path | None = None) -> None:
        self.backbone = backbone
        self.threads = threads or default_threads()
        self.folder = folder or cache_folder()
        self._key = f"{backbone.name}-{_versions()}-{weights_hash(backbone)}"
        self._sessions: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()
        self.exports = 0
        """How many graphs this object exported (rather than loaded from the cache)."""

    def path(self, taps: Sequence[str], suffix: str = "onnx") -> Path:
        return self.folder / f"{self._key}-{'+'.join(taps)}.{suffix}"

    def _new_session(self, model: bytes | str):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: on a small machine a spinning pool takes the cores that the
        # browser, torch and the rest of the server need between frames.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def session(self, taps: Sequence[str]):
        key = tuple(taps)
        found = self._sessions.get(key)
        if found is not None:
            return found
        with self._lock:
            if key in self._sessions:
                return self._sessions[key]
            path = self.path(key)
            session = None
            if path.is_file():
                try:
                    session = self._new_session(str(path))
                except Exception as error:  # noqa: BLE001 - a truncated or foreign file: export it again
                    log.warning("Cached ONNX graph %s does not load (%s); exporting it again.", path, error)
            if session is None:
                data = export_bytes(self.backbone, key)
                self.exports += 1
                try:
                    _keep(path, data)
                except OSError as error:
                    log.warning("Cannot keep the ONNX graph in %s (%s); it is exported again next start.", path, error)
                session = self._new_session(data)
            self._sessions = {**self._sessions, key: session}
            return session

    def run(self, images: np.ndarray, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        unique = self.backbone.stage_order(taps)  # one graph per set, whatever the order
        outputs = self.session(unique).run(None, {"images": np.ascontiguousarray(images, dtype=np.uint8)})
        by_tap = {tap: torch.from_numpy(value) for tap, value in zip(unique, outputs)}
        return {tap: by_tap[tap] for tap in taps}

    # ------------------------------------------------------------------------------------------ auto
    def auto_verdict(self) -> tuple[bool, str]:
        """Whether ``auto`` should use ONNX Runtime here, and why; measured once and kept on disk."""
        path = self.path(("auto", str(self.threads)), "json")
        try:
            verdict = json.loads(path.read_text())
            return bool(verdict["use"]), str(verdict["why"]) + " (measured earlier)"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        use, why, figures = self._measure()
        if figures.get("same_labels") is None:  # nothing was measured: ask again next time
            return use, why
        try:
            _keep(path, json.dumps({"use": use, "why": why, **figures}).encode())
        except OSError:
            pass
        return use, why

    def _measure(self, repeats: int = 8) -> tuple[bool, str, dict]:
        from .assets import CLASS_SAMPLES
        from .frames import load_image

        backbone = self.backbone
        frame_taps = list(dict.fromkeys([backbone.grid_tap, backbone.embedding_tap]))
        photos = sorted(CLASS_SAMPLES.glob("*/*.jpg"))
        if not photos:
            why = f"auto: no sample photos under {CLASS_SAMPLES} to check ONNX Runtime's labels against, so torch"
            log.warning("%s; reinstall teachable to get them back.", why)
            return False, why, {"same_labels": None}
        images = np.stack([backbone.prepare(load_image(p)) for p in photos])
        with torch.inference_mode():
            torch_logits = backbone.forward_taps(backbone.to_tensor(images), ["logits"])["logits"].numpy()
        ort_logits = self.run(images, ["logits"])["logits"].numpy()
        same = bool((torch_logits.argmax(1) == ort_logits.argmax(1)).all())
        one = images[:1]
        self.run(one, frame_taps)  # export, load and warm up before timing
        torch_times, ort_times = [], []
        with torch.inference_mode():
            backbone.forward_taps(backbone.to_tensor(one), frame_taps)
            for _ in range(repeats):  # interleaved, so both see the same load on the machine
                start = time.perf_counter()
                backbone.forward_taps(backbone.to_tensor(one), frame_taps)
                torch_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                self.run(one, frame_taps)
                ort_times.append(time.perf_counter() - start)
        torch_ms, ort_ms = 1000 * float(np.median(torch_times)), 1000 * float(np.median(ort_times))
        speedup = torch_ms / ort_ms
        use = same and speedup >= AUTO_MIN_SPEEDUP
        why = (
            f"auto: a frame took {ort_ms:.1f} ms in ONNX Runtime vs {torch_ms:.1f} ms in torch ({speedup:.2f}x, "
            f"needs {AUTO_MIN_SPEEDUP}x), {'same' if same else 'different'} labels on {len(images)} sample photos"
        )
        return use, why, {"torch_ms": torch_ms, "ort_ms": ort_ms, "speedup": speedup, "same_labels": same}


class OnnxRuntimeChoice:
    """Whether a backbone on the CPU runs its frames in ONNX Runtime, per ``setting`` (``onnxruntime`` or ``auto``),
    decided on first use (for ``auto``, by :meth:`OrtForward.auto_verdict`); one log line says which and why.

    A :class:`~teachable.stages.CpuRuntime`: the backbone asks :meth:`active` before each frame it runs on the CPU.
    """

    name = "onnxruntime"

    def __init__(self, backbone: Backbone, setting: str, folder: Path | None = None) -> None:
        self.backbone = backbone
        self.setting = setting
        self.folder = folder
        self.reason = ""
        """Why ONNX Runtime is used or not, once decided."""
        self._forward: OrtForward | None = None
        self._lock = threading.Lock()

    def active(self) -> bool:
        if not self.reason:
            with self._lock:
                if not self.reason:
                    self._forward, self.reason = self._decide()
        return self._forward is not None

    def run(self, images: np.ndarray, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        if not self.active():
            raise RuntimeError(f"ONNX Runtime does not run {self.backbone.name} here ({self.reason}).")
        return self._forward.run(images, taps)

    def _decide(self) -> tuple[OrtForward | None, str]:
        backbone = self.backbone
        try:
            ort_forward = OrtForward(backbone, folder=self.folder)
        except ImportError as error:
            if self.setting == "onnxruntime":
                needs = "TEACHABLE_RUNTIME=onnxruntime needs the onnx and onnxruntime packages"
                raise BackboneError(f"{needs} ({error}).") from None
            why = f"auto: {error.name or 'onnxruntime'} is not installed"
            log.info("%s forward pass on the CPU runs in torch (%s)", backbone.name, why)
            return None, why
        if self.setting == "onnxruntime":
            use, why = True, "requested"
        elif backbone.compiled:
            use, why = False, "auto: torch.compile was requested"
        else:
            use, why = ort_forward.auto_verdict()
        log.info(
            "%s forward pass on the CPU runs in %s, %d thread(s) (%s)",
            backbone.name,
            "ONNX Runtime" if use else "torch",
            ort_forward.threads if use else torch.get_num_threads(),
            why,
        )
        return (ort_forward if use else None), why


def cpu_runtime(backbone: Backbone, setting: str) -> OnnxRuntimeChoice | None:
    """What runs ``backbone``'s frames on the CPU for a checked ``setting`` (see :func:`runtime_setting`): None for
    ``torch``, else ONNX Runtime where the setting allows it."""
    return None if setting == "torch" else OnnxRuntimeChoice(backbone, setting)
