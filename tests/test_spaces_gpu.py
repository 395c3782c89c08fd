"""ZeroGPU: the backbone call is wrapped with spaces.GPU on a ZeroGPU Space and left alone everywhere else."""

from __future__ import annotations

import sys
import types

import numpy as np
import torch

from teachable.runners import FrameBatcher, LocalRunner, ZeroGpuRunner, runner_from_setting
from teachable.runners.zero_gpu import gpu, import_spaces_first, zero_gpu_available


class StubBackbone:
    """Answers ``run`` with one row per image; says it is on an accelerator, as under ZeroGPU."""

    on_accelerator = True

    def __init__(self) -> None:
        self.calls = 0

    def run(self, images, taps):
        self.calls += 1
        return {tap: torch.ones(len(images), 3) for tap in taps}


def fake_spaces(wrapped: list) -> types.ModuleType:
    module = types.ModuleType("spaces")

    def lend_gpu(function):
        wrapped.append(function)

        def call(*args, **kwargs):
            return function(*args, **kwargs)

        call.zerogpu = None
        return call

    module.GPU = lend_gpu
    return module


def test_off_zero_gpu_nothing_is_wrapped(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def function():
        return 1

    assert not zero_gpu_available() and not import_spaces_first()
    assert gpu(function) is function
    backbone = StubBackbone()
    runner = runner_from_setting("auto", backbone)  # off ZeroGPU, a GPU backbone batches; local is plain
    assert isinstance(runner, FrameBatcher)
    runner.close()
    assert type(runner_from_setting("local", backbone)) is LocalRunner


def test_on_zero_gpu_the_local_backbone_call_is_wrapped(monkeypatch):
    wrapped: list = []
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces(wrapped))
    assert zero_gpu_available() and import_spaces_first()
    backbone = StubBackbone()
    runner = runner_from_setting("auto", backbone)  # no batching thread: each call gets its own lent GPU
    assert isinstance(runner, ZeroGpuRunner) and len(wrapped) == 1
    assert isinstance(runner_from_setting("local", backbone), ZeroGpuRunner)
    outputs = runner.run(np.zeros((2, 8, 8, 3), np.uint8), ("pool",))
    assert outputs["pool"].shape == (2, 3) and outputs["pool"].device.type == "cpu" and backbone.calls == 1
