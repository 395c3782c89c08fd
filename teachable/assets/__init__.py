"""The files that ship inside the package: demo project, sample photos, activation-grid icons.

They are package data, so a wheel carries them and an installed ``teachable`` finds them with
:mod:`importlib.resources` wherever it is installed. Icons a person makes later with ``teachable atlas icons`` for
another backbone go to a per-user folder (:func:`user_icons_folder`) when the installed package is read-only;
:func:`icon_file` looks there first. Importable without Gradio (the CLI uses it).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

__all__ = [
    "ASSETS",
    "CLASS_SAMPLES",
    "DEMO_PROJECT",
    "SAMPLES",
    "icon_file",
    "icon_output",
    "sample_photos",
    "user_icons_folder",
]

ASSETS = Path(str(resources.files(__name__)))
"""This folder. A regular install (wheel, sdist, editable) keeps package data as plain files."""
DEMO_PROJECT = ASSETS / "demo_project.zip"
"""A small project (cat, coffee, rocket) for people without a camera."""
SAMPLES = ASSETS / "try"
"""Sample photos offered under the Image tab."""
CLASS_SAMPLES = ASSETS / "samples"
"""Four crops per class of three of the photos; the demo project is made from them."""


def sample_photos() -> list[Path]:
    """Every bundled photo (the per-class crops and the try photos), in a stable order."""
    return sorted(ASSETS.rglob("*.jpg"))


def user_icons_folder() -> Path:
    """Where ``teachable atlas icons`` writes when the installed package cannot be written to."""
    import platformdirs

    return Path(platformdirs.user_data_dir("teachable")) / "icons"


def _icon_name(backbone_name: str, tap: str) -> str:
    return f"{backbone_name}.{tap}.npz"


def icon_file(backbone_name: str, tap: str) -> Path:
    """The activation-grid icons for one backbone layer: a person's own first, else the bundled ones."""
    own = user_icons_folder() / _icon_name(backbone_name, tap)
    return own if own.is_file() else ASSETS / "icons" / _icon_name(backbone_name, tap)


def icon_output(backbone_name: str, tap: str) -> Path:
    """Where new icons for a backbone layer go: beside the bundled ones if this copy is writable (a checkout), else
    the per-user folder, so an installed package in a read-only place still works."""
    bundled = ASSETS / "icons"
    folder = bundled if os.access(bundled, os.W_OK) else user_icons_folder()
    return folder / _icon_name(backbone_name, tap)
