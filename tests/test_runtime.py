"""ONNX Runtime for the CPU forward pass: the same taps and labels as torch on real photos, the exported graphs
cached and rebuilt when damaged, and the TEACHABLE_RUNTIME setting obeyed."""

import logging

import numpy as np
import pytest
import torch

from teachable.backbones import BackboneError, load_backbone
from teachable.frames import load_image
from teachable.assets import CLASS_SAMPLES
from teachable.runtime import OrtForward, runtime_setting

SAMPLES = CLASS_SAMPLES


@pytest.fixture(scope="module")
def samples(backbone):
    photos = sorted(SAMPLES.glob("*/*.jpg"))
    assert len(photos) >= 6
    return np.stack([backbone.prepare(load_image(path)) for path in photos])


@pytest.fixture(scope="module")
def ort_forward(backbone, tmp_path_factory):
    return OrtForward(backbone, folder=tmp_path_factory.mktemp("onnx"))


def torch_taps(backbone, images, taps):
    with torch.inference_mode():
        return backbone.forward_taps(backbone.to_tensor(images), taps)


def test_taps_match_torch_on_real_photos(backbone, ort_forward, samples):
    taps = [backbone.grid_tap, backbone.embedding_tap]
    expected = torch_taps(backbone, samples, taps)
    got = ort_forward.run(samples, taps)
    for tap in taps:
        assert got[tap].shape == expected[tap].shape and got[tap].dtype == torch.float32
        scale = float(expected[tap].abs().max())
        assert float((got[tap] - expected[tap]).abs().max()) <= 1e-4 * scale, tap


def test_same_labels_on_the_sample_photos(backbone, ort_forward, samples):
    expected = torch_taps(backbone, samples, ["logits"])["logits"].argmax(1)
    got = ort_forward.run(samples, ["logits"])["logits"].argmax(1)
    assert torch.equal(got, expected)


def test_batch_size_is_free_and_tap_order_is_kept(backbone, ort_forward, samples):
    taps = [backbone.embedding_tap, backbone.grid_tap]
    one = ort_forward.run(samples[:1], taps)
    many = ort_forward.run(samples[:5], taps)
    assert list(many) == taps and many[backbone.embedding_tap].shape[0] == 5
    assert torch.allclose(one[backbone.grid_tap][0], many[backbone.grid_tap][0], atol=1e-4)
    exported = ort_forward.exports
    ort_forward.run(samples[:1], taps[::-1])  # the same set of taps in another order: the same graph
    assert ort_forward.exports == exported


def test_the_cached_graph_is_reused(backbone, tmp_path, samples):
    first = OrtForward(backbone, folder=tmp_path)
    first.run(samples[:1], ["blocks.2"])
    assert first.exports == 1 and first.path(["blocks.2"]).is_file()
    second = OrtForward(backbone, folder=tmp_path)
    second.run(samples[:1], ["blocks.2"])
    assert second.exports == 0


def test_a_corrupt_cached_graph_is_exported_again(backbone, tmp_path, samples, caplog):
    first = OrtForward(backbone, folder=tmp_path)
    expected = first.run(samples[:2], ["blocks.1"])["blocks.1"]
    first.path(["blocks.1"]).write_bytes(b"not a graph at all")
    second = OrtForward(backbone, folder=tmp_path)
    with caplog.at_level(logging.WARNING, logger="teachable.runtime"):
        got = second.run(samples[:2], ["blocks.1"])["blocks.1"]
    assert second.exports == 1 and "exporting it again" in caplog.text
    assert torch.allclose(got, expected)
    assert OrtForward(backbone, folder=tmp_path).session(["blocks.1"]) is not None  # the rebuilt file loads


def test_the_torch_setting_never_uses_onnxruntime(monkeypatch, samples):
    def refuse(*args, **kwargs):
        raise AssertionError("ONNX Runtime was used")

    monkeypatch.setattr(OrtForward, "__init__", refuse)
    monkeypatch.setenv("TEACHABLE_RUNTIME", "torch")
    backbone = load_backbone(device="cpu")
    assert backbone.runtime == "torch" and backbone.runtime_in_use == "torch"
    assert backbone.run(samples[:1])["pool"].shape == (1, 1280)


def test_onnxruntime_setting_runs_frames_there_and_says_so(monkeypatch, samples, caplog):
    monkeypatch.setenv("TEACHABLE_RUNTIME", "onnxruntime")
    backbone = load_backbone(device="cpu")
    with caplog.at_level(logging.INFO, logger="teachable.runtime"):
        outputs = backbone.run(samples[:2], ["blocks.4", "pool"])
    assert backbone.runtime_in_use == "onnxruntime"
    assert "runs in ONNX Runtime" in caplog.text and "requested" in caplog.text
    assert torch.allclose(outputs["pool"], torch_taps(backbone, samples[:2], ["pool"])["pool"], atol=1e-4)
    with pytest.raises(BackboneError, match="Expected images of shape"):
        backbone.run(samples[:1, :100])


def test_auto_decides_once_and_keeps_its_reason(backbone, tmp_path, samples):
    ort_forward = OrtForward(backbone, folder=tmp_path)
    use, why = ort_forward.auto_verdict()
    assert why.startswith("auto:") and "same labels" in why and "x, needs 1.3x" in why
    again = OrtForward(backbone, folder=tmp_path)
    assert again.auto_verdict() == (use, why + " (measured earlier)")
    assert again.exports == 0


@pytest.mark.parametrize("value", ["onnx", "tensorrt", "ORT"])
def test_a_bad_setting_is_a_clear_error(monkeypatch, value):
    with pytest.raises(ValueError, match="torch, onnxruntime, auto"):
        runtime_setting(value)
    monkeypatch.setenv("TEACHABLE_RUNTIME", value)
    with pytest.raises(BackboneError, match="TEACHABLE_RUNTIME"):
        load_backbone(device="cpu")


def test_settings_are_read_case_blind_with_auto_as_default(monkeypatch):
    monkeypatch.delenv("TEACHABLE_RUNTIME", raising=False)
    assert runtime_setting() == "auto"
    assert runtime_setting(" OnnxRuntime ") == "onnxruntime"


def test_the_cli_passes_runtime_on_and_refuses_a_bad_one(monkeypatch, tmp_path, capsys):
    from teachable import cli

    seen = {}

    def stop_after_loading(*args):
        seen["args"] = args
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_backbone_or_default", stop_after_loading)
    assert cli.main(["fit", str(tmp_path), "-o", str(tmp_path / "p.zip"), "--runtime", "torch"]) == 130
    assert seen["args"][-1] == "torch"
    monkeypatch.undo()
    assert cli.main(["fit", str(tmp_path), "-o", str(tmp_path / "p.zip"), "--runtime", "bogus"]) == 2
    assert "Unknown runtime 'bogus'" in capsys.readouterr().err  # a bad TEACHABLE_RUNTIME: test_cli.py


def test_without_onnxruntime_auto_keeps_torch_and_onnxruntime_says_what_is_missing(monkeypatch, samples):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it now fails
    backbone = load_backbone(device="cpu", runtime="auto")
    assert backbone.runtime_in_use == "torch"
    assert backbone.run(samples[:1])["pool"].shape == (1, 1280)
    with pytest.raises(BackboneError, match="needs the onnx and onnxruntime packages"):
        load_backbone(device="cpu", runtime="onnxruntime").run(samples[:1])


def test_torch_onnxruntime_and_the_export_read_the_same_taps_from_one_truncated_network(
    backbone, samples, tmp_path, monkeypatch
):
    """The live forward pass, the ONNX Runtime graph and the exported model are all ``Backbone.truncated``: the same
    normalisation and stages, so the same taps for the same squares."""
    import onnxruntime as ort

    from teachable.assets import DEMO_PROJECT
    from teachable.export import onnx_bytes
    from teachable.project import Project
    from teachable.stages import Truncated, pooled

    built = []
    forward = Truncated.forward

    def watched(self, pixels):
        built.append(tuple(self.taps))
        return forward(self, pixels)

    monkeypatch.setattr(Truncated, "forward", watched)
    monkeypatch.setattr(backbone, "cpu_runtime", None)  # the live forward pass in torch
    project = Project.load(DEMO_PROJECT)
    taps = [backbone.grid_tap, project.tap]

    live = backbone.run(samples, taps)
    assert built == [tuple(taps)]
    in_ort = OrtForward(backbone, folder=tmp_path).run(samples, taps)
    assert built[1:] == [tuple(backbone.stage_order(taps))]  # traced once into the graph
    model, _ = onnx_bytes(project, backbone)
    assert built[2:] == [(project.tap,)]
    exported = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    embeddings = np.stack([exported.run(["embedding"], {"image": square})[0] for square in samples])

    for tap in taps:
        scale = float(live[tap].abs().max())
        assert float((in_ort[tap] - live[tap]).abs().max()) <= 1e-4 * scale, tap
    expected = pooled(live[project.tap])
    assert np.abs(embeddings - expected).max() <= 1e-4 * np.abs(expected).max()


def test_built_graphs_are_kept_with_the_built_files_not_with_peoples_projects(monkeypatch, tmp_path):
    from teachable.runtime import cache_folder

    monkeypatch.setenv("TEACHABLE_DATA_DIR", str(tmp_path / "projects"))
    monkeypatch.setenv("TEACHABLE_CACHE_DIR", str(tmp_path / "built"))
    assert cache_folder() == tmp_path / "built" / "onnx"
