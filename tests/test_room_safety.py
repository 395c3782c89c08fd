"""One person cannot break the page for others: hostile names in the exported page, the Join panel's headers, the
browser key's storage, and the budgets on decoding (issue 28)."""

from __future__ import annotations

import json
import re

import pytest

from teachable import webexport

HOSTILE_NAMES = ["<!--<script>", "</script><script>alert(1)</script>", "a & b > c", "\u2028line"]


def test_exported_page_keeps_hostile_class_names_inside_its_script(tmp_path):
    """A class named ``<!--<script>`` used to leave the page on "Loading the model..." forever: the HTML parser
    read the rest of the page as part of a script comment."""
    metadata = {"classes": json.dumps(HOSTILE_NAMES), "backbone": "efficientnet_lite0", "tap": "pool",
                "rule": "knn", "k": "5", "threshold": "0.5", "boundary": "0.1"}  # fmt: skip
    page = (webexport.write_page(b"model", metadata, tmp_path / "page") / "index.html").read_text()
    inline = page.split('<script src="model.js"></script>\n<script>', 1)[1].rsplit("</script>", 1)[0]
    assert "<" not in inline.split("const SETTINGS = ", 1)[1].split(";\n", 1)[0]
    assert "<!--" not in inline and "<script" not in inline.lower() and "</script" not in inline.lower()
    settings = re.search(r"const SETTINGS = (.*);\n", inline).group(1)
    assert json.loads(settings)["classes"] == HOSTILE_NAMES


def _browser_state_secrets(demo) -> list[str]:
    config = demo.get_config_file()
    return [c["props"]["secret"] for c in config["components"] if c.get("type") == "browserstate"]


def test_the_browser_keys_wrap_is_public_and_nothing_secret_is_made_for_it(backbone, tmp_path):
    """Gradio sends a BrowserState's passphrase to every visitor in /config, so it cannot keep anything secret: no
    secret is made or kept for it, and what every visitor gets is the fixed, public passphrase."""
    from teachable.autosave import AutosaveSettings
    from teachable.webapp import ServerSettings, build_app
    from teachable.webapp.saving import STORAGE_PASSPHRASE

    folder = tmp_path / "data"
    demo = build_app(backbone, settings=ServerSettings(autosave=AutosaveSettings(folder=folder)))
    assert _browser_state_secrets(demo) == [STORAGE_PASSPHRASE]
    files = [path for path in folder.rglob("*") if path.is_file()]
    assert not [path for path in files if "secret" in path.name], files


def test_a_folder_from_an_earlier_version_keeps_its_passphrase_so_stored_keys_read_back(tmp_path):
    from teachable.webapp.saving import STORAGE_PASSPHRASE, storage_passphrase

    assert storage_passphrase(tmp_path) == STORAGE_PASSPHRASE
    (tmp_path / "page-secret").write_text("x" * 43 + "\n")
    assert storage_passphrase(tmp_path) == "x" * 43
