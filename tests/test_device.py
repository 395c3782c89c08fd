"""The device path: automatic choice with a reason in the log, forced devices, and the fall-back to the CPU when an
accelerator runs out of memory. CI has no GPU: the CUDA branch is exercised by faking what torch reports, and the
out-of-memory fall-back on a backbone that pretends its bfloat16 CPU placement is an accelerator."""

import logging

import numpy as np
import pytest
import torch

from teachable.backbones import Backbone, BackboneError, choose_device, load_backbone
from teachable.session import Session

from .conftest import photo


def test_auto_picks_cuda_with_fp16_when_torch_sees_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "Test GPU 80GB")
    device, dtype, reason = choose_device("auto")
    assert (device.type, dtype) == ("cuda", torch.float16)
    assert "Test GPU 80GB" in reason


def test_auto_falls_to_cpu_and_says_why(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device, dtype, reason = choose_device(None)
    assert (device.type, dtype) == ("cpu", torch.float32)
    assert reason.startswith("auto:") and ("no CUDA" in reason)


@pytest.mark.parametrize("wrong", ["cuda", "tpu", "meta"])
def test_unusable_devices_are_refused_with_the_choices(monkeypatch, wrong):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackboneError, match="'auto'"):
        choose_device(wrong)


def test_the_chosen_device_is_logged_with_its_reason(caplog):
    with caplog.at_level(logging.INFO, logger="teachable.stages"):
        load_backbone(device="cpu")
    assert "efficientnet_lite0 on cpu, float32, channels_last (requested)" in caplog.text


def run_out_of_memory_once(backbone: Backbone, stage: int) -> list[int]:
    """Make one stage raise CUDA's out-of-memory error the first time it runs; returns a call counter."""
    calls = [0]
    module = backbone.model[stage]
    original = module.forward

    def failing(x):
        calls[0] += 1
        if calls[0] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return original(x)

    module.forward = failing
    return calls


@pytest.fixture
def pretend_accelerator(monkeypatch):
    """A fresh backbone placed in bfloat16 that counts as an accelerator until it is moved to float32."""
    monkeypatch.setattr(Backbone, "on_accelerator", property(lambda self: self.dtype != torch.float32))
    fresh = load_backbone(device="cpu")
    fresh._place(torch.device("cpu"), torch.bfloat16)
    return fresh


def test_out_of_memory_moves_the_backbone_to_the_cpu_and_answers(pretend_accelerator, backbone, caplog):
    calls = run_out_of_memory_once(pretend_accelerator, stage=4)
    square = backbone.prepare(photo("chelsea"))[None]
    with caplog.at_level(logging.WARNING, logger="teachable.stages"):
        embedding = pretend_accelerator.embed(square)
    assert calls[0] == 2  # failed once, then ran again
    assert pretend_accelerator.dtype == torch.float32 and not pretend_accelerator.on_accelerator
    assert "ran out of memory" in caplog.text and "continuing on the CPU" in caplog.text
    np.testing.assert_allclose(embedding, backbone.embed(square), rtol=1e-5, atol=1e-5)


def test_a_session_survives_the_out_of_memory_fall_back(pretend_accelerator):
    session = Session(pretend_accelerator)
    session.edits.start_recording(session.project.classes[0])
    session.step(photo("chelsea"), now=0.0)
    run_out_of_memory_once(pretend_accelerator, stage=2)
    result = session.step(photo("chelsea"), now=1.0)
    assert result.recorded and len(session.project) == 2
    assert result.prediction.label == session.project.classes[0]


def test_other_errors_are_not_taken_for_out_of_memory(pretend_accelerator):
    pretend_accelerator.model[3].forward = lambda x: (_ for _ in ()).throw(RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        pretend_accelerator.embed(np.zeros((1, 224, 224, 3), np.uint8))
    assert pretend_accelerator.on_accelerator  # not moved


def test_compiled_stages_give_the_same_taps(backbone):
    compiled = load_backbone(device="cpu", compile_mode="aot_eager")  # the graph path without a C++ toolchain
    square = backbone.prepare(photo("coffee"))[None]
    for tap in ("blocks.4", "pool"):
        np.testing.assert_allclose(compiled.embed(square, tap), backbone.embed(square, tap), rtol=1e-4, atol=1e-4)
