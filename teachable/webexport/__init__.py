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

onnxruntime-web ships inside this package (``webexport/ort/``, package data, the ``.wasm`` compressed with xz), so
every install route has it and nothing is fetched when a page is written: a wheel, a Space (the repository is the
app) and an offline laptop alike. Each file is checked against its pinned sha256 when it is read. The files come
from the npm package, pinned (:data:`ORT_WEB_VERSION`) and checked against the registry's sha512:
``python -m teachable.webexport --vendor`` (``npm pack``, then extract) refreshes them when the pin moves.
"""

from __future__ import annotations

import base64
import hashlib
import json
import lzma
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..atomic import atomic_write
from ..settings import cache_folder as built_files_folder

__all__ = [
    "ORT_WEB_VERSION",
    "WebExportError",
    "bundled_ort_files",
    "fetch_ort_web",
    "vendor_ort_web",
    "write_page",
]

ORT_WEB_VERSION = "1.30.0"
ORT_WEB_INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
"""The npm registry's integrity of onnxruntime-web-1.30.0.tgz; a tarball that does not match is refused."""
ORT_FILES = {
    "ort.wasm.min.js": "faece07e84faa9001f5104bbe4e5c70861d06cb2376a0dea1fa0ad33a67adc81",
    "ort-wasm-simd-threaded.wasm": "3398c10d07d229bd91b364548e130e0e51a8e5704b88c7c083ebbeb78842dee2",
    "ort-wasm-simd-threaded.mjs": "e13f7f94fc51b4ca72b12faeb1ee95f4ace6dfbc8939bc718aabdc0a27c4299b",
    "package.json": "16f69f755509990539aeb1c8445884960e91adcacab2e8dca8e44ee43601df5c",  # name, version, licence (MIT)
}
"""The onnxruntime-web files the page needs (``dist/`` of the npm package, and its package.json), with the sha256 of
each as the pinned tarball holds it."""
BUNDLED_ORT = Path(__file__).with_name("ort")
COMPRESSED = (".wasm",)
"""Files stored xz-compressed in :data:`BUNDLED_ORT` (the .wasm: 14.2 MB as shipped, 2.2 MB compressed)."""
TEMPLATE = Path(__file__).with_name("index.html")


class WebExportError(RuntimeError):
    """The web page cannot be written (e.g. onnxruntime-web is not available), with what to do."""


def cache_folder() -> Path:
    return built_files_folder() / "npm"


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
        raise WebExportError(f"npm is needed to fetch onnxruntime-web {ORT_WEB_VERSION}, and it is not installed.")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        command = [npm, "pack", f"onnxruntime-web@{ORT_WEB_VERSION}", "--pack-destination", scratch, "--silent"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise WebExportError(f"npm pack onnxruntime-web@{ORT_WEB_VERSION} gave no answer in 120 s (no network?).")
        packed = Path(scratch) / target.name
        if done.returncode or not packed.is_file():
            said = (done.stderr.strip() or done.stdout.strip())[-500:] or f"exit status {done.returncode}, no message"
            raise WebExportError(f"npm pack onnxruntime-web@{ORT_WEB_VERSION} failed: {said}")
        if _integrity(packed) != ORT_WEB_INTEGRITY:
            raise WebExportError(f"{packed.name} from npm does not match its pinned sha512; it was not used.")
        packed.replace(target)
    return target


def tarball_ort_files(tarball: Path) -> dict[str, bytes]:
    """The files of :data:`ORT_FILES` as the pinned npm tarball holds them (its sha512 is checked first)."""
    if _integrity(tarball) != ORT_WEB_INTEGRITY:
        raise WebExportError(f"{tarball} is not onnxruntime-web {ORT_WEB_VERSION} (its sha512 differs).")
    with tarfile.open(tarball, "r:gz") as archive:
        members = {name: "package/package.json" if name == "package.json" else f"package/dist/{name}" for name in ORT_FILES}
        return {name: archive.extractfile(member).read() for name, member in members.items()}


def vendor_ort_web(tarball: Path, folder: Path = BUNDLED_ORT) -> Path:
    """Write :data:`ORT_FILES` from the pinned tarball into ``folder`` (the package's own copy by default)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in tarball_ort_files(tarball).items():
        if name.endswith(COMPRESSED):
            atomic_write(folder / f"{name}.xz", lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
        else:
            atomic_write(folder / name, data)
    return folder


def bundled_ort_files(folder: Path = BUNDLED_ORT) -> dict[str, bytes]:
    """The onnxruntime-web files shipped in this package, each checked against its pinned sha256."""
    files = {}
    for name, sha256 in ORT_FILES.items():
        path = folder / (f"{name}.xz" if name.endswith(COMPRESSED) else name)
        try:
            data = path.read_bytes()
            data = lzma.decompress(data) if path.suffix == ".xz" else data
        except (OSError, lzma.LZMAError) as error:
            raise WebExportError(
                f"onnxruntime-web {ORT_WEB_VERSION} is missing or damaged in this install ({path}: {error}); "
                "reinstall teachable, or in a checkout run `python -m teachable.webexport --vendor`."
            ) from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise WebExportError(
                f"{path} is not onnxruntime-web {ORT_WEB_VERSION}'s {name} (its sha256 differs); reinstall teachable."
            )
        files[name] = data
    return files


def script_json(value) -> str:
    """``value`` as JSON that is safe inside an inline ``<script>``: ``<``, ``>`` and ``&`` are written as ``\\u``
    escapes, so no class name can end the script (``</script>``) or open a comment in it (``<!--<script>``)."""
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def write_page(model: bytes, metadata: dict, folder: str | Path) -> Path:
    """Write the static page for an exported model (bytes and :func:`teachable.export.read_metadata`-style dict)."""
    folder = Path(folder)
    ort = bundled_ort_files()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ort").mkdir(exist_ok=True)
    for name, data in ort.items():
        atomic_write(folder / "ort" / name, data)
    runtime = {
        "version": ORT_WEB_VERSION,
        "wasm": base64.b64encode(ort["ort-wasm-simd-threaded.wasm"]).decode(),
        "loader": ort["ort-wasm-simd-threaded.mjs"].decode(),
    }
    atomic_write(folder / "ort" / "runtime.js", f"window.TEACHABLE_ORT = {json.dumps(runtime)};\n")
    atomic_write(folder / "model.onnx", model)
    atomic_write(folder / "model.js", f'window.TEACHABLE_MODEL = "{base64.b64encode(model).decode()}";\n')
    settings = {key: metadata[key] for key in ("classes", "backbone", "tap", "rule", "k", "threshold", "boundary")}
    if isinstance(settings["classes"], str):  # as stored in the model's metadata_props
        settings["classes"] = json.loads(settings["classes"])
    page = TEMPLATE.read_text().replace("__SETTINGS__", script_json(settings))
    atomic_write(folder / "index.html", page)
    return folder

