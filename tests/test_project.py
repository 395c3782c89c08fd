import copy
import io
import json
import zipfile

import numpy as np
import pytest

from teachable.frames import decode_image, encode_jpeg
from teachable.project import FORMAT_VERSION, MAX_CLASSES, BackboneMismatch, Project, ProjectError

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


def npy_header(shape, descr="<f4") -> bytes:
    """An .npy header that claims ``shape``, followed by a few bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(64)


def npz(array) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, embeddings=array)
    return buffer.getvalue()


def every_example(d: bytes, **changes) -> bytes:
    return rewrite(d, manifest=lambda m: {**m, "examples": [{**e, **changes} for e in m["examples"]]})


def with_classes(d: bytes, classes: list) -> bytes:
    return rewrite(d, manifest=lambda m: {**m, "classes": ["cat", "coffee", *classes]})


FIRST_JPEG = "thumbs/000000.jpg"
NOISE = np.random.default_rng(0).integers(0, 256, 2**20 + 1000, np.uint8).tobytes()  # does not compress
HUGE_JPEG = encode_jpeg(np.zeros((700, 700, 3), np.uint8))

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
    # second pass (issue 19)
    "every example shares one thumbnail": (
        lambda d: every_example(d, thumbnail=FIRST_JPEG),
        "examples 0 and 1 share the thumbnail thumbs/000000.jpg",
    ),
    "thumbnail over a megabyte": (
        lambda d: rewrite(d, replace={FIRST_JPEG: encode_jpeg(np.zeros((224, 224, 3), np.uint8)) + NOISE}),
        "example 0 is 1,05.,... bytes; the limit is 1,048,576",
    ),
    "jpeg magic then garbage": (
        lambda d: rewrite(d, replace={FIRST_JPEG: b"\xff\xd8\xff" + bytes(range(256)) * 8}),
        "thumbnail of example 0 (is not an image|could not be decoded)",
    ),
    "truncated thumbnail": (
        lambda d: rewrite(d, replace={FIRST_JPEG: HUGE_JPEG[: len(HUGE_JPEG) // 2]}),
        "thumbnail of example 0",
    ),
    "thumbnail of 700x700 pixels": (lambda d: rewrite(d, replace={FIRST_JPEG: HUGE_JPEG}), "limit is 409,600 pixels"),
    "added_at is text": (lambda d: every_example(d, added_at="x"), "added_at of 'x'"),
    "added_at is NaN": (lambda d: every_example(d, added_at=float("nan")), "added_at of nan"),
    "added_at overflows": (lambda d: every_example(d, added_at=10**400), "added_at"),
    "npz stored as npy": (
        lambda d: rewrite(d, replace={"embeddings.npy": npz(np.ones((10, 1280), np.float16))}),
        "cannot be read safely",
    ),
    "npy header claims 2**40 rows": (
        lambda d: rewrite(d, replace={"embeddings.npy": npy_header((2**40,))}),
        "shape \\(1099511627776,\\)",
    ),
    "npy header claims the right shape but holds less": (
        lambda d: rewrite(d, replace={"embeddings.npy": npy_header((10, 1280))}),
        "bytes of data",
    ),
    "npy of complex numbers": (
        lambda d: rewrite(d, replace={"embeddings.npy": npy(np.random.default_rng(1).random((10, 1280)).astype(np.complex64))}),
        "type complex64",
    ),
    "51 classes": (lambda d: with_classes(d, [f"c{i}" for i in range(49)]), "51 classes; the limit is 50"),
    "lone surrogate class": (lambda d: with_classes(d, ["\ud800"]), "unpaired surrogate"),
    "invisible class": (lambda d: with_classes(d, ["\u200b\u2060"]), "visible"),
    "combining mark only class": (lambda d: with_classes(d, ["\u0301\u0301"]), "visible"),
    "reserved behind a zero-width space": (lambda d: with_classes(d, ["unknown\u200b"]), "reserved"),
    "same class in two normal forms": (lambda d: with_classes(d, ["caf\u00e9", "cafe\u0301"]), "already"),
    "classes is not a list": (lambda d: rewrite(d, manifest=lambda m: {**m, "classes": "cat"}), "wrong classes"),
    "example is not a record": (lambda d: rewrite(d, manifest=lambda m: {**m, "examples": [1] * 10}), "not a record"),
    "embedding_dim is text": (lambda d: rewrite(d, manifest=lambda m: {**m, "embedding_dim": "9"}), "embedding_dim"),
    "preprocessing with NaN": (
        lambda d: rewrite(d, manifest=lambda m: {**m, "preprocessing": {"mean": float("nan")}}),
        "wrong preprocessing",
    ),
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

    monkeypatch.setattr("teachable.atomic.os.replace", crash)
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
        ("\ud800", "unpaired surrogate"),
        ("cat\udfff", "unpaired surrogate"),
        ("\u200b", "visible"),
        ("\u2800\u3164", "visible"),
        ("\u0301", "visible"),
        ("unknown\u200b", "reserved"),
        ("Unknown\u200d", "reserved"),
        ("ca\u200bt", "already"),
        ("a\x00b", "control"),
        ("x\u0301" * 600, "at most 64"),
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
    monkeypatch.setattr("teachable.project_file.MAX_MEMBERS", 2000)
    crowded = rewrite(real_project.to_bytes(), extra={f"junk/{i}.txt": b"" for i in range(2500)})
    with pytest.raises(ProjectError, match="2,5.. members; the limit is 2,000"):
        Project.load(crowded)


def amplification_file(count: int, padding: int, shared: bool) -> bytes:
    """A stored zip whose ``count`` examples name thumbnails of a valid JPEG followed by ``padding`` zero bytes:
    all the same member when ``shared`` (each later save would write it ``count`` times), else one each."""
    jpeg = encode_jpeg(np.full((224, 224, 3), 128, np.uint8)) + bytes(padding)
    vectors = np.random.default_rng(0).normal(size=(count, 1280)).astype(np.float16)
    members = [FIRST_JPEG if shared else f"thumbs/{i:06d}.jpg" for i in range(count)]
    manifest = {
        "format": "teachable-project",
        "format_version": 1,
        "backbone": "efficientnet_lite0",
        "tap": "pool",
        "embedding_dim": 1280,
        "classes": ["a", "b"],
        "examples": [{"label": "ab"[i % 2], "thumbnail": m, "added_at": 0} for i, m in enumerate(members)],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.writestr("embeddings.npy", npy(vectors))
        for member in sorted(set(members)):
            archive.writestr(member, jpeg)
    return buffer.getvalue()


def test_examples_sharing_one_padded_thumbnail_are_refused_before_any_thumbnail_is_read(monkeypatch):
    read = []
    monkeypatch.setattr("teachable.project_file.standard_thumbnail", lambda *args: read.append(args))
    with pytest.raises(ProjectError, match="examples 0 and 1 share the thumbnail"):
        Project.load(amplification_file(300, 200_000, shared=True))
    assert read == []


def test_padded_thumbnails_are_reencoded_so_they_do_not_grow_memory_or_later_saves(tmp_path):
    padded = amplification_file(20, 500_000, shared=False)
    project = Project.load(padded)
    assert len(project) == 20 and all(len(e.thumbnail) < 20_000 for e in project.examples)
    assert decode_image(project.examples[0].thumbnail).shape == (224, 224, 3)
    assert project.save(tmp_path / "p.zip").stat().st_size < len(padded) / 20


def test_limits_are_checked_before_embeddings_or_thumbnails_are_read(real_project, backbone, monkeypatch):
    other_backbone = rewrite(real_project.to_bytes(), manifest=lambda m: {**m, "backbone": "googlenet"})
    work = []
    monkeypatch.setattr("teachable.project_file._read_embeddings", lambda *args: work.append(args))
    monkeypatch.setattr("teachable.project_file.standard_thumbnail", lambda *args: work.append(args))
    with pytest.raises(ProjectError, match="has 10 examples; the limit is 9") as refusal:
        Project.load(other_backbone, backbone=backbone, max_examples=9)
    assert not isinstance(refusal.value, BackboneMismatch)  # nothing to re-embed: refused first
    with pytest.raises(ProjectError, match="has 2 classes; the limit is 1"):
        Project.load(other_backbone, backbone=backbone, max_classes=1)
    assert work == []


def test_the_class_limit_holds_for_new_classes_and_loaded_projects(real_project):
    project = Project("efficientnet_lite0", "pool", 1280)
    for i in range(MAX_CLASSES):
        project.add_class(f"class {i}")
    with pytest.raises(ProjectError, match="at most 50 classes"):
        project.add_class("one more")
    assert len(project.classes) == MAX_CLASSES == 50
    loaded = Project.load(real_project.to_bytes(), max_classes=3)
    loaded.add_class("third")
    with pytest.raises(ProjectError, match="at most 3 classes"):
        loaded.add_class("fourth")
    with pytest.raises(ProjectError, match="at most 2 classes"):
        Project("efficientnet_lite0", "pool", 1280, classes=["a", "b", "c"], max_classes=2)


def test_names_are_normalised_and_compared_after_normalisation(real_project, tmp_path):
    project = Project.load(real_project.to_bytes())
    assert project.add_class("cafe\u0301") == "caf\u00e9"  # NFC
    assert project.add_class("  zero\u200bwidth\u202e ") == "zerowidth"
    assert project.add_class("👩\u200d💻") == "👩\u200d💻"  # the joiner that makes the emoji is kept
    with pytest.raises(ProjectError, match="already"):
        project.add_class("caf\u00e9")
    with pytest.raises(ProjectError, match="already"):
        project.add_class("👩💻")
    project.rename_class("cafe\u0301", "tea")  # an existing class found by its other normal form
    project.add_examples("tea", real_project.embeddings[:1], [real_project.examples[0].thumbnail])
    assert project.counts()["tea"] == 1
    loaded = Project.load(project.save(tmp_path / "p.zip"))
    assert loaded.classes == project.classes


def test_an_old_manifest_with_unnormalised_labels_still_loads(real_project):
    spaced = rewrite(
        real_project.to_bytes(),
        manifest=lambda m: {
            **m,
            "classes": ["cat", "cafe\u0301"],
            "examples": [{**e, "label": "caf\u00e9" if e["label"] == "coffee" else "cat"} for e in m["examples"]],
        },
    )
    assert Project.load(spaced).counts() == {"cat": 5, "caf\u00e9": 5}


# ----------------------------------------------------------------- takes
def project_with_takes(seed=0, dim=32):
    """Two classes, each recorded in three takes of four near-copies of one view, plus one single example."""
    rng = np.random.default_rng(seed)
    project = Project("efficientnet_lite0", "pool", dim, classes=["cup", "hand"])
    thumbnail = encode_jpeg(np.full((224, 224, 3), 128, np.uint8))
    for name in project.classes:
        centre = np.abs(rng.normal(size=dim))
        for _ in range(3):
            view = np.abs(centre + rng.normal(size=dim)) ** 4
            copies = view * np.abs(1 + 0.01 * rng.normal(size=(4, dim)))
            project.add_examples(name, copies, [thumbnail] * 4, "webcam", project.new_take())
        project.add_examples(name, np.abs(centre + rng.normal(size=(1, dim))) ** 4, [thumbnail], "upload")
    return project, rng


def test_takes_are_saved_and_loaded_and_predictions_stay_identical():
    project, rng = project_with_takes()
    assert len(set(project.takes)) == 8 and project.takes[:4] == (project.takes[0],) * 4
    loaded = Project.load(project.to_bytes())
    assert loaded.manifest()["format_version"] == FORMAT_VERSION == 2
    assert loaded.takes == project.takes
    assert loaded.classifier.boundary == project.classifier.boundary
    for query in np.abs(rng.normal(size=(10, 32))) ** 4:
        assert loaded.predict(query, 5) == project.predict(query, 5)
    again = Project.load(loaded.to_bytes())
    assert again.takes == project.takes and again.new_take() == project.new_take()


def test_format_1_files_load_with_takes_from_near_copies():
    project, rng = project_with_takes()

    def version_1(manifest):
        examples = [{k: v for k, v in record.items() if k != "take"} for record in manifest["examples"]]
        return {**manifest, "format_version": 1, "examples": examples}

    loaded = Project.load(rewrite(project.to_bytes(), manifest=version_1))
    # the near-copies of each view share a take again (numbered afresh), the single uploads are their own
    regrouped = {take: [i for i, t in enumerate(loaded.takes) if t == take] for take in dict.fromkeys(loaded.takes)}
    original = {take: [i for i, t in enumerate(project.takes) if t == take] for take in dict.fromkeys(project.takes)}
    assert sorted(regrouped.values()) == sorted(original.values())
    assert loaded.classifier.boundary == pytest.approx(project.classifier.boundary, abs=1e-6)
    for query in np.abs(rng.normal(size=(5, 32))) ** 4:
        assert loaded.predict(query, 5) == project.predict(query, 5)
    assert Project.load(loaded.to_bytes()).takes == loaded.takes  # saved as version 2 from then on


def test_a_missing_take_is_its_own_and_a_bad_take_is_refused():
    project, _ = project_with_takes()

    def edit(change):
        def manifest(m):
            m["examples"] = [change(i, dict(record)) for i, record in enumerate(m["examples"])]
            return m

        return rewrite(project.to_bytes(), manifest=manifest)

    dropped = Project.load(edit(lambda i, r: {k: v for k, v in r.items() if not (i == 0 and k == "take")}))
    assert dropped.takes[0] not in dropped.takes[1:] and dropped.takes[1:] == project.takes[1:]
    for bad in ("3", -1, 1.5, True, 2**60, [1]):
        with pytest.raises(ProjectError, match="example 2 has a take"):
            Project.load(edit(lambda i, r, bad=bad: {**r, "take": bad} if i == 2 else r))


# ----------------------------------------------------------------- version
class TinyBackbone:
    """Just enough of a backbone for ``reembed``: every thumbnail embeds to its mean colour plus a constant."""

    name, embedding_tap, input_size, mean, std = "tiny", "pool", 224, (0.5,) * 3, (0.2,) * 3

    def __init__(self, dim):
        self.taps = {"pool": type("Tap", (), {"name": "pool", "channels": dim})()}

    def tap(self, name):
        return self.taps[name]

    def prepare(self, rgb):
        return rgb

    def embed(self, images, tap):
        dim = self.taps[tap].channels
        return np.abs(np.resize(images.reshape(len(images), -1, 3).mean(axis=1), (len(images), dim))) + 1


def test_version_rises_with_every_change_and_never_with_a_read(tmp_path):
    project, rng = project_with_takes()
    thumbnail = project.examples[0].thumbnail
    changes = {
        "add_class": lambda p: p.add_class("pen"),
        "rename_class": lambda p: p.rename_class("pen", "pencil"),
        "add_examples": lambda p: p.add_examples("pencil", rng.normal(size=(2, 32)), [thumbnail] * 2),
        "move_example": lambda p: p.move_example(0, "hand"),
        "remove_examples": lambda p: p.remove_examples([1]),
        "clear_class": lambda p: p.clear_class("pencil"),
        "remove_class": lambda p: p.remove_class("pencil"),
        "reembed": lambda p: p.reembed(TinyBackbone(8)),
        "classifier replaced": lambda p: setattr(p, "classifier", copy.deepcopy(p.classifier)),
    }
    for name, change in changes.items():
        before = project.version
        change(project)
        assert project.version > before, name
    no_ops = {
        "rename to the same name": lambda p: p.rename_class("cup", "cup"),
        "clear an empty class": lambda p: p.clear_class("empty"),
        "remove nothing": lambda p: p.remove_examples([]),
        "move to its own class": lambda p: p.move_example(0, p.examples[0].label),
        "new take": lambda p: p.new_take(),
    }
    reads = {
        "counts": lambda p: p.counts(),
        "indices_of": lambda p: p.indices_of("cup"),
        "find_class": lambda p: p.find_class("CUP"),
        "predict": lambda p: p.predict(rng.normal(size=8), 3),
        "embeddings, takes, uids": lambda p: (p.embeddings, p.takes, p.uids, len(p), repr(p)),
        "boundary and review": lambda p: (p.classifier.boundary, p.classifier.leave_one_out()),
        "file": lambda p: (p.manifest(), p.to_bytes(), p.save(tmp_path / "p.zip"), p.contents()),
    }
    project.add_class("empty")
    for name, action in {**no_ops, **reads}.items():
        before = project.version
        action(project)
        assert project.version == before, name
    loaded = Project.load(tmp_path / "p.zip")
    assert loaded.version > 0 and (loaded.classes, loaded.takes) == (project.classes, project.takes)
