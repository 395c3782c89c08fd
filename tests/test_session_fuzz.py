"""Property-based test of the Session API the page calls: whatever a person (or a hostile client) sends, each call
either works or raises a user error with a message, and afterwards the session still predicts, saves and loads
with identical predictions. Frames go through the real backbone."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teachable.frames import ImageError
from teachable.project import Project, ProjectError
from teachable.session import Session, SessionError

from .conftest import photo

FUZZ = settings(
    max_examples=int(os.environ.get("TEACHABLE_FUZZ_EXAMPLES", 40)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
USER_ERRORS = (SessionError, ProjectError, ImageError)

text = st.one_of(
    st.text(max_size=70),
    st.sampled_from(["Class 1", "Class 2", "cat", "unknown", "\ud800", "Unknown\u200b", "![x](http://h/x.png)", ""]),
    st.none(),
    st.integers(),
    st.lists(st.integers(), max_size=2),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 60), st.none(), st.text(max_size=3), st.booleans()
)
calls = st.lists(
    st.one_of(
        st.tuples(st.just("add_class"), st.one_of(st.none(), text)),
        st.tuples(st.just("rename_class"), text, text),
        st.tuples(st.just("remove_class"), text),
        st.tuples(st.just("clear_class"), text),
        st.tuples(st.just("start_recording"), text),
        st.tuples(st.just("stop_recording")),
        st.tuples(st.just("frame"), st.sampled_from(["chelsea", "coffee", "rocket"])),
        st.tuples(st.just("remove_example"), numbers),
        st.tuples(st.just("move_example"), numbers, text),
        st.tuples(st.just("add_from_tray"), numbers, st.one_of(st.none(), text)),
        st.tuples(st.just("set_live_settings"), numbers, numbers, numbers),
        st.tuples(st.just("set_views"), st.booleans(), text, text),
    ),
    max_size=12,
)


@pytest.fixture(scope="module")
def frames(backbone):
    return {name: np.ascontiguousarray(photo(name)) for name in ("chelsea", "coffee", "rocket")}


@FUZZ
@given(sequence=calls)
def test_any_sequence_of_calls_leaves_a_working_session(backbone, frames, sequence):
    session = Session(backbone)
    session.tray.min_interval = 0.0
    clock = iter(range(1, 1000))
    for name, *arguments in sequence:
        try:
            if name == "frame":
                session.step(frames[arguments[0]], now=float(next(clock)))
            elif name == "set_views":
                session.views.set_views(*arguments)
            elif name == "set_live_settings":
                session.set_live_settings(*arguments)
            else:  # the class cards', tray's and coach's edits
                getattr(session.edits, name)(*arguments)
        except USER_ERRORS as error:
            assert str(error), name  # every refusal says why
    assert math.isfinite(session.threshold) and 0 <= session.threshold <= 1 and session.k >= 1
    for name in session.project.classes:
        name.encode("utf-8")  # every class name can be saved
    result = session.step(frames["coffee"], live=False)
    copy = Project.load(session.project_bytes())
    assert copy.classes == session.project.classes and len(copy) == len(session.project)
    if result.prediction is not None:
        copy.classifier.threshold = session.threshold
        again = copy.predict(backbone.embed(backbone.prepare(frames["coffee"])[None])[0], session.k)
        assert again.label == result.prediction.label
