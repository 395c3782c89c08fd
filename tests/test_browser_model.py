"""The browser's model gives what the server computes for the same square: the embedding, and each cell's icon and
strength; it is built once and then read from the cache. (The page makes the square: tests/test_browser_inference.py
checks it against the server's.)"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from teachable.activations import GridIcons, icon_cells
from teachable.assets import icon_file
from teachable.backbones import pooled
from teachable.browser_model import BrowserModel, browser_model, browser_model_folder, model_version
from teachable.runtime import OPSET
from teachable.settings import cache_folder

from .conftest import photo

FRAMES = {
    "chelsea 300x451": lambda: photo("chelsea"),
    "coffee 400x600": lambda: photo("coffee"),
    "astronaut 512x512": lambda: photo("astronaut"),
    "rocket, tall crop 427x200": lambda: photo("rocket")[:, 200:400],
    "chelsea, small 100x151": lambda: photo("chelsea")[::3, ::3],
    "coffee crop, small 150x200": lambda: photo("coffee")[100:250, 200:400],
}


@pytest.fixture(scope="module")
def icons(backbone) -> GridIcons:
    """The shipped icons, found as the app finds them (teachable.webapp.load_icons)."""
    return GridIcons.load(icon_file(backbone.name, backbone.grid_tap))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("browser")


@pytest.fixture(scope="module")
def model(backbone, icons, folder) -> BrowserModel:
    return browser_model(backbone, backbone.embedding_tap, backbone.grid_tap, icons, folder=folder)


@pytest.fixture(scope="module")
def answers(model, backbone):
    session = ort.InferenceSession(model.onnx, providers=["CPUExecutionProvider"])
    return {name: dict(zip(model.outputs, session.run(None, {"square": backbone.prepare(make())})))
            for name, make in FRAMES.items()}  # fmt: skip


def _server_taps(backbone, frame: np.ndarray, taps: list[str]) -> dict:
    return backbone.run(backbone.prepare(frame)[None], taps)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _strength_as_the_page_computes(norms: np.ndarray) -> np.ndarray:
    """``clip(norm / max(percentile95(norms), 1e-6), 0, 1)`` with the percentile written out as the page's script
    does it: linear between the two nearest ranks of the sorted norms."""
    ranked = np.sort(norms.astype(np.float64))
    rank = 0.95 * (len(ranked) - 1)
    low = int(np.floor(rank))
    high = min(low + 1, len(ranked) - 1)
    percentile = ranked[low] + (rank - low) * (ranked[high] - ranked[low])
    return np.clip(norms / max(percentile, 1e-6), 0, 1)


def test_the_graph_takes_the_square_and_says_what_it_gives(model, backbone, icons):
    graph = onnx.load_from_string(model.onnx)
    (image,) = graph.graph.input
    assert image.name == "square" and image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim] == [224, 224, 3]
    types = {o.name: o.type.tensor_type.elem_type for o in graph.graph.output}
    assert types == {
        "embedding": onnx.TensorProto.FLOAT,
        "icon_best": onnx.TensorProto.INT32,
        "cell_norms": onnx.TensorProto.FLOAT,
    }
    assert [o.name for o in graph.graph.output] == list(model.outputs)
    assert [(o.domain, o.version) for o in graph.opset_import] == [("", OPSET)]
    metadata = {entry.key: entry.value for entry in graph.metadata_props}
    assert (metadata["version"], metadata["embedding_tap"], metadata["grid_tap"]) == (model.version, "pool", "blocks.4")
    info = json.loads(json.dumps(model.page_info()))
    assert info["outputs"] == ["embedding", "icon_best", "cell_norms"]
    assert (info["input_size"], info["embedding_size"], info["grid_height"], info["grid_width"]) == (224, 1280, 14, 14)
    assert info["icon_count"] == len(icons.directions) and info["bytes"] == len(model.onnx)
    assert len(model.version) == 16 and int(model.version, 16) >= 0
    assert "onnx=" not in repr(model) and len(repr(model)) < 1000  # not 13 MB of bytes


@pytest.mark.parametrize("name", FRAMES)
def test_the_embedding_is_the_servers(name, answers, backbone):
    frame = FRAMES[name]()
    expected = pooled(_server_taps(backbone, frame, [backbone.embedding_tap])[backbone.embedding_tap])[0]
    embedding = answers[name]["embedding"]
    assert embedding.shape == expected.shape == (1280,) and embedding.dtype == np.float32
    cosine = _cosine(embedding, expected)
    print(f"{name}: cosine {cosine:.7f}, norms {np.linalg.norm(embedding):.3f}/{np.linalg.norm(expected):.3f}")
    assert cosine >= 0.999
    assert np.linalg.norm(embedding) == pytest.approx(np.linalg.norm(expected), rel=1e-2)  # not normalised


@pytest.mark.parametrize("name", FRAMES)
def test_icon_cells_are_the_servers(name, answers, backbone, icons, model):
    frame = FRAMES[name]()
    activation = _server_taps(backbone, frame, [backbone.grid_tap])[backbone.grid_tap][0].numpy()
    best, strength = icon_cells(activation, icons)
    got_best, norms = answers[name]["icon_best"], answers[name]["cell_norms"]
    assert got_best.shape == norms.shape == (model.cells,) == (best.size,)
    assert got_best.dtype == np.int32 and norms.dtype == np.float32
    assert 0 <= got_best.min() and got_best.max() < model.icon_count
    agreement = float((got_best == best.ravel()).mean())  # cells in row-major order, as icon_cells
    page_strength = _strength_as_the_page_computes(norms)
    worst = float(np.abs(page_strength - strength.ravel()).max())
    print(f"{name}: {agreement:.1%} of cells have the server's icon, strength within {worst:.5f}")
    assert agreement >= 0.97
    assert worst <= 0.02
    server_norms = np.linalg.norm(activation.reshape(activation.shape[0], -1).T, axis=1)
    np.testing.assert_allclose(norms, server_norms, rtol=1e-2, atol=1e-2)


def test_the_pages_percentile_is_numpys():
    norms = np.random.default_rng(3).gamma(2.0, size=196).astype(np.float32)
    expected = np.clip(norms / np.percentile(norms, 95), 0, 1)
    np.testing.assert_allclose(_strength_as_the_page_computes(norms), expected, rtol=1e-6)


def test_the_version_follows_what_changes_the_outputs(backbone, icons, model):
    other_icons = dataclasses.replace(icons, directions=np.roll(icons.directions, 1, axis=0))
    other_pictures = dataclasses.replace(icons, icons=icons.icons[::-1].copy(), kinds=tuple(reversed(icons.kinds)))
    same = model_version(backbone, "pool", "blocks.4", icons)
    reloaded = GridIcons.load(icon_file(backbone.name, "blocks.4"))
    assert same == model.version == model_version(backbone, "pool", "blocks.4", reloaded)
    assert model_version(backbone, "pool", "blocks.4", other_pictures) == same  # the pictures are not in the graph
    changed = {
        "embedding tap": model_version(backbone, "blocks.6", "blocks.4", icons),
        "icon directions": model_version(backbone, "pool", "blocks.4", other_icons),
        "no icons": model_version(backbone, "pool", "blocks.4", None),
    }
    assert len({same, *changed.values()}) == 4, changed
    # The grid tap changes the graph only through the icons drawn at it: icons of blocks.4 do not apply at
    # blocks.3, so that graph has no icon outputs, like one without a grid tap.
    assert model_version(backbone, "pool", "blocks.3", icons) == changed["no icons"] == model_version(backbone, "pool")


def test_built_once_then_read_from_the_cache(backbone, icons, tmp_path):
    started = time.perf_counter()
    first = browser_model(backbone, "pool", "blocks.4", icons, folder=tmp_path)
    build = time.perf_counter() - started
    assert first.path == tmp_path / f"efficientnet_lite0-{first.version}.onnx" and first.path.read_bytes() == first.onnx
    modified = first.path.stat().st_mtime_ns
    started = time.perf_counter()
    second = browser_model(backbone, "pool", "blocks.4", icons, folder=tmp_path)
    cached = time.perf_counter() - started
    print(f"built in {build:.2f} s ({len(first.onnx) / 1e6:.1f} MB), read from the cache in {cached * 1000:.0f} ms")
    assert second == first and first.path.stat().st_mtime_ns == modified
    assert cached < build / 3 and cached < 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.path.name]  # no temporary left behind


def test_a_damaged_file_is_built_again(backbone, tmp_path):
    first = browser_model(backbone, "pool", folder=tmp_path)
    first.path.write_bytes(first.onnx[: len(first.onnx) // 2])
    again = browser_model(backbone, "pool", folder=tmp_path)
    assert again.version == first.version and len(again.onnx) == len(first.onnx)
    assert again.path.read_bytes() == again.onnx


def test_kept_in_the_built_files_folder(backbone):
    assert browser_model_folder() == cache_folder() / "browser"
    model = browser_model(backbone, "pool")
    assert model.path.parent == browser_model_folder() and model.path.is_file()


def test_without_icons_there_are_no_icon_outputs(backbone, icons, folder):
    plain = browser_model(backbone, "blocks.6", folder=folder)
    elsewhere = browser_model(backbone, "blocks.6", "blocks.3", icons, folder=folder)  # icons made for blocks.4
    assert elsewhere == plain
    assert plain.outputs == ("embedding",) and plain.icon_count == 0 and plain.grid_tap is None
    graph = onnx.load_from_string(plain.onnx)
    assert [o.name for o in graph.graph.output] == ["embedding"]
    frame = photo("astronaut")[50:350, 100:500]
    session = ort.InferenceSession(plain.onnx, providers=["CPUExecutionProvider"])
    (embedding,) = session.run(None, {"square": backbone.prepare(frame)})
    expected = pooled(_server_taps(backbone, frame, ["blocks.6"])["blocks.6"])[0]  # a spatial tap, average-pooled
    assert embedding.shape == (320,) == (plain.embedding_size,) and _cosine(embedding, expected) >= 0.999


def test_taps_that_cannot_be_drawn_are_refused(backbone, icons):
    from teachable.stages import BackboneError

    with pytest.raises(BackboneError, match="not spatial"):
        browser_model(backbone, "pool", "logits", icons)
    with pytest.raises(BackboneError, match="no tap"):
        model_version(backbone, "nonsense")
    broken = dataclasses.replace(icons, directions=icons.directions[:, :50])
    with pytest.raises(ValueError, match="channels"):
        model_version(backbone, "pool", "blocks.4", broken)
