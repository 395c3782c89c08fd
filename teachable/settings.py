"""Every environment variable the product reads, read here and nowhere else, by one set of rules.

Each variable is a :class:`Variable` in :data:`VARIABLES`: its name, what kind of value it holds, its default and one
line on what it does (the README's table of settings is made from these; a test keeps the two equal). The rules:

- unset, or only spaces: the default;
- ``number``: a finite number above zero (``nan`` and ``inf`` are refused);
- ``whole``: a whole number of at least 1;
- ``choice``: one of the listed words, any case;
- ``flag``: ``0``, ``off``, ``false`` or ``no`` turn it off, anything else on (``SPACES_ZERO_GPU``, set by the
  platform, is on only for ``1``, ``t`` or ``true``);
- ``path``: a folder (``~`` is expanded);
- ``text``: the text as given, without surrounding spaces.

A value that breaks its rule is a :class:`SettingsError` whose message names the variable and what it accepts; the
CLI and the page show that one line, never a traceback.

>>> read("TEACHABLE_MAX_SESSIONS", {})
200
>>> read("TEACHABLE_STREAM_EVERY", {"TEACHABLE_STREAM_EVERY": " 0.2 "})
0.2
>>> read("TEACHABLE_STREAM_EVERY", {"TEACHABLE_STREAM_EVERY": "nan"})
Traceback (most recent call last):
...
teachable.settings.SettingsError: TEACHABLE_STREAM_EVERY='nan' must be a number above zero.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "VARIABLES",
    "SettingsError",
    "Variable",
    "apply_library_defaults",
    "cache_folder",
    "gradio_files_folder",
    "markdown_table",
    "read",
    "use_gradio_files_folder",
]

OFF_WORDS = ("0", "off", "false", "no")
PLATFORM_ON_WORDS = ("1", "t", "true")


class SettingsError(ValueError):
    """An environment variable holds a value the product cannot use; the message names it and what it accepts."""


@dataclass(frozen=True)
class Variable:
    name: str
    kind: str
    """number, whole, choice, flag, path or text (the module docstring gives each kind's rule)."""
    default: object
    help: str
    choices: tuple[str, ...] = ()

    def parse(self, text: str | None) -> object:
        """The value ``text`` gives this variable (None or blank: the default)."""
        text = (text or "").strip()
        if not text:
            return self.default
        return getattr(self, f"_parse_{self.kind}")(text)

    def _refuse(self, text: str, rule: str) -> SettingsError:
        return SettingsError(f"{self.name}={text!r} {rule}.")

    def _parse_number(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise self._refuse(text, "must be a number above zero")
        return value

    def _parse_whole(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise self._refuse(text, "must be a whole number of at least 1")
        return value

    def _parse_choice(self, text: str) -> str:
        if text.lower() not in self.choices:
            raise self._refuse(text, f"is not one of {', '.join(self.choices)}")
        return text.lower()

    def _parse_flag(self, text: str) -> bool:
        if self.name == "SPACES_ZERO_GPU":  # the platform's own convention
            return text.lower() in PLATFORM_ON_WORDS
        return text.lower() not in OFF_WORDS

    def _parse_path(self, text: str) -> Path:
        return Path(text).expanduser()

    def _parse_text(self, text: str) -> str:
        return text

    @property
    def shown_default(self) -> str:
        if self.default is None:
            return "(none)"
        if self.kind == "flag":
            return "on" if self.default else "off"
        return str(self.default)


VARIABLES: tuple[Variable, ...] = (
    # Where the app listens and what runs the backbone
    Variable("GRADIO_SERVER_NAME", "text", "127.0.0.1", "Address the app listens on (`--host`); hosting platforms set it."),
    Variable("GRADIO_SERVER_PORT", "whole", 7860, "Port the app listens on (`--port`); hosting platforms set it."),
    Variable("TEACHABLE_DEVICE", "text", "auto", "`--device`: auto (CUDA with fp16 if present, else CPU), cpu or cuda."),
    Variable("TEACHABLE_COMPILE", "text", None, "`--compile`: torch.compile the backbone with this backend (slow to start)."),
    Variable("TEACHABLE_RUNTIME", "choice", "auto", "`--runtime`: what runs the backbone on the CPU; auto uses ONNX Runtime where a check on this machine finds it faster with the same labels.", ("torch", "onnxruntime", "auto")),
    Variable("TEACHABLE_INFERENCE", "choice", "auto", "Where live frames run: local, batched (across people), auto (batched on a GPU) or ray (the Ray Serve deployment at RAY_ADDRESS).", ("auto", "local", "batched", "ray")),
    Variable("TEACHABLE_LIVE_MODEL", "choice", "auto", "`--live-model`: where the model runs on live camera frames: auto (in each participant's browser where it loads and keeps up, else on this server), browser, or server.", ("auto", "browser", "server")),
    Variable("RAY_ADDRESS", "text", None, "The Ray cluster to join (TEACHABLE_INFERENCE=ray, `teachable serve-backbone`); unset: a local one."),
    Variable("TEACHABLE_RAY_MIN_REPLICAS", "whole", 1, "Fewest backbone replicas the Ray Serve deployment keeps."),
    Variable("TEACHABLE_RAY_MAX_REPLICAS", "whole", 4, "Most backbone replicas the Ray Serve deployment scales to."),
    Variable("TEACHABLE_RAY_MAX_BATCH", "whole", 32, "Most frames a replica runs in one batch."),
    Variable("TEACHABLE_RAY_BATCH_WAIT_MS", "number", 5.0, "Longest a replica waits to fill a batch, in milliseconds."),
    Variable("TEACHABLE_RAY_REPLICA_CPUS", "number", 1.0, "CPUs each replica asks for where the cluster has no GPU."),
    # What one person may do on a shared server
    Variable("TEACHABLE_MAX_EXAMPLES", "whole", 2000, "Examples per person (about 30 KB each)."),
    Variable("TEACHABLE_MAX_CLASSES", "whole", 50, "Classes per project (the views compare every pair)."),
    Variable("TEACHABLE_MAX_SESSIONS", "whole", 200, "People whose live state the server keeps; keep it well above the people using it at once."),
    Variable("TEACHABLE_SESSION_IDLE_SECONDS", "number", 7200.0, "A person with no frames or edits for this long has their live state freed (their project stays saved)."),
    Variable("TEACHABLE_STREAM_EVERY", "number", 0.1, "Seconds between the frames a browser sends (about 100 KB each); 0.2 halves a room's Wi-Fi load."),
    Variable("TEACHABLE_COMMANDS_PER_SECOND", "number", 10.0, "Card commands (record, add, rename, ...) one page may send per second on average."),
    Variable("TEACHABLE_MAX_UPLOAD_MB", "whole", 20, "Largest upload (images, videos, project files)."),
    Variable("TEACHABLE_UPLOAD_MB_PER_CLIENT", "whole", 200, "What one address may upload within TEACHABLE_FILE_MAX_AGE_SECONDS."),
    Variable("TEACHABLE_DECODE_MB", "whole", 1024, "Memory that decoding uploaded images may take at once, all people together."),
    Variable("TEACHABLE_VIDEO_PLAYS", "whole", 2, "Videos played through the classifier at once, all people together."),
    Variable("TEACHABLE_FILES_MAX_MB", "whole", 2048, "Gradio's file folder (uploads, saved projects, exports), all people together."),
    Variable("TEACHABLE_FILE_MAX_AGE_SECONDS", "whole", 1800, "Uploads, saved projects and exports older than this are deleted."),
    Variable("GRADIO_TEMP_DIR", "path", None, "Gradio's file folder; unset: a private per-user folder in the system's temporary folder."),
    # Where work is kept
    Variable("TEACHABLE_AUTOSAVE", "flag", True, "Keep each browser's project on disk as it changes (0, off, false or no: don't)."),
    Variable("TEACHABLE_DATA_DIR", "path", None, "Where projects are kept; unset: the per-user data folder's `sessions`. On a Space, a mounted volume keeps them across restarts."),
    Variable("TEACHABLE_KEEP_HOURS", "number", 72.0, "A project not saved for this long is deleted."),
    Variable("TEACHABLE_DATA_MAX_MB", "number", 2048.0, "All kept projects together; a save past it is refused (nothing of anyone's is deleted to make room)."),
    Variable("TEACHABLE_DATA_PERSON_MB", "number", None, "One person's kept project; unset: the total divided among 32 people."),
    Variable("TEACHABLE_AUTOSAVE_DELAY", "number", 2.0, "Seconds from a change to its save (at most one save per person per delay)."),
    Variable("TEACHABLE_CACHE_DIR", "path", None, "Where built ONNX graphs and the onnxruntime-web tarball are cached; unset: the per-user cache folder."),
    Variable("TEACHABLE_CERT_DIR", "path", None, "Where `--https` keeps its self-signed certificate; unset: the per-user config folder's `https`."),
    # Set by the platform
    Variable("SPACE_ID", "text", None, "Set on a Hugging Face Space: the Space's name (work is kept only until a restart unless TEACHABLE_DATA_DIR is set)."),
    Variable("SPACE_HOST", "text", None, "Set on a Hugging Face Space: its host name, the address the Join panel gives."),
    Variable("SPACES_ZERO_GPU", "flag", False, "Set on a ZeroGPU Space: each frame borrows a GPU through the `spaces` package."),
)

LIBRARY_DEFAULTS = (
    ("ORT_DISABLE_TELEMETRY", "1"),
    ("GRADIO_ANALYTICS_ENABLED", "False"),
    ("HF_HUB_OFFLINE", "1"),
    ("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000"),
)
"""Set before the libraries load (a person's own value wins). Offline: ONNX Runtime looks up its telemetry host every
few seconds and writes a device id under the home folder unless ``ORT_DISABLE_TELEMETRY`` is set
(``ort.disable_telemetry_events()`` does not stop it); Gradio reports each launch and checks for a newer version;
the Hugging Face hub client (under timm and Gradio) retries for tens of seconds before it fails without a network.
Speed: after every event Gradio's queue rebuilds a pandas summary of its last 10,000 events for its monitoring
page; once per 1,000 events instead took a room's host from 17-24 to 9-11 ms of CPU per answered frame
(benchmarks/bench_room.py)."""


def _variable(name: str) -> Variable:
    for variable in VARIABLES:
        if variable.name == name:
            return variable
    raise KeyError(f"{name} is not a setting of teachable (see teachable.settings.VARIABLES)")


def read(name: str, environ: Mapping[str, str] | None = None) -> object:
    """The value of setting ``name`` in ``environ`` (default: this process's environment), by its rule."""
    environ = os.environ if environ is None else environ
    return _variable(name).parse(environ.get(name))


def apply_library_defaults() -> None:
    """Keep the libraries the product loads offline and out of the frame path's way (:data:`LIBRARY_DEFAULTS`)."""
    for name, value in LIBRARY_DEFAULTS:
        os.environ.setdefault(name, value)


def use_gradio_files_folder(default: Path) -> Path:
    """Gradio's file folder: ``GRADIO_TEMP_DIR`` when set, else ``default``, which is then set for Gradio to use.

    Gradio reads the variable itself when the Blocks are made, so it must be set before then."""
    chosen = read("GRADIO_TEMP_DIR")
    if chosen is None:
        os.environ["GRADIO_TEMP_DIR"] = str(default)
        return default
    return chosen


def cache_folder() -> Path:
    """Where built files are cached (ONNX graphs, the onnxruntime-web tarball): never inside the kept projects'
    folder, whose size cap is for people's work."""
    chosen = read("TEACHABLE_CACHE_DIR")
    if chosen is not None:
        return chosen
    import platformdirs

    return Path(platformdirs.user_cache_dir("teachable"))


def gradio_files_folder() -> Path | None:
    """Gradio's file folder as set for this process (None before :func:`use_gradio_files_folder`)."""
    return read("GRADIO_TEMP_DIR")


def markdown_table() -> str:
    """The README's table of settings."""
    lines = ["| Variable | Default | What it does |", "| --- | --- | --- |"]
    for variable in VARIABLES:
        lines.append(f"| `{variable.name}` | {variable.shown_default} | {variable.help} |")
    return "\n".join(lines)
