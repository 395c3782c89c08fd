"""The server's settings, read once from the environment when the app is launched."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..autosave import AutosaveSettings
from ..project import MAX_CLASSES
from ..session import MAX_EXAMPLES
from ..settings import SettingsError, read

__all__ = ["ServerSettings", "SettingsError"]


@dataclass(frozen=True)
class ServerSettings:
    idle_seconds: float = 2 * 60 * 60
    """TEACHABLE_SESSION_IDLE_SECONDS: a session with no frames, classifications or edits for this long is freed."""
    max_examples: int = MAX_EXAMPLES
    """TEACHABLE_MAX_EXAMPLES: a shared server's limit per person."""
    max_classes: int = MAX_CLASSES
    """TEACHABLE_MAX_CLASSES: classes per project (the review and the views compare every pair of classes)."""
    inference: str = "auto"
    """TEACHABLE_INFERENCE: where live frames run: local, batched (across sessions), auto (batched on a GPU) or ray
    (the Ray Serve deployment on the cluster at RAY_ADDRESS). See inference.py."""
    live_model: str = "auto"
    """TEACHABLE_LIVE_MODEL: where the model runs on live camera frames: auto (each participant's browser where it
    loads and keeps up, else this server), browser or server. See webapp/browser.py."""
    max_sessions: int = 200
    """TEACHABLE_MAX_SESSIONS: sessions whose state Gradio keeps; past it the least recently used is dropped. This
    bounds what closed tabs leave in memory; keep it well above the number of people using the server at once."""
    file_max_age_seconds: int = 30 * 60
    """TEACHABLE_FILE_MAX_AGE_SECONDS: uploads, saved projects and other served files older than this are deleted."""
    max_upload_mb: int = 20
    """TEACHABLE_MAX_UPLOAD_MB: largest upload (images, videos, project files)."""
    stream_every: float = 0.1
    """TEACHABLE_STREAM_EVERY: seconds between the frames a browser sends while the camera streams. Each frame is
    about 100 KB upstream, so 0.2 halves what a big room sends over its Wi-Fi (docs/SCALING.md)."""
    decode_budget_mb: int = 1024
    """TEACHABLE_DECODE_MB: memory that decoding uploaded images may take at once, over all people together. A decode
    reserves its share from the image's header first and waits (up to 10 s) while others hold the rest; an image
    that alone needs more is refused. Reserved at 12 bytes a pixel: a 50-megapixel image takes 600 MB."""
    video_plays: int = 2
    """TEACHABLE_VIDEO_PLAYS: videos played through the classifier at once, over all people together; more wait in
    Gradio's queue. Each holds up to one decoded 4K frame (about 25 MB) at a time."""
    files_max_mb: int = 2048
    """TEACHABLE_FILES_MAX_MB: Gradio's file folder (uploads, saved projects, exports and drawn images), all people
    together. An upload, save or export that would pass it is refused with a message."""
    upload_mb_per_client: int = 200
    """TEACHABLE_UPLOAD_MB_PER_CLIENT: what one address may upload within TEACHABLE_FILE_MAX_AGE_SECONDS (the time
    uploads are kept). Behind a reverse proxy on the same machine, the address it forwards (X-Forwarded-For); a
    connection from this machine without one counts against TEACHABLE_FILES_MAX_MB only."""
    commands_per_second: float = 10.0
    """TEACHABLE_COMMANDS_PER_SECOND: card commands (record, add, rename, ...) one page may send per second on
    average, twice that at once; more are refused with a message (a release of the record button never is)."""
    stream_time_limit: int = 30 * 60
    """A stream is closed after this; clicking the camera button again resumes it."""
    autosave: AutosaveSettings | None = None
    """Where and how long each browser's project is kept on disk (TEACHABLE_DATA_DIR, TEACHABLE_KEEP_HOURS,
    TEACHABLE_DATA_MAX_MB, TEACHABLE_AUTOSAVE); None: nothing is kept."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ServerSettings":
        """Settings from the environment (teachable.settings reads and checks every variable)."""
        return cls(
            idle_seconds=read("TEACHABLE_SESSION_IDLE_SECONDS", environ),
            max_examples=read("TEACHABLE_MAX_EXAMPLES", environ),
            inference=read("TEACHABLE_INFERENCE", environ),
            live_model=read("TEACHABLE_LIVE_MODEL", environ),
            max_sessions=read("TEACHABLE_MAX_SESSIONS", environ),
            file_max_age_seconds=read("TEACHABLE_FILE_MAX_AGE_SECONDS", environ),
            max_upload_mb=read("TEACHABLE_MAX_UPLOAD_MB", environ),
            max_classes=read("TEACHABLE_MAX_CLASSES", environ),
            stream_every=read("TEACHABLE_STREAM_EVERY", environ),
            decode_budget_mb=read("TEACHABLE_DECODE_MB", environ),
            video_plays=read("TEACHABLE_VIDEO_PLAYS", environ),
            files_max_mb=read("TEACHABLE_FILES_MAX_MB", environ),
            upload_mb_per_client=read("TEACHABLE_UPLOAD_MB_PER_CLIENT", environ),
            commands_per_second=read("TEACHABLE_COMMANDS_PER_SECOND", environ),
            autosave=_autosave_settings(environ),
        )


def _autosave_settings(environ: Mapping[str, str] | None) -> AutosaveSettings | None:
    settings = AutosaveSettings.from_env(environ)
    return settings if settings.enabled else None
