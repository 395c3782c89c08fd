import re

import numpy as np
import pytest
import torch

from teachable.backbones import (
    BackboneError,
    WeightsNotFound,
    available_backbones,
    load_backbone,
    load_backbone_or_default,
)

from .conftest import photo


def top5(backbone, rgb):
    logits = backbone.run(backbone.prepare(rgb)[None], ["logits"])["logits"][0]
    return [backbone.class_names[i] for i in logits.topk(5).indices]


def test_pretrained_model_names_a_real_cat(backbone):
    names = top5(backbone, photo("chelsea"))
    assert names[0] in {"tabby", "tiger cat", "Egyptian cat"}, names


def test_pretrained_model_names_espresso(backbone):
    names = top5(backbone, photo("coffee"))
    assert names[0] in {"espresso", "cup", "coffee mug"}, names


def test_each_tap_shape_matches_its_metadata(backbone):
    images = np.zeros((2, 224, 224, 3), np.uint8)
    outputs = backbone.run(images, list(backbone.taps))
    for name, info in backbone.taps.items():
        shape = tuple(outputs[name].shape)
        if info.is_spatial:
            side = info.grid_size(224)
            assert shape == (2, info.channels, side, side), name
        else:
            assert shape == (2, info.channels), name
    assert backbone.tap(backbone.grid_tap).grid_size(224) == 14
    assert backbone.embedding_dim == 1280


def test_early_tap_equals_the_same_tap_from_a_full_pass(backbone):
    images = np.stack([backbone.prepare(photo("rocket"))])
    early = backbone.run(images, ["blocks.4"])["blocks.4"]
    full = backbone.run(images, ["blocks.4", "logits"])["blocks.4"]
    torch.testing.assert_close(early, full)


def test_thousand_forwards_leave_the_model_unchanged(backbone):
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    images = np.stack([backbone.prepare(photo("coffee"))])
    reference = backbone.embed(images)
    for i in range(1000):
        backbone.run(images, ["stem"] if i % 50 else ["logits"])
    after = backbone.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not backbone.model.training
    for module in backbone.model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks and not module._backward_hooks
    assert all(not p.requires_grad for p in backbone.model.parameters())
    np.testing.assert_array_equal(backbone.embed(images), reference)


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(BackboneError, match="efficientnet_lite0"):
        load_backbone("resnet9000")


def test_unknown_tap_lists_the_valid_taps(backbone):
    with pytest.raises(BackboneError, match="blocks.4"):
        backbone.tap("layer99")


def test_wrong_image_shape_is_refused(backbone):
    with pytest.raises(BackboneError, match="prepare"):
        backbone.run(np.zeros((1, 100, 100, 3), np.uint8))


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "googlenet"])
def test_missing_torchvision_weights_name_the_file(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound, match=re.escape(str(tmp_path / "hub" / "checkpoints" / ""))):
        load_backbone(name)
    backbone, warning = load_backbone_or_default(name, "cpu")
    assert backbone.name == "efficientnet_lite0"
    assert "Using the bundled efficientnet_lite0" in warning


@pytest.mark.parametrize(("name", "grid_side", "dim"), [("mobilenet_v3_large", 14, 960), ("googlenet", 14, 1024)])
def test_cached_torchvision_weights_load_strictly(name, grid_side, dim, tmp_path, monkeypatch):
    """A checkpoint file in the torch cache is found and loaded with strict=True (here a freshly initialised one,
    saved where torchvision keeps its ImageNet file)."""
    import torchvision

    from teachable.backbones import torch_cache_checkpoint

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    model = torchvision.models.get_model(
        name, weights=None, **({"aux_logits": True, "init_weights": True} if name == "googlenet" else {})
    )
    path = torch_cache_checkpoint(weights)
    path.parent.mkdir(parents=True)
    torch.save(model.state_dict(), path)
    backbone = load_backbone(name, "cpu")
    assert backbone.name == name and len(backbone.class_names) == 1000
    out = backbone.run(np.zeros((1, 224, 224, 3), np.uint8), [backbone.grid_tap, "pool"])
    assert out[backbone.grid_tap].shape[-1] == grid_side
    assert out["pool"].shape == (1, dim) == (1, backbone.embedding_dim)


def test_registry_names():
    assert available_backbones() == ("efficientnet_lite0", "efficientnet_lite1", "mobilenet_v3_large", "googlenet")
