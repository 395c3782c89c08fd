"""Scale figures, each against a baseline measured in the same run (ratios hold on noisy machines).

* embedding: images per second through the backbone at batch 1, 8 and 32;
* batching: N threads stream frames like N sessions, each frame on its own vs through the FrameBatcher
  (frames/s in total, per-frame latency p50/p95), and one lone session with and without it;
* knn: one query (k=10, one thread, as in the app) and one add at 1k / 10k / 100k examples, the exact flat index vs
  the approximate IVF index, with the IVF build time and recall@10 against the flat index;
* float16: what storing embeddings at float16 precision changes on real embeddings (neighbours, labels, similarity);
* large project: save, load and predict (the whole kNN path: search, votes) with 100,000 examples;
* memory: per 10,000 examples, in the process (vectors, index, thumbnails) and in the project file;
* fit: `teachable fit`'s import of a generated folder of 5,000 real-photo JPEGs with DataLoader workers and batches
  vs one image at a time in one process.

Benchmark data: augmented crops of the photos bundled with scikit-image, embedded by the real backbone, and for the
large sets, vectors on the manifold of those embeddings (tests/scale_data.py explains why). Queries are held-out
real crops. Writes benchmarks/results/scale.json (or the path given as the first argument); `--quick` runs
smaller sizes.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import faiss
import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_core import percentiles, timed  # noqa: E402
from scale_data import augmented_crop, embed_all, manifold_vectors, photos, real_crops  # noqa: E402

from teachable.backbones import load_backbone  # noqa: E402
from teachable.runners import FrameBatcher  # noqa: E402
from teachable.folder import import_folder  # noqa: E402
from teachable.frames import encode_jpeg  # noqa: E402
from teachable.knn import KNNClassifier, gpu_count, normalise  # noqa: E402
from teachable.project import Project  # noqa: E402


def bench_embedding(backbone, crops: np.ndarray, images: int = 96) -> dict:
    result = {}
    for batch in (1, 8, 32):
        chunks = [crops[i : i + batch] for i in range(0, images, batch)]
        backbone.embed(chunks[0])  # warm-up at this shape
        start = time.perf_counter()
        for chunk in chunks:
            backbone.embed(chunk)
        seconds = time.perf_counter() - start
        result[f"batch_{batch}"] = {"images_per_s": images / seconds, "ms_per_image": seconds / images * 1000}
    result["batch_8_vs_1"] = result["batch_8"]["images_per_s"] / result["batch_1"]["images_per_s"]
    result["batch_32_vs_1"] = result["batch_32"]["images_per_s"] / result["batch_1"]["images_per_s"]
    return result


def bench_batching(backbone, crops: np.ndarray, sessions: int = 8, seconds: float = 8.0) -> dict:
    """``sessions`` threads each send a frame as soon as the last one is answered, for ``seconds``."""
    taps = [backbone.grid_tap, backbone.embedding_tap]

    def stream(run, count: int) -> dict:
        latencies: list[float] = []
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def session(index: int) -> None:
            frame = crops[index % len(crops)][None]
            while time.monotonic() < stop:
                start = time.perf_counter()
                run(frame, taps, index)
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000)

        with ThreadPoolExecutor(count) as pool:
            list(pool.map(session, range(count)))
        return {"frames_per_s": len(latencies) / seconds, **percentiles(latencies)}

    def alone(frame, taps, caller):
        return backbone.run(frame, taps)

    batcher = FrameBatcher(backbone)
    result = {
        "sessions": sessions,
        "one_by_one": stream(alone, sessions),
        "batched": stream(batcher.run, sessions),
        "lone_session_one_by_one": stream(alone, 1),
        "lone_session_batched": stream(batcher.run, 1),
    }
    sizes = np.array(batcher.batch_sizes)
    batcher.close()
    result["mean_batch_size"] = float(sizes.mean())
    result["throughput_ratio"] = result["batched"]["frames_per_s"] / result["one_by_one"]["frames_per_s"]
    result["lone_latency_ratio_p50"] = (
        result["lone_session_batched"]["p50_ms"] / result["lone_session_one_by_one"]["p50_ms"]
    )
    return result


def bench_knn(real: np.ndarray, labels: list[str], queries: np.ndarray, sizes: tuple[int, ...]) -> list[dict]:
    faiss.omp_set_num_threads(1)  # as in the app: one query at a time, one thread
    results = []
    for size in sizes:
        vectors, names = manifold_vectors(real, labels, size, seed=size)
        exact = KNNClassifier(real.shape[1], approximate_from=None)
        exact.add(vectors, names)
        approximate = KNNClassifier(real.shape[1], approximate_from=1)
        approximate.add(vectors, names)
        start = time.perf_counter()
        approximate.search(queries[:1], 1)
        approximate.wait_for_index()
        build_s = time.perf_counter() - start
        exact.search(queries[:1], 1)
        truth = exact.search(queries, 10)[1]
        found = approximate.search(queries, 10)[1]
        recall = float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)]))
        flat_ms, ivf_ms = [], []
        for query in queries:
            flat_ms += timed(lambda: exact.search(query, 10), 1, warmup=0)
            ivf_ms += timed(lambda: approximate.search(query, 10), 1, warmup=0)
        extra = vectors[:50]
        flat_add = timed(lambda: exact.add(extra[:1], names[0]), 30, warmup=2)
        ivf_add = timed(lambda: approximate.add(extra[:1], names[0]), 30, warmup=2)
        ivf = approximate.index.approximate
        results.append(
            {
                "examples": size,
                "ivf_lists": int(ivf.nlist),
                "ivf_probes": int(ivf.nprobe),
                "ivf_build_s": build_s,
                "recall_at_10": recall,
                "query_flat": percentiles(flat_ms),
                "query_ivf": percentiles(ivf_ms),
                "query_ratio_p50": float(np.median(ivf_ms) / np.median(flat_ms)),
                "add_one_flat": percentiles(flat_add),
                "add_one_ivf": percentiles(ivf_add),
                "used_by_the_app": "ivf" if size >= 20_000 else "flat",
            }
        )
        print(json.dumps(results[-1]), flush=True)
    return results


def bench_float16(real: np.ndarray, labels: list[str], k: int = 5) -> dict:
    """Leave-one-out over real embeddings: float32 vs the float16-rounded vectors the classifier keeps."""
    full = normalise(real)
    rounded = full.astype(np.float16).astype(np.float32)
    outcome = {}
    for name, vectors in (("float32", full), ("float16", rounded)):
        similarities = vectors @ vectors.T
        np.fill_diagonal(similarities, -np.inf)
        order = np.argsort(-similarities, axis=1)[:, :10]
        votes = [max(set(labels[j] for j in row[:k]), key=[labels[j] for j in row[:k]].count) for row in order]
        outcome[name] = (similarities, order, votes)
    (s32, o32, v32), (s16, o16, v16) = outcome["float32"], outcome["float16"]
    finite = np.isfinite(s32)
    return {
        "examples": len(real),
        "max_abs_similarity_change": float(np.abs(s32[finite] - s16[finite]).max()),
        "top10_overlap": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(o32, o16)])),
        "same_nearest": float(np.mean(o32[:, 0] == o16[:, 0])),
        "same_knn_label": float(np.mean([a == b for a, b in zip(v32, v16)])),
        "file_bytes_per_example": {"float32": real.shape[1] * 4, "float16": real.shape[1] * 2},
    }


def bench_memory(backbone, crops: np.ndarray, real: np.ndarray, labels: list[str], examples: int = 10_000) -> dict:
    thumbnails = [encode_jpeg(crop) for crop in crops[:50]]
    vectors, names = manifold_vectors(real, labels, examples, seed=1)
    gc.collect()
    tracemalloc.start()  # counts what Python and numpy allocate; RSS would hide reuse of freed pages
    project = Project.for_backbone(backbone, sorted(set(names)))
    for start in range(0, examples, 500):
        rows = range(start, min(start + 500, examples))
        # Distinct bytes objects, as real thumbnails would be (identical ones would share memory).
        project.add_examples(
            names[start], vectors[list(rows)], [thumbnails[i % 50][:-1] + thumbnails[i % 50][-1:] for i in rows]
        )
    project.predict(vectors[0], 5)  # builds the flat index
    gc.collect()
    allocated, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    with tempfile.TemporaryDirectory() as folder:
        path = project.save(Path(folder) / "p.zip")
        file_bytes = path.stat().st_size
    thumbnail_bytes = sum(len(example.thumbnail) for example in project.examples)
    return {
        "examples": examples,
        "allocated_by_python_and_numpy_mb": allocated / 2**20,
        "vectors_mb": project.embeddings.nbytes / 2**20,
        "flat_index_mb_outside_python": project.embeddings.nbytes / 2**20,
        "thumbnails_mb": thumbnail_bytes / 2**20,
        "mean_thumbnail_kb": thumbnail_bytes / examples / 1024,
        "project_file_mb": file_bytes / 2**20,
        "embeddings_in_file_mb": {
            "float16": examples * project.classifier.dim * 2 / 2**20,
            "float32_before": examples * project.classifier.dim * 4 / 2**20,
        },
    }


def bench_large_project(
    backbone, crops: np.ndarray, real: np.ndarray, labels: list[str], queries: np.ndarray, examples: int
) -> dict:
    """Save and load a project of ``examples`` (112-pixel thumbnails, to keep the file under 1 GB), then the first
    predictions (flat while the IVF index is built) and the ones after."""
    vectors, names = manifold_vectors(real, labels, examples, seed=2)
    thumbnails = [encode_jpeg(cv2.resize(crop, (112, 112), interpolation=cv2.INTER_AREA)) for crop in crops[:50]]
    project = Project.for_backbone(backbone, sorted(set(names)))
    for name in project.classes:
        rows = [i for i, label in enumerate(names) if label == name]
        project.add_examples(name, vectors[rows], [thumbnails[i % 50] for i in rows])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = project.save(Path(folder) / "large.zip")
        save_s = time.perf_counter() - start
        start = time.perf_counter()
        loaded = Project.load(path, backbone=backbone)
        load_s = time.perf_counter() - start
        file_mb = path.stat().st_size / 2**20
    first = timed(lambda: loaded.predict(queries[0], 5), 20, warmup=0)
    loaded.classifier.wait_for_index()
    after = [timed(lambda: loaded.predict(query, 5), 1, warmup=0)[0] for query in queries]
    return {
        "examples": examples,
        "file_mb": file_mb,
        "save_s": save_s,
        "load_s": load_s,
        "predict_while_index_builds": percentiles(first),
        "predict_after": percentiles(after),
        "index_after": loaded.classifier.index_kind,
    }


def bench_fit(images: int, device: str) -> dict:
    rng = np.random.default_rng(0)
    sources = photos()
    names = list(sources)[:10]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        for i in range(images):
            name = names[i % len(names)]
            crop = augmented_crop(sources[name], rng, size=480)[:, 80:400]  # 320 x 480 photos
            (root / name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / name / f"{i:05d}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        backbone = load_backbone(device=device)
        runs = {}
        for label, options in (("one_at_a_time", {"workers": 0, "batch_size": 1}), ("dataloader", {})):
            start = time.perf_counter()
            project, report = import_folder(root, backbone, Path(folder) / f"{label}.zip", **options)
            seconds = time.perf_counter() - start
            runs[label] = {"images": len(project), "seconds": seconds, "images_per_s": len(project) / seconds}
            runs[label]["options"] = options or {"workers": "default (spare cores, at most 4)", "batch_size": 8}
    runs["speedup"] = runs["dataloader"]["images_per_s"] / runs["one_at_a_time"]["images_per_s"]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default=Path(__file__).parent / "results" / "scale.json", type=Path)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to measure the GPU path")
    args = parser.parse_args()
    quick, output = args.quick, args.output
    backbone = load_backbone(device=args.device)
    crops, labels = real_crops(300 if quick else 1000)
    held_out, _ = real_crops(100, seed=1)
    real = embed_all(backbone, crops)
    queries = normalise(embed_all(backbone, held_out))
    result = {
        "machine": {
            "python": platform.python_version(),
            "cpu_count": psutil.cpu_count(),
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            "device": str(backbone.device),
            "dtype": str(backbone.dtype),
            "faiss_gpus": gpu_count(),
        },
        "embedding": bench_embedding(backbone, crops),
        "batching": bench_batching(backbone, crops, seconds=3 if quick else 8),
        "knn": bench_knn(real, labels, queries, (1_000, 10_000) if quick else (1_000, 10_000, 100_000)),
        "float16": bench_float16(real, labels),
        "large_project": bench_large_project(backbone, crops, real, labels, queries, 10_000 if quick else 100_000),
        "memory": bench_memory(backbone, crops, real, labels),
        "fit": bench_fit(300 if quick else 5_000, args.device),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
