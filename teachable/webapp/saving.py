"""Nothing lost: each browser's project is kept on the server's disk under a random key that the browser keeps,
saved shortly after each change and restored when the page opens again (after a reload, a closed tab, a browser
restart or a server restart).

Two tabs of one browser share the key, and so share one session: both show and change the same project.
"""

from __future__ import annotations

import logging
import time
from html import escape
from pathlib import Path

import gradio as gr

from ..autosave import new_key, restore_project, valid_key
from ..session import Session
from ..views import message_html
from .context import AppContext, PageState

__all__ = [
    "build",
    "open_session",
    "reattach",
    "save_dropped",
    "save_before_clearing",
    "autosave",
    "saved_status",
    "start_over",
    "where_work_is_kept",
    "FRAME_SAVE_INTERVAL",
]

log = logging.getLogger(__name__)

FRAME_SAVE_INTERVAL = 1.0
"""While frames add examples, a snapshot is handed to the autosaver at most this often (a copy of the project)."""
STORAGE_KEY = "teachable-browser-key"


def build(app: AppContext):
    """The browser's key (localStorage) and the small "saved" line; (None, None) when autosave is off."""
    if app.autosaver is None:
        return None, None
    wrap = storage_passphrase(app.autosaver.store.folder)
    key = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=wrap)
    saved = gr.HTML(elem_id="saved")
    return key, saved


STORAGE_PASSPHRASE = "teachable-browser-key"
"""What Gradio wraps the browser's key with in localStorage. Gradio sends it to every visitor in the page's config,
so it cannot be a secret and is not one: the browser key itself (256 random bits, kept in that browser and sent only
to this server) is what guards a person's saved work. A fixed value reads back after a restart and on every app
process that shares the data folder."""
LEGACY_SECRET = "page-secret"
"""Earlier versions made a random passphrase per data folder (served to every visitor just the same); where that
file exists it is still used, so that browsers which stored their key with it find their work again."""


def storage_passphrase(folder: Path) -> str:
    """The passphrase for the browser's key: :data:`STORAGE_PASSPHRASE`, or a data folder's legacy one."""
    try:
        legacy = (Path(folder) / LEGACY_SECRET).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return STORAGE_PASSPHRASE
    return legacy if len(legacy) >= 32 else STORAGE_PASSPHRASE


def open_session(app: AppContext, session: Session, page: PageState, key) -> tuple[Session, str]:
    """When the page opens: the session to use (this browser's live one, or this one with the saved project
    restored) and the key to keep (a new one when the browser had none, or a malformed one)."""
    if not valid_key(key):
        key = new_key()
    page.browser_key = key
    live = app.sessions_by_key.get(key)
    if live is not None:
        session = live  # another tab of this browser, or the page before a reload: the same session
    else:
        restore(app, session, key)
        app.sessions_by_key[key] = session
    page.saved_state = _state_if_free(session)
    return session, key


def _state_if_free(session: Session) -> tuple | None:
    """The session's ``state_key()``, or None while its lock is held by long work (an atlas, a project loading):
    a page load never waits for that; the page's next change is then saved even if nothing changed."""
    if not session.lock.acquire(blocking=False):
        return None
    try:
        return session.state_key()
    finally:
        session.lock.release()


def reattach(app: AppContext, session: Session, page: PageState, key=None) -> Session:
    """The session a request should use. Gradio drops the state of its least recently used pages past its cap (so
    anyone opening many pages could push out an idle person's): such a page arrives with a fresh session and page
    state, and gets its own session back by the browser key it sends (``key``), from memory or from disk."""
    if app.autosaver is None:
        return session
    if page.browser_key is None:
        return open_session(app, session, page, key)[0] if valid_key(key) else session
    live = app.sessions_by_key.get(page.browser_key)
    if live is None:  # pushed out of the registry (and saved) while this page still held it: keep it there again
        app.sessions_by_key[page.browser_key] = session
        return session
    return live


def save_dropped(app: AppContext, key: str, session: Session) -> None:
    """A session pushed out of the registry: saved (its snapshot taken in the autosaver's thread), so it comes back
    from its key. One without examples has nothing worth a file."""
    if app.autosaver is None or not len(session.project):
        return

    def snapshot():
        project, settings = session.snapshot()
        return project.to_bytes(), settings

    app.autosaver.changed(key, snapshot)


def save_before_clearing(app: AppContext, session: Session) -> None:
    """Before the idle reaper drops a session's examples: a copy taken now is handed to the autosaver."""
    key = app.sessions_by_key.key_of(session)
    if app.autosaver is None or key is None:
        return
    project, settings = session.snapshot()
    app.autosaver.changed(key, lambda: (project.to_bytes(), settings))


def restore(app: AppContext, session: Session, key: str) -> bool:
    """Bring back the project and settings saved under ``key``; False when there are none."""
    if app.autosaver.pending(key):
        app.autosaver.flush()  # a save handed over just before (an idle clear, a dropped session) comes first
    try:
        restored = restore_project(
            app.autosaver.store, key, app.backbone,
            max_examples=session.max_examples, max_classes=session.max_classes,
        )  # fmt: skip
    except OSError as error:
        log.warning("An autosaved project could not be read: %s", error)
        return False
    if restored is None:
        return False
    project, settings = restored
    session.replace_project(project)
    session.restore_settings(settings)
    return True


def autosave(app: AppContext, session: Session, page: PageState, min_interval: float = 0.0) -> None:
    """Ask for a save when the project or the settings changed since the last one. Cheap when nothing changed;
    the save itself happens in the autosaver's thread, from a copy taken here."""
    if app.autosaver is None or page.browser_key is None:
        return
    if session.cleared_when_idle:  # its examples were dropped for idleness: bring them back, never save the void
        restore(app, session, page.browser_key)
        session.resume_after_idle_clear()
        page.saved_state = session.state_key()
        return
    state = session.state_key()
    now = time.monotonic()
    if state == page.saved_state or now - page.saved_asked_at < min_interval:
        return
    project, settings = session.snapshot()
    page.saved_state, page.saved_asked_at = state, now
    app.autosaver.changed(page.browser_key, lambda: (project.to_bytes(), settings))


def where_work_is_kept(app: AppContext) -> str:
    """What survives what, in the Project panel's words: honest on a Space, whose disk a restart empties."""
    settings = app.settings.autosave
    if app.autosaver is None or settings is None:
        return "This server keeps nothing: use **Save project** to keep your work as a file."
    hours = f"{settings.keep_hours:g} hours"
    if not settings.lasts_restarts:
        return (
            "Your work is kept on this Space while it runs: reloading the page brings it back, but a restart of the "
            f"Space (or {hours} without changes) does not. Use **Save project** to keep a copy."
        )
    return (
        "Your work is saved on this server as you go and comes back when this browser opens the page again "
        f"(kept for {hours} after the last change). **Save project** gives you a copy to keep."
    )


def saved_status(app: AppContext, page: PageState) -> str:
    """The "saved" line: whether this browser's work is on disk."""
    if app.autosaver is None or page.browser_key is None:
        return ""
    status = app.autosaver.status(page.browser_key)
    if not status and not app.settings.autosave.lasts_restarts:
        return '<span class="tm-saved">Kept while this Space runs; <b>Save project</b> to keep a copy.</span>'
    if not status:
        return '<span class="tm-saved">Your work is saved on this server as you go.</span>'
    if status.startswith("Not saved"):  # refused by the disk budget: the page says why and what to do
        return f'<span class="tm-saved tm-not-saved" role="status">{escape(status)}</span>'
    return f'<span class="tm-saved">✓ {status}</span>' if status.startswith("Saved") else f'<span class="tm-saved">{status}</span>'


def start_over(app: AppContext, session: Session, page: PageState) -> str:
    """An empty project, and the saved copy removed."""
    session.start_over()
    if app.autosaver is not None and page.browser_key is not None:
        app.autosaver.discard(page.browser_key)
    page.saved_state = session.state_key()
    page.redraw_everything()
    return message_html("Started over: the examples are gone, here and on the server.")
