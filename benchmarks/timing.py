"""Timing helpers shared by the benchmarks: repeated calls in milliseconds, and their percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``fn``, after ``warmup`` calls that are not counted."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    """p50 and p95 of ``samples_ms``, to the microsecond."""
    return {"p50_ms": round(float(np.percentile(samples_ms, 50)), 3), "p95_ms": round(float(np.percentile(samples_ms, 95)), 3)}
