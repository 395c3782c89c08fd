"""Autosave costs: saving a project of 100 and 500 examples, restoring it, and what ``changed()`` adds per frame.

* Save: ``Project.to_bytes()`` (the snapshot) and ``ProjectStore.save`` (checksum, temporary file, fsync, rename)
  on this machine's disk, for 224-pixel JPEG thumbnails cut from real photos (scikit-image) and 1280-d embeddings,
  as the bundled backbone makes them. p50/p95 in ms, and the stored file's bytes.
* Restore: ``ProjectStore.load`` then ``Project.load`` (which decodes every thumbnail).
* Per frame: ``Autosaver.changed()`` for a key already waiting for its save (every frame after the first edit),
  against calling an empty function, in microseconds.
* Twenty people recording through the app's frame path (``Session.step`` with the real backbone, then the page's
  autosave hook): frame latency (p50/p95) with autosave on against off, alternating in blocks.

Writes benchmarks/results/autosave.json (or the path given as the first argument).
"""

from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data

from timing import percentiles, timed

from teachable.autosave import Autosaver, ProjectStore, new_key
from teachable.frames import center_square, encode_jpeg
from teachable.project import Project

PHOTOS = ["chelsea", "coffee", "rocket", "astronaut"]
DIM, SIDE = 1280, 224


def thumbnails(count: int, seed: int) -> list[bytes]:
    """``count`` 224-pixel JPEGs of random crops of real photos, as the webcam path stores them."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        rgb = getattr(skimage.data, PHOTOS[index % len(PHOTOS)])()
        if rgb.ndim == 2:
            rgb = np.stack([rgb] * 3, axis=-1)
        height, width = rgb.shape[:2]
        side = int(min(height, width) * rng.uniform(0.6, 0.95))
        y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
        out.append(encode_jpeg(center_square(np.ascontiguousarray(rgb[y : y + side, x : x + side]), SIDE)))
    return out


def project_of(count: int, seed: int = 0) -> Project:
    rng = np.random.default_rng(seed)
    classes = ("Class 1", "Class 2", "Class 3")
    project = Project("efficientnet_lite0", "pool", DIM, {"input_size": SIDE}, classes)
    images = thumbnails(count, seed)
    for index, image in enumerate(images):
        project.add_examples(classes[index % 3], rng.normal(size=(1, DIM)), [image], source="webcam")
    return project


def bench_save(store: ProjectStore, count: int, repeats: int = 30) -> dict:
    project, key = project_of(count), new_key()
    data = project.to_bytes()
    settings = {"k": 5, "threshold": 0.4}
    snapshot = percentiles(timed(project.to_bytes, repeats))
    save = percentiles(timed(lambda: store.save(key, project.to_bytes(), settings), repeats))
    write = percentiles(timed(lambda: store.save(key, data, settings), repeats))
    restore = percentiles(timed(lambda: Project.load(store.load(key)[0]), max(5, repeats // 3)))
    return {
        "examples": count,
        "file_bytes": store.path_of(key).stat().st_size,
        "snapshot_to_bytes": snapshot,
        "store_save_only": write,
        "snapshot_and_save": save,
        "restore_load_and_project_load": restore,
    }


def bench_changed(store: ProjectStore, calls: int = 200_000) -> dict:
    """Per-call cost of ``changed()`` for a key already dirty, against an empty function of the same arguments."""

    def nothing(key, snapshot):
        return None

    key = new_key()
    snapshot = lambda: (b"", {})  # noqa: E731 - never called: the delay outlasts the measurement
    with Autosaver(store, delay=3600) as saver:
        saver.changed(key, snapshot)
        best_changed, best_empty = [], []
        for _ in range(5):
            for fn, samples in ((saver.changed, best_changed), (nothing, best_empty)):
                start = time.perf_counter()
                for _ in range(calls):
                    fn(key, snapshot)
                samples.append((time.perf_counter() - start) / calls * 1e6)
        first_of_key = []
        for _ in range(2000):
            fresh = new_key()
            start = time.perf_counter()
            saver.changed(fresh, snapshot)
            first_of_key.append((time.perf_counter() - start) * 1e6)
        saver.discard(key)
    return {
        "changed_dirty_key_us": round(min(best_changed), 3),
        "empty_call_us": round(min(best_empty), 3),
        "changed_first_change_of_a_key_p50_us": round(float(np.percentile(first_of_key, 50)), 3),
    }


def bench_twenty_recording(store: ProjectStore, blocks: int = 6, frames: int = 60, delay: float = 2.0) -> dict:
    """Twenty people recording through the app's own frame path: ``Session.step`` (the real backbone) on a
    640x480 frame, recording into a 100-example project, then the page's autosave hook, which hands a copy of the
    project to the autosaver at most once a second per person (the autosaver writes it in its own thread). Frame
    latency with autosave on against off, alternating in blocks of ``frames`` frames (round-robin over the twenty)
    so drift in the machine's load hits both alike."""
    from concurrent.futures import ThreadPoolExecutor

    from teachable.backbones import load_backbone
    from teachable.runners import LocalRunner
    from teachable.session import Session
    from teachable.webapp.context import AppContext, PageState
    from teachable.webapp.saving import FRAME_SAVE_INTERVAL, autosave
    from teachable.webapp.settings import ServerSettings

    backbone = load_backbone(device="cpu")
    frame = np.ascontiguousarray(skimage.data.chelsea())
    people = []
    for seed in range(20):
        session = Session(backbone)
        session.views.on = False  # the frame path without the map and grid: autosave's share is then largest
        session.replace_project(project_of(100, seed))
        session.edits.start_recording("Class 1")
        page = PageState()
        page.browser_key = new_key()
        people.append((session, page))
    off, on, clock = [], [], iter(np.arange(1, 100_000) * 0.2)
    with Autosaver(store, delay=delay) as saver:
        app = AppContext(backbone, None, ServerSettings(), LocalRunner(backbone), ThreadPoolExecutor(1), autosaver=saver)

        def block(saving: bool) -> list[float]:
            samples = []
            for index in range(frames):
                session, page = people[index % len(people)]
                start = time.perf_counter()
                session.step(frame, now=float(next(clock)))
                if saving:
                    autosave(app, session, page, FRAME_SAVE_INTERVAL)
                samples.append((time.perf_counter() - start) * 1000)
            return samples

        for _ in range(blocks):
            off += block(False)
            on += block(True)
        saver.flush()
    off_stats, on_stats = percentiles(off), percentiles(on)
    return {
        "sessions": 20,
        "examples_each_at_start": 100,
        "delay_s": delay,
        "frames_each": len(off),
        "frame_autosave_off": off_stats,
        "frame_autosave_on": on_stats,
        "p50_ratio_on_vs_off": round(on_stats["p50_ms"] / off_stats["p50_ms"], 3),
        "p95_ratio_on_vs_off": round(on_stats["p95_ms"] / off_stats["p95_ms"], 3),
        "stored_entries": len(store.entries()),
    }


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "autosave.json"
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as folder:
        store = ProjectStore(folder)
        saves = [bench_save(store, count) for count in (100, 500)]
        result = {
            "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
            "save": saves,
            "per_frame": bench_changed(store),
            "twenty_recording": bench_twenty_recording(store),
        }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
