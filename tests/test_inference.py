"""The runner seam: the setting picks the runner, and an unknown setting is refused with the choices.

The Ray Serve runner, the one way past one machine, is tested on a real local cluster in test_ray.py."""

import subprocess
import sys

import pytest

from teachable.runners import FrameBatcher, LocalRunner, runner_from_setting


def test_the_setting_picks_the_runner(backbone):
    assert isinstance(runner_from_setting("auto", backbone), LocalRunner)  # a CPU backbone runs frames one by one
    assert isinstance(runner_from_setting("local", backbone), LocalRunner)
    batcher = runner_from_setting("batched", backbone)
    assert isinstance(batcher, FrameBatcher)
    batcher.close()
    with pytest.raises(ValueError, match="auto, local, batched or ray"):
        runner_from_setting("gpu-please", backbone)
    with pytest.raises(ValueError, match="auto, local, batched or ray"):
        runner_from_setting("http://10.0.0.5:8700", backbone)  # the former HTTP service is gone: Ray Serve replaces it


def test_the_local_runner_answers_as_the_backbone_does(backbone):
    import numpy as np
    import torch

    squares = np.zeros((2, backbone.input_size, backbone.input_size, 3), np.uint8)
    got = LocalRunner(backbone).run(squares, ("pool",), caller=7)
    torch.testing.assert_close(got["pool"], backbone.run(squares, ["pool"])["pool"])


def test_ray_is_imported_only_when_the_ray_runner_is_chosen(backbone, monkeypatch):
    from teachable.runners import InferenceError

    monkeypatch.setitem(sys.modules, "ray", None)  # an import of Ray now fails, as where it is not installed
    monkeypatch.delitem(sys.modules, "teachable.runners.ray", raising=False)
    import teachable.runners

    monkeypatch.delattr(teachable.runners, "ray", raising=False)  # an earlier test's import left it on the package
    assert isinstance(runner_from_setting("auto", backbone), LocalRunner)
    with pytest.raises(InferenceError, match=r"pip install 'teachable\[ray\]'"):
        runner_from_setting("ray", backbone)


def test_the_runners_load_neither_ray_nor_torch_and_the_app_loads_no_ray():
    """app.py imports the ZeroGPU runner before anything may touch CUDA; Ray is an optional extra."""
    script = (
        "import sys; import teachable.runners.zero_gpu; assert 'torch' not in sys.modules, 'torch'; "
        "import teachable.session, teachable.webapp.page; assert 'ray' not in sys.modules, 'ray'"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
