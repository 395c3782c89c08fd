import io
import json
import zipfile

import numpy as np
import pytest

from teachable.frames import encode_jpeg
from teachable.project import BackboneMismatch, Project, ProjectError

from .conftest import photo, views


@pytest.fixture(scope="module")
def real_project(backbone):
    project = Project.for_backbone(backbone, ["cat", "coffee"])
    for label, name in [("cat", "chelsea"), ("coffee", "coffee")]:
        squares = [backbone.prepare(v) for v in views(photo(name), 5, seed=3)]
        project.add_examples(label, backbone.embed(np.stack(squares)), [encode_jpeg(s) for s in squares], "test")
    return project


def test_save_load_gives_identical_predictions(real_project, backbone, tmp_path):
    path = real_project.save(tmp_path / "p.zip")
    loaded = Project.load(path, backbone=backbone)
    assert loaded.classes == real_project.classes and loaded.counts() == real_project.counts()
    np.testing.assert_array_equal(loaded.embeddings, real_project.embeddings)
    assert [e.thumbnail for e in loaded.examples] == [e.thumbnail for e in real_project.examples]
    for rgb in views(photo("astronaut"), 3, seed=4) + views(photo("coffee"), 3, seed=5):
        query = backbone.embed(backbone.prepare(rgb)[None])[0]
        assert loaded.predict(query, 5) == real_project.predict(query, 5)


def test_embeddings_are_stored_as_float16_and_older_float32_files_still_load(real_project, backbone):
    with zipfile.ZipFile(io.BytesIO(real_project.to_bytes())) as archive:
        stored = np.load(io.BytesIO(archive.read("embeddings.npy")), allow_pickle=False)
    assert stored.dtype == np.float16
    float32_file = rewrite(real_project.to_bytes(), replace={"embeddings.npy": npy(stored.astype(np.float32))})
    np.testing.assert_array_equal(Project.load(float32_file).embeddings, real_project.embeddings)


def test_reembed_from_thumbnails_matches_the_original_embeddings(real_project, backbone):
    project = Project.load(real_project.to_bytes())
    project.backbone = "something_else"
    project.reembed(backbone)
    assert project.backbone == backbone.name
    # Thumbnails are JPEG, so re-embedding is close to, not bit-equal with, the embedding of the raw crop.
    cosine = np.sum(project.embeddings * real_project.embeddings, axis=1)
    assert cosine.min() > 0.95


def test_project_from_another_backbone_is_recognised(real_project, backbone):
    manifest_changed = rewrite(real_project.to_bytes(), manifest=lambda m: {**m, "backbone": "googlenet"})
    with pytest.raises(BackboneMismatch, match="googlenet.*Re-embed"):
        Project.load(manifest_changed, backbone=backbone)


def rewrite(data: bytes, manifest=None, extra: dict | None = None, drop=(), replace: dict | None = None) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename in drop:
                continue
            content = source.read(info)
            if info.filename == "manifest.json" and manifest:
                content = json.dumps(manifest(json.loads(content))).encode()
            if replace and info.filename in replace:
                content = replace[info.filename]
            target.writestr(info.filename, content)
        for name, content in (extra or {}).items():
            target.writestr(name, content)
    return out.getvalue()


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def with_nan(array):
    array[3, 7] = np.nan
    return array


def symlink_zip(data: bytes) -> bytes:
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as archive:
        info = zipfile.ZipInfo("thumbs/link.jpg")
        info.external_attr = (0o120777) << 16
        archive.writestr(info, "/etc/passwd")
    return out.getvalue()


HOSTILE = {
    "dotdot member": (lambda d: rewrite(d, extra={"../evil.txt": "x"}), "unsafe path"),
    "absolute member": (lambda d: rewrite(d, extra={"/tmp/evil.txt": "x"}), "unsafe path"),
    "symlink member": (symlink_zip, "symbolic link"),
    "wrong format version": (lambda d: rewrite(d, manifest=lambda m: {**m, "format_version": 99}), "format version 99"),
    "not a project": (lambda d: rewrite(d, manifest=lambda m: {"hello": 1}), "not a teachable project"),
    "truncated zip": (lambda d: d[: len(d) // 2], "not a valid .zip|damaged"),
    "not a zip": (lambda d: b"PK hello", "not a valid .zip"),
    "wrong embedding dimension": (
        lambda d: rewrite(d, replace={"embeddings.npy": npy(np.ones((10, 7), np.float32))}),
        "shape",
    ),
    "manifest lies about count": (
        lambda d: rewrite(d, manifest=lambda m: {**m, "examples": m["examples"][:3]}),
        "shape",
    ),
    "pickled npy": (
        lambda d: rewrite(d, replace={"embeddings.npy": npy(np.array([{"a": 1}], dtype=object))}),
        "cannot be read safely",
    ),
    "missing thumbnail": (lambda d: rewrite(d, drop={"thumbs/000003.jpg"}), "missing"),
    "missing embeddings": (lambda d: rewrite(d, drop={"embeddings.npy"}), "missing"),
    "zip bomb": (lambda d: rewrite(d, extra={"thumbs/bomb.bin": b"\0" * 50_000_000}), "zip bomb"),
    "bad json": (lambda d: rewrite(d, replace={"manifest.json": b"{not json"}), "not valid JSON"),
    "nan embeddings": (
        lambda d: rewrite(
            d, replace={"embeddings.npy": npy(with_nan(np.random.default_rng(0).random((10, 1280), np.float32)))}
        ),
        "NaN",
    ),
    "bad class in example": (
        lambda d: rewrite(d, manifest=lambda m: {**m, "examples": [{**e, "label": "dog"} for e in m["examples"]]}),
        "no valid class",
    ),
    "thumbnail not jpeg": (lambda d: rewrite(d, replace={"thumbs/000000.jpg": b"<html>"}), "not a JPEG"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_project_files_are_refused_with_a_clear_message(case, real_project, tmp_path, monkeypatch):
    make, message = HOSTILE[case]
    monkeypatch.chdir(tmp_path)
    bad = make(real_project.to_bytes())
    with pytest.raises(ProjectError, match=message):
        Project.load(bad)
    path = tmp_path / "bad.zip"
    path.write_bytes(bad)
    with pytest.raises(ProjectError):
        Project.load(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip"]  # nothing was written


def test_failed_save_keeps_the_previous_file(real_project, tmp_path, monkeypatch):
    path = real_project.save(tmp_path / "p.zip")
    before = path.read_bytes()
    smaller = Project.load(before)
    smaller.remove_examples([0, 1, 2])

    def crash(*_):
        raise OSError("disk full")

    monkeypatch.setattr("teachable.project.os.replace", crash)
    with pytest.raises(OSError):
        smaller.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.zip"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 65, "at most 64"),
        ("unknown", "reserved"),
        (None, "text"),
        ("cat", "already"),
    ],
)
def test_bad_class_names(name, message, real_project):
    project = Project.load(real_project.to_bytes())
    with pytest.raises(ProjectError, match=message):
        project.add_class(name)
    assert project.classes == ["cat", "coffee"]


def test_class_names_with_slashes_html_and_emoji_are_just_names(real_project, tmp_path):
    project = Project.load(real_project.to_bytes())
    for name in ["../../etc", "<b>bold</b>", "thumbs 👍", "a/b"]:
        project.add_class(name)
    project.rename_class("cat", "../cat")
    loaded = Project.load(project.save(tmp_path / "p.zip"))
    assert loaded.classes == project.classes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zip"]


def test_class_operations_keep_examples_and_classifier_in_step(real_project):
    project = Project.load(real_project.to_bytes())
    project.rename_class("cat", "kitty")
    assert project.counts() == {"kitty": 5, "coffee": 5}
    assert set(project.classifier.labels) == {"kitty", "coffee"}
    project.move_example(0, "coffee")
    assert project.counts() == {"kitty": 4, "coffee": 6}
    project.clear_class("kitty")
    assert project.counts() == {"kitty": 0, "coffee": 6} and len(project.classifier) == 6
    project.remove_class("kitty")
    assert project.classes == ["coffee"]
    with pytest.raises(ProjectError, match="no class"):
        project.add_examples("dog", np.ones((1, 1280)), [b""])


def test_thousands_of_members_are_refused_before_reading(real_project, monkeypatch):
    monkeypatch.setattr("teachable.project.MAX_MEMBERS", 2000)
    crowded = rewrite(real_project.to_bytes(), extra={f"junk/{i}.txt": b"" for i in range(2500)})
    with pytest.raises(ProjectError, match="2,5.. members; the limit is 2,000"):
        Project.load(crowded)
