"""Core speed figures, each against a baseline measured in the same run (ratios hold on noisy machines).

* Embedding: a 640x480 frame through the project's path (validate, crop, resize, normalise, forward to the
  embedding tap) vs the raw model forward on a ready tensor. Batch 1, p50/p95.
* kNN: one query, k=10, 1280-d, at 1k / 10k / 100k examples, FAISS flat index (one thread) vs numpy brute force.

Writes benchmarks/results/core.json (or the path given as the first argument).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import torch

from timing import percentiles, timed

from teachable.backbones import load_backbone
from teachable.knn import KNNClassifier, normalise


def bench_embedding(repeats: int = 100) -> dict:
    backbone = load_backbone(device="cpu")
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ready = backbone.to_tensor(backbone.prepare(frame)[None])

    def raw_forward():
        with torch.inference_mode():
            backbone.forward_taps(ready, [backbone.embedding_tap])

    def project_path():
        backbone.embed(backbone.prepare(frame)[None])

    # Interleave the two so drift in machine load hits both alike.
    raw, full = [], []
    for _ in range(repeats // 10):
        raw += timed(raw_forward, 10)
        full += timed(project_path, 10)
    raw_stats, full_stats = percentiles(raw), percentiles(full)
    return {
        "batch": 1,
        "input": "640x480 uint8 frame -> 224x224",
        "torch_threads": torch.get_num_threads(),
        "raw_forward": raw_stats,
        "project_path": full_stats,
        "ratio_p50": full_stats["p50_ms"] / raw_stats["p50_ms"],
    }


def bench_knn(sizes=(1_000, 10_000, 100_000), dim: int = 1280, queries: int = 50) -> list[dict]:
    faiss.omp_set_num_threads(1)  # a flat index is memory-bound; threads only add overhead for one query
    rng = np.random.default_rng(0)
    results = []
    for size in sizes:
        vectors = rng.standard_normal((size, dim), dtype=np.float32)
        knn = KNNClassifier(dim, approximate_from=None)  # the exact index at every size
        knn.add(vectors, [f"c{i % 10}" for i in range(size)])
        unit = normalise(vectors)
        probe = rng.standard_normal((queries, dim), dtype=np.float32)
        knn.search(probe[:1], 10)  # build the index outside the timing
        faiss_ms, numpy_ms, same = [], [], 0
        for q in probe:
            start = time.perf_counter()
            _, ids = knn.search(q, 10)
            faiss_ms.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            scores = unit @ normalise(q)[0]
            top = np.argpartition(-scores, 10)[:10]
            top = top[np.argsort(-scores[top])]
            numpy_ms.append((time.perf_counter() - start) * 1000)
            same += int(np.array_equal(ids[0], top))
        faiss_stats, numpy_stats = percentiles(faiss_ms), percentiles(numpy_ms)
        results.append(
            {
                "examples": size,
                "dim": dim,
                "k": 10,
                "faiss_flat": faiss_stats,
                "numpy_brute_force": numpy_stats,
                "ratio_p50": faiss_stats["p50_ms"] / numpy_stats["p50_ms"],
                "identical_top10": same / queries,
            }
        )
    return results


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "core.json"
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpu_count": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "embedding": bench_embedding(),
        "knn": bench_knn(),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
