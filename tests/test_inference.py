"""The inference seam: the setting picks the runner, and an unknown setting is refused with the choices.

The Ray Serve runner, the one way past one machine, is tested on a real local cluster in test_ray.py."""

import pytest

from teachable.batching import FrameBatcher
from teachable.inference import LocalRunner, runner_from_setting


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
