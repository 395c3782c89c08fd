"""Importing a folder: DataLoader workers give the same examples as embedding each file by hand, and an import
killed with SIGKILL resumes from its checkpoint to the same project as an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from teachable.folder import FolderError, import_folder, partial_path
from teachable.frames import load_image
from teachable.project import Project

from .conftest import photo, views, write_jpeg


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    """48 real photos in 3 classes, plus one unreadable file."""
    root = tmp_path_factory.mktemp("folder")
    for label, name in [("cat", "chelsea"), ("coffee", "coffee"), ("rocket", "rocket")]:
        for i, view in enumerate(views(photo(name), 16, seed=len(name))):
            write_jpeg(root / label / f"{i:02d}.jpg", view)
    (root / "cat" / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return root


@pytest.mark.parametrize("workers", [0, 1])
def test_import_equals_embedding_each_file(big_folder, backbone, tmp_path, workers):
    project, report = import_folder(big_folder, backbone, tmp_path / "p.zip", batch_size=5, workers=workers)
    assert report.added == 48 and report.resumed == 0
    assert len(report.skipped) == 1 and "zz_broken.jpg" in report.skipped[0]
    assert project.counts() == {"cat": 16, "coffee": 16, "rocket": 16}
    for example, vector in zip(project.examples[::7], project.embeddings[::7]):
        alone = backbone.embed(backbone.prepare(load_image(big_folder / example.source))[None])[0]
        cosine = vector @ (alone / np.linalg.norm(alone))
        assert cosine > 0.9999, example.source
    assert not partial_path(tmp_path / "p.zip").exists()  # nothing to resume: no checkpoint is left behind


def fit(folder, output, *extra):
    return [sys.executable, "-m", "teachable.cli", "fit", str(folder), "-o", str(output), "-q", *map(str, extra)]


def test_fit_killed_midway_resumes_to_the_same_project(big_folder, tmp_path):
    reference = tmp_path / "reference.zip"
    done = subprocess.run(fit(big_folder, reference, "--workers", "0"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    output = tmp_path / "resumed.zip"
    checkpoint = partial_path(output)
    process = subprocess.Popen(
        fit(big_folder, output, "--batch-size", "2", "--checkpoint-seconds", "0", "--workers", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists() and len(Project.load(checkpoint)) >= 10:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the import finished before it could be interrupted"
    workers = psutil.Process(process.pid).children()
    assert workers, "the import was expected to use a DataLoader worker"
    os.kill(process.pid, signal.SIGKILL)  # the importing process alone, as the out-of-memory killer would
    process.wait(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "DataLoader workers outlived the killed import"
    saved_before = len(Project.load(checkpoint))
    assert 10 <= saved_before < 48 and not output.exists()

    resumed = subprocess.run(fit(big_folder, output), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resumed from {checkpoint}: " in resumed.stdout
    assert not checkpoint.exists()
    expected, got = Project.load(reference), Project.load(output)
    assert len(got) == 48 and len({e.source for e in got.examples}) == 48
    by_source = {e.source: (e.label, e.thumbnail, v) for e, v in zip(got.examples, got.embeddings)}
    for example, vector in zip(expected.examples, expected.embeddings):
        label, thumbnail, resumed_vector = by_source[example.source]
        assert label == example.label and thumbnail == example.thumbnail
        np.testing.assert_allclose(resumed_vector, vector, atol=2e-3)  # other batch sizes: float rounding only


def test_a_checkpoint_from_another_tap_is_not_resumed(big_folder, backbone, tmp_path):
    output = tmp_path / "p.zip"
    Project.for_backbone(backbone, ["cat"], tap="blocks.5").save(partial_path(output))
    with pytest.raises(FolderError, match="Delete it to start over"):
        import_folder(big_folder, backbone, output, workers=0)


def test_an_empty_folder_is_refused(tmp_path, backbone):
    (tmp_path / "cat").mkdir()
    with pytest.raises(FolderError, match="No images"):
        import_folder(tmp_path, backbone, tmp_path / "p.zip", workers=0)


def test_a_folder_with_more_class_folders_than_the_limit_is_refused_before_reading(tmp_path, backbone):
    for i in range(4):
        write_jpeg(tmp_path / f"class {i}" / "a.jpg", photo("coffee"))
    with pytest.raises(FolderError, match="has 4 class folders; a project can have at most 3"):
        import_folder(tmp_path, backbone, tmp_path / "p.zip", max_classes=3, workers=0)
    project, _ = import_folder(tmp_path, backbone, tmp_path / "p.zip", max_classes=4, workers=0)
    assert len(project.classes) == 4 and project.max_classes == 4


def test_class_folders_with_unnormalised_names_import_and_resume(tmp_path, backbone):
    folder = tmp_path / "photos"
    write_jpeg(folder / "cafe\u0301" / "a.jpg", photo("coffee"))
    write_jpeg(folder / "cat" / "b.jpg", photo("chelsea"))
    project, report = import_folder(folder, backbone, tmp_path / "p.zip", workers=0)
    assert project.counts() == {"caf\u00e9": 1, "cat": 1} and report.added == 2
    project.save(partial_path(tmp_path / "p.zip"))
    resumed, report = import_folder(folder, backbone, tmp_path / "p.zip", workers=0)
    assert resumed.counts() == {"caf\u00e9": 1, "cat": 1} and (report.resumed, report.added) == (2, 0)
