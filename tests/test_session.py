import copy

import numpy as np
import pytest

from teachable.frames import ImageError, encode_jpeg
from teachable.session import Session, SessionError

from .conftest import photo, views


def record(session, label, frames, start=0.0):
    session.edits.start_recording(label)
    for i, frame in enumerate(frames):
        session.step(frame, now=start + i * 0.2)
    return session.edits.stop_recording()


@pytest.fixture
def trained(backbone):
    session = Session(backbone, ("cat", "coffee"))
    record(session, "cat", views(photo("chelsea"), 4, seed=1))
    record(session, "coffee", views(photo("coffee"), 4, seed=2), start=10)
    return session


def test_recording_adds_frames_and_prediction_follows(trained):
    assert trained.project.counts() == {"cat": 4, "coffee": 4}
    for name, label in [("chelsea", "cat"), ("coffee", "coffee")]:
        result = trained.step(views(photo(name), 1, seed=9)[0])
        assert result.label == label and not result.recorded
        assert [n.label for n in result.prediction.neighbours][0] == label


def test_recording_is_rate_limited(backbone):
    session = Session(backbone, record_per_second=10)
    session.edits.start_recording("Class 1")
    frame = photo("coffee")
    for i in range(50):  # 50 frames in one second
        session.step(frame, now=i / 50)
    assert session.edits.stop_recording() == 10
    assert session.project.counts()["Class 1"] == 10


def test_no_examples_and_one_class_give_messages(backbone):
    session = Session(backbone, smoothing=0.0)
    result = session.step(photo("coffee"))
    assert result.prediction is None and "No examples yet" in result.message
    record(session, "Class 1", [photo("coffee")])
    result = session.step(photo("rocket"))
    assert "record some examples of 'Class 2'" in result.message  # it exists, empty: no "add a second class"
    assert result.confidences["Class 1"] < 0.5 and result.label == "unknown"
    session.edits.remove_class("Class 2")
    assert "add a second class" in session.step(photo("rocket")).message


def test_opening_message_follows_what_was_restored(backbone):
    """After a reload brings work back, the page must not ask to record examples "to start"."""
    session = Session(backbone, ("cat", "coffee", "Class 3"))
    assert session.opening_message() == "Record a few examples of each class to start."
    record(session, "cat", views(photo("chelsea"), 3, seed=1))
    assert "'coffee'" in session.opening_message()
    record(session, "coffee", views(photo("coffee"), 3, seed=2), start=10)
    assert session.opening_message().startswith("6 examples in 2 classes are ready")


def test_smoothing_blends_frames(trained):
    trained.smoothing = 0.0
    sharp = trained.step(photo("chelsea")).confidences
    trained.smoothing = 0.9
    trained.step(photo("chelsea"))
    blended = trained.step(photo("coffee")).confidences
    assert (
        blended["cat"]
        > 0.5
        > trained.project.predict(
            trained.backbone.embed(trained.backbone.prepare(photo("coffee"))[None])[0], 5
        ).confidences["cat"]
    )
    assert sharp["cat"] > 0.9


def test_stills_are_neither_recorded_nor_smoothed(trained):
    trained.smoothing = 0.9
    trained.step(photo("chelsea"))
    trained.edits.start_recording("cat")
    result = trained.step(photo("coffee"), live=False)
    assert result.confidences == result.prediction.confidences and result.label == "coffee"
    assert not result.recorded and trained.project.counts()["cat"] == 4


def test_sessions_are_isolated_and_share_only_the_backbone(trained, backbone):
    other = Session(backbone)
    assert other.project.counts() == {"Class 1": 0, "Class 2": 0}
    clone = copy.deepcopy(trained)
    assert clone.backbone is trained.backbone
    clone.project.add_class("dog")
    assert "dog" not in trained.project.classes


def test_example_cap_stops_recording_with_a_message(backbone):
    session = Session(backbone, max_examples=3)
    session.edits.start_recording("Class 1")
    for i in range(6):
        session.step(photo("coffee"), now=float(i))
    assert len(session.project) == 3 and session.recording is None
    with pytest.raises(SessionError, match="limit of 3"):
        session.edits.start_recording("Class 1")


def test_uploads_refuse_bad_files_and_keep_good_ones(backbone):
    session = Session(backbone)
    added, problems = session.edits.add_images(
        "Class 1", [("good.jpg", encode_jpeg(photo("coffee"))), ("bad.jpg", b"nope"), ("empty.png", b"")]
    )
    assert added == 1 and len(problems) == 2 and "bad.jpg" in problems[0] and "empty" in problems[1]
    with pytest.raises(SessionError, match="no class"):
        session.edits.add_images("nope", [])


def test_bad_frames_raise_image_errors_and_change_nothing(trained):
    before = len(trained.project)
    trained.edits.start_recording("cat")
    for bad in [np.zeros((1, 1, 3), np.uint8), np.zeros((30, 30, 7), np.uint8)]:
        with pytest.raises(ImageError):
            trained.step(bad)
    assert len(trained.project) == before


def test_project_round_trip_through_the_session(trained, backbone):
    data = trained.project_bytes()
    other = Session(backbone)
    message = other.load_project(data)
    assert "Loaded 8 examples in 2 classes" in message
    frame = photo("chelsea")
    assert other.step(frame).prediction == trained.step(frame).prediction


def test_each_hold_of_the_record_button_is_one_take(trained):
    takes = trained.project.takes
    assert len(set(takes[:4])) == 1 and len(set(takes[4:])) == 1 and takes[0] != takes[4]
    assert trained.take is None  # closed by stop_recording
    record(trained, "cat", views(photo("chelsea"), 3, seed=7), start=20)
    assert len(set(trained.project.takes[8:])) == 1 and trained.project.takes[8] not in takes
    reloaded = Session(trained.backbone)
    reloaded.load_project(trained.project_bytes())
    record(reloaded, "cat", views(photo("chelsea"), 2, seed=8), start=30)
    assert reloaded.project.takes[:11] == trained.project.takes and reloaded.project.takes[11] not in takes


def test_uploads_are_a_take_each_unless_they_are_near_copies(backbone):
    session = Session(backbone, ("cat", "coffee"))
    cat, coffee = encode_jpeg(photo("chelsea")), encode_jpeg(photo("coffee"))
    added, _ = session.edits.add_images("cat", [("a.jpg", cat), ("b.jpg", coffee), ("again.jpg", cat)])
    takes = session.project.takes
    assert added == 3 and takes[0] == takes[2] and len(set(takes)) == 2
    session.edits.add_images("cat", [("c.jpg", cat)])
    assert session.project.takes[3] not in takes  # another upload: another take


def test_the_tray_drops_frames_the_classes_now_explain(backbone):
    session = Session(backbone, ("cat", "coffee"))
    for label, name in [("cat", "chelsea"), ("coffee", "coffee")]:
        session.edits.add_images(label, [(f"{i}.jpg", encode_jpeg(v)) for i, v in enumerate(views(photo(name), 3, 1))])
    session.tray.min_interval = 0.0
    session.step(photo("rocket"), now=1.0)
    session.step(photo("astronaut"), now=2.0)
    rocket, astronaut = sorted(session.tray.items, key=lambda item: item.id)
    version = session.tray.version
    session.step(photo("chelsea"), now=3.0)  # nothing changed: the tray stays as it is
    assert session.tray.version == version and len(session.tray) == 2
    session.edits.add_class("rocket")
    session.edits.add_images("rocket", [(f"{i}.jpg", encode_jpeg(v)) for i, v in enumerate(views(photo("rocket"), 3, 2))])
    session.step(photo("chelsea"), now=4.0)
    assert rocket.id not in [item.id for item in session.tray.items]
    assert session.tray.version > version
    assert astronaut.id in [item.id for item in session.tray.items]  # still unexplained
