"""What every panel shares: the backbone and what is made from it once per server, and the page-only state kept
per browser."""

from __future__ import annotations

import weakref
from concurrent.futures import Executor
from dataclasses import dataclass, field

from ..activations import GridIcons
from ..backbones import Backbone
from ..inference import FrameRunner
from ..session import Session
from .settings import ServerSettings

__all__ = ["AppContext", "PageState"]


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

    def new_session(self) -> Session:
        return Session(
            self.backbone,
            icons=self.icons,
            map_executor=self.map_executor,
            max_examples=self.settings.max_examples,
            runner=self.runner,
        )


@dataclass
class PageState:
    """Per browser, page-only: what the page last drew, so unchanged parts are not sent again."""

    layout_key: tuple | None = None
    cards_key: tuple | None = None
    tray_version: int = -1

    def redraw_everything(self) -> None:
        self.layout_key = self.cards_key = None
        self.tray_version = -1
