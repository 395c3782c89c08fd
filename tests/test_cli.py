"""The `teachable` command end to end, in a subprocess, on folders of real photos."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from .conftest import photo, write_jpeg


def teachable(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "teachable.cli", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def fitted(photo_folder, tmp_path_factory):
    output = tmp_path_factory.mktemp("fit") / "project.zip"
    (photo_folder / "train" / "cat" / "broken.jpg").write_text("not a jpeg")
    result = teachable("fit", photo_folder / "train", "-o", output, "-q")
    return result, output


def test_fit_skips_unreadable_files_and_saves(fitted):
    result, output = fitted
    assert result.returncode == 0, result.stderr
    assert "18 examples (cat: 6, coffee: 6, rocket: 6); 1 file(s) skipped" in result.stdout
    assert "broken.jpg" in result.stderr
    assert output.is_file()


def test_predict_json_on_held_out_photos(fitted, photo_folder):
    _, output = fitted
    images = sorted((photo_folder / "test").glob("*/*.jpg"))
    result = teachable("predict", output, *images, "--json", "--k", "3")
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [a["path"] for a in answers] == [str(p) for p in images]
    for answer, path in zip(answers, images):
        assert answer["label"] == path.parent.name
        assert set(answer["confidences"]) == {"cat", "coffee", "rocket"}
        assert answer["confidences"][answer["label"]] == max(answer["confidences"].values())
        assert 0 < answer["nearest_similarity"] <= 1


def test_evaluate_and_info(fitted):
    _, output = fitted
    result = teachable("evaluate", output, "--json")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert evaluation["examples"] == 18 and evaluation["accuracy"] == 1.0
    assert evaluation["confusion"] == [[6, 0, 0], [0, 6, 0], [0, 0, 6]]
    info = json.loads(teachable("info", output, "--json").stdout)
    assert info["classes"] == {"cat": 6, "coffee": 6, "rocket": 6} and info["backbone"] == "efficientnet_lite0"


def test_predict_reports_an_unreadable_image_and_fails(fitted, tmp_path):
    _, output = fitted
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    result = teachable("predict", output, bad, "--json")
    assert result.returncode == 1
    assert "empty" in json.loads(result.stdout)[0]["error"]


def one_line_error(result, pattern):
    assert result.returncode == 2, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("teachable: warning:")]
    assert len(errors) == 1 and errors[0].startswith("teachable: error:"), result.stderr
    assert pattern in errors[0], errors[0]
    assert "Traceback" not in result.stderr


def test_bad_inputs_get_one_line_errors(tmp_path, fitted):
    _, output = fitted
    (tmp_path / "empty").mkdir()
    one_line_error(teachable("fit", tmp_path / "empty", "-o", tmp_path / "x.zip"), "no class sub-folders")
    one_line_error(teachable("fit", tmp_path / "missing", "-o", tmp_path / "x.zip"), "is not a folder")
    (tmp_path / "noimages" / "a").mkdir(parents=True)
    one_line_error(teachable("fit", tmp_path / "noimages", "-o", tmp_path / "x.zip"), "No images")
    (tmp_path / "allbad" / "a").mkdir(parents=True)
    (tmp_path / "allbad" / "a" / "x.jpg").write_bytes(b"")
    one_line_error(teachable("fit", tmp_path / "allbad", "-o", tmp_path / "x.zip", "-q"), "could be read")
    (tmp_path / "not.zip").write_text("hello")
    one_line_error(teachable("predict", tmp_path / "not.zip", tmp_path / "not.zip"), "not a valid .zip")
    one_line_error(teachable("info", tmp_path / "nothere.zip"), "Cannot open")
    assert teachable("fit", tmp_path, "-o", "x.zip", "--backbone", "resnet9000").returncode == 2


def test_one_class_folder_fits_with_a_warning(tmp_path):
    write_jpeg(tmp_path / "only" / "a.jpg", photo("coffee"))
    write_jpeg(tmp_path / "only" / "b.jpg", photo("coffee")[50:, 50:])
    Image.fromarray(photo("coffee")).convert("RGBA").save(tmp_path / "only" / "c.png")
    result = teachable("fit", tmp_path, "-o", tmp_path / "one.zip", "-q")
    assert result.returncode == 0, result.stderr
    assert "only one class" in result.stderr
    far = teachable("predict", tmp_path / "one.zip", tmp_path / "far.jpg", "--json")
    assert far.returncode == 1  # far.jpg does not exist: a per-image error, not a crash
    write_jpeg(tmp_path / "far.jpg", photo("rocket"))
    answer = json.loads(teachable("predict", tmp_path / "one.zip", tmp_path / "far.jpg", "--json").stdout)[0]
    assert answer["unknown"] is True and answer["confidences"]["only"] < 0.5


def test_missing_torchvision_weights_fall_back_with_a_warning(tmp_path):
    import os

    write_jpeg(tmp_path / "data" / "a" / "1.jpg", photo("coffee"))
    write_jpeg(tmp_path / "data" / "b" / "1.jpg", photo("rocket"))
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch")}
    result = teachable("fit", tmp_path / "data", "-o", tmp_path / "p.zip", "--backbone", "googlenet", "-q", env=env)
    assert result.returncode == 0, result.stderr
    assert "googlenet-" in result.stderr and "Using the bundled efficientnet_lite0" in result.stderr
    assert json.loads(teachable("info", tmp_path / "p.zip", "--json").stdout)["backbone"] == "efficientnet_lite0"


def test_fit_and_predict_at_another_tap(photo_folder, tmp_path):
    output = tmp_path / "deep.zip"
    result = teachable("fit", photo_folder / "train", "-o", output, "--tap", "blocks.6", "-q")
    assert result.returncode == 0, result.stderr
    info = json.loads(teachable("info", output, "--json").stdout)
    assert (info["tap"], info["embedding_dim"]) == ("blocks.6", 320)
    images = sorted((photo_folder / "test").glob("*/*.jpg"))
    answers = json.loads(teachable("predict", output, *images, "--json").stdout)
    assert [a["label"] for a in answers] == [p.parent.name for p in images]
    one_line_error(teachable("fit", photo_folder / "train", "-o", output, "--tap", "nope", "-q"), "no tap 'nope'")


BAD_SETTINGS = [
    ("TEACHABLE_MAX_SESSIONS", "abc", "must be a whole number of at least 1"),
    ("TEACHABLE_INFERENCE", "bogus", "is not one of auto, local, batched, ray"),
    ("TEACHABLE_RUNTIME", "fast", "is not one of torch, onnxruntime, auto"),
    ("TEACHABLE_STREAM_EVERY", "nan", "must be a number above zero"),
    ("TEACHABLE_KEEP_HOURS", "inf", "must be a number above zero"),
]


@pytest.mark.parametrize("command", [["-m", "teachable.cli", "app"], ["app.py"]])
@pytest.mark.parametrize(("name", "value", "rule"), BAD_SETTINGS)
def test_a_bad_server_setting_is_one_line_from_the_cli_and_app_py(command, name, value, rule):
    import os
    from pathlib import Path

    env = {**os.environ, name: value}
    done = subprocess.run(
        [sys.executable, *command, "--port", "1", "--device", "cpu"], env=env, capture_output=True, text=True,
        timeout=300, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"teachable: error: {name}={value!r} {rule}."]
