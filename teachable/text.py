"""Text that is placed in Markdown messages: class names and file names from people and from shared project files."""

from __future__ import annotations

import string

__all__ = ["escape_markdown"]

MARKDOWN_PUNCTUATION = frozenset(string.punctuation)
"""Every ASCII punctuation character: each can be backslash-escaped in Markdown, and escaping all of them also
breaks the ``http://`` and ``www.`` patterns that renderers turn into links by themselves."""


def escape_markdown(text: object) -> str:
    """``text`` as Markdown that shows exactly those characters: no links, images, emphasis, HTML or headings.

    Every ASCII punctuation character gets a backslash, and line breaks become spaces (a message is one line; a
    line break could start a heading or a list). Use it for any name placed in a Markdown message.
    """
    escaped = []
    for character in str(text):
        if character in MARKDOWN_PUNCTUATION:
            escaped.append("\\" + character)
        elif character in "\r\n\u2028\u2029":
            escaped.append(" ")
        else:
            escaped.append(character)
    return "".join(escaped)
