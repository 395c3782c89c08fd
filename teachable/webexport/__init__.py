"""The exported web page: a static folder that runs an exported model on the webcam, offline, in any browser.

``write_page(model_bytes, metadata, folder)`` writes::

    index.html                 the page (label, confidences per class, "Not sure", camera or a chosen photo)
    model.onnx                 the exported model, as ``teachable export`` writes it
    model.js                   the same bytes as base64, so the page also works when opened as a file
    ort/ort.wasm.min.js        onnxruntime-web's WebAssembly build (MIT, as its header and package.json say)
    ort/runtime.js             its .wasm binary (base64) and its loader module (text), for the same reason
    ort/ort-wasm-simd-threaded.wasm, .mjs   the same files as shipped, for static hosts and tools
    ort/package.json           the package's own description: name, version, licence

Browsers refuse ``fetch()`` of files from a page opened as ``file://``; classic ``<script>`` tags are allowed.
So the page takes the model and the runtime from ``model.js`` and ``ort/runtime.js`` and hands them to
onnxruntime-web as bytes (``env.wasm.wasmBinary``, a ``Uint8Array`` model) and as a blob URL
(``env.wasm.wasmPaths.mjs``), and nothing is fetched from the network when it runs.

onnxruntime-web comes from its npm package, pinned (:data:`ORT_WEB_VERSION`) and checked against the registry's
sha512: ``npm pack`` fetches it once into the cache folder (``make`` does it on install; the export does it when the
cache is empty), or ``TEACHABLE_ORT_WEB`` names a downloaded ``onnxruntime-web-<version>.tgz``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

__all__ = ["ORT_WEB_VERSION", "WebExportError", "ort_web_tarball", "write_page", "fetch_ort_web"]

ORT_WEB_VERSION = "1.30.0"
ORT_WEB_INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
"""The npm registry's integrity of onnxruntime-web-1.30.0.tgz; a tarball that does not match is refused."""
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")
TEMPLATE = Path(__file__).with_name("index.html")


class WebExportError(RuntimeError):
    """The web page cannot be written (e.g. onnxruntime-web is not available), with what to do."""


def cache_folder() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("TEACHABLE_CACHE_DIR") or user_cache_dir("teachable")) / "npm"


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch_ort_web(folder: Path | None = None) -> Path:
    """``npm pack`` the pinned onnxruntime-web into ``folder`` (default: the cache) unless it is there; its path."""
    folder = folder or cache_folder()
    target = folder / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"
    if target.is_file() and _integrity(target) == ORT_WEB_INTEGRITY:
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise WebExportError(
            f"The web page needs onnxruntime-web {ORT_WEB_VERSION} from npm, and npm is not installed. Install "
            f"Node.js, or download onnxruntime-web-{ORT_WEB_VERSION}.tgz and set TEACHABLE_ORT_WEB to its path."
        )
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        done = subprocess.run(
            [npm, "pack", f"onnxruntime-web@{ORT_WEB_VERSION}", "--pack-destination", scratch, "--silent"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        packed = Path(scratch) / target.name
        if done.returncode or not packed.is_file():
            raise WebExportError(f"npm pack onnxruntime-web@{ORT_WEB_VERSION} failed: {done.stderr.strip()[-500:]}")
        if _integrity(packed) != ORT_WEB_INTEGRITY:
            raise WebExportError(f"{packed.name} from npm does not match its pinned sha512; it was not used.")
        packed.replace(target)
    return target


def ort_web_tarball() -> Path:
    """The onnxruntime-web package to copy from: ``$TEACHABLE_ORT_WEB``, the cache, or fetched into the cache."""
    named = os.environ.get("TEACHABLE_ORT_WEB")
    if named:
        path = Path(named)
        if not path.is_file():
            raise WebExportError(f"TEACHABLE_ORT_WEB names {path}, which is not a file.")
        if _integrity(path) != ORT_WEB_INTEGRITY:
            raise WebExportError(f"{path} is not onnxruntime-web {ORT_WEB_VERSION} (its sha512 differs).")
        return path
    return fetch_ort_web()


def _ort_files(tarball: Path) -> dict[str, bytes]:
    with tarfile.open(tarball, "r:gz") as archive:
        files = {name: archive.extractfile(f"package/dist/{name}").read() for name in ORT_FILES}
        files["package.json"] = archive.extractfile("package/package.json").read()  # name, version, licence (MIT)
    return files


def script_json(value) -> str:
    """``value`` as JSON that is safe inside an inline ``<script>``: ``<``, ``>`` and ``&`` are written as ``\\u``
    escapes, so no class name can end the script (``</script>``) or open a comment in it (``<!--<script>``)."""
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_page(model: bytes, metadata: dict, folder: str | Path) -> Path:
    """Write the static page for an exported model (bytes and :func:`teachable.export.read_metadata`-style dict)."""
    folder = Path(folder)
    ort = _ort_files(ort_web_tarball())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ort").mkdir(exist_ok=True)
    for name, data in ort.items():
        (folder / "ort" / name).write_bytes(data)
    runtime = {
        "version": ORT_WEB_VERSION,
        "wasm": base64.b64encode(ort["ort-wasm-simd-threaded.wasm"]).decode(),
        "loader": ort["ort-wasm-simd-threaded.mjs"].decode(),
    }
    (folder / "ort" / "runtime.js").write_text(f"window.TEACHABLE_ORT = {json.dumps(runtime)};\n")
    (folder / "model.onnx").write_bytes(model)
    (folder / "model.js").write_text(f'window.TEACHABLE_MODEL = "{base64.b64encode(model).decode()}";\n')
    settings = {key: metadata[key] for key in ("classes", "backbone", "tap", "rule", "k", "threshold", "boundary")}
    if isinstance(settings["classes"], str):  # as stored in the model's metadata_props
        settings["classes"] = json.loads(settings["classes"])
    page = TEMPLATE.read_text().replace("__SETTINGS__", script_json(settings))
    (folder / "index.html").write_text(page)
    return folder

