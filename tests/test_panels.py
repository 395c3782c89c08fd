"""The page's handlers called directly, without a server: the card commands, the tray, settings, and the class
tools, with the real backbone and real photos."""

from __future__ import annotations

import html
import json
import math

import numpy as np
import pytest

from teachable.frames import encode_jpeg
from teachable.session import Session, SessionError
from teachable.tray import HelpTray
from teachable.webapp import ServerSettings
from teachable.webapp.classes import run_command
from teachable.webapp.context import PageState
from teachable.webapp.settings import SettingsError

from .conftest import photo, views


def command(*parts) -> str:
    return json.dumps([*parts, 1.0])


def run(session, page, text: str):
    """Run a card command; the status comes back as the text a person reads."""
    shown = run_command(session, page, text)
    return shown.cards, shown.tray, html.unescape(shown.status), shown.session


@pytest.fixture
def session(backbone):
    return Session(backbone)


def test_card_commands_add_rename_record_and_delete(session):
    page = PageState()
    cards, _, status, _ = run(session, page, command("add"))
    assert session.project.classes == ["Class 1", "Class 2", "Class 3"]
    assert 'data-class="Class 3"' in cards and "Added 'Class 3'" in status
    assert 'class="tm-message tm-done"' in status  # what was done is drawn as done, not as a warning
    run(session, page, command("rename", "Class 3", "  my   cup "))
    assert session.project.classes[-1] == "my cup"
    run(session, page, command("record", "my cup"))
    assert session.recording == "my cup"
    session.step(photo("coffee"))
    cards, *_ = run(session, page, command("rename", "my cup", "cup"))
    assert session.recording == "cup" and "tm-card-recording" in cards  # renaming keeps the take going
    _, _, status, _ = run(session, page, command("delete", "cup"))
    assert session.recording is None and "cup" not in session.project.classes and not len(session.project)
    assert "Deleted class" in status
    run(session, page, json.dumps(["record", "Class 1", 5.0]))
    _, _, status, _ = run(session, page, json.dumps(["stop", 6.0]))  # no frame came while the button was held
    assert 'class="tm-message"' in status and "Nothing was recorded: is the camera on?" in status


@pytest.mark.parametrize(
    "bad",
    ["", "not json", "[]", "{}", json.dumps(["rename", "Class 1"]), json.dumps(["launch", 1]), "[" * 5000,
     command("record", "no such class"), command("rename", "Class 1", ""), command("tray", "x", "Class 1"),
     command("tray", 99, "Class 1"), command("tray", 999, None), json.dumps(["add"]), json.dumps(["stop"]),
     command("add", "x" * 2000), command("remove-example", 10**6), command("remove-example", "1"),
     command("remove-example", True), command("move-example", 10**6, "Class 2"), json.dumps(["move-example", 1])],
)  # fmt: skip
def test_bad_commands_become_messages_and_change_nothing(session, bad):
    before = (list(session.project.classes), len(session.project))
    cards, tray, status, returned = run(session, PageState(), bad)
    assert returned is session and 'class="tm-message"' in status
    assert (session.project.classes, len(session.project)) == before
    assert "Traceback" not in status


def test_a_cards_picture_is_moved_or_removed_by_its_uid_while_rows_shift(session):
    page = PageState()
    for grey, label in enumerate(["Class 1", "Class 1", "Class 2"]):
        picture = encode_jpeg(np.full((64, 64, 3), 60 * grey, np.uint8))
        session.project.add_examples(label, np.eye(1, session.project.classifier.dim, grey), [picture], "test")
    cards, *_ = run(session, page, command("add"))
    first, second, rocket = session.project.uids
    assert f'data-uid="{second}"' in cards
    run(session, page, command("remove-example", first))  # every row after it shifts down by one
    _, _, status, _ = run(session, page, command("move-example", second, "Class 3"))
    assert "Moved the example to 'Class 3'" in status
    assert session.project.counts() == {"Class 1": 0, "Class 2": 1, "Class 3": 1}
    assert [e.uid for e in session.project.examples if e.label == "Class 3"] == [second]
    _, _, status, _ = run(session, page, command("remove-example", first))  # gone already: nothing else goes
    assert "no longer there" in status and len(session.project) == 2
    _, _, status, _ = run(session, page, command("move-example", rocket, "nope"))
    assert "no class named" in status and session.project.counts()["Class 2"] == 1


def test_class_names_are_escaped_in_cards_and_messages(session):
    page = PageState()
    cards, _, status, _ = run(session, page, command("rename", "Class 1", "<img src=x onerror=alert(1)>"))
    raw = run_command(session, page, command("rename", "<img src=x onerror=alert(1)>", "x")).status
    assert "<img src=x" not in cards and "<img src=x" not in raw
    assert "&lt;img src=x onerror=alert(1)&gt;" in raw


def test_tray_keeps_uncertain_frames_and_one_click_teaches_them(backbone):
    session = Session(backbone, ("cat", "coffee"))
    for label, name in [("cat", "chelsea"), ("coffee", "coffee")]:
        session.edits.add_images(label, [(f"{i}.jpg", _jpeg(view)) for i, view in enumerate(views(photo(name), 3, 1))])
    session.tray.min_interval = 0.0
    session.step(photo("chelsea"), now=1.0)
    assert len(session.tray) == 0  # a confident frame is not offered
    result = session.step(photo("rocket"), now=2.0)
    assert result.prediction.is_unknown or len(session.tray) == 1
    assert len(session.tray) == 1
    session.step(photo("rocket"), now=3.0)
    assert len(session.tray) == 1  # the same view again is not kept twice
    item = session.tray.items[0]
    _, tray, status, _ = run(session, PageState(), command("tray", item.id, None))
    assert session.project.classes[-1] == "Class 1" and session.project.counts()["Class 1"] == 1
    assert len(session.tray) == 0 and "Started 'Class 1'" in status
    assert "tm-tray-empty" in tray
    # The taught frame now answers for itself.
    assert session.step(photo("rocket"), live=False).label == "Class 1"


def test_help_tray_is_bounded_and_spaced_in_time():
    tray = HelpTray(size=3, min_interval=1.0)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(10, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    kept = [tray.offer(v, b"jpeg", "a", "not sure", now=t * 0.5) for t, v in enumerate(vectors)]
    assert kept == [True, False] * 5  # one frame a second at most
    assert len(tray) == 3 and [i.id for i in tray.items] == [5, 4, 3]  # newest first, oldest pushed out
    assert tray.take(4).id == 4 and tray.take(4) is None


@pytest.mark.parametrize(
    "k, threshold, smoothing",
    [(math.nan, 0.4, 0.5), (5, math.nan, 0.5), (5, 0.4, math.inf), (None, 0.4, 0.5), (5, [], 0.5), (0, 0.4, 0.5),
     (2.5, 0.4, 0.5), (5, 1.5, 0.5), ("5", 0.4, 0.5), (True, 0.4, 0.5)],
)  # fmt: skip
def test_live_settings_are_checked_before_any_changes(session, k, threshold, smoothing):
    before = (session.k, session.threshold, session.smoothing)
    with pytest.raises(SessionError):
        session.set_live_settings(k, threshold, smoothing)
    assert (session.k, session.threshold, session.smoothing) == before


def test_settings_round_trip_and_state_key(session):
    session.set_live_settings(7.0, 0.3, 0.2)
    session.views.set_views(False, "pca", "factors")
    other = Session(session.backbone)
    other.restore_settings(session.settings())
    assert other.settings() == session.settings()
    key = session.state_key()
    session.edits.add_class("more")
    assert session.state_key() != key
    other.restore_settings({"k": "x", "grid_tap": "nope", "views_on": True})  # garbage is ignored
    assert other.k == 7


def test_server_settings_from_environment():
    settings = ServerSettings.from_env({"TEACHABLE_MAX_EXAMPLES": "50", "TEACHABLE_SESSION_IDLE_SECONDS": "60"})
    assert settings.max_examples == 50 and settings.idle_seconds == 60 and settings.max_sessions == 200
    assert settings.stream_every == 0.1
    assert ServerSettings.from_env({"TEACHABLE_STREAM_EVERY": "0.2"}).stream_every == 0.2
    with pytest.raises(SettingsError, match="TEACHABLE_MAX_SESSIONS"):
        ServerSettings.from_env({"TEACHABLE_MAX_SESSIONS": "many"})
    with pytest.raises(SettingsError, match="TEACHABLE_MAX_UPLOAD_MB=.0. must be"):
        ServerSettings.from_env({"TEACHABLE_MAX_UPLOAD_MB": "0"})


def _jpeg(rgb: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()
