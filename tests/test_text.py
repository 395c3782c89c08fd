import html
import re

import pytest

from teachable.text import escape_markdown

HOSTILE_NAMES = [
    "![t](http://host/x.png)",
    "[Log in](http://example.invalid/login)",
    "<img src=x onerror=alert(1)>",
    "**bold** _it_ `code` ~~gone~~",
    "# heading",
    "> quote",
    "1. list",
    "- item",
    "a\\b\\\\c",
    "&lt;script&gt;",
    "http://example.invalid/bare",
    "www.example.invalid",
    "line\n# two",
    "| a | b |",
    "$x^2$",
    ":smile:",
    "thumbs 👍 Ünïcødé",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_escaped_names_render_as_exactly_their_text(name):
    markdown_it = pytest.importorskip("markdown_it")
    rendered = markdown_it.MarkdownIt("commonmark").render(f"Added to {escape_markdown(name)}.")
    assert not re.search(r"<(?!/?p>)", rendered), rendered  # only the paragraph: no a, img, em, code, h1 ...
    text = html.unescape(re.sub(r"</?p>", "", rendered)).strip()
    assert text == f"Added to {name.replace(chr(10), ' ')}."


@pytest.mark.parametrize("name", ["http://example.invalid/x", "www.example.invalid", "HTTPS://x.invalid"])
def test_escaped_urls_no_longer_match_what_renderers_link_by_themselves(name):
    escaped = escape_markdown(name)
    assert not re.search(r"(?i)(https?://|www\.)", escaped), escaped


def test_plain_names_are_unchanged_and_anything_becomes_text():
    assert escape_markdown("cup") == "cup"
    assert escape_markdown("thumbs 👍") == "thumbs 👍"
    assert escape_markdown(42) == "42"
