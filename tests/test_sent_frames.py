"""Browser inference, the server's half: what a page sends for a frame is read as hostile input, and a frame the
browser embedded gives the same answer as the server's own path."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from teachable.backbones import pooled
from teachable.frames import encode_jpeg
from teachable.sent_frames import MAX_SENT_CHARACTERS, SentFrameError, read_sent_frame
from teachable.session import Session

from .conftest import photo

VERSION = "model-1"


def embedding_of(backbone, frame) -> tuple[np.ndarray, np.ndarray]:
    square = backbone.prepare(frame)
    tap = backbone.embedding_tap
    return pooled(backbone.run(square[None], [tap])[tap])[0], square


def sent(embedding, thumbnail: bytes | None = None, version: str = VERSION, **changes) -> str:
    message = {"v": version, "e": base64.b64encode(np.asarray(embedding, "<f2").tobytes()).decode()}
    if thumbnail is not None:
        message["t"] = base64.b64encode(thumbnail).decode()
    return json.dumps(message | changes)


@pytest.fixture(scope="module")
def cat(backbone):
    embedding, square = embedding_of(backbone, photo("chelsea"))
    return embedding, square, encode_jpeg(square)


def read(backbone, text):
    return read_sent_frame(text, VERSION, backbone.tap(backbone.embedding_tap).channels, backbone.input_size)


def taught_cat_and_rocket(backbone) -> Session:
    """A session that recorded one camera frame of the cat and one of the rocket, each in a take of its own."""
    session = Session(backbone, ("cat", "rocket"))
    for name, label in [("chelsea", "cat"), ("rocket", "rocket")]:
        session.edits.start_recording(label)
        session.step(photo(name), now=1.0)
        session.edits.stop_recording()
    return session


def test_a_frame_the_browser_embedded_gets_the_servers_answer(backbone, cat):
    teacher = taught_cat_and_rocket(backbone)
    embedding, _, jpeg = cat
    from_browser = teacher.step_embedded(read(backbone, sent(embedding, jpeg)), now=5.0)
    on_server = teacher.step(photo("chelsea"), now=6.0, live=False)
    assert from_browser.label == on_server.label == "cat"
    for name, value in on_server.prediction.confidences.items():  # before smoothing over frames
        assert from_browser.prediction.confidences[name] == pytest.approx(value, abs=0.01)


def test_an_unsure_frame_without_its_picture_asks_for_the_next_ones_picture(backbone, cat):
    """The page sends pictures only when asked: a frame the tray would keep, which came without one, asks for it;
    the next frame's picture goes into the tray; a sure frame asks nothing."""
    session = taught_cat_and_rocket(backbone)
    embedding, _, jpeg = cat
    assert session.step_embedded(read(backbone, sent(embedding)), now=2.0).wants_picture is False  # sure: a cat
    coffee, square = embedding_of(backbone, photo("coffee"))
    unsure = session.step_embedded(read(backbone, sent(coffee)), now=3.0)
    assert unsure.prediction.is_unknown and unsure.wants_picture is True and len(session.tray) == 0
    with_picture = session.step_embedded(read(backbone, sent(coffee, encode_jpeg(square))), now=3.1)
    assert with_picture.wants_picture is False and len(session.tray) == 1
    assert session.tray.items[0].thumbnail == encode_jpeg(square)
    # The tray keeps at most one frame a second: within it nothing is asked for.
    assert session.step_embedded(read(backbone, sent(coffee)), now=3.5).wants_picture is False


def test_recording_keeps_the_thumbnail_the_browser_sent_and_needs_one(backbone, cat):
    session = Session(backbone, ("cat", "other"))
    embedding, _, jpeg = cat
    session.edits.start_recording("cat")
    assert session.step_embedded(read(backbone, sent(embedding)), now=1.0).recorded is False  # no picture, no example
    assert session.step_embedded(read(backbone, sent(embedding, jpeg)), now=2.0).recorded is True
    assert len(session.project) == 1 and session.project.examples[0].thumbnail == jpeg
    stored = np.asarray(session.project.embeddings[0], np.float64)  # kept as a unit vector
    assert stored @ embedding / np.linalg.norm(stored) / np.linalg.norm(embedding) > 0.9999  # float16 on the way


def bad_frames(backbone, cat) -> dict[str, tuple[str, str]]:
    embedding, square, jpeg = cat
    dim = len(embedding)
    small = encode_jpeg(cv2.resize(square, (100, 100)))
    png = cv2.imencode(".png", square)[1].tobytes()
    return {
        "another model version": (sent(embedding, version="model-0"), "reload the page"),
        "not JSON": ("{oops", "cannot read"),
        "a list": ("[1, 2]", "cannot read"),
        "empty": ("", "empty frame"),
        "too long": (sent(embedding, pad="x" * MAX_SENT_CHARACTERS), "the limit is"),
        "no embedding": (json.dumps({"v": VERSION}), "no embedding"),
        "not base64": (sent(embedding, e="@@@@"), "not base64"),
        "too short": (sent(embedding[: dim - 1]), f"this model makes {dim}"),
        "too long embedding": (sent(np.r_[embedding, 1.0]), f"this model makes {dim}"),
        "NaN": (sent(np.r_[embedding[:-1], np.nan]), "not finite"),
        "infinity": (sent(np.r_[embedding[:-1], np.inf]), "not finite"),
        "all zeros": (sent(np.zeros(dim)), "could have made"),
        "huge": (sent(np.full(dim, 60000.0)), "could have made"),
        "thumbnail not a JPEG": (sent(embedding, png), "JPEG"),
        "thumbnail the wrong size": (sent(embedding, small), "JPEG"),
        "thumbnail cut short": (sent(embedding, jpeg[: len(jpeg) // 2]), "thumbnail"),
        "thumbnail too large": (sent(embedding, b"\xff\xd8" + bytes(200 * 1024)), "the limit is"),
    }


@pytest.mark.parametrize(
    "case",
    ["another model version", "not JSON", "a list", "empty", "too long", "no embedding", "not base64", "too short",
     "too long embedding", "NaN", "infinity", "all zeros", "huge", "thumbnail not a JPEG", "thumbnail the wrong size",
     "thumbnail cut short", "thumbnail too large"],
)  # fmt: skip
def test_hostile_frames_are_refused_with_a_reason(backbone, cat, case):
    text, reason = bad_frames(backbone, cat)[case]
    with pytest.raises(SentFrameError, match=reason):
        read(backbone, text)
