"""Where the files that ship with the app live. Importable without Gradio (the CLI uses it)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ASSETS", "DEMO_PROJECT", "SAMPLES", "icon_file"]

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEMO_PROJECT = ASSETS / "demo_project.zip"
"""A small project (cat, coffee, rocket) for people without a camera."""
SAMPLES = ASSETS / "try"
"""Sample photos offered under the Image tab."""


def icon_file(backbone_name: str, tap: str) -> Path:
    """The activation-grid icons made by `teachable atlas icons` for one backbone layer."""
    from .atlas import icon_path

    return icon_path(ASSETS, backbone_name, tap)
