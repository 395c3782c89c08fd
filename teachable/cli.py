"""The ``teachable`` command: fit a project from a folder, predict, evaluate, inspect, and start the app.

Every subcommand exits non-zero with a one-line ``teachable: error: ...`` message on bad input, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .backbones import DEFAULT_BACKBONE, BackboneError, available_backbones, load_backbone, load_backbone_or_default
from .folder import FolderError, import_folder, partial_path
from .frames import ImageError, load_image
from .runners import InferenceError
from .knn import DEFAULT_K, DEFAULT_THRESHOLD, KNNError
from .project import Project, ProjectError
from .settings import SettingsError, read

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["main", "hosted_app"]


class CLIError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


CLI_ERRORS = (CLIError, FolderError, ProjectError, BackboneError, KNNError, ImageError, InferenceError, SettingsError)
"""The user-facing errors each command turns into one line."""


def _warn(message: str) -> None:
    print(f"teachable: warning: {message}", file=sys.stderr)


def cmd_fit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    backbone, warning = load_backbone_or_default(args.backbone, args.device, args.compile, args.runtime)
    if warning:
        _warn(warning)
    checkpoint = partial_path(args.output)
    with tqdm(desc="Embedding", unit="img", disable=args.quiet, delay=1) as bar:  # silent if it fails at once

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        options = {
            "tap": args.tap,
            "batch_size": args.batch_size,
            "checkpoint_seconds": args.checkpoint_seconds,
            "progress": progress,
            "max_classes": _class_limit(),
        }
        if args.ray:
            ray_serving = _ray_serving()
            ray_serving.connect()
            project, report = ray_serving.import_folder_ray(args.folder, backbone, args.output, **options)
        else:
            project, report = import_folder(args.folder, backbone, args.output, workers=args.workers, **options)
    if report.resumed:
        print(f"Resumed from {checkpoint}: {report.resumed} image(s) were already embedded.")
    for message in report.skipped:
        _warn(f"skipped {message}")
    counts = project.counts()
    if not len(project):
        raise CLIError(f"None of the images under {args.folder} could be read.")
    for name, count in counts.items():
        if count == 0:
            _warn(f"class {name!r} has no readable images.")
    if sum(1 for count in counts.values() if count) == 1:
        _warn("only one class: predictions will be that class or 'unknown'.")
    project.save(args.output)
    checkpoint.unlink(missing_ok=True)
    summary = ", ".join(f"{name}: {count}" for name, count in counts.items())
    print(f"Saved {args.output}: {len(project)} examples ({summary}); {len(report.skipped)} file(s) skipped.")
    return 0


def _ray_serving():
    try:
        from . import ray_serving
    except ImportError as error:
        raise CLIError(f"this needs Ray: pip install 'teachable[ray]' ({error}).") from None
    return ray_serving


def _load_project_and_backbone(path: str, device: str | None):
    project = Project.load(path)
    backbone = load_backbone(project.backbone, device)
    backbone.tap(project.tap)  # a clear error if the file names a tap this backbone does not have
    return project, backbone


def cmd_predict(args: argparse.Namespace) -> int:
    project, backbone = _load_project_and_backbone(args.project, args.device)
    project.classifier.threshold = args.strictness
    results, failures = [], 0
    for path in args.images:
        try:
            embedding = backbone.embed(backbone.prepare(load_image(path))[None], project.tap)[0]
        except ImageError as error:
            failures += 1
            results.append({"path": path, "error": str(error)})
            continue
        prediction = project.predict(embedding, args.k)
        results.append(
            {
                "path": path,
                "label": prediction.label,
                "unknown": prediction.unknown,
                "score": round(prediction.score, 6),
                "boundary": round(prediction.boundary, 6),
                "confidences": {name: round(value, 6) for name, value in prediction.confidences.items()},
                "nearest_similarity": round(prediction.nearest_similarity, 6),
            }
        )
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
    else:
        for result in results:
            if "error" in result:
                print(f"{result['path']}: error: {result['error']}")
                continue
            label = f"not sure (best guess: {result['label']})" if result["unknown"] else result["label"]
            confidence = result["confidences"][result["label"]]
            print(
                f"{result['path']}: {label} {confidence:.0%} "
                f"(score {result['score']:.2f}, boundary {result['boundary']:.2f})"
            )
    if failures:
        print(f"teachable: error: {failures} of {len(args.images)} image(s) could not be read.", file=sys.stderr)
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    project = Project.load(args.project)
    evaluation = project.classifier.leave_one_out(args.k)
    if args.json:
        print(json.dumps({"examples": len(project), "k": args.k, **evaluation.as_dict()}, indent=1))
        return 0
    print(f"Leave-one-out accuracy: {evaluation.accuracy:.1%} over {len(project)} examples (k={args.k})")
    width = max(len(name) for name in evaluation.classes)
    for name, accuracy in evaluation.per_class_accuracy.items():
        print(f"  {name:<{width}}  {accuracy:.1%}")
    print("Confusion (rows: true class, columns: predicted):")
    for name, row in zip(evaluation.classes, evaluation.confusion):
        print(f"  {name:<{width}}  " + " ".join(f"{n:5d}" for n in row))
    return 0


def _class_limit() -> int:
    """``TEACHABLE_MAX_CLASSES`` (as the app reads it): what the inspecting commands accept."""
    return read("TEACHABLE_MAX_CLASSES")


def cmd_info(args: argparse.Namespace) -> int:
    project = Project.load(args.project, max_classes=_class_limit())
    info = {
        "backbone": project.backbone,
        "tap": project.tap,
        "embedding_dim": project.classifier.dim,
        "examples": len(project),
        "classes": project.counts(),
    }
    if args.json:
        print(json.dumps(info, indent=1))
    else:
        print(
            f"{args.project}: {info['examples']} examples, backbone {info['backbone']} (tap {info['tap']}, "
            f"{info['embedding_dim']}-d)"
        )
        for name, count in info["classes"].items():
            print(f"  {name}: {count}")
    return 0


def cmd_atlas_icons(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .assets import icon_output, sample_photos
    from .atlas import make_icons

    backbone = load_backbone(args.backbone, args.device)
    tap = args.tap or backbone.grid_tap
    if not backbone.tap(tap).is_spatial:
        raise CLIError(f"Tap {tap!r} is not spatial; icons need a feature map.")
    photos = sample_photos()
    if not photos:
        raise CLIError("The bundled sample photos are missing (teachable/assets); reinstall teachable.")
    total = backbone.tap(tap).channels + args.typical
    with tqdm(total=total, desc=f"Icons for {backbone.name}/{tap}", unit="icon", disable=args.quiet) as bar:
        icons = make_icons(
            backbone, [load_image(p) for p in photos], tap, typical=args.typical, steps=args.steps, progress=bar.update
        )
    output = Path(args.output) if args.output else icon_output(backbone.name, tap)
    output.parent.mkdir(parents=True, exist_ok=True)
    icons.save(output)
    print(f"Saved {len(icons.icons)} icons to {output}.")
    return 0


def prepare_app(args: argparse.Namespace) -> tuple[gr.Blocks, Callable[[], object]]:
    """The page for `teachable app`'s arguments, built but not served, and the call that serves it."""
    import datetime as dt

    from .certs import CertificateError, ensure_certificate, load_certificate, machine_names
    from .join import join_urls, startup_message
    from .network import is_wildcard

    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise CLIError("--ssl-certfile and --ssl-keyfile go together; give both, or --https for a self-signed one.")
    try:
        if args.ssl_certfile:
            certificate = load_certificate(args.ssl_certfile, args.ssl_keyfile)
        elif args.https:
            extra = [] if is_wildcard(args.host) else [args.host]  # the name given with --host is in it too
            certificate = ensure_certificate(names=[*machine_names(), *extra])
        else:
            certificate = None
    except CertificateError as error:
        raise CLIError(str(error)) from None
    if certificate and certificate.not_after < dt.datetime.now(dt.timezone.utc):
        _warn(f"the certificate {certificate.certfile} expired on {certificate.not_after:%Y-%m-%d}.")
    https = certificate is not None
    self_signed = https and certificate.self_signed
    print(startup_message(join_urls(args.host, args.port, https), https, self_signed=self_signed), flush=True)

    from .webapp import prepare, serve

    demo = prepare(
        args.host, args.port, args.backbone, args.device, args.compile, args.runtime, https=https,
        live_model=args.live_model,
    )  # fmt: skip
    certfile, keyfile = (str(certificate.certfile), str(certificate.keyfile)) if https else (None, None)
    return demo, functools.partial(
        serve, demo, args.host, args.port, share=args.share, ssl_certfile=certfile, ssl_keyfile=keyfile
    )


def cmd_app(args: argparse.Namespace) -> int:
    _demo, start = prepare_app(args)
    start()
    return 0


def hosted_app(argv: list[str]) -> tuple[gr.Blocks, Callable[[], object]]:
    """`python app.py ARGS`: the page built at import (Gradio's reload mode looks for it) and the call that serves
    it. A bad argument or setting ends the program with the same one-line error as `teachable app`."""
    args = _parsed(["app", *argv])
    try:
        return prepare_app(args)
    except CLI_ERRORS as error:
        sys.exit(f"teachable: error: {error}")


def cmd_export(args: argparse.Namespace) -> int:
    from .export import ExportError, export_onnx, onnx_bytes

    project = Project.load(args.project)
    backbone = load_backbone(project.backbone, "cpu")
    backbone.tap(project.tap)
    try:
        if args.format == "onnx":
            info = export_onnx(project, backbone, args.output, k=args.k, strictness=args.strictness)
            print(f"Wrote {info.path}: {info.size_bytes / 2**20:.1f} MB, classes {', '.join(info.classes)} "
                  f"(rule {info.rule}, unknown below {info.boundary:.3f}) in {info.seconds:.1f} s.")
            return 0
        from .webexport import WebExportError, write_page

        model, metadata = onnx_bytes(project, backbone, k=args.k, strictness=args.strictness)
        folder = write_page(model, metadata, args.output)
    except ExportError as error:
        raise CLIError(str(error)) from None
    except WebExportError as error:
        raise CLIError(str(error)) from None
    print(f"Wrote the web page to {folder}/: open {folder / 'index.html'} in a browser (no server needed).")
    return 0


def cmd_serve_backbone(args: argparse.Namespace) -> int:
    """Deploy the backbone to the Ray cluster at RAY_ADDRESS, or to a local one that lives while this command runs."""
    import time

    ray_serving = _ray_serving()
    joined = read("RAY_ADDRESS") is not None
    address = ray_serving.connect()
    ray_serving.deploy(args.backbone)
    print(f"The Ray Serve application {ray_serving.APP_NAME} runs {args.backbone} on the cluster at {address}.")
    print(f"Start app replicas with: TEACHABLE_INFERENCE=ray RAY_ADDRESS={address} python app.py --host 0.0.0.0")
    if joined:
        return 0  # the deployment lives on the cluster, not in this process
    print("This local cluster stops when this command does (Ctrl+C).")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teachable", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the backbone and app do")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_fit, _add_predict, _add_evaluate, _add_info, _add_atlas, _add_app, _add_serve_backbone):
        add(commands)
    _add_export(commands)
    return parser


def _with_device(sub: argparse.ArgumentParser, compiled: bool = False) -> argparse.ArgumentParser:
    sub.add_argument(
        "--device",
        default=read("TEACHABLE_DEVICE"),
        help="auto (CUDA with fp16 if present, else CPU), cpu or cuda; default $TEACHABLE_DEVICE or auto",
    )
    if compiled:
        sub.add_argument(
            "--compile",
            nargs="?",
            const="inductor",
            default=read("TEACHABLE_COMPILE"),
            metavar="BACKEND",
            help="torch.compile the backbone (default backend inductor; slow to start); or $TEACHABLE_COMPILE",
        )
        sub.add_argument(
            "--runtime",
            default=read("TEACHABLE_RUNTIME"),
            help="what runs the backbone on the CPU: torch, onnxruntime, or auto (ONNX Runtime where a check on this "
            "machine finds it faster with the same labels); default $TEACHABLE_RUNTIME or auto",
        )
    return sub


def _add_fit(commands) -> None:
    """`teachable fit`: a project from a class-per-folder tree."""
    fit = _with_device(
        commands.add_parser("fit", help="make a project from a folder with one sub-folder per class"), compiled=True
    )
    fit.add_argument("folder")
    fit.add_argument("-o", "--output", required=True, help="project file to write (.zip)")
    fit.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=available_backbones())
    fit.add_argument("--tap", help="layer to read embeddings at (default: the backbone's pooled embedding)")
    fit.add_argument("--batch-size", type=_int_at_least(1), default=8, help="images per forward pass (default 8)")
    fit.add_argument(
        "--workers", type=_int_at_least(0), help="image-decoding processes (default: spare cores, at most 4)"
    )
    fit.add_argument(
        "--checkpoint-seconds",
        type=float,
        default=120.0,
        help="save progress to OUTPUT.partial this often; a rerun resumes from it (default 120)",
    )
    fit.add_argument(
        "--ray", action="store_true", help="read and embed on the Ray cluster at $RAY_ADDRESS (or a local one)"
    )
    fit.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    fit.set_defaults(run=cmd_fit)


def _add_predict(commands) -> None:
    """`teachable predict`: classify images with a project."""
    predict = _with_device(commands.add_parser("predict", help="classify images with a project"))
    predict.add_argument("project")
    predict.add_argument("images", nargs="+")
    predict.add_argument("--k", type=_int_at_least(1), default=DEFAULT_K)
    predict.add_argument(
        "--strictness",
        "--threshold",
        type=_fraction,
        default=DEFAULT_THRESHOLD,
        help=f"0-1: share of the project's own examples that would come back 'not sure' (default {DEFAULT_THRESHOLD})",
    )
    predict.add_argument("--json", action="store_true")
    predict.set_defaults(run=cmd_predict)


def _add_evaluate(commands) -> None:
    """`teachable evaluate`: leave-one-out accuracy."""
    evaluate = commands.add_parser("evaluate", help="leave-one-out accuracy of a project")
    evaluate.add_argument("project")
    evaluate.add_argument("--k", type=_int_at_least(1), default=DEFAULT_K)
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(run=cmd_evaluate)


def _add_info(commands) -> None:
    """`teachable info`: what a project file holds."""
    info = commands.add_parser("info", help="what a project file holds")
    info.add_argument("project")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=cmd_info)


def _add_atlas(commands) -> None:
    """`teachable atlas icons`: the activation-grid icons."""
    atlas = commands.add_parser("atlas", help="feature-visualisation assets")
    atlas_commands = atlas.add_subparsers(dest="atlas_command", required=True)
    icons = _with_device(atlas_commands.add_parser("icons", help="make the activation-grid icons for a backbone"))
    icons.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=available_backbones())
    icons.add_argument("--tap", help="spatial tap (default: the backbone's grid tap)")
    icons.add_argument("--typical", type=_int_at_least(0), default=32, help="k-means directions of real photos to add")
    icons.add_argument("--steps", type=_int_at_least(1), default=160, help="optimisation steps per icon")
    icons.add_argument(
        "-o", "--output", help="default: teachable/assets/icons/BACKBONE.TAP.npz (a per-user folder if read-only)"
    )
    icons.add_argument("-q", "--quiet", action="store_true")
    icons.set_defaults(run=cmd_atlas_icons)


def _add_app(commands) -> None:
    """`teachable app` (and `python app.py`): the web app."""
    app = _with_device(commands.add_parser("app", help="start the web app"), compiled=True)
    # Hosting platforms (e.g. Spaces) say where to listen through Gradio's own variables.
    app.add_argument("--host", default=read("GRADIO_SERVER_NAME"))
    app.add_argument("--port", type=int, default=read("GRADIO_SERVER_PORT"))
    app.add_argument("--share", action="store_true", help="also serve through a public share link")
    app.add_argument(
        "--live-model",
        choices=("auto", "browser", "server"),
        default=read("TEACHABLE_LIVE_MODEL"),
        help="where the model runs on live camera frames: in each participant's browser (camera frames stay there), "
        "on this server, or auto: the browser where it loads the model and keeps up, else the server; default "
        "$TEACHABLE_LIVE_MODEL or auto",
    )
    # Browsers give the camera only to https pages (and localhost): a room's network needs one of these.
    app.add_argument(
        "--https",
        action="store_true",
        help="serve over https with a self-signed certificate made on first use ($TEACHABLE_CERT_DIR keeps it)",
    )
    app.add_argument(
        "--ssl-certfile", metavar="PEM", help="serve over https with this certificate (give --ssl-keyfile too)"
    )
    app.add_argument("--ssl-keyfile", metavar="PEM", help="the unencrypted private key of --ssl-certfile")
    app.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=available_backbones())
    app.set_defaults(run=cmd_app)


def _add_serve_backbone(commands) -> None:
    """`teachable serve-backbone`: the backbone as a Ray Serve deployment for app replicas."""
    service = commands.add_parser(
        "serve-backbone", help="deploy the backbone to the Ray cluster at $RAY_ADDRESS for app replicas"
    )
    service.add_argument("--backbone", default=DEFAULT_BACKBONE, choices=available_backbones())
    service.set_defaults(run=cmd_serve_backbone)


def _add_export(commands) -> None:
    """`teachable export`: the project as one ONNX file, or a web page that runs it offline."""
    export = commands.add_parser("export", help="export a project as one ONNX file, or as an offline web page")
    export.add_argument("project")
    export.add_argument("-o", "--output", required=True, help="the .onnx file (or, with --format web, the folder)")
    export.add_argument("--format", choices=("onnx", "web"), default="onnx")
    export.add_argument("--k", type=_int_at_least(1), default=DEFAULT_K, help="neighbours (kNN rule only)")
    export.add_argument(
        "--strictness",
        "--threshold",
        type=_fraction,
        default=DEFAULT_THRESHOLD,
        help=f"0-1: share of the project's own examples that would come back 'not sure' (default {DEFAULT_THRESHOLD})",
    )
    export.set_defaults(run=cmd_export)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _parsed(argv: list[str] | None) -> argparse.Namespace:
    try:
        args = build_parser().parse_args(argv)  # the options' defaults come from the environment
    except SettingsError as error:
        print(f"teachable: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if args.command == "app":  # a server says what it runs on (device, dtype and why) and when sessions are freed
        logging.getLogger("teachable").setLevel(logging.INFO)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parsed(argv)
    try:
        return args.run(args)
    except CLI_ERRORS as error:
        print(f"teachable: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("teachable: interrupted", file=sys.stderr)
        return 130

if __name__ == "__main__":
    sys.exit(main())
