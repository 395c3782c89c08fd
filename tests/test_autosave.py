"""Autosave: keys, the on-disk store (expiry, size budgets refused at write time, damage, two writers, a killed writer) and debounced saving.

Everything runs on real files in a temporary folder; the projects are real ``Project`` files with small random
embeddings and real JPEG thumbnails.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest
from PIL import Image

from teachable import autosave
from teachable.settings import SettingsError
from teachable.autosave import (
    STALE_TEMP_SECONDS,
    AutosaveSettings,
    Autosaver,
    ProjectStore,
    new_key,
    restore_project,
    valid_key,
)
from teachable.project import Project
from tests import autosave_workers

DIM = 16
SIDE = 32
SETTINGS = {"k": 5, "threshold": 0.4, "names": ["cat", "dog"]}


def jpeg(rng: np.random.Generator) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def make_project(examples: int = 12, seed: int = 0, classes: tuple[str, ...] = ("cat", "dog", "cup")) -> Project:
    """A real project: ``examples`` random unit embeddings with real JPEG thumbnails, spread over ``classes``."""
    rng = np.random.default_rng(seed)
    project = Project("efficientnet_lite0", "pool", DIM, {"input_size": SIDE}, classes)
    for index in range(examples):
        label = classes[index % len(classes)]
        project.add_examples(label, rng.normal(size=(1, DIM)), [jpeg(rng)], source="webcam")
    return project


@pytest.fixture
def store(tmp_path):
    return ProjectStore(tmp_path / "sessions", keep_hours=1, max_total_bytes=10 * 2**20)


def stored_files(store: ProjectStore) -> list[str]:
    return sorted(name for name in os.listdir(store.folder) if name != autosave.LOCK_FOLDER)


# ------------------------------------------------------------------------------------------- keys
def test_new_keys_are_random_256_bit_url_safe_strings():
    keys = {new_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert len(key) == 43 and valid_key(key)
        assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


GARBAGE_KEYS = [
    None,
    "",
    42,
    b"x" * 43,
    ["key"],
    "../x",
    "..",
    "a" * 10_000,
    "é" * 43,
    "../../../../../../../../../../../etc/passwd",
    "A" * 42 + "/",
    "A" * 42 + "\n",
    "A" * 42 + "=",
    "A" * 42 + "B",  # right alphabet and length, but not the spelling of 32 bytes
    " " + "A" * 42,
]


@pytest.mark.parametrize("key", GARBAGE_KEYS, ids=repr)
def test_a_garbage_key_restores_nothing_and_never_touches_the_file_system(store, monkeypatch, key):
    store.save(new_key(), make_project(3).to_bytes(), SETTINGS)

    def no_file_access(*args, **kwargs):
        raise AssertionError("the file system was touched")

    monkeypatch.setattr(autosave, "open", no_file_access, raising=False)
    monkeypatch.setattr(autosave.os, "stat", no_file_access)
    assert not valid_key(key)
    assert store.load(key) is None
    assert store.saved_at(key) is None
    assert restore_project(store, key) is None
    store.delete(key)
    store.quarantine(key)
    with pytest.raises(ValueError):
        store.save(key, b"data", {})


def test_a_valid_but_unknown_key_restores_nothing(store):
    store.save(new_key(), make_project(3).to_bytes(), SETTINGS)
    unknown = new_key()
    assert store.load(unknown) is None
    assert restore_project(store, unknown) is None
    assert len(stored_files(store)) == 1


def test_stored_file_names_reveal_no_key(store):
    keys = [new_key() for _ in range(3)]
    for key in keys:
        store.save(key, make_project(2).to_bytes(), SETTINGS)
    names = stored_files(store)
    assert len(names) == 3
    for key in keys:
        assert not any(key in name or key[:16] in name for name in names)
        assert autosave.key_digest(key) + ".autosave" in names
    everything = " ".join(os.listdir(store.folder) + os.listdir(store.folder / autosave.LOCK_FOLDER))
    assert not any(key[:16] in everything for key in keys)


# ------------------------------------------------------------------------------------------- round trip
def test_save_then_load_gives_back_the_same_project_and_settings(store):
    key, project = new_key(), make_project(30, seed=3)
    assert store.save(key, project.to_bytes(), SETTINGS)
    project_bytes, settings = store.load(key)
    assert settings == SETTINGS
    restored, settings = restore_project(store, key)
    assert settings == SETTINGS
    assert restored.counts() == project.counts()
    assert [e.thumbnail for e in restored.examples] == [e.thumbnail for e in project.examples]
    queries = np.random.default_rng(9).normal(size=(20, DIM)).astype(np.float32)
    for query in queries:
        before, after = project.predict(query, 5), restored.predict(query, 5)
        assert (after.label, after.confidences, after.is_unknown) == (before.label, before.confidences, before.is_unknown)
        assert after.nearest_similarity == before.nearest_similarity


def test_a_later_save_replaces_the_earlier_one_and_delete_forgets_it(store):
    key = new_key()
    store.save(key, make_project(3).to_bytes(), {"k": 1})
    store.save(key, make_project(6).to_bytes(), {"k": 2})
    project, settings = restore_project(store, key)
    assert len(project) == 6 and settings == {"k": 2}
    store.delete(key)
    assert store.load(key) is None and stored_files(store) == []


def test_an_older_snapshot_never_overwrites_a_newer_one(store):
    key = new_key()
    assert store.save(key, b"new", {}, taken_at=time.time())
    assert not store.save(key, b"old", {}, taken_at=time.time() - 10)
    assert store.load(key) == (b"new", {})
    assert [name for name in os.listdir(store.folder) if name.endswith(".tmp")] == []


def test_a_stored_time_from_a_clock_since_set_back_does_not_block_saves(store):
    key = new_key()
    store.save(key, b"from the future", {}, taken_at=time.time() + 3600)
    assert store.save(key, b"now", {})
    assert store.load(key) == (b"now", {})


def test_settings_must_be_a_json_object(store):
    for settings in (["list"], {1: "int key"}, {"nan": float("nan")}, {"x": object()}):
        with pytest.raises((ValueError, TypeError)):
            store.save(new_key(), b"data", settings)


# ------------------------------------------------------------------------------------------- damage
def damage_cases(data: bytes) -> dict[str, bytes]:
    magic_end = len(autosave.MAGIC)
    header_end = data.index(b"\n", magic_end)
    return {
        "truncated": data[: len(data) // 2],
        "empty": b"",
        "one flipped byte": data[:-50] + bytes([data[-50] ^ 1]) + data[-49:],
        "not this format": b"PK\x03\x04" + data[4:],
        "header not json": data[:magic_end] + b"{nope" + data[header_end:],
        "settings a list": data[:magic_end]
        + data[magic_end:header_end].replace(b'"settings":{', b'"settings":[{').replace(b"}}", b"}]}")
        + data[header_end:],
        "no newline after header": data[:header_end],
    }


@pytest.mark.parametrize("case", list(damage_cases(b"teachable-autosave 1\n{}\n" + b"x" * 100)))
def test_a_damaged_file_restores_nothing_is_logged_and_moved_aside(store, caplog, case):
    key = new_key()
    store.save(key, make_project(3).to_bytes(), SETTINGS)
    path = store.path_of(key)
    path.write_bytes(damage_cases(path.read_bytes())[case])
    with caplog.at_level(logging.WARNING, logger="teachable.autosave"):
        assert store.load(key) is None
    assert "damaged" in caplog.text and key not in caplog.text
    assert not path.exists() and path.with_suffix(".corrupt").exists()
    assert store.load(key) is None
    store.save(key, make_project(2).to_bytes(), SETTINGS)
    assert len(restore_project(store, key)[0]) == 2


def test_project_bytes_that_do_not_load_are_moved_aside(store, caplog):
    key = new_key()
    store.save(key, b"PK\x05\x06" + b"\0" * 18, SETTINGS)  # an empty zip: the store's checks pass, the project's fail
    with caplog.at_level(logging.WARNING, logger="teachable.autosave"):
        assert restore_project(store, key) is None
    assert "moved aside" in caplog.text
    assert store.load(key) is None and store.path_of(key).with_suffix(".corrupt").exists()


# ------------------------------------------------------------------------------------------- expiry and size cap
def age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_entries_expire_keep_hours_after_their_last_save(store):
    old, fresh = new_key(), new_key()
    store.save(old, make_project(2).to_bytes(), SETTINGS)
    store.save(fresh, make_project(2).to_bytes(), SETTINGS)
    age(store.path_of(old), 3600 + 60)  # keep_hours is 1
    age(store.path_of(fresh), 3600 - 60)
    assert store.prune() == 1
    assert store.load(old) is None and store.load(fresh) is not None
    assert store.prune(now=time.time() + 120) == 1
    assert store.load(fresh) is None and stored_files(store) == []


def test_expiry_counts_from_the_last_save(store):
    key = new_key()
    store.save(key, b"first", {})
    age(store.path_of(key), 3600 + 60)
    store.save(key, b"second", {})
    assert store.prune() == 0 and store.load(key) == (b"second", {})


def test_the_size_cap_refuses_the_new_save_and_never_removes_anyones_stored_work(tmp_path):
    """A flood of fresh keys used to push the folder past its cap until the next prune removed the oldest entries
    of everyone (a victim's among them). Now the save that would pass the cap is refused, and every stored entry
    stays; only entries past keep_hours make room."""
    keys = [new_key() for _ in range(6)]
    size = len(autosave.MAGIC) + 200 + len(make_project(6).to_bytes())
    store = ProjectStore(tmp_path, keep_hours=100, max_total_bytes=int(size * 3.5), max_entry_bytes=size * 2)
    victim = keys[0]
    store.save(victim, make_project(6, seed=0).to_bytes(), SETTINGS)
    age(store.path_of(victim), 1000)  # the oldest: what the old prune removed first
    for index, key in enumerate(keys[1:3], 1):
        store.save(key, make_project(6, seed=index).to_bytes(), SETTINGS)
    for index, key in enumerate(keys[3:], 3):
        with pytest.raises(autosave.SaveRefused, match=r"space for saved work \(0\.\d MB\) is full"):
            store.save(key, make_project(6, seed=index).to_bytes(), SETTINGS)
    assert store.prune() == 0
    assert [store.load(key) is not None for key in keys] == [True, True, True, False, False, False]
    assert store.total_bytes() <= store.max_total_bytes
    store.save(victim, make_project(7, seed=9).to_bytes(), SETTINGS)  # a person's own entry may still grow
    age(store.path_of(keys[1]), 101 * 3600)  # past keep_hours: its room goes to the next save
    store.save(keys[3], make_project(6, seed=3).to_bytes(), SETTINGS)
    assert store.load(keys[1]) is None and store.load(keys[3]) is not None and store.load(victim) is not None


def test_a_save_over_one_persons_share_is_refused_and_their_stored_copy_stays(tmp_path):
    store = ProjectStore(tmp_path, keep_hours=100, max_total_bytes=10 * 2**20, max_entry_bytes=20_000)
    assert ProjectStore(tmp_path.parent / f"{tmp_path.name}-default", max_total_bytes=64 * 2**20).max_entry_bytes == 2 * 2**20  # 1/32
    key = new_key()
    small = make_project(3).to_bytes()
    store.save(key, small, SETTINGS)
    with pytest.raises(autosave.SaveRefused, match="each person may keep 0.0 MB here. Use Save project"):
        store.save(key, make_project(60).to_bytes(), SETTINGS)
    assert store.load(key) == (small, SETTINGS)
    assert stored_files(store) == [store.path_of(key).name]  # no temporary left behind


def test_the_autosaver_says_a_save_was_refused_until_one_goes_through(tmp_path):
    store = ProjectStore(tmp_path, keep_hours=100, max_total_bytes=10 * 2**20, max_entry_bytes=20_000)
    key, project = new_key(), [make_project(60)]
    with Autosaver(store, delay=0.05) as saver:
        saver.changed(key, lambda: (project[0].to_bytes(), SETTINGS))
        assert wait_until(lambda: saver.refusal(key) is not None, 5)
        assert saver.status(key).startswith("Not saved on the server: your project takes")
        assert store.load(key) is None
        project[0] = make_project(3)  # the person removed examples
        saver.changed(key, lambda: (project[0].to_bytes(), SETTINGS))
        assert wait_until(lambda: saver.status(key).startswith("Saved at "), 5)
        assert saver.refusal(key) is None and store.load(key) is not None


def test_settings_name_a_persons_share(tmp_path):
    chosen = AutosaveSettings.from_env({"TEACHABLE_DATA_MAX_MB": "100", "TEACHABLE_DATA_PERSON_MB": "5"})
    assert chosen.max_person_bytes == 5 * 2**20
    assert AutosaveSettings(tmp_path, max_total_bytes=320 * 2**20).store().max_entry_bytes == 10 * 2**20
    with pytest.raises(SettingsError, match="TEACHABLE_DATA_PERSON_MB"):
        AutosaveSettings.from_env({"TEACHABLE_DATA_PERSON_MB": "lots"})


def test_prune_removes_the_temporaries_of_dead_saves_and_old_damaged_files(store):
    key = new_key()
    store.save(key, b"data", {})
    temporary = store.folder / f".{autosave.key_digest(key)}.abc{autosave.TEMP_SUFFIX}"
    temporary.write_bytes(b"half a save")
    corrupt = store.path_of(new_key()).with_suffix(".corrupt")
    corrupt.write_bytes(b"junk")
    assert store.prune() == 0
    age(temporary, STALE_TEMP_SECONDS + 10)
    age(corrupt, 3600 + 10)
    assert store.prune() == 2
    assert stored_files(store) == [store.path_of(key).name]


# ------------------------------------------------------------------------------------------- autosaver
class CountingSnapshot:
    def __init__(self, project_bytes: bytes = b"project"):
        self.calls: list[float] = []
        self.project_bytes = project_bytes

    def __call__(self):
        self.calls.append(time.monotonic())
        return self.project_bytes, {"calls": len(self.calls)}


def test_many_changes_within_the_delay_make_one_save_within_delay_and_a_margin(store):
    key, snapshot, delay = new_key(), CountingSnapshot(), 0.4
    with Autosaver(store, delay=delay) as saver:
        first = time.monotonic()
        for _ in range(200):
            saver.changed(key, snapshot)
        assert saver.pending(key) and saver.status(key) == "Saving…"
        assert wait_until(lambda: not saver.pending(key), delay + 1.0)
        assert len(snapshot.calls) == 1
        assert delay - 0.05 <= snapshot.calls[0] - first <= delay + 0.5
        assert store.load(key) == (b"project", {"calls": 1})
        assert saver.last_saved(key) is not None and saver.status(key).startswith("Saved at ")
        time.sleep(delay + 0.2)
        assert len(snapshot.calls) == 1  # nothing changed since: no more saves


def test_changes_during_a_long_recording_are_saved_once_per_delay(store):
    key, snapshot, delay = new_key(), CountingSnapshot(), 0.3
    with Autosaver(store, delay=delay) as saver:
        end = time.monotonic() + 1.6
        while time.monotonic() < end:
            saver.changed(key, snapshot)
            time.sleep(0.01)
        saver.flush()
    gaps = np.diff(snapshot.calls[:-1])  # the last one is flush's
    assert 3 <= len(snapshot.calls) <= 7
    assert (gaps >= delay - 0.05).all()


def test_flush_saves_at_once_and_the_snapshot_is_taken_at_save_time(store):
    key = new_key()
    state = {"value": b"first"}
    with Autosaver(store, delay=60) as saver:
        saver.changed(key, lambda: (state["value"], {}))
        state["value"] = b"second"
        start = time.monotonic()
        saver.flush()
        assert time.monotonic() - start < 1
        assert not saver.pending(key)
        assert store.load(key) == (b"second", {})


def test_close_saves_what_is_pending_and_later_changes_are_ignored(store):
    key = new_key()
    saver = Autosaver(store, delay=60)
    saver.changed(key, lambda: (b"pending", {}))
    saver.close()
    assert store.load(key) == (b"pending", {})
    saver.changed(key, lambda: (b"after close", {}))
    saver.close()
    assert store.load(key) == (b"pending", {})


def test_a_failing_snapshot_or_store_is_logged_not_raised(store, caplog, monkeypatch):
    good, bad, invalid = new_key(), new_key(), "../etc"

    def broken():
        raise RuntimeError("boom")

    with caplog.at_level(logging.WARNING, logger="teachable.autosave"), Autosaver(store, delay=0.05) as saver:
        saver.changed(bad, broken)
        saver.changed(invalid, lambda: (b"x", {}))
        saver.changed(good, lambda: (b"fine", {}))
        saver.flush()
        assert not saver.pending(bad) and saver.last_saved(bad) is None
        assert store.load(good) == (b"fine", {})
        monkeypatch.setattr(store, "save", lambda *args, **kwargs: (_ for _ in ()).throw(OSError(28, "No space")))
        saver.changed(good, lambda: (b"lost", {}))
        saver.flush()
        assert saver.status(good).startswith("Saved at ")
    assert "boom" in caplog.text and "No space" in caplog.text
    assert bad not in caplog.text and good not in caplog.text
    assert store.load(invalid) is None


def test_discard_drops_pending_changes_and_the_stored_copy(store):
    key = new_key()
    with Autosaver(store, delay=0.2) as saver:
        saver.changed(key, lambda: (b"saved", {}))
        saver.flush()
        saver.changed(key, lambda: (b"pending", {}))
        saver.discard(key)
        time.sleep(0.4)
        assert store.load(key) is None and saver.status(key) == ""


def test_the_worker_prunes_now_and_then(store):
    key = new_key()
    store.save(key, b"old", {})
    age(store.path_of(key), 3600 + 60)
    with Autosaver(store, delay=0.1, prune_every=0.2):
        assert wait_until(lambda: not store.path_of(key).exists(), 3)


def test_per_key_saving_is_independent(store):
    keys = [new_key() for _ in range(20)]
    with Autosaver(store, delay=0.1) as saver:
        for index, key in enumerate(keys):
            saver.changed(key, lambda index=index: (f"project {index}".encode(), {"index": index}))
        assert wait_until(lambda: not any(saver.pending(key) for key in keys), 3)
    assert [store.load(key) for key in keys] == [(f"project {i}".encode(), {"index": i}) for i in range(20)]


def wait_until(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# ------------------------------------------------------------------------------------------- two writers, kills
def test_two_processes_saving_one_key_while_a_reader_loads_never_leave_a_broken_file(store):
    key = new_key()
    versions = {
        make_project(40, seed=1).to_bytes(): {"writer": 1},
        make_project(90, seed=2, classes=("a", "b")).to_bytes(): {"writer": 2},
    }
    context = multiprocessing.get_context("spawn")
    started, results = [context.Event() for _ in versions], context.Queue()
    writers = [
        context.Process(
            target=autosave_workers.hammer, args=(str(store.folder), key, data, settings, 2.0, event, results)
        )
        for (data, settings), event in zip(versions.items(), started)
    ]
    for writer in writers:
        writer.start()
    assert all(event.wait(60) for event in started)
    seen = read_while(lambda: not any(writer.is_alive() for writer in writers), store, key)
    written = [results.get(timeout=60) for _ in writers]
    for writer in writers:
        writer.join(10)
    assert all(count > 0 for count in written), written
    assert len(seen) > 20
    for project_bytes, settings in seen:
        assert versions[project_bytes] == settings  # each load is exactly one complete save
    for project_bytes in {data for data, _ in seen}:
        assert len(Project.load(project_bytes)) in (40, 90)
    assert stored_files(store) == [store.path_of(key).name]  # no temporaries left, nothing moved aside


def read_while(finished, store: ProjectStore, key: str) -> list[tuple[bytes, dict]]:
    seen = []
    while not finished():
        stored = store.load(key)
        if stored is not None:
            seen.append(stored)
    return seen


def test_a_writer_killed_mid_save_leaves_the_previous_version_loadable(store):
    key = new_key()
    previous, big = make_project(12, seed=5), make_project(2000, seed=6)
    store.save(key, previous.to_bytes(), {"version": 1})
    big_bytes = big.to_bytes()
    context = multiprocessing.get_context("spawn")
    rng = np.random.default_rng(0)
    for _ in range(4):
        started = context.Event()
        writer = context.Process(
            target=autosave_workers.save_forever, args=(str(store.folder), key, big_bytes, {"version": 2}, started)
        )
        writer.start()
        assert started.wait(60)
        time.sleep(rng.uniform(0.05, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(10)
        project, settings = restore_project(store, key)
        assert (len(project), settings) in [(12, {"version": 1}), (2000, {"version": 2})]
        store.save(key, previous.to_bytes(), {"version": 1})
    leftovers = [name for name in os.listdir(store.folder) if name.endswith(".tmp")]
    store.prune(now=time.time() + STALE_TEMP_SECONDS + 1)
    assert [name for name in os.listdir(store.folder) if name.endswith(".tmp")] == []
    assert len(leftovers) <= 4


def test_threads_saving_one_key_serialise(store):
    key = new_key()
    payloads = [bytes([index]) * 200_000 for index in range(4)]
    errors = []

    def save_many(data):
        try:
            for _ in range(20):
                store.save(key, data, {"first": data[0]})
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=save_many, args=(data,)) for data in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    data, settings = store.load(key)
    assert data in payloads and settings == {"first": data[0]}


# ------------------------------------------------------------------------------------------- settings
def test_settings_from_the_environment(tmp_path):
    defaults = AutosaveSettings.from_env({})
    assert defaults.folder.name == "sessions" and defaults.keep_hours == 72
    assert defaults.max_total_bytes == 2048 * 2**20 and defaults.delay == 2.0 and defaults.enabled
    chosen = AutosaveSettings.from_env(
        {
            "TEACHABLE_DATA_DIR": str(tmp_path / "data"),
            "TEACHABLE_KEEP_HOURS": "0.5",
            "TEACHABLE_DATA_MAX_MB": "10",
            "TEACHABLE_AUTOSAVE_DELAY": "1",
            "TEACHABLE_AUTOSAVE": "off",
        }
    )
    assert chosen == AutosaveSettings(tmp_path / "data", 0.5, 10 * 2**20, 1.0, False)
    store = chosen.store()
    assert store.folder.is_dir() and store.keep_hours == 0.5
    for name, value in [("TEACHABLE_KEEP_HOURS", "soon"), ("TEACHABLE_DATA_MAX_MB", "-1"), ("TEACHABLE_KEEP_HOURS", "nan")]:
        with pytest.raises(SettingsError, match=name):
            AutosaveSettings.from_env({name: value})
