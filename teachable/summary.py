"""Class and unit views of a layer, after Summit (Hohman et al., 2019) and Network Dissection (Bau et al., 2017).

Both work from per-example statistics of one spatial tap's channels: the spatial mean (how much a channel fires
over the image) and the spatial max (how strongly it fires anywhere).

* **Class summary**: for each class, the channels whose mean activation on the class most exceeds their mean on
  the other classes, in units of the channel's overall standard deviation. **Compare two classes**: channels
  high on both (shared), and those whose standardised means differ most (what tells them apart).
* **Unit view**: for one channel, the examples whose spatial max is highest, each with a map of where it fires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ChannelStats", "channel_stats", "class_summary", "compare_classes", "top_examples"]


@dataclass(frozen=True)
class ChannelStats:
    """Per-example channel statistics at one tap."""

    tap: str
    means: np.ndarray
    """``N x C`` spatial mean per example and channel."""
    maxima: np.ndarray
    """``N x C`` spatial max per example and channel."""


def channel_stats(tap: str, activations: np.ndarray) -> ChannelStats:
    """From ``N x C x H x W`` activations."""
    return ChannelStats(tap, activations.mean(axis=(2, 3)), activations.max(axis=(2, 3)))


def _standardised(means: np.ndarray) -> np.ndarray:
    return (means - means.mean(axis=0)) / (means.std(axis=0) + 1e-6)


def class_summary(means: np.ndarray, labels: list[str], top: int = 8) -> dict[str, list[tuple[int, float]]]:
    """For each class: ``top`` (channel, score) pairs, score = (mean on class - mean on others) / overall std."""
    labels = np.asarray(labels)
    spread = means.std(axis=0) + 1e-6
    summary = {}
    for name in dict.fromkeys(labels):
        inside, outside = means[labels == name], means[labels != name]
        if not len(outside):
            continue
        score = (inside.mean(axis=0) - outside.mean(axis=0)) / spread
        order = np.argsort(-score)[:top]
        summary[str(name)] = [(int(c), float(score[c])) for c in order]
    return summary


def compare_classes(
    means: np.ndarray, labels: list[str], first: str, second: str, top: int = 6
) -> dict[str, list[tuple[int, float]]]:
    """Channels ``shared`` by two classes (both well above average) and those that favour ``first`` or
    ``second`` (largest difference of standardised class means)."""
    labels = np.asarray(labels)
    z = _standardised(means)
    a, b = z[labels == first].mean(axis=0), z[labels == second].mean(axis=0)
    shared = np.minimum(a, b)
    difference = a - b
    return {
        "shared": [(int(c), float(shared[c])) for c in np.argsort(-shared)[:top]],
        first: [(int(c), float(difference[c])) for c in np.argsort(-difference)[:top]],
        second: [(int(c), float(-difference[c])) for c in np.argsort(difference)[:top]],
    }


def top_examples(maxima: np.ndarray, channel: int, top: int = 8) -> list[int]:
    """Rows of the examples whose spatial max of ``channel`` is highest, highest first."""
    if not 0 <= channel < maxima.shape[1]:
        raise ValueError(f"Channel {channel} is out of range (0 to {maxima.shape[1] - 1}).")
    return [int(r) for r in np.argsort(-maxima[:, channel], kind="stable")[:top]]
