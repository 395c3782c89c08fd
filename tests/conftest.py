"""Shared fixtures: the real bundled backbone (loaded once) and real photos from scikit-image."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest
import skimage.data

from teachable.backbones import load_backbone


@pytest.fixture(scope="session", autouse=True)
def autosave_folder(tmp_path_factory):
    """Apps started by the tests keep autosaved projects and built graphs in folders of the test run, never the
    user's own. Their live frames run on the server, whose frame path most tests look at; the tests of browser
    inference (tests/test_browser_inference.py) choose it themselves."""
    import os

    folder = tmp_path_factory.mktemp("autosave")
    chosen = {
        "TEACHABLE_DATA_DIR": str(folder),
        "TEACHABLE_CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
        "TEACHABLE_LIVE_MODEL": "server",
    }
    previous = {name: os.environ.get(name) for name in chosen}
    os.environ.update(chosen)
    yield folder
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def backbone():
    return load_backbone("efficientnet_lite0", device="cpu")


def photo(name: str) -> np.ndarray:
    """A real RGB photo shipped with scikit-image (chelsea, coffee, rocket, astronaut, ...)."""
    return np.ascontiguousarray(getattr(skimage.data, name)())


def views(rgb: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """Random crops (60-95 % of each side), flips and brightness changes of one photo."""
    rng = np.random.default_rng(seed)
    height, width = rgb.shape[:2]
    out = []
    for _ in range(count):
        scale = rng.uniform(0.6, 0.95)
        h, w = int(height * scale), int(width * scale)
        y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        crop = rgb[y : y + h, x : x + w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = cv2.convertScaleAbs(np.ascontiguousarray(crop), alpha=rng.uniform(0.8, 1.2), beta=rng.uniform(-20, 20))
        out.append(crop)
    return out


def write_jpeg(path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory):
    """class-per-folder training set and a held-out set, from three real photos."""
    root = tmp_path_factory.mktemp("photos")
    for label, name in [("cat", "chelsea"), ("coffee", "coffee"), ("rocket", "rocket")]:
        all_views = views(photo(name), 8, seed=zlib.crc32(name.encode()) % 1000)
        for i, view in enumerate(all_views[:6]):
            write_jpeg(root / "train" / label / f"{i}.jpg", view)
        for i, view in enumerate(all_views[6:]):
            write_jpeg(root / "test" / label / f"{i}.jpg", view)
    return root


def pytest_collection_modifyitems(items):
    """Run the server-memory test first. It measures a server process's resident memory as the system reports it,
    and after the rest of the suite (dozens of server and browser processes) the kernel and allocator give back
    visibly less of the same freed memory: it passed alone at every commit tried, and missed in full runs."""
    items.sort(key=lambda item: 0 if "test_server_sessions.py" in item.nodeid else 1)
