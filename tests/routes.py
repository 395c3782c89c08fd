"""Fresh places to install teachable into, the way people get it, for the install-route tests.

A fresh virtual environment with every dependency installed from scratch is 6 GB and minutes of copying (torch
alone is 5.5 GB), too much for each test run. So the environment here is new, with an empty site-packages, and it *sees* the test run's own third-party packages through a path file: pip resolves each route's
requirements against them (``--no-index``: nothing is fetched, and a requirement they do not satisfy fails the
test), while teachable itself is absent until the route installs it. The full routes, from an empty cache, were
timed by hand; their figures are in docs/INSTALL.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _left_out(name: str) -> bool:
    """teachable's own entries (the editable install of the checkout), and path files, which would not run."""
    return name.lower().startswith(("teachable", "__editable__")) or name.endswith(".pth")


def fresh_environment(folder: Path) -> Path:
    """A new virtual environment in ``folder`` that sees this run's third-party packages but not teachable; the
    path of its python."""
    # Without pip of its own: `python -m pip` finds this run's pip among the dependencies it sees, and installs into
    # the new environment (an older bundled pip and setuptools would shadow the ones torch asks for).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    python = folder / "bin" / "python"
    own = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    view = folder / "dependencies"
    view.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not _left_out(entry.name) and not (own / entry.name).exists():
            (view / entry.name).symlink_to(entry)
    (own / "zz-dependencies.pth").write_text(f"{view}\n")  # after the environment's own packages
    return python


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a person who never ran teachable: a new home folder, no teachable settings, and no path
    back into the repository."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEACHABLE_", "XDG_", "PYTHON", "VIRTUAL_ENV", "GRADIO_", "ORT_", "HF_"))
    }
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), **extra}


def copy_tracked_files(destination: Path) -> Path:
    """The repository as a host copies it: the files git tracks (or would, for new ones), and nothing built."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = destination / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def build_wheel(destination: Path) -> Path:
    """The wheel `pip wheel .` makes, built from a copy of the tracked files (no build folders left in the
    checkout); with this run's setuptools, so nothing is fetched."""
    source = copy_tracked_files(destination / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(destination), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (wheel,) = destination.glob("teachable-*.whl")
    return wheel
