"""The CPU forward pass of a live frame in torch eager, torch.compile, ONNX Runtime (float32, 1 and 2 threads) and
ONNX Runtime int8, in one run.

A live frame asks for the grid tap and the embedding tap of one 224 x 224 image. Every candidate runs that frame in
turn, round after round (interleaved, so that all see the same load on a shared machine); the figures are the
median per-frame time and its ratio to torch eager from the same run. Outputs are compared with eager on the bundled
sample photos: the largest absolute difference per tap, and whether the ImageNet labels agree (each candidate's pooled
embedding through the float32 classifier layer, against eager's logits).

int8: the float32 graph quantised statically (QDQ, per-channel weights) with the sample photos as calibration
data. Its accuracy is measured as the change in few-shot accuracy (the shipped kNN classifier, same splits) on the
development set given with ``--devdata`` (class-per-folder RGBA cut-outs composited on grey; read where it lies,
never copied).

Writes benchmarks/results/runtime.json and runtime.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from teachable.assets import CLASS_SAMPLES  # noqa: E402
from teachable.backbones import load_backbone  # noqa: E402
from teachable.frames import load_image  # noqa: E402
from teachable.runtime import OrtForward, export_bytes  # noqa: E402

COMPILE_NOTE = (
    "left out by default: on the 2-core machine, compiling took about 4 minutes, the per-stage graphs hit torch's "
    "recompile limit (8) so most stages ran uncompiled, and with the compiled backbone in the process a frame took "
    "1.3 s compiled and 1.5 s in eager (from 13 ms without it): the two OpenMP thread pools fight over the cores. "
    "--with-compile measures it anyway."
)
DEVDATA = ROOT.parent / "shared" / "devdata" / "tuxpaint_cutouts"


def int8_graph(backbone, taps: list[str], calibration: np.ndarray, folder: Path) -> Path:
    """The float32 graph for ``taps``, quantised statically (QDQ, per-channel) with ``calibration`` images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter([{"images": image[None]} for image in calibration])

        def get_next(self):
            return next(self.rows, None)

    folder.mkdir(parents=True, exist_ok=True)
    fp32, prepared, int8 = folder / "fp32.onnx", folder / "prepared.onnx", folder / "int8.onnx"
    fp32.write_bytes(export_bytes(backbone, taps))
    quant_pre_process(str(fp32), str(prepared))
    quantize_static(
        str(prepared),
        str(int8),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return int8


class OrtFile:
    """A graph file in an ONNX Runtime session, run like :meth:`OrtForward.run`."""

    def __init__(self, path: Path, taps: list[str], threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: on a small machine a spinning pool takes the cores that the
        # browser, torch and the rest of the server need between frames.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.taps = taps

    def run(self, images: np.ndarray, taps: list[str]) -> dict[str, torch.Tensor]:
        assert list(taps) == self.taps
        outputs = self.session.run(None, {"images": np.ascontiguousarray(images)})
        return dict(zip(self.taps, (torch.from_numpy(o) for o in outputs)))


def few_shot(embed_pool, splits: int) -> dict:
    """Closed-set (1/5/10-shot) and open-set accuracy of the shipped classifier on the development set."""
    from bench_fewshot import closed_figures, closed_splits, open_figures, open_splits, shipped_episode
    from fewshot_data import composite, read_folder

    paths, labels = read_folder(DEVDATA)
    rng = np.random.default_rng(0)
    images = [composite(path, "grey", rng) for path in paths]
    labels = np.asarray(labels)
    vectors = np.stack([embed_pool(image) for image in images]).astype(np.float32)

    def run(taught, queries):
        return shipped_episode({}, vectors, labels, taught, queries)

    episodes = open_splits(labels, splits)
    return {
        "images": len(images),
        "closed": closed_figures(run, closed_splits(labels, splits)),
        "open": open_figures([run(taught, queries) for _, taught, queries in episodes]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument(
        "--with-compile", action="store_true", help="add torch.compile (inductor); see COMPILE_NOTE before trusting it"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "runtime.json")
    args = parser.parse_args(argv)

    backbone = load_backbone("efficientnet_lite0", device="cpu", runtime="torch")
    frame_taps = [backbone.grid_tap, backbone.embedding_tap]
    photos = sorted(CLASS_SAMPLES.glob("*/*.jpg"))
    samples = np.stack([backbone.prepare(load_image(path)) for path in photos])
    frame = samples[:1]
    all_taps = [*frame_taps, "logits"]

    def eager(images, taps):
        with torch.inference_mode():
            return backbone.forward_taps(backbone.to_tensor(images), taps)

    candidates: dict[str, object] = {"torch eager": eager}
    notes: dict[str, str] = {"torch eager": f"{torch.get_num_threads()} torch threads"}
    setup_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for threads in (1, 2):
            ort_forward = OrtForward(backbone, threads=threads, folder=folder)
            start = time.perf_counter()
            ort_forward.run(frame, frame_taps)
            setup_s[f"onnxruntime fp32 {threads}t"] = time.perf_counter() - start
            candidates[f"onnxruntime fp32 {threads}t"] = ort_forward.run
        start = time.perf_counter()
        int8_frame = int8_graph(backbone, frame_taps, samples, folder / "frame")
        setup_s["onnxruntime int8 1t"] = time.perf_counter() - start
        for threads in (1, 2):
            candidates[f"onnxruntime int8 {threads}t"] = OrtFile(int8_frame, frame_taps, threads).run
        notes["onnxruntime int8 1t"] = "static QDQ, per-channel weights, calibrated on the 12 sample photos"
        if args.with_compile:
            compiled = load_backbone("efficientnet_lite0", device="cpu", compile_mode="inductor", runtime="torch")

            def compiled_run(images, taps):
                with torch.inference_mode():
                    return compiled.forward_taps(compiled.to_tensor(images), taps)

            start = time.perf_counter()
            compiled_run(frame, frame_taps)
            compiled_run(frame, frame_taps)
            setup_s["torch.compile inductor"] = time.perf_counter() - start
            candidates["torch.compile inductor"] = compiled_run
        else:
            notes["torch.compile inductor"] = COMPILE_NOTE

        for run in candidates.values():  # warm up
            for _ in range(3):
                run(frame, frame_taps)
        times: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(args.rounds):
            for name, run in candidates.items():
                start = time.perf_counter()
                run(frame, frame_taps)
                times[name].append(time.perf_counter() - start)

        # Outputs on the sample photos, against eager: the frame taps, and the labels (logits graph in float32).
        reference = eager(samples, all_taps)
        labels = reference["logits"].argmax(1)
        classifier = backbone.model[-1]
        rows = {}
        eager_ms = 1000 * float(np.median(times["torch eager"]))
        for name, run in candidates.items():
            ms = 1000 * float(np.median(times[name]))
            outputs = run(samples, frame_taps)
            row = {
                "forward_ms_p50": ms,
                "forward_ms_p90": 1000 * float(np.percentile(times[name], 90)),
                "speedup_vs_eager": eager_ms / ms,
                "max_abs_diff": {t: float((outputs[t] - reference[t]).abs().max()) for t in frame_taps},
                "max_abs_of_eager": {t: float(reference[t].abs().max()) for t in frame_taps},
            }
            with torch.inference_mode():  # labels: the pooled embedding through the (float32) classifier layer
                row["same_labels"] = bool(torch.equal(classifier(outputs[backbone.embedding_tap]).argmax(1), labels))
            if name in setup_s:
                row["setup_s"] = setup_s[name]
            if name in notes:
                row["note"] = notes[name]
            rows[name] = row

        # int8 accuracy on the development set: the pooled embedding from the int8 graph vs float32 ORT.
        accuracy = None
        if DEVDATA.is_dir():
            fp32 = OrtForward(backbone, threads=1, folder=folder)
            int8 = OrtFile(int8_frame, frame_taps, 1)
            accuracy = {}
            for name, graph in (("fp32", fp32), ("int8", int8)):
                accuracy[name] = few_shot(
                    lambda image, graph=graph: graph.run(backbone.prepare(image)[None], frame_taps)["pool"][0].numpy(),
                    args.splits,
                )
            accuracy["change_points"] = {
                shots: 100 * (accuracy["int8"]["closed"][shots]["mean"] - accuracy["fp32"]["closed"][shots]["mean"])
                for shots in accuracy["fp32"]["closed"]
            }
            accuracy["change_points"]["open known accuracy"] = 100 * (
                accuracy["int8"]["open"]["known_accuracy"] - accuracy["fp32"]["open"]["known_accuracy"]
            )
            accuracy["change_points"]["open mean"] = 100 * (
                accuracy["int8"]["open"]["mean"] - accuracy["fp32"]["open"]["mean"]
            )

    import onnxruntime

    result = {
        "frame": f"one 224x224 image, taps {frame_taps}",
        "rounds": args.rounds,
        "cpu_cores": __import__("os").cpu_count(),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "candidates": rows,
        "int8_devdata_accuracy": accuracy,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "| runtime | forward ms p50 | vs eager | max abs diff (grid / pool) | same labels |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        diff = " / ".join(f"{row['max_abs_diff'][t]:.2g}" for t in frame_taps)
        lines.append(
            f"| {name} | {row['forward_ms_p50']:.1f} | {row['speedup_vs_eager']:.2f}x | {diff} | "
            f"{row.get('same_labels', '-')} |"
        )
    if accuracy:
        lines += ["", "int8 vs float32 few-shot accuracy on the development set (points): "
                  + ", ".join(f"{k} {v:+.1f}" for k, v in accuracy["change_points"].items())]  # fmt: skip
    args.output.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
