"""A backbone as an ordered list of named stages: running them in order is the network's forward pass.

A *tap* is the output of one stage. Because the forward pass is just this loop, reading any tap needs no hooks, and a
request for an early tap stops early. :meth:`Backbone.truncated` is that loop as one module, from the normalisation
of the input up to some taps; the live forward pass runs it, and the ONNX Runtime graphs (:mod:`teachable.runtime`)
and the exported model (:mod:`teachable.export`) are traced from it, so all three normalise and stop alike.
``Backbone.run`` is the only way images go in. Which pretrained networks exist, and how one is loaded with the
runtime that runs it on the CPU, is :mod:`teachable.backbones`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from .frames import as_rgb_uint8, center_square

__all__ = [
    "Backbone",
    "BackboneError",
    "CpuRuntime",
    "Normalisation",
    "TapInfo",
    "Truncated",
    "choose_device",
    "pooled",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class BackboneError(ValueError):
    """An unknown backbone, tap or device, with the valid choices in the message."""


@dataclass(frozen=True)
class TapInfo:
    """One readable feature map of a backbone."""

    name: str
    channels: int
    stride: int
    """Input pixels per output cell; 0 for pooled vectors and logits (no spatial extent)."""

    @property
    def is_spatial(self) -> bool:
        return self.stride > 0

    def grid_size(self, input_size: int) -> int:
        """Side of the tap's spatial grid for a square input, e.g. 14 for stride 16 at 224."""
        if not self.is_spatial:
            raise BackboneError(f"Tap {self.name!r} is not spatial.")
        return -(-input_size // self.stride)


class CpuRuntime(Protocol):
    """Another engine for the forward pass while the backbone is on the CPU (ONNX Runtime: :mod:`teachable.runtime`).

    The backbone asks it on every call whether it runs frames now, so the engine may decide on first use."""

    name: str
    """What runs the frames when it is active, e.g. ``onnxruntime``."""
    setting: str
    """What was asked for: ``onnxruntime`` or ``auto``."""

    def active(self) -> bool: ...

    def run(self, images: np.ndarray, taps: Sequence[str]) -> dict[str, torch.Tensor]: ...


def choose_device(device: str | None = None) -> tuple[torch.device, torch.dtype, str]:
    """Resolve ``"auto"``/``None`` to CUDA with fp16 when torch sees a GPU, else CPU with fp32.

    Returns the device, the dtype the weights run in, and why, in words (for the log).
    """
    if device in (None, "auto"):
        if torch.cuda.is_available():
            device, reason = "cuda", f"auto: CUDA GPU {torch.cuda.get_device_name(0)}"
        elif torch.version.cuda is None:
            device, reason = "cpu", "auto: this torch build has no CUDA"
        else:
            device, reason = "cpu", "auto: torch sees no CUDA GPU"
    else:
        reason = "requested"
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise BackboneError(f"Unknown device {device!r}; use 'auto', 'cpu' or 'cuda'.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BackboneError("Device 'cuda' was requested but no CUDA GPU is available; use 'cpu' or 'auto'.")
    if resolved.type not in ("cpu", "cuda"):
        raise BackboneError(f"Unsupported device {device!r}; use 'auto', 'cpu' or 'cuda'.")
    return resolved, (torch.float16 if resolved.type == "cuda" else torch.float32), reason


def _out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


class Normalisation(nn.Module):
    """Pixel values (0-255, ``N x 3 x H x W``) -> what the network was trained on: ``(x / 255 - mean) / std``."""

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, device=device, dtype=dtype).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, device=device, dtype=dtype).view(1, 3, 1, 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels / 255.0 - self.mean) / self.std


class Truncated(nn.Module):
    """The network from the normalisation of its input up to some taps.

    Pixels (0-255, ``N x 3 x S x S``) -> a tuple with one tensor per tap, in the order asked; the stages after the
    last tap are not part of it. Its stages are the backbone's own modules (shared, not copied)."""

    def __init__(
        self, normalisation: Normalisation, stages: Sequence[tuple[str, nn.Module]], taps: Sequence[str]
    ) -> None:
        super().__init__()
        self.normalisation = normalisation
        self.names = [name for name, _ in stages]
        self.stages = nn.ModuleList(module for _, module in stages)
        self.taps = list(taps)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.from_normalised(self.normalisation(pixels))

    def from_normalised(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The taps of an already normalised batch (for callers that make their own input, such as the atlas)."""
        wanted = set(self.taps)
        outputs: dict[str, torch.Tensor] = {}
        for name, stage in zip(self.names, self.stages):
            x = stage(x)
            if name in wanted:
                outputs[name] = x
        return tuple(outputs[tap] for tap in self.taps)


class Backbone:
    """A frozen pretrained CNN whose stages can be read by tap name.

    >>> from teachable.backbones import load_backbone
    >>> backbone = load_backbone("efficientnet_lite0")
    >>> images = np.zeros((1, 224, 224, 3), np.uint8)
    >>> {name: tuple(t.shape) for name, t in backbone.run(images, ["blocks.4", "pool"]).items()}
    {'blocks.4': (1, 112, 14, 14), 'pool': (1, 1280)}
    """

    def __init__(
        self,
        name: str,
        stages: Sequence[tuple[str, nn.Module]],
        taps: Sequence[TapInfo],
        *,
        input_size: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        class_names: Sequence[str],
        embedding_tap: str,
        grid_tap: str,
        device: str | None = None,
        compile_mode: str | None = None,
    ) -> None:
        self.name = name
        self.input_size = input_size
        self.mean = mean
        self.std = std
        self.class_names = tuple(class_names)
        self.taps = {tap.name: tap for tap in taps}
        self.embedding_tap = embedding_tap
        self.grid_tap = grid_tap
        self.device, self.dtype, reason = choose_device(device)
        self._stage_names = [stage_name for stage_name, _ in stages]
        missing = set(self.taps) - set(self._stage_names)
        if missing:
            raise BackboneError(f"Taps {sorted(missing)} are not stages of {name}.")
        self.model = nn.ModuleList(module for _, module in stages).eval().requires_grad_(False)
        self._cpu_weights: dict[str, torch.Tensor] | None = None
        self._place(self.device, self.dtype)
        self._device_lock = threading.Lock()
        self._stages: Sequence[nn.Module] = list(self.model)
        self._compiled = bool(compile_mode)
        if compile_mode:
            # Per stage, so that any tap can still be read; dynamic batch sizes share one graph.
            self._stages = [torch.compile(stage, backend=compile_mode, dynamic=True) for stage in self.model]
        self.cpu_runtime: CpuRuntime | None = None
        """What runs frames instead of torch while on the CPU, or None (torch); ``load_backbone`` sets it."""
        log.info(
            "Backbone %s on %s, %s, channels_last%s (%s)",
            name,
            self.device,
            str(self.dtype).removeprefix("torch."),
            f", torch.compile backend {compile_mode}" if compile_mode else "",
            reason,
        )

    # ------------------------------------------------------------------------------------------ placement
    def _place(self, device: torch.device, dtype: torch.dtype) -> None:
        on_cpu_fp32 = device.type == "cpu" and dtype == torch.float32
        if not on_cpu_fp32 and self._cpu_weights is None:
            # The CPU fall-back gets the original float32 weights back, not ones rounded to fp16 and widened.
            self._cpu_weights = {key: value.detach().clone() for key, value in self.model.state_dict().items()}
        self.device, self.dtype = device, dtype
        self.model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
        if on_cpu_fp32 and self._cpu_weights is not None:
            self.model.load_state_dict(self._cpu_weights)
        self._normalisation = Normalisation(self.mean, self.std, device, dtype)

    @property
    def on_accelerator(self) -> bool:
        return self.device.type != "cpu"

    @property
    def compiled(self) -> bool:
        """Whether the stages run through ``torch.compile``."""
        return self._compiled

    def falling_back_to_cpu(self, compute: Callable[[], T]) -> T:
        """Run ``compute``; if the accelerator runs out of memory, move the backbone to the CPU (fp32), say so in the
        log, and run it again there. Every session shares the move; none of them fails."""
        device = self.device
        try:
            return compute()
        except (RuntimeError, torch.OutOfMemoryError) as error:
            if self.device != device:  # another thread moved the model mid-call: just run again
                return compute()
            if not (self.on_accelerator and _out_of_memory(error)):
                raise
            with self._device_lock:
                if self.on_accelerator:
                    log.warning("%s ran out of memory on %s; continuing on the CPU (float32).", self.name, device)
                    self._place(torch.device("cpu"), torch.float32)
                    torch.cuda.empty_cache()
            return compute()

    # ------------------------------------------------------------------------------------------ runtime
    @property
    def runtime(self) -> str:
        """What was asked to run frames on the CPU: ``torch``, ``onnxruntime`` or ``auto``."""
        return self.cpu_runtime.setting if self.cpu_runtime is not None else "torch"

    @property
    def runtime_in_use(self) -> str:
        """``onnxruntime`` or ``torch``: what runs a frame now (deciding ``auto`` if not yet decided)."""
        runtime = self._cpu_runtime_now()
        return runtime.name if runtime is not None else "torch"

    def _cpu_runtime_now(self) -> CpuRuntime | None:
        if self.cpu_runtime is None or self.on_accelerator or not self.cpu_runtime.active():
            return None
        return self.cpu_runtime

    # ------------------------------------------------------------------------------------------ description
    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, device={self.device}, taps={list(self.taps)})"

    @property
    def embedding_dim(self) -> int:
        return self.taps[self.embedding_tap].channels

    def tap(self, name: str) -> TapInfo:
        try:
            return self.taps[name]
        except KeyError:
            raise BackboneError(f"{self.name} has no tap {name!r}; valid taps: {', '.join(self.taps)}.") from None

    def stage_order(self, taps: Sequence[str]) -> list[str]:
        """``taps`` without repeats, in the order the forward pass reaches them."""
        return sorted({self.tap(name).name for name in taps}, key=self._stage_names.index)

    # ------------------------------------------------------------------------------------------ the network
    def truncated(self, taps: Sequence[str]) -> Truncated:
        """The network from the normalisation of its input up to ``taps``, as one module: pixels (0-255,
        ``N x 3 x S x S``, on the backbone's device and dtype) -> a tuple with one tensor per tap.

        The ONNX Runtime graphs and the export trace it; :meth:`run` runs the same module (with the compiled stages
        when ``compile_mode`` was given)."""
        return self._truncated(taps, list(self.model))

    def _truncated(self, taps: Sequence[str], stages: Sequence[nn.Module]) -> Truncated:
        names = [self.tap(name).name for name in taps]
        last = max(self._stage_names.index(name) for name in names)
        return Truncated(self._normalisation, list(zip(self._stage_names, stages))[: last + 1], names)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """Any RGB/RGBA/grayscale frame -> the ``input_size`` square uint8 RGB crop this backbone sees."""
        return center_square(as_rgb_uint8(frame), self.input_size)

    def _pixels(self, images: np.ndarray) -> torch.Tensor:
        """``NxHxWx3`` uint8 RGB -> ``Nx3xHxW`` pixel values on the device, in its dtype, channels_last."""
        self._check_images(images)
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, non_blocking=True)
        return batch.permute(0, 3, 1, 2).to(self.dtype).contiguous(memory_format=torch.channels_last)

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """``NxHxWx3`` uint8 RGB (already ``input_size`` square) -> normalised ``Nx3xHxW`` tensor on the device."""
        return self._normalisation(self._pixels(images)).contiguous(memory_format=torch.channels_last)

    def _check_images(self, images: np.ndarray) -> None:
        if images.ndim != 4 or images.shape[1:] != (self.input_size, self.input_size, 3):
            raise BackboneError(
                f"Expected images of shape (N, {self.input_size}, {self.input_size}, 3), got {images.shape}; "
                "prepare each with Backbone.prepare first."
            )

    def forward_taps(self, batch: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run stages on a normalised batch until the last requested tap; return those taps (float32)."""
        outputs = self._truncated(taps, self._stages).from_normalised(batch)
        return {name: output.float() for name, output in zip(taps, outputs)}

    def forward_from(self, tap: str, activation: torch.Tensor, until: str) -> torch.Tensor:
        """Continue the forward pass from ``tap``'s output up to stage ``until`` (differentiable; used for
        attribution, where gradients flow to the activation, never to the frozen weights)."""
        start = self._stage_names.index(self.tap(tap).name) + 1
        stop = self._stage_names.index(self.tap(until).name) + 1
        x = activation.to(self.dtype)
        for stage in list(self.model)[start:stop]:
            x = stage(x)
        return x.float()

    def run(self, images: np.ndarray, taps: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Images (``NxHxWx3`` uint8, ``input_size`` square) -> ``{tap: float32 tensor}`` (embedding tap by default)."""
        taps = [self.tap(name).name for name in taps or [self.embedding_tap]]
        runtime = self._cpu_runtime_now()
        if runtime is not None:
            self._check_images(images)
            return runtime.run(images, taps)

        def forward() -> dict[str, torch.Tensor]:
            with torch.inference_mode():
                outputs = self._truncated(taps, self._stages)(self._pixels(images))
                return {name: output.float() for name, output in zip(taps, outputs)}

        return self.falling_back_to_cpu(forward)

    def embed(self, images: np.ndarray, tap: str | None = None) -> np.ndarray:
        """Embedding vectors (``N x channels`` float32 numpy) of ``input_size`` square RGB uint8 images, read at
        ``tap`` (default: the embedding tap); spatial taps are average-pooled."""
        tap = tap or self.embedding_tap
        return pooled(self.run(images, [tap])[tap])


def pooled(activation: torch.Tensor) -> np.ndarray:
    """``N x C x H x W`` -> ``N x C`` by spatial mean; pooled vectors pass through. Returns float32 numpy."""
    if activation.ndim == 4:
        activation = activation.mean(dim=(2, 3))
    return activation.detach().float().cpu().numpy()
