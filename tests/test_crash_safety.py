"""A project file survives its writer being killed at any moment of a save."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from teachable.frames import encode_jpeg
from teachable.project import Project

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from teachable.frames import encode_jpeg
    from teachable.project import Project

    rng = np.random.default_rng(int(sys.argv[2]))
    project = Project("efficientnet_lite0", "pool", 1280, classes=["a", "b"])
    thumbnail = encode_jpeg(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))  # a JPEG of noise, incompressible
    for label in ["a", "b"] * 300:
        project.add_examples(label, rng.normal(size=(1, 1280)), [thumbnail])
    print("ready", flush=True)
    while True:  # save over and over until killed
        project.save(sys.argv[1])
    """
)


def test_sigkill_during_saves_never_corrupts_the_previous_file(tmp_path):
    path = tmp_path / "project.zip"
    original = Project("efficientnet_lite0", "pool", 1280, classes=["a", "b"])
    original.add_examples("a", np.ones((1, 1280)), [encode_jpeg(np.zeros((32, 32, 3), np.uint8))])
    original.save(path)
    rng = random.Random(0)
    for attempt in range(6):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(attempt)], stdout=subprocess.PIPE, text=True
        )
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))  # somewhere inside one of the saves (each takes ~0.1 s)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        project = Project.load(path)  # the last complete save, or the original: never a broken file
        assert len(project) in (1, 600)
        assert project.classes == ["a", "b"]
    # A killed save leaves its temporary file; the next successful save removes the stale ones.
    leftovers = [p for p in tmp_path.iterdir() if p.name != "project.zip"]
    assert all(p.name.startswith(".project.zip.") and p.name.endswith(".tmp") for p in leftovers)
    for stale in leftovers:
        os.utime(stale, (time.time() - 3600, time.time() - 3600))
    Project.load(path).save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["project.zip"]
