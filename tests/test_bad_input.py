"""Bad input, everywhere a person can give it: each case gets a clear message and leaves the session intact.

Cases that are not errors (odd but valid images, odd but valid class names) are in the second table: they are
accepted and do exactly what they say. The CLI's bad inputs are in test_cli.py, hostile project files in
test_project.py, and the web page's file routes in test_app.py.
"""

import hashlib
import io
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from teachable.backbones import BackboneError
from teachable.frames import ImageError, encode_jpeg
from teachable.knn import KNNError
from teachable.project import ProjectError
from teachable.session import Session, SessionError

from .conftest import photo, views
from .test_project import amplification_file, every_example, npy_header, npz, rewrite

USER_ERRORS = (SessionError, ProjectError, ImageError, KNNError, BackboneError)


def png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **kwargs)
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def trained_bytes(backbone):
    session = Session(backbone, ("cup", "hand"))
    for label, name, seed in [("cup", "coffee", 1), ("hand", "chelsea", 2)]:
        squares = [backbone.prepare(v) for v in views(photo(name), 4, seed)]
        session.project.add_examples(label, backbone.embed(np.stack(squares)), [encode_jpeg(s) for s in squares])
    return session.project_bytes()


@pytest.fixture
def session(backbone, trained_bytes):
    session = Session(backbone)
    session.load_project(trained_bytes)
    return session


def snapshot(session):
    project = session.project
    digest = hashlib.sha256(np.ascontiguousarray(project.embeddings).tobytes()).hexdigest()
    return list(project.classes), project.counts(), digest, [e.thumbnail for e in project.examples]


JPEG = encode_jpeg(photo("coffee"))
ERRORS = {
    # frames from a camera or a video
    "1x1 frame": (lambda s: s.step(np.zeros((1, 1, 3), np.uint8)), "at least 16x16"),
    "5-channel frame": (lambda s: s.step(np.zeros((480, 640, 5), np.uint8)), "HxWx3"),
    "NaN frame": (lambda s: s.step(np.full((64, 64, 3), np.nan, np.float32)), "NaN"),
    "huge frame": (lambda s: s.step(np.zeros((8000, 8000), np.uint8)), "limit"),
    "not an array": (lambda s: s.step("frame.jpg"), "Expected an image array"),
    "complex frame": (lambda s: s.step(np.zeros((64, 64, 3), np.complex64)), "Unsupported pixel type"),
    # uploads into a class (each file that fails is reported, nothing is added)
    "corrupt upload": (lambda s: s.edits.add_images("cup", [("x.jpg", b"\xff\xd8\xff" + bytes(300))]), "x.jpg"),
    "zero-byte upload": (lambda s: s.edits.add_images("cup", [("empty.png", b"")]), "empty"),
    "truncated jpeg": (lambda s: s.edits.add_images("cup", [("cut.jpg", JPEG[: len(JPEG) // 3])]), "cut.jpg"),
    "text named jpg": (lambda s: s.edits.add_images("cup", [("notes.jpg", b"hello, world")]), "not an image"),
    "decompression bomb": (
        lambda s: s.edits.add_images("cup", [("bomb.png", png(Image.new("1", (20000, 20000))))]),
        "too large to decode safely|limit",
    ),
    "video as image": (
        lambda s: s.edits.add_images("cup", [("clip.jpg", b"\x00\x00\x00\x18ftypmp42" + bytes(400))]),
        "not an image",
    ),
    "upload into missing class": (lambda s: s.edits.add_images("dog", [("a.jpg", JPEG)]), "no class named 'dog'"),
    # class names
    "empty class name": (lambda s: s.project.add_class(""), "empty"),
    "blank class name": (lambda s: s.project.add_class("   \t "), "empty"),
    "enormous class name": (lambda s: s.project.add_class("x" * 10_000), "at most 64"),
    "duplicate class name": (lambda s: s.project.add_class("cup"), "already a class named 'cup'"),
    "duplicate after trimming": (lambda s: s.project.add_class("  cup "), "already"),
    "reserved name": (lambda s: s.project.add_class("Unknown"), "reserved"),
    "non-text name": (lambda s: s.project.add_class(42), "must be text"),
    "rename onto another class": (lambda s: s.project.rename_class("cup", "hand"), "already"),
    "rename a missing class": (lambda s: s.project.rename_class("dog", "cat"), "no class named 'dog'"),
    "unpaired surrogate in a name": (lambda s: s.project.add_class("cup\ud800"), "unpaired surrogate"),
    "zero-width name": (lambda s: s.project.add_class("\u200b\ufeff"), "visible"),
    "reserved name behind a zero-width space": (lambda s: s.project.add_class("unknown\u200b"), "reserved"),
    "duplicate behind a zero-width space": (lambda s: s.project.add_class("cu\u200bp"), "already"),
    "rename to an unpaired surrogate": (lambda s: s.project.rename_class("cup", "\udc00"), "unpaired surrogate"),
    "class past the limit": (
        lambda s: (setattr(s.project, "max_classes", 2), s.project.add_class("dog")),
        "at most 2 classes",
    ),
    "record a missing class": (lambda s: s.edits.start_recording("dog"), "no class named 'dog'"),
    # examples and embeddings
    "NaN embedding": (lambda s: s.project.add_examples("cup", np.full((1, 1280), np.nan), [JPEG]), "NaN"),
    "wrong embedding size": (lambda s: s.project.add_examples("cup", np.ones((1, 512)), [JPEG]), "512 dimensions"),
    "embeddings without thumbnails": (
        lambda s: s.project.add_examples("cup", np.ones((2, 1280)), [JPEG]),
        "2 embeddings",
    ),
    "remove a missing example": (lambda s: s.project.remove_examples([99]), "out of range"),
    "move to a missing class": (lambda s: s.project.move_example(0, "dog"), "no class named 'dog'"),
    # projects
    "project that is not a zip": (lambda s: s.load_project(b"PK\x03\x04 nope"), "not a valid .zip"),
    "project that is an image": (lambda s: s.load_project(JPEG), "not a valid .zip"),
    "zip without a manifest": (lambda s: s.load_project(zipped({"a.txt": b"hi"})), "manifest.json is missing"),
    "zip-slip project": (
        lambda s: s.load_project(zipped({"../../evil.py": b"x", "manifest.json": b"{}"})),
        "unsafe path",
    ),
    "project whose examples share one thumbnail": (
        lambda s: s.load_project(every_example(s.project_bytes(), thumbnail="thumbs/000000.jpg")),
        "share the thumbnail",
    ),
    "project with added_at 'x'": (lambda s: s.load_project(every_example(s.project_bytes(), added_at="x")), "added_at"),
    "project with an npz as embeddings": (
        lambda s: s.load_project(rewrite(s.project_bytes(), replace={"embeddings.npy": npz(np.random.default_rng(0).random((8, 1280)))})),
        "cannot be read safely",
    ),
    "project whose npy claims 2**40 rows": (
        lambda s: s.load_project(rewrite(s.project_bytes(), replace={"embeddings.npy": npy_header((2**40,))})),
        "shape",
    ),
    "project with a damaged thumbnail": (
        lambda s: s.load_project(rewrite(s.project_bytes(), replace={"thumbs/000000.jpg": b"\xff\xd8\xff" + bytes(900)})),
        "thumbnail of example 0",
    ),
    "project with 51 classes": (
        lambda s: s.load_project(
            rewrite(s.project_bytes(), manifest=lambda m: {**m, "classes": m["classes"] + [f"c{i}" for i in range(49)]})
        ),
        "51 classes; the limit is 50",
    ),
    # views and the coach
    "unit channel out of range": (lambda s: s.insights.unit_view(5000), "out of range"),
    "unknown grid mode": (lambda s: s.views.set_grid_mode("x-ray"), "Unknown grid mode"),
    "unknown embedding layer": (lambda s: s.set_embedding_tap("layer99"), "no tap 'layer99'"),
    "grid at a pooled layer": (lambda s: s.views.set_grid_tap("pool"), "no spatial grid"),
    "compare a class with itself": (lambda s: s.insights.compare("cup", "cup"), "two different classes"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_gets_a_clear_message_and_changes_nothing(case, session):
    action, message = ERRORS[case]
    before = snapshot(session)
    try:
        outcome = action(session)
    except USER_ERRORS as error:
        text = str(error)
    else:  # uploads report per-file problems instead of raising
        added, problems = outcome
        assert added == 0
        text = " ".join(problems)
    assert text and "Traceback" not in text
    assert re.search(message, text), text
    assert snapshot(session) == before
    assert session.step(photo("coffee"), live=False).label == "cup"  # still works


ACCEPTED = {
    "grayscale upload": lambda: png(Image.fromarray(photo("coffee")).convert("L")),
    "RGBA upload": lambda: png(Image.fromarray(photo("coffee")).convert("RGBA")),
    "16-bit upload": lambda: png(Image.fromarray(photo("camera").astype(np.uint16) * 257)),
    "CMYK upload": lambda: _jpeg_cmyk(),
    "animated GIF upload": lambda: _gif(),
}


def _jpeg_cmyk() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo("coffee")).convert("CMYK").save(buffer, format="JPEG")
    return buffer.getvalue()


def _gif() -> bytes:
    buffer = io.BytesIO()
    frames = [Image.fromarray(photo("coffee")), Image.fromarray(photo("rocket"))]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_odd_but_valid_images_are_accepted(case, session):
    added, problems = session.edits.add_images("cup", [(case, ACCEPTED[case]())])
    assert (added, problems) == (1, [])
    assert session.project.counts()["cup"] == 5


@pytest.mark.parametrize("name", ["a/b", "../../etc", "<script>alert(1)</script>", "thumbs 👍", "Ünïcødé"])
def test_odd_but_valid_class_names_are_just_names(name, session):
    session.project.add_class(name)
    added, _ = session.edits.add_images(name, [("a.jpg", JPEG)])
    assert added == 1 and session.project.counts()[name] == 1
    from teachable.views import classes_html

    assert "<script>" not in classes_html(session.project, name)


def test_predicting_with_zero_and_one_class(backbone):
    empty = Session(backbone, ())
    result = empty.step(photo("coffee"))
    assert result.prediction is None and "No examples yet" in result.message
    one = Session(backbone, ("cup",))
    one.edits.add_images("cup", [("a.jpg", JPEG)])
    result = one.step(photo("rocket"), live=False)
    assert "add a second class" in result.message and result.confidences["cup"] < 0.5
    assert result.label == "unknown"


def test_k_larger_than_the_number_of_examples(session):
    session.k = 500
    result = session.step(photo("coffee"), live=False)
    assert len(result.prediction.neighbours) == len(session.project) and result.label == "cup"


CRAFTED_PROJECTS = {
    "added_at is text": (lambda d: every_example(d, added_at="x"), "added_at of 'x'"),
    "npz stored as embeddings.npy": (
        lambda d: rewrite(d, replace={"embeddings.npy": npz(np.random.default_rng(0).random((8, 1280)).astype(np.float16))}),
        "cannot be read safely",
    ),
    "npy header claims 2**40 rows": (lambda d: rewrite(d, replace={"embeddings.npy": npy_header((2**40,))}), "shape"),
    "examples share one padded thumbnail": (lambda d: amplification_file(200, 100_000, shared=True), "share"),
}


@pytest.mark.parametrize("case", list(CRAFTED_PROJECTS))
def test_info_on_a_crafted_project_says_one_line_and_exits_2(case, trained_bytes, tmp_path):
    make, message = CRAFTED_PROJECTS[case]
    path = tmp_path / "crafted.zip"
    path.write_bytes(make(trained_bytes))
    result = subprocess.run(
        [sys.executable, "-m", "teachable.cli", "info", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("teachable: error: "), result.stderr
    assert re.search(message, result.stderr), result.stderr
