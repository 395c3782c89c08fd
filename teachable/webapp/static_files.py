"""The page's styles and scripts: files in ``teachable/webapp/static/`` (package data), one or two per panel, read
once and put together for Gradio's ``launch(css=..., js=...)``.

Each panel module names its own files (``STYLES`` and ``SCRIPTS``). Every script is a list of statements run once
when the page opens; each runs in a block of its own, so their names cannot collide, and they talk to the page
only through its elements (the ids the panels give them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources

__all__ = ["static_text", "stylesheet", "page_script"]


@functools.lru_cache(maxsize=None)
def static_text(name: str) -> str:
    """One file of ``static/``, read once (package data, so it is found in a wheel as in the checkout)."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def stylesheet(names: Iterable[str]) -> str:
    """The style files, in order (later rules win between files as within one)."""
    return "\n".join(static_text(name) for name in names)


def page_script(names: Iterable[str]) -> str:
    """The script files as the one function Gradio runs when the page opens, each file in a block of its own."""
    blocks = "".join(f"{{  // {name}\n{static_text(name)}}}\n" for name in names)
    return f"() => {{\n{blocks}}}"
