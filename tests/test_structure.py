"""The shape of the code: modules depend on each other one way only, and no class grows past what one reader
holds in mind. (Settings read in one place: tests/test_settings.py.)"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "teachable"
MAX_CLASS_LINES = 260


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], package_folder: Path = PACKAGE) -> set[str]:
    """The package's modules that ``path`` imports, at the top or inside a function alike."""
    name = module_name(path, package_folder)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in modules else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return (found & modules) - {name}


def package_files() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def test_no_two_modules_import_each_other():
    files = package_files()
    modules = {module_name(path) for path in files}
    graph = {module_name(path): imports_of(path, modules) for path in files}
    two_way = sorted(
        f"{first} <-> {second}" for first, targets in graph.items() for second in targets
        if first < second and first in graph.get(second, set())
        and not (second.startswith(first + ".") or first.startswith(second + "."))  # a package and its own parts
    )  # fmt: skip
    assert two_way == []


def test_the_import_scan_sees_a_two_way_dependency_when_there_is_one(tmp_path):
    package = tmp_path / "teachable"
    package.mkdir()
    (package / "one.py").write_text("from .two import x\n")
    (package / "two.py").write_text("def f():\n    from . import one\n")
    modules = {"teachable.one", "teachable.two"}
    assert imports_of(package / "one.py", modules, package) == {"teachable.two"}
    assert imports_of(package / "two.py", modules, package) == {"teachable.one"}


def test_no_class_is_longer_than_a_reader_holds_in_mind():
    too_long = []
    for path in package_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    too_long.append(f"{path.relative_to(PACKAGE)}:{node.name} has {lines} lines")
    assert too_long == []
