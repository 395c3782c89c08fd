"""The app's centre square and resize as a traceable module, for ONNX graphs that take a frame of any size.

:class:`CentreSquare` does in the graph what :func:`teachable.frames.center_square` does with OpenCV, so a graph
that starts with it (``teachable export`` and the browser's model, :mod:`teachable.browser_model`) sees the pixels
the app sees:

* **Growing** (and the input size itself) reproduces OpenCV's uint8 ``INTER_LINEAR`` bit for bit: the same 11-bit
  fixed-point weights and the same integer steps, with gathers of the two source pixels per output pixel.
* **Shrinking** is OpenCV's ``INTER_AREA`` as one weight matrix per axis (``size x H`` and ``size x W``, each source
  pixel weighted by its overlap), made in the graph from ``H`` and ``W`` and rounded to whole grey levels; it equals
  OpenCV for whole shrink factors and otherwise differs by one grey level where the exact value lies within about
  0.001 of a half (OpenCV sums in float in another order): 0.2 % of the values for a 512x512 photo, up to a few
  percent for slight shrinks (2.4 % for 298x256).

ONNX ``Resize`` is not used: its filters differ from OpenCV's. The frame's height and width are read from its shape
as 0-d int64 tensors, so one traced graph works for any frame size.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CentreSquare"]


def _area_matrix(length: torch.Tensor, side: torch.Tensor, size: int) -> torch.Tensor:
    """``size x length`` weights: the centre ``side`` of ``length`` source pixels averaged down to ``size`` as
    OpenCV's INTER_AREA does (each source pixel counts by its overlap). 0-d int64 tensors, so the traced graph works
    for any frame size."""
    offset = (length - side) // 2
    source = torch.arange(length, dtype=torch.int64) - offset  # source pixel index within the square
    j = source.to(torch.float32)[None, :]  # 1 x length
    i = torch.arange(size, dtype=torch.float32)[:, None]  # size x 1
    inside = ((source >= 0) & (source < side)).to(torch.float32)[None, :]
    scale = side.to(torch.float32) / size
    start, end = i * scale, (i + 1) * scale
    overlap = torch.clamp(torch.minimum(j + 1, end) - torch.maximum(j, start), min=0.0)
    return overlap / scale * inside


def _linear_taps(side: torch.Tensor, size: int, clamp: bool):
    """OpenCV's INTER_LINEAR taps for ``side`` -> ``size`` pixels: first and second source index and their 11-bit
    fixed-point weights (as in its resize.cpp: positions in double, cast to float, weights rounded to 1/2048).
    Columns clamp the position at the edges; rows do not (their indices are clipped instead)."""
    scale = 1.0 / (size / side.to(torch.float64))
    position = ((torch.arange(size, dtype=torch.float64) + 0.5) * scale - 0.5).to(torch.float32)
    first = torch.floor(position)
    fraction = position - first
    last = (side - 1).to(torch.float32)
    if clamp:
        fraction = torch.where(first < 0, torch.zeros_like(fraction), fraction)
        first = torch.clamp(first, min=0.0)
        fraction = torch.where(first >= last, torch.zeros_like(fraction), fraction)
        first = torch.minimum(first, last)
    second = torch.minimum(torch.clamp(first + 1, min=0.0), last)
    first = torch.minimum(torch.clamp(first, min=0.0), last)
    weight0 = torch.round((1 - fraction) * 2048).to(torch.int32)
    weight1 = torch.round(fraction * 2048).to(torch.int32)
    return first.to(torch.int64), second.to(torch.int64), weight0, weight1


def _linear_exact(image: torch.Tensor, top, left, side, size: int) -> torch.Tensor:
    """The centre square of ``image`` (``H x W x 3`` uint8) grown to ``size`` exactly as OpenCV's uint8
    INTER_LINEAR does: a horizontal pass in 11-bit fixed point, then its SIMD vertical pass (``>> 4``, high half of
    a 16-bit product, ``(x + 2) >> 2``). Returns ``3 x size x size`` float32."""
    rows0, rows1, beta0, beta1 = _linear_taps(side, size, clamp=False)
    columns0, columns1, alpha0, alpha1 = _linear_taps(side, size, clamp=True)
    pixels = image.to(torch.int32)

    def horizontal(rows: torch.Tensor) -> torch.Tensor:  # size x size x 3, scaled by 2048
        picked = torch.index_select(pixels, 0, rows + top)
        first = torch.index_select(picked, 1, columns0 + left)
        second = torch.index_select(picked, 1, columns1 + left)
        return first * alpha0[None, :, None] + second * alpha1[None, :, None]

    def high(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        shifted = torch.div(values, 16, rounding_mode="floor")
        return torch.div(shifted * weights[:, None, None], 65536, rounding_mode="floor")

    total = high(horizontal(rows0), beta0) + high(horizontal(rows1), beta1)
    square = torch.clamp(torch.div(total + 2, 4, rounding_mode="floor"), 0, 255)
    return square.permute(2, 0, 1).to(torch.float32)


class CentreSquare(nn.Module):
    """uint8 ``H x W x 3`` RGB (any size) -> its centre square at ``size`` as ``3 x size x size`` float32 pixel
    values (whole grey levels, 0-255): what :meth:`teachable.stages.Backbone.prepare` gives, channels first."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        shape = torch._shape_as_tensor(image)
        height, width = shape[0], shape[1]
        side = torch.minimum(height, width)
        rows = _area_matrix(height, side, self.size)  # size x H
        columns = _area_matrix(width, side, self.size)  # size x W
        pixels = image.to(torch.float32).permute(2, 0, 1)  # 3 x H x W
        shrunk = torch.matmul(torch.matmul(rows, pixels), columns.transpose(0, 1))  # 3 x size x size
        shrunk = torch.clamp(torch.floor(shrunk + 0.5), 0.0, 255.0)  # OpenCV's uint8 output rounds halves up
        grown = _linear_exact(image, (height - side) // 2, (width - side) // 2, side, self.size)
        return torch.where(side > self.size, shrunk, grown)
