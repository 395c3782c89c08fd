"""Every ``>>>`` example in the package runs: each module under teachable/ whose source holds one is found by
scanning (so a new one is picked up) and run with doctest."""

import doctest
import importlib
from pathlib import Path

import pytest

import teachable

PACKAGE = Path(teachable.__file__).parent


def modules_with_examples() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_scan_finds_the_modules_known_to_have_examples():
    assert {"teachable.knn", "teachable.cache", "teachable.atomic"} <= set(modules_with_examples())


@pytest.mark.parametrize("name", modules_with_examples())
def test_examples_run(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "teachable":
            raise
        pytest.skip(f"{name} needs {error.name}, an optional extra that is not installed")
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (printed above)"
