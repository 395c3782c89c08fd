"""Feature-visualisation icons: the shipped ones are faithful, and the command that makes them works."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from teachable.activations import GridIcons
from teachable.assets import ASSETS
from teachable.atlas import direction_scores, render_directions

OPTIMISED_SIZE = 128  # the icons are optimised at this size and stored smaller


@pytest.fixture(scope="module")
def shipped(backbone):
    return GridIcons.load(ASSETS / "icons" / f"{backbone.name}.{backbone.grid_tap}.npz")


def test_shipped_icons_describe_the_grid_tap(shipped, backbone):
    assert (shipped.backbone, shipped.tap) == (backbone.name, backbone.grid_tap)
    channels = backbone.tap(backbone.grid_tap).channels
    assert shipped.directions.shape == (len(shipped.icons), channels)
    np.testing.assert_allclose(np.linalg.norm(shipped.directions, axis=1), 1, atol=1e-5)
    assert sum(kind.startswith("channel") for kind in shipped.kinds) == channels
    assert sum(kind.startswith("typical") for kind in shipped.kinds) >= 16


def test_each_icon_excites_its_own_direction_more_than_90_percent_of_other_icons_do(shipped, backbone):
    images = np.stack(
        [cv2.resize(icon, (OPTIMISED_SIZE,) * 2, interpolation=cv2.INTER_CUBIC) for icon in shipped.icons]
    )
    batch = (
        torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - torch.tensor(backbone.mean).view(1, 3, 1, 1)
    ) / torch.tensor(backbone.std).view(1, 3, 1, 1)
    with torch.no_grad():
        activation = backbone.forward_taps(batch, [backbone.grid_tap])[backbone.grid_tap]
        scores = direction_scores(activation, torch.as_tensor(shipped.directions)).numpy()  # icon x direction
    own = np.diag(scores)
    beaten = [(np.delete(scores[:, d], d) < own[d]).mean() for d in range(len(own))]
    assert min(beaten) >= 0.9, sorted(beaten)[:5]


def test_rendering_is_reproducible(backbone):
    directions = np.eye(backbone.tap(backbone.grid_tap).channels, dtype=np.float32)[[3, 50]]
    first = render_directions(backbone, backbone.grid_tap, directions, size=64, steps=3, batch=2)
    second = render_directions(backbone, backbone.grid_tap, directions, size=64, steps=3, batch=2)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (2, 64, 64, 3) and first.std() > 5


def test_icons_command_writes_a_loadable_file(tmp_path):
    output = tmp_path / "icons.npz"
    result = subprocess.run(
        [sys.executable, "-m", "teachable.cli", "atlas", "icons", "--steps", "1", "--typical", "4", "-o", str(output), "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    icons = GridIcons.load(output)
    assert len(icons.icons) == 112 + 4 and icons.icons.dtype == np.uint8
    assert "Saved 116 icons" in result.stdout
