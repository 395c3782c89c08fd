"""Frames from concurrent sessions batched into one forward pass: every caller gets exactly its own outputs, a lone
caller never waits for the window, taps are never mixed, and errors reach the callers without stopping the worker."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from teachable.runners.batched import FrameBatcher
from teachable.frames import encode_jpeg
from teachable.session import Session

from .conftest import photo, views


@pytest.fixture(scope="module")
def squares(backbone):
    return [backbone.prepare(v) for name in ("chelsea", "coffee", "rocket") for v in views(photo(name), 3, seed=2)]


def test_concurrent_frames_are_batched_and_each_caller_gets_its_own(backbone, squares):
    batcher = FrameBatcher(backbone, window=30.0, max_batch=16, active_seconds=600)  # slow machines too
    barrier = threading.Barrier(len(squares))

    def caller(index: int) -> list[np.ndarray]:
        got = []
        for _ in range(3):
            barrier.wait()
            got.append(batcher.run(squares[index][None], ["blocks.4", "pool"], caller=index)["pool"].numpy())
        return got

    with ThreadPoolExecutor(len(squares)) as pool:
        results = list(pool.map(caller, range(len(squares))))
    batcher.close()
    assert max(batcher.batch_sizes) == len(squares)  # once every caller was seen, a round is one forward pass
    assert sum(batcher.batch_sizes) == 3 * len(squares)
    for square, got in zip(squares, results):
        alone = backbone.run(square[None], ["pool"])["pool"].numpy()
        for output in got:
            np.testing.assert_allclose(output, alone, rtol=1e-4, atol=1e-4)


def test_a_lone_caller_does_not_wait_for_the_window(backbone, squares):
    batcher = FrameBatcher(backbone, window=600.0)
    with ThreadPoolExecutor(1) as pool:
        for square in squares[:3]:  # would block for ten minutes each if it waited for company
            pool.submit(batcher.run, square[None], ["pool"], 1).result(timeout=60)
    batcher.close()
    assert list(batcher.batch_sizes) == [1, 1, 1]


def test_frames_wanting_other_taps_are_not_mixed(backbone, squares):
    batcher = FrameBatcher(backbone, window=0.5)
    plans = [(["pool"], squares[0]), (["blocks.2", "pool"], squares[1]), (["pool"], squares[2])]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.run, square[None], taps, i) for i, (taps, square) in enumerate(plans)]
        outputs = [f.result(timeout=60) for f in futures]
    batcher.close()
    for (taps, square), output in zip(plans, outputs):
        assert list(output) == taps
        expected = backbone.run(square[None], taps)
        for tap in taps:
            np.testing.assert_allclose(output[tap].numpy(), expected[tap].numpy(), rtol=1e-4, atol=1e-4)


def test_an_error_reaches_its_callers_and_the_worker_goes_on(backbone, squares):
    batcher = FrameBatcher(backbone)
    with pytest.raises(Exception, match="pool|tap"):
        batcher.run(squares[0][None], ["no-such-tap"])
    assert batcher.run(squares[0][None], ["pool"])["pool"].shape == (1, 1280)
    batcher.close()


def test_a_session_predicts_the_same_through_the_batcher(backbone, squares):
    batcher = FrameBatcher(backbone)
    plain, batched = Session(backbone), Session(backbone, runner=batcher)
    for session in (plain, batched):
        session.edits.add_images("Class 1", [("cat.jpg", encode_jpeg(photo("chelsea")))])
        session.edits.add_images("Class 2", [("coffee.jpg", encode_jpeg(photo("coffee")))])
    for frame in (photo("chelsea"), photo("coffee")):
        a, b = plain.step(frame), batched.step(frame)
        assert a.prediction.label == b.prediction.label
        assert a.prediction.nearest_similarity == pytest.approx(b.prediction.nearest_similarity, abs=1e-4)
    batcher.close()


def test_closing_fails_waiting_frames_instead_of_leaving_them_hanging():
    started, release = threading.Event(), threading.Event()

    class SlowBackbone:
        def run(self, images, taps):
            started.set()
            release.wait(30)
            return {tap: torch.zeros((len(images), 4)) for tap in taps}

    batcher = FrameBatcher(SlowBackbone(), window=0.0)
    with ThreadPoolExecutor(3) as pool:
        in_flight = pool.submit(batcher.run, np.zeros((1, 8, 8, 3), np.uint8), ["pool"], 1)
        assert started.wait(30)
        waiting = pool.submit(batcher.run, np.zeros((1, 8, 8, 3), np.uint8), ["pool"], 2)
        time.sleep(0.2)  # let it queue behind the one in flight
        closer = pool.submit(batcher.close)
        with pytest.raises(RuntimeError, match="closed"):
            waiting.result(timeout=30)
        release.set()
        assert in_flight.result(timeout=30)["pool"].shape == (1, 4)
        closer.result(timeout=30)
