"""One person cannot break the page for others: hostile names in the exported page, the Join panel's headers, the
browser key's storage, and the budgets on decoding (issue 28)."""

from __future__ import annotations

import json
import re

import pytest

from teachable import webexport

HOSTILE_NAMES = ["<!--<script>", "</script><script>alert(1)</script>", "a & b > c", "\u2028line"]


def test_exported_page_keeps_hostile_class_names_inside_its_script(tmp_path, monkeypatch):
    """A class named ``<!--<script>`` used to leave the page on "Loading the model..." forever: the HTML parser
    read the rest of the page as part of a script comment."""
    monkeypatch.setattr(webexport, "ort_web_tarball", lambda: None)
    fake_ort = {name: b"" for name in webexport.ORT_FILES} | {"package.json": b"{}"}
    monkeypatch.setattr(webexport, "_ort_files", lambda _tarball: fake_ort)
    metadata = {"classes": json.dumps(HOSTILE_NAMES), "backbone": "efficientnet_lite0", "tap": "pool",
                "rule": "knn", "k": "5", "threshold": "0.5", "boundary": "0.1"}  # fmt: skip
    page = (webexport.write_page(b"model", metadata, tmp_path / "page") / "index.html").read_text()
    inline = page.split('<script src="model.js"></script>\n<script>', 1)[1].rsplit("</script>", 1)[0]
    assert "<" not in inline.split("const SETTINGS = ", 1)[1].split(";\n", 1)[0]
    assert "<!--" not in inline and "<script" not in inline.lower() and "</script" not in inline.lower()
    settings = re.search(r"const SETTINGS = (.*);\n", inline).group(1)
    assert json.loads(settings)["classes"] == HOSTILE_NAMES
