"""What every panel shares: the backbone and what is made from it once per server, and the page-only state kept
per browser."""

from __future__ import annotations

import asyncio
import time
import weakref
from concurrent.futures import Executor
from dataclasses import dataclass, field

from ..activations import GridIcons
from ..autosave import Autosaver
from ..backbones import Backbone
from ..frames import DecodeBudget
from ..pacing import Pacer
from ..runners import FrameRunner
from ..session import Session
from .lifecycle import SessionRegistry
from .browser_inference import FRAMES_PER_SECOND, BrowserInference
from .frame_channel import FrameChannels
from .served import ExportSlots, FileBudget
from .settings import ServerSettings

__all__ = ["AppContext", "CommandRate", "PageState", "EXPORTS_AT_ONCE"]

EXPORTS_AT_ONCE = 1
"""torch's ONNX exporter keeps global state (two exports at once in one process fail with "GLOBALS.in_onnx_export
must be False"), so exports run one at a time; :class:`ExportSlots` serves people in turn, one export each."""


@dataclass(frozen=True)
class AppContext:
    """Per server: read by every session, changed by none."""

    backbone: Backbone
    icons: GridIcons | None
    settings: ServerSettings
    runner: FrameRunner
    map_executor: Executor
    live_sessions: weakref.WeakSet = field(default_factory=weakref.WeakSet)
    """Sessions seen in use, for the idle reaper."""
    startup_warning: str | None = None
    served_urls: tuple[str, ...] = ()
    """The addresses the server was started on, best first (for the Join panel)."""
    autosaver: Autosaver | None = None
    """Keeps each browser's project on disk (None: autosave is off)."""
    sessions_by_key: SessionRegistry = field(default_factory=lambda: SessionRegistry(200))
    """Browser key -> its live session, so a second tab, a reload of the same browser, or a page whose state Gradio
    dropped picks up the same one (the page sets its capacity and saving when it is built)."""
    decode_budget: DecodeBudget | None = None
    """Memory for decoding uploaded images, shared by everyone (from ``settings.decode_budget_mb``)."""
    file_budget: FileBudget | None = None
    """Disk for the files served to people (saved projects, exports), all together; None: unbounded."""
    export_slots: ExportSlots = field(default_factory=lambda: ExportSlots(EXPORTS_AT_ONCE))
    """Exports in turn, one per person at a time."""
    browser: BrowserInference = field(default_factory=lambda: BrowserInference("server"))
    """Where live frames' model runs, and the model browsers load (webapp/browser.py)."""
    pacer: Pacer = field(default_factory=Pacer)
    """Shared by every session: re-embedding and large decodes give way to everyone's live frames (pacing.py)."""
    frame_channels: FrameChannels = field(default_factory=lambda: FrameChannels(200))
    """Channel token -> the page a browser that runs the model sends its frames for (webapp/frame_channel.py)."""

    def __post_init__(self) -> None:
        if self.decode_budget is None:
            budget = DecodeBudget(self.settings.decode_budget_mb * 2**20, pacer=self.pacer)
            object.__setattr__(self, "decode_budget", budget)

    def new_page(self) -> "PageState":
        rate, frames = self.settings.commands_per_second, FRAMES_PER_SECOND
        return PageState(
            command_rate=CommandRate(rate, burst=2 * rate, tokens=2 * rate),
            frame_rate=CommandRate(frames, burst=2 * frames, tokens=2 * frames),
        )

    def new_session(self) -> Session:
        return Session(
            self.backbone,
            icons=self.icons,
            map_executor=self.map_executor,
            max_examples=self.settings.max_examples,
            max_classes=self.settings.max_classes,
            runner=self.runner,
            pacer=self.pacer,
        )


@dataclass
class CommandRate:
    """How many card commands a page may send: ``per_second`` on average, ``burst`` at once (a token bucket)."""

    per_second: float = 10.0
    burst: float = 20.0
    tokens: float = 20.0
    checked_at: float = float("-inf")

    def allow(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.checked_at) * self.per_second)
        self.checked_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class PageState:
    """Per browser, page-only: what the page last drew, so unchanged parts are not sent again."""

    layout_key: tuple | None = None
    cards_key: tuple | None = None
    tray_version: int = -1
    neighbours_key: tuple | None = None
    browser_key: str | None = None
    """The browser's autosave key (kept in its localStorage)."""
    saved_state: tuple | None = None
    """``Session.state_key()`` when the last autosave was asked for."""
    saved_asked_at: float = 0.0
    last_take_command: float = float("-inf")
    """The page's time stamp on the latest record or stop carried out: an older one arriving later is dropped."""
    command_rate: CommandRate = field(default_factory=CommandRate)
    """Card commands beyond this rate are refused (a stop never is), so one page's flood does not slow others."""
    command_turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    """This page's card commands run one after another (webapp/classes.py ``in_page_turn``)."""
    commands_waiting: int = 0
    """This page's card commands waiting for their turn or running."""
    frame_rate: CommandRate = field(default_factory=CommandRate)
    """Frames a browser that runs the model may send (webapp/browser.py); more are refused."""
    channel: str | None = None
    """The token this page sends its frames with when its browser runs the model (webapp/frame_channel.py)."""
    served_files: dict[str, str] = field(default_factory=dict)
    """The folders of the files made for this page ("project", "export"): one of each, removed with the page."""

    def redraw_everything(self) -> None:
        self.layout_key = self.cards_key = self.neighbours_key = None
        self.tray_version = -1
