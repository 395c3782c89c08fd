"""The inference seam: a session whose frames run on a backbone service over HTTP predicts exactly like one that
runs them locally; a bad request or a service that is down gets a clear error."""

import threading

import numpy as np
import pytest

from teachable.batching import FrameBatcher
from teachable.frames import encode_jpeg
from teachable.inference import InferenceError, LocalRunner, RemoteRunner, backbone_server, runner_from_setting
from teachable.session import Session

from .conftest import photo
from .serving import free_port


@pytest.fixture(scope="module")
def service(backbone):
    server = backbone_server(backbone, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def taught(backbone, runner) -> Session:
    session = Session(backbone, runner=runner)
    session.add_images("Class 1", [("cat.jpg", encode_jpeg(photo("chelsea")))])
    session.add_images("Class 2", [("coffee.jpg", encode_jpeg(photo("coffee")))])
    return session


def test_a_session_on_the_service_predicts_like_a_local_one(backbone, service):
    local, remote = taught(backbone, LocalRunner(backbone)), taught(backbone, RemoteRunner(service))
    np.testing.assert_allclose(remote.project.embeddings, local.project.embeddings, atol=1e-3)
    for name in ("chelsea", "coffee", "astronaut"):
        a, b = local.step(photo(name)), remote.step(photo(name))
        assert a.prediction.shown_label == b.prediction.shown_label
        assert a.prediction.nearest_similarity == pytest.approx(b.prediction.nearest_similarity, abs=1e-4)
        np.testing.assert_allclose(a.grid_activation, b.grid_activation, rtol=1e-4, atol=1e-4)


def test_the_service_refuses_bad_requests_with_a_reason(backbone, service):
    runner = RemoteRunner(service)
    square = backbone.prepare(photo("chelsea"))[None]
    with pytest.raises(InferenceError, match="no tap 'nope'"):
        runner.run(square, ["nope"])
    with pytest.raises(InferenceError, match="224 x 224 x 3 uint8"):
        runner.run(square[:, :100], ["pool"])


def test_a_service_that_is_down_is_a_clear_error():
    with pytest.raises(InferenceError, match="did not answer"):
        RemoteRunner(f"http://127.0.0.1:{free_port()}", timeout=2).run(np.zeros((1, 224, 224, 3), np.uint8), ["pool"])


def test_the_setting_picks_the_runner(backbone):
    assert isinstance(runner_from_setting("auto", backbone), LocalRunner)  # a CPU backbone runs frames one by one
    assert isinstance(runner_from_setting("local", backbone), LocalRunner)
    batcher = runner_from_setting("batched", backbone)
    assert isinstance(batcher, FrameBatcher)
    batcher.close()
    assert runner_from_setting("http://10.0.0.5:8700/", backbone).url == "http://10.0.0.5:8700"
    with pytest.raises(ValueError, match="auto, local, batched"):
        runner_from_setting("gpu-please", backbone)
