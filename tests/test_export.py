"""The exported ONNX model answers as `teachable predict` does: same labels, confidences, "unknown".

The photos are made here from the repository's own assets: crops, flips, scales, brightness changes and icon
backgrounds of the sample photos, and mosaics of the activation-grid icons (which look like none of the classes).
When ../shared/devdata is present, cut-outs from it are added, composited onto a background.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from teachable.assets import ASSETS, DEMO_PROJECT
from teachable.cli import main
from teachable.export import ExportError, onnx_bytes, read_metadata
from teachable.frames import center_square, encode_jpeg, load_image
from teachable.knn import KNNClassifier
from teachable.project import Project

DEVDATA = Path(__file__).resolve().parents[2] / "shared" / "devdata" / "tuxpaint_cutouts"


def _icon_mosaic(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    icons = np.load(ASSETS / "icons" / "efficientnet_lite0.blocks.4.npz")["icons"]
    rows, columns = -(-height // 48), -(-width // 48)
    picked = icons[rng.integers(0, len(icons), rows * columns)].reshape(rows, columns, 48, 48, 3)
    return np.ascontiguousarray(picked.transpose(0, 2, 1, 3, 4).reshape(rows * 48, columns * 48, 3)[:height, :width])


def _variant(rng: np.random.Generator, rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = rng.uniform(0.45, 1.0)
    h, w = max(32, int(height * scale)), max(32, int(width * rng.uniform(0.45, 1.0)))
    y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
    crop = np.ascontiguousarray(rgb[y : y + h, x : x + w])
    if rng.random() < 0.5:
        crop = np.ascontiguousarray(crop[:, ::-1])
    crop = cv2.convertScaleAbs(crop, alpha=rng.uniform(0.75, 1.25), beta=rng.uniform(-25, 25))
    size = rng.uniform(0.4, 1.8)  # shrink and grow, so both of the resize filters are exercised
    crop = cv2.resize(crop, (max(24, int(w * size)), max(24, int(h * size))), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.3:  # on a background of icons, off centre
        h, w = crop.shape[:2]
        canvas = _icon_mosaic(rng, int(h * 1.5), int(w * 1.5))
        top, left = rng.integers(0, canvas.shape[0] - h + 1), rng.integers(0, canvas.shape[1] - w + 1)
        canvas[top : top + h, left : left + w] = crop
        crop = canvas
    return crop


def _cutouts(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    files = sorted(DEVDATA.glob("*/*.png"))
    out = []
    for path in [files[i] for i in rng.choice(len(files), min(count, len(files)), replace=False)]:
        rgba = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        alpha = rgba[..., 3:].astype(np.float32) / 255
        background = np.full_like(rgba[..., :3], rng.integers(60, 200, 3, dtype=np.uint8))
        out.append((rgba[..., :3] * alpha + background * (1 - alpha)).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, list[Path]]:
    """At least 100 distinct photos of any size, and the same as 224x224 centre squares, written as PNG."""
    rng = np.random.default_rng(15)
    sources = [load_image(path) for path in sorted(ASSETS.glob("samples/*/*.jpg")) + sorted(ASSETS.glob("try/*.jpg"))]
    images = list(sources)
    for source in sources:
        images += [_variant(rng, source) for _ in range(6)]
    images += [_icon_mosaic(rng, int(rng.integers(120, 400)), int(rng.integers(120, 400))) for _ in range(10)]
    if DEVDATA.is_dir():
        images += _cutouts(rng, 12)
    folder = tmp_path_factory.mktemp("parity")
    written = {"any": [], "224": []}
    for i, rgb in enumerate(images):
        for kind, picture in (("any", rgb), ("224", center_square(rgb, 224))):
            path = folder / kind / f"{i:03d}.png"
            path.parent.mkdir(exist_ok=True)
            assert cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
            written[kind].append(path)
    assert len(images) >= 100 and len({p.read_bytes() for p in written["any"]}) == len(images)
    return written


@pytest.fixture(scope="module")
def demo() -> Project:
    return Project.load(DEMO_PROJECT)


@pytest.fixture(scope="module")
def exported(demo, backbone, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    assert main(["export", str(DEMO_PROJECT), "-o", str(path)]) == 0
    return path


def _session(model) -> ort.InferenceSession:
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def _cli_predict(project_path: Path, images: list[Path]) -> list[dict]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["predict", str(project_path), *map(str, images), "--json"]) == 0
    return json.loads(out.getvalue())


def _onnx_answers(session: ort.InferenceSession, images: list[Path]) -> list[tuple[int, np.ndarray, float]]:
    answers = []
    for path in images:
        confidences, label, similarity, _ = session.run(None, {"image": load_image(path)})
        answers.append((int(label), confidences, float(similarity)))
    return answers


def _compare(expected: list[dict], answers, classes: list[str]) -> tuple[int, float, int]:
    """(labels equal, largest confidence difference where they are, frames that were unknown in Python)."""
    same, worst, unknown = 0, 0.0, 0
    for result, (label, confidences, _) in zip(expected, answers):
        want = -1 if result["unknown"] else classes.index(result["label"])
        unknown += want == -1
        if label == want:
            same += 1
            worst = max(worst, float(np.abs(confidences - [result["confidences"][c] for c in classes]).max()))
    return same, worst, unknown


def test_model_file_has_the_interface_and_metadata(exported, demo):
    model = onnx.load(str(exported))
    assert not [i for i in model.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == ["image"]
    image_type = inputs["image"].type.tensor_type
    assert image_type.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in image_type.shape.dim] == ["height", "width", 3]
    outputs = {o.name: o.type.tensor_type.elem_type for o in model.graph.output}
    assert outputs == {
        "confidences": onnx.TensorProto.FLOAT,
        "label": onnx.TensorProto.INT64,
        "similarity": onnx.TensorProto.FLOAT,
        "embedding": onnx.TensorProto.FLOAT,
    }
    metadata = read_metadata(exported)
    assert metadata["classes"] == demo.classes
    demo.classifier.threshold = 0.2
    assert (metadata["backbone"], metadata["tap"], metadata["rule"]) == ("efficientnet_lite0", "pool", "prototype")
    assert (metadata["k"], metadata["threshold"], metadata["format_version"]) == ("5", "0.2", "1")
    assert float(metadata["boundary"]) == pytest.approx(demo.classifier.boundary)
    confidences, label, similarity, embedding = _session(exported).run(None, {"image": np.zeros((50, 70, 3), np.uint8)})
    assert confidences.shape == (3,) and label.shape == () and similarity.shape == () and embedding.shape == (1280,)


def test_same_labels_as_predict_on_224_inputs(exported, photos, capsys):
    expected = _cli_predict(DEMO_PROJECT, photos["224"])
    classes = read_metadata(exported)["classes"]
    same, worst, unknown = _compare(expected, _onnx_answers(_session(exported), photos["224"]), classes)
    print(f"224x224: {same}/{len(expected)} labels equal ({unknown} unknown), max confidence difference {worst:.2e}")
    assert same == len(expected) >= 100
    assert worst < 1e-3
    assert 5 <= unknown <= len(expected) - 20, "the photos should test both known and unknown answers"


def test_labels_on_photos_of_any_size(exported, photos):
    expected = _cli_predict(DEMO_PROJECT, photos["any"])
    sizes = {load_image(p).shape[:2] for p in photos["any"]}
    classes = read_metadata(exported)["classes"]
    same, worst, _ = _compare(expected, _onnx_answers(_session(exported), photos["any"]), classes)
    sides = [side for size in sizes for side in size]
    print(
        f"any size ({len(sizes)} sizes, sides {min(sides)}-{max(sides)} px): {same}/{len(expected)} labels equal, "
        f"max confidence difference {worst:.2e}"
    )
    assert len(sizes) > 50
    assert same >= 0.98 * len(expected)
    assert worst < 1e-2


@pytest.mark.parametrize("change", ["renamed", "removed", "empty class"])
def test_changed_classes_still_match(change, demo, backbone, photos, tmp_path):
    project = Project.load(DEMO_PROJECT)
    if change == "renamed":
        project.rename_class("coffee", "mug of coffee")
    elif change == "removed":
        project.remove_class("cat")
    else:
        project.add_class("nothing yet")
    project_path = project.save(tmp_path / "changed.zip")
    model = tmp_path / "changed.onnx"
    assert main(["export", str(project_path), "-o", str(model)]) == 0
    assert read_metadata(model)["classes"] == project.classes
    images = photos["224"][::3]
    answers = _onnx_answers(_session(model), images)
    same, worst, _ = _compare(_cli_predict(project_path, images), answers, project.classes)
    assert same == len(images) and worst < 1e-3
    if change == "empty class":
        assert all(confidences[-1] == 0 and label != len(project.classes) - 1 for label, confidences, _ in answers)
    if change == "removed":
        assert {label for label, _, _ in answers} <= {-1, 0, 1}


def test_knn_rule_exports_too(demo, backbone, photos):
    project = Project.load(DEMO_PROJECT)
    knn = KNNClassifier(project.classifier.dim, rule="knn")
    knn.add(np.asarray(project.embeddings), [e.label for e in project.examples])
    project.classifier = knn
    session = _session(onnx_bytes(project, backbone, k=3, strictness=0.5)[0])
    knn.threshold = 0.5
    disagreements = 0
    for path in photos["224"][::4]:
        rgb = load_image(path)
        want = project.predict(backbone.embed(backbone.prepare(rgb)[None])[0], 3)
        confidences, label, similarity, _ = session.run(None, {"image": rgb})
        disagreements += int(label) != (-1 if want.unknown else project.classes.index(want.label))
        assert abs(float(similarity) - want.nearest_similarity) < 1e-4
        assert np.abs(confidences - list(want.confidences.values())).max() < 1e-3
    assert disagreements == 0


def test_refuses_what_it_cannot_export(backbone, tmp_path, capsys):
    project = Project.for_backbone(backbone, ["cup", "hand"])
    with pytest.raises(ExportError, match="no examples"):
        onnx_bytes(project, backbone)
    square = backbone.prepare(load_image(ASSETS / "try" / "cat.jpg"))
    project.add_examples("cup", backbone.embed(square[None]), [encode_jpeg(square)])
    with pytest.raises(ExportError, match="at least one more class"):
        onnx_bytes(project, backbone)
    project.save(tmp_path / "one.zip")
    assert main(["export", str(tmp_path / "one.zip"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "teachable: error: Only 1 class has examples (cup)" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing.zip"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "teachable: error:" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_export_button_in_the_app(backbone, monkeypatch):
    """Through the running app: an empty project gets a message; the demo gives model.onnx and the page's .zip."""
    import zipfile

    from gradio_client import Client

    from teachable.webapp import build_app, serve

    from .serving import free_port

    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    port = free_port()
    demo = serve(build_app(backbone), "127.0.0.1", port, prevent_thread_lock=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        with pytest.raises(Exception, match="nothing to export yet"):
            client.predict(api_name="/export_model")
        client.predict(None, api_name="/load_demo")
        model, page = client.predict(api_name="/export_model")
    finally:
        demo.close()
    assert Path(model).name == "model.onnx" and read_metadata(model)["classes"] == ["cat", "coffee", "rocket"]
    rgb = backbone.prepare(load_image(ASSETS / "try" / "rocket.jpg"))
    project = Project.load(DEMO_PROJECT)
    want = project.predict(backbone.embed(rgb[None])[0], 5)
    confidences, label, _, _ = _session(Path(model)).run(None, {"image": rgb})
    assert int(label) == project.classes.index(want.label) == 2
    with zipfile.ZipFile(page) as archive:
        names = set(archive.namelist())
    assert {"teachable-web/index.html", "teachable-web/model.js", "teachable-web/ort/runtime.js"} <= names
