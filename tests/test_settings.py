"""Settings: one reader with one rule set, every variable read there and nowhere else, and the README's table made
from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from teachable import settings
from teachable.settings import VARIABLES, SettingsError, markdown_table, read

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "teachable"
ENVIRONMENT_READ = re.compile(r"\bos\.environ\b|\bgetenv\(|\benviron\.get\(|\benviron\[")
NAMED = re.compile(r"[\"'`$]((?:TEACHABLE|GRADIO|SPACE|SPACES|RAY)_[A-Z0-9_]+)")
NOT_SETTINGS = {
    "GRADIO_ANALYTICS_ENABLED",  # written for the libraries (LIBRARY_DEFAULTS), never read
    "GRADIO_ANALYTICS_CACHE_FREQUENCY",
    "TEACHABLE_ORT",  # globals of the exported web page's scripts
    "TEACHABLE_MODEL",
}


def package_sources() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def test_the_readme_table_is_the_one_settings_py_makes():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme


def test_nothing_outside_settings_py_reads_the_environment():
    readers = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in package_sources()
        if path.name != "settings.py" or path.parent != PACKAGE
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ENVIRONMENT_READ.search(line)
    ]
    assert readers == []


def test_every_variable_the_code_names_is_a_setting():
    known = {variable.name for variable in VARIABLES} | NOT_SETTINGS
    named = {name for path in package_sources() for name in NAMED.findall(path.read_text())}
    assert named - known == set()
    assert len(known) == len(VARIABLES) + len(NOT_SETTINGS)  # no name listed twice


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("TEACHABLE_MAX_SESSIONS", "", 200),
        ("TEACHABLE_MAX_SESSIONS", "  ", 200),
        ("TEACHABLE_MAX_SESSIONS", " 12 ", 12),
        ("TEACHABLE_STREAM_EVERY", "0.25", 0.25),
        ("TEACHABLE_INFERENCE", "Local", "local"),
        ("TEACHABLE_AUTOSAVE", "OFF", False),
        ("TEACHABLE_AUTOSAVE", "yes", True),
        ("SPACES_ZERO_GPU", "true", True),
        ("SPACES_ZERO_GPU", "off", False),
        ("TEACHABLE_DATA_DIR", "~/kept", Path("~/kept").expanduser()),
        ("SPACE_HOST", " me-app.example ", "me-app.example"),
    ],
)
def test_each_kind_reads_its_values(name, text, value):
    assert read(name, {name: text}) == value


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("TEACHABLE_MAX_SESSIONS", "abc"),
        ("TEACHABLE_MAX_SESSIONS", "0"),
        ("TEACHABLE_MAX_SESSIONS", "2.5"),
        ("TEACHABLE_STREAM_EVERY", "nan"),
        ("TEACHABLE_STREAM_EVERY", "inf"),
        ("TEACHABLE_STREAM_EVERY", "-1"),
        ("TEACHABLE_RAY_BATCH_WAIT_MS", "0"),
        ("TEACHABLE_INFERENCE", "bogus"),
        ("TEACHABLE_RUNTIME", "gpu"),
    ],
)
def test_a_value_that_breaks_its_rule_is_one_line_naming_the_variable(name, text):
    with pytest.raises(SettingsError) as caught:
        read(name, {name: text})
    message = str(caught.value)
    assert message.startswith(f"{name}={text!r} ") and "\n" not in message


def test_an_unknown_name_is_a_programming_error_not_a_setting():
    with pytest.raises(KeyError, match="not a setting"):
        read("TEACHABLE_NOPE", {})


def test_defaults_are_the_ones_the_code_uses():
    from teachable.autosave import PEOPLE_PER_CAP, AutosaveSettings
    from teachable.project import MAX_CLASSES
    from teachable.session import MAX_EXAMPLES
    from teachable.webapp.settings import ServerSettings

    server = ServerSettings.from_env({})
    assert read("TEACHABLE_MAX_EXAMPLES", {}) == MAX_EXAMPLES == server.max_examples
    assert read("TEACHABLE_MAX_CLASSES", {}) == MAX_CLASSES == server.max_classes
    assert server == ServerSettings(autosave=server.autosave)  # every default of the dataclass is the registry's
    autosave = AutosaveSettings.from_env({})
    assert autosave == AutosaveSettings(autosave.folder)
    assert "32 people" in next(v.help for v in VARIABLES if v.name == "TEACHABLE_DATA_PERSON_MB")
    assert PEOPLE_PER_CAP == 32


def test_library_defaults_are_set_on_import_and_a_persons_own_value_wins(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    settings.apply_library_defaults()
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "0" and os.environ["ORT_DISABLE_TELEMETRY"] == "1"
