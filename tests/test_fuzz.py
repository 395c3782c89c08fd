"""Property-based tests: whatever is done through Project's API, and whatever bytes are given as a project file,
the answer is the result or a ProjectError/ValueError with a message, never another exception. Afterwards the
project still saves, loads and predicts exactly as before."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teachable.frames import encode_jpeg
from teachable.project import Project, ProjectError

DIM = 8
FUZZ = settings(
    max_examples=int(os.environ.get("TEACHABLE_FUZZ_EXAMPLES", 100)),  # more for a longer hunt
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
THUMBNAILS = [encode_jpeg(np.full((24, 24, 3), shade, np.uint8)) for shade in (0, 90, 200)]
QUERIES = np.random.default_rng(0).normal(size=(4, DIM)).astype(np.float32)

names = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=70),  # surrogates, controls, format characters
    st.sampled_from(["cat", "dog", "unknown", "Unknown\u200b", "\u200b", "cafe\u0301", "caf\u00e9", " cat ", ""]),
    st.integers(),
    st.none(),
)
vectors = st.lists(
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=DIM, max_size=DIM),
    min_size=1,
    max_size=3,
)
indices = st.one_of(st.integers(-3, 12), st.floats(-2, 12), st.booleans(), st.text(max_size=2))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add_class"), names),
        st.tuples(st.just("rename_class"), names, names),
        st.tuples(st.just("remove_class"), names),
        st.tuples(st.just("clear_class"), names),
        st.tuples(st.just("add_examples"), names, vectors, st.integers(0, 3)),
        st.tuples(st.just("remove_examples"), st.lists(indices, max_size=3)),
        st.tuples(st.just("move_example"), indices, names),
        st.tuples(st.just("predict"), st.integers(-1, 6)),
    ),
    max_size=25,
)


def apply(project: Project, operation: tuple) -> None:
    kind, *arguments = operation
    if kind == "add_examples":
        label, rows, count = arguments
        thumbnails = [THUMBNAILS[i % len(THUMBNAILS)] for i in range(count)]
        project.add_examples(label, np.array(rows, np.float32), thumbnails)
    elif kind == "predict":
        project.predict(QUERIES[0], arguments[0])
    else:
        getattr(project, kind)(*arguments)


def predictions(project: Project) -> list:
    if len(project) == 0:
        return []
    return [project.predict(query, 3) for query in QUERIES]


def assert_round_trip(project: Project) -> None:
    loaded = Project.load(project.to_bytes())
    assert loaded.classes == project.classes and loaded.counts() == project.counts()
    np.testing.assert_array_equal(loaded.embeddings, project.embeddings)
    assert predictions(loaded) == predictions(project)
    assert members(Project.load(loaded.to_bytes()).to_bytes()) == members(loaded.to_bytes())


def members(data: bytes) -> dict[str, bytes]:
    """A saved project's members (a saved zip also holds each member's time, which may differ)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


@FUZZ
@given(operations)
def test_any_sequence_of_project_operations_fails_only_with_a_message(steps):
    project = Project("fuzz", "pool", DIM)
    for operation in steps:
        before = (list(project.classes), project.counts(), project.embeddings.copy())
        try:
            apply(project, operation)
        except ValueError as error:  # ProjectError, KNNError and other ValueErrors: messages for a person
            assert str(error).strip(), operation
            after = (list(project.classes), project.counts(), project.embeddings)
            assert before[:2] == after[:2] and np.array_equal(before[2], after[2]), operation
        assert len(project.examples) == len(project.classifier) == len(project.embeddings)
        assert all(name.encode("utf-8") and name == name.strip() and name for name in project.classes)
    assert_round_trip(project)


def base_project() -> Project:
    project = Project("fuzz", "pool", DIM, classes=["cat", "dog"])
    rng = np.random.default_rng(1)
    for i in range(6):
        project.add_examples("cat dog".split()[i % 2], rng.normal(size=(1, DIM)), [THUMBNAILS[i % 3]], f"s{i}")
    return project


BASE = base_project()
BASE_BYTES = BASE.to_bytes()


def manifest_of(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return json.loads(archive.read("manifest.json"))


def with_members(changes: dict) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(BASE_BYTES))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename not in changes:
                target.writestr(info.filename, source.read(info))
        for name, content in changes.items():
            if content is not None:
                target.writestr(name, content)
    return out.getvalue()


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(st.characters(exclude_categories=()), max_size=12),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
MANIFEST = manifest_of(BASE_BYTES)
manifest_edits = st.one_of(
    st.tuples(st.sampled_from(sorted(MANIFEST)), json_values),
    st.tuples(st.just("example"), st.integers(0, 5), st.sampled_from(["label", "thumbnail", "added_at", "source"]),
              json_values),
    st.tuples(st.just("classes"), st.lists(st.text(st.characters(exclude_categories=()), max_size=8), max_size=6)),
)


def edited_manifest(edits: list) -> bytes:
    manifest = json.loads(json.dumps(MANIFEST))
    for edit in edits:
        if edit[0] == "example":
            _, index, key, value = edit
            records = manifest["examples"]
            if isinstance(records, list) and index < len(records) and isinstance(records[index], dict):
                records[index][key] = value
        elif edit[0] == "classes":
            manifest["classes"] = edit[1]
        else:
            manifest[edit[0]] = edit[1]
    return json.dumps(manifest, allow_nan=True).encode("utf-8", "surrogatepass")


def assert_loads_or_refuses(data: bytes) -> None:
    try:
        project = Project.load(data)
    except ValueError as error:
        assert isinstance(error, ProjectError), type(error)
        assert str(error).strip() and "\n" not in str(error)
        return
    assert_round_trip(project)


@FUZZ
@given(st.lists(manifest_edits, min_size=1, max_size=4))
def test_any_manifest_loads_or_is_refused_with_a_message(edits):
    assert_loads_or_refuses(with_members({"manifest.json": edited_manifest(edits)}))


member_names = st.sampled_from(["manifest.json", "embeddings.npy", "thumbs/000000.jpg", "thumbs/000003.jpg"])


@FUZZ
@given(member_names, st.one_of(st.binary(max_size=300), st.none()), st.integers(0, 400), st.binary(min_size=1, max_size=8))
def test_damaged_members_load_or_are_refused_with_a_message(member, replacement, position, patch):
    """A member replaced by random bytes, removed, or with a few bytes overwritten."""
    if replacement is not None and len(replacement) % 2:
        with zipfile.ZipFile(io.BytesIO(BASE_BYTES)) as archive:
            original = bytearray(archive.read(member))
        start = position % max(len(original), 1)
        original[start : start + len(patch)] = patch
        replacement = bytes(original)
    assert_loads_or_refuses(with_members({member: replacement}))


@FUZZ
@given(st.integers(0, len(BASE_BYTES) - 1), st.binary(min_size=1, max_size=16))
def test_damaged_zip_bytes_load_or_are_refused_with_a_message(position, patch):
    data = bytearray(BASE_BYTES)
    data[position : position + len(patch)] = patch
    assert_loads_or_refuses(bytes(data))


def test_the_base_project_round_trips():
    assert_round_trip(BASE)
    assert Project.load(BASE_BYTES).counts() == {"cat": 3, "dog": 3}


@pytest.mark.parametrize("name", ["\ud800", "a\udfffb"])
def test_a_refused_name_leaves_a_project_that_still_saves(name):
    project = base_project()
    with pytest.raises(ProjectError, match="unpaired surrogate"):
        project.add_class(name)
    assert_round_trip(project)
