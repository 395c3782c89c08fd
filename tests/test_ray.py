"""The backbone on a real local Ray cluster (loopback only): the Serve deployment answers like the local backbone,
batches concurrent callers, survives a replica killed mid-stream, serves the app; and `fit --ray` imports a folder
through Ray Data into the same project as a plain `fit`, resuming after a failure."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")

from teachable.assets import CLASS_SAMPLES  # noqa: E402
from teachable.folder import import_folder, partial_path  # noqa: E402
from teachable.project import Project  # noqa: E402
from teachable.ray_serving import import_folder_ray  # noqa: E402
from teachable.runners import InferenceError, LocalRunner  # noqa: E402
from teachable.runners.ray import (  # noqa: E402
    APP_NAME,
    DEPLOYMENT_NAME,
    RayRunner,
    RayServeSettings,
    deploy,
    jpeg_round_trip,
)

from .conftest import photo  # noqa: E402
from .serving import app_process, free_port  # noqa: E402

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parent.parent
SAMPLES = CLASS_SAMPLES
TAPS = ("blocks.4", "pool")
REPLICAS = 2


def test_a_wrong_ray_address_is_a_clear_error_at_once(monkeypatch, capsys):
    """First in this module, before any cluster runs in this process (Ray itself would wait minutes)."""
    from teachable.cli import main

    assert not ray.is_initialized()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert main(["serve-backbone"]) == 2
    assert "Could not join the Ray cluster at 127.0.0.1" in capsys.readouterr().err
    assert time.monotonic() - started < 30
    assert not ray.is_initialized()


def test_deployment_sizes_come_from_the_environment_and_bad_ones_are_named():
    settings = RayServeSettings.from_env({"TEACHABLE_RAY_MAX_REPLICAS": "8", "TEACHABLE_RAY_BATCH_WAIT_MS": "10"})
    assert settings.max_replicas == 8 and settings.batch_wait_s == pytest.approx(0.01) and settings.min_replicas == 1
    for name, text in [("TEACHABLE_RAY_MIN_REPLICAS", "many"), ("TEACHABLE_RAY_REPLICA_CPUS", "0")]:
        with pytest.raises(InferenceError, match=name):
            RayServeSettings.from_env({name: text})


@pytest.fixture(scope="module")
def cluster():
    """One local Ray (2 replicas of the backbone deployment), shared by this module and shut down after it."""
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
    )
    settings = RayServeSettings(
        min_replicas=REPLICAS, max_replicas=REPLICAS, max_batch=16, batch_wait_s=0.02, replica_cpus=0.5
    )
    handle = deploy("efficientnet_lite0", settings)
    yield handle
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="module")
def runner(cluster):
    return RayRunner(cluster, retry_seconds=90)


def squares(backbone, names=("chelsea", "coffee", "astronaut", "rocket")) -> np.ndarray:
    return np.stack([backbone.prepare(photo(name)) for name in names])


def replicas(handle, calls: int = 12) -> dict[str, dict]:
    """What the replicas say of themselves, by actor name (the handle picks a replica per call: ask a few times)."""
    answers = [handle.describe.remote().result(timeout_s=60) for _ in range(calls)]
    return {answer["actor"]: answer for answer in answers}


def test_replicas_run_this_checkouts_code(cluster):
    for replica in replicas(cluster).values():
        assert replica["package"].startswith(str(ROOT / "teachable")), replica
        assert replica["backbone"] == "efficientnet_lite0" and replica["device"] == "cpu"


def test_ray_taps_equal_local_taps_within_fp16(backbone, runner):
    images = squares(backbone)
    seen = jpeg_round_trip(images)  # what the replica decodes
    remote = runner.run(images, TAPS)
    local = LocalRunner(backbone).run(seen, TAPS)
    for tap in TAPS:
        assert remote[tap].dtype == local[tap].dtype
        assert remote[tap].shape == local[tap].shape
        scale = float(local[tap].abs().max())
        np.testing.assert_allclose(remote[tap].numpy(), local[tap].numpy(), rtol=2e-3, atol=2e-3 * scale)
    # JPEG itself (quality 95) moves the embedding about as much as a 1-pixel shift, never to another photo
    exact = LocalRunner(backbone).run(images, TAPS)["pool"].numpy()
    got = remote["pool"].numpy()
    cos = (exact * got).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.96, cos
    similarity = got @ exact.T
    assert (similarity.argmax(1) == np.arange(len(images))).all()


def test_a_bad_tap_is_an_inference_error_not_a_retry(backbone, runner):
    started = time.monotonic()
    with pytest.raises(InferenceError, match="nope"):
        runner.run(squares(backbone, ["chelsea"]), ["nope"])
    assert time.monotonic() - started < 10


def stream(runner, frames, stop: threading.Event, answers: list, errors: list) -> None:
    """A browser: send a frame, wait for the answer, send the next."""
    i = 0
    while not stop.is_set():
        try:
            out = runner.run(frames[i % len(frames)][None], TAPS)
            assert out["pool"].shape == (1, 1280)
            answers.append(time.monotonic())
        except Exception as error:  # noqa: BLE001 (every error is what the test looks for)
            errors.append(repr(error))
        i += 1


def run_streams(runner, frames, clients: int, seconds: float, during=None):
    stop, answers, errors = threading.Event(), [], []
    threads = [threading.Thread(target=stream, args=(runner, frames, stop, answers, errors)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        if during:
            during()
        time.sleep(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    return answers, errors


def batch_sizes(handle) -> list[int]:
    return [size for replica in replicas(handle).values() for size in replica["batch_sizes"]]


def test_concurrent_callers_are_batched(backbone, cluster, runner):
    answers, errors = run_streams(runner, squares(backbone), clients=8, seconds=6)
    assert not errors
    assert len(answers) > 8
    assert max(batch_sizes(cluster)) > 1


def running_replicas() -> int:
    deployment = serve.status().applications[APP_NAME].deployments[DEPLOYMENT_NAME]
    return deployment.replica_states.get("RUNNING", 0)


def test_a_replica_killed_while_people_stream_is_replaced_and_nobody_sees_an_error(backbone, cluster, runner):
    before = replicas(cluster)
    assert len(before) == REPLICAS
    victim = sorted(before)[0]

    def kill_one() -> None:
        time.sleep(2)
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)

    answers, errors = run_streams(runner, squares(backbone), clients=5, seconds=8, during=kill_one)
    assert not errors, errors[:3]
    assert len(answers) > 20
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if running_replicas() == REPLICAS:
            now = replicas(cluster)
            if len(now) == REPLICAS and victim not in now:
                break
        time.sleep(1)
    else:
        pytest.fail(f"the killed replica {victim} was not replaced: {serve.status().applications[APP_NAME]}")


def test_the_app_on_ray_classifies_the_sample_photos(cluster):
    from gradio_client import Client, handle_file

    env = {**os.environ, "TEACHABLE_INFERENCE": "ray", "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    env["PYTHONPATH"] = str(ROOT)
    with app_process(env) as (url, _):
        client = Client(url, verbose=False)
        client.predict(None, api_name="/load_demo")
        for name in ["cat", "coffee", "rocket"]:
            _, details, *_ = client.predict(handle_file(str(SAMPLES / name / "0.jpg")), api_name="/classify")
            assert details["label"] == name, details


def same_projects(a: Project, b: Project) -> None:
    assert a.classes == b.classes
    assert [(e.label, e.source) for e in a.examples] == [(e.label, e.source) for e in b.examples]
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-3)


def test_fit_on_ray_data_writes_the_same_project_as_fit(cluster, backbone, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(SAMPLES, folder)
    (folder / "cat" / "broken.jpg").write_bytes(b"not a jpeg at all")
    plain, plain_report = import_folder(folder, backbone, tmp_path / "plain.zip", workers=0)
    on_ray, report = import_folder_ray(folder, backbone, tmp_path / "ray.zip", batch_size=4)
    assert report.added == 12 and not report.resumed
    assert len(report.skipped) == 1 and "broken.jpg" in report.skipped[0]
    assert report.skipped == plain_report.skipped
    same_projects(plain, on_ray)


def test_fit_on_ray_data_resumes_after_a_failure(cluster, backbone, tmp_path):
    output = tmp_path / "ray.zip"

    class Crash(Exception):
        pass

    def crash_after_first_batch(done: int, total: int) -> None:
        if done >= 4:
            raise Crash

    with pytest.raises(Crash):
        import_folder_ray(SAMPLES, backbone, output, batch_size=4, checkpoint_seconds=0, progress=crash_after_first_batch)
    assert partial_path(output).exists()
    resumed, report = import_folder_ray(SAMPLES, backbone, output, batch_size=4)
    assert report.resumed >= 4 and report.added == 12 - report.resumed
    plain, _ = import_folder(SAMPLES, backbone, tmp_path / "plain.zip", workers=0)
    assert sorted(e.source for e in resumed.examples) == sorted(e.source for e in plain.examples)


def test_teachable_fit_ray_on_the_command_line(cluster, tmp_path):
    from teachable.cli import main

    output = tmp_path / "cli.zip"
    assert main(["fit", str(SAMPLES), "-o", str(output), "--ray", "-q", "--device", "cpu"]) == 0
    project = Project.load(output)
    assert project.counts() == {"cat": 4, "coffee": 4, "rocket": 4}
    assert not partial_path(output).exists()


def test_teachable_serve_backbone_deploys_onto_the_cluster_at_ray_address(cluster, monkeypatch, capsys):
    """Last in this module: it redeploys with the default sizes."""
    from teachable.cli import main

    address = ray.get_runtime_context().gcs_address
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert main(["serve-backbone", "--backbone", "efficientnet_lite0"]) == 0
    assert f"TEACHABLE_INFERENCE=ray RAY_ADDRESS={address}" in capsys.readouterr().out
    assert serve.status().applications[APP_NAME].status == "RUNNING"
