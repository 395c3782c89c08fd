"""One way to turn a person's mistakes into messages on the page, never stack traces."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from html import escape

import gradio as gr

from ..backbones import BackboneError
from ..frames import ImageError
from ..runners import InferenceError
from ..knn import KNNError
from ..project import ProjectError
from ..session import SessionError

__all__ = ["USER_ERRORS", "shows_errors", "message_of"]

USER_ERRORS = (SessionError, ProjectError, ImageError, KNNError, BackboneError, InferenceError)
"""Errors that describe what a person asked for; anything else is a bug and is left to Gradio's logging."""


def message_of(error: BaseException) -> str:
    """An error's message made safe to show: class names and file names are the person's text, not markup."""
    return escape(str(error))


def shows_errors(handler: Callable) -> Callable:
    """Show a user error raised by ``handler`` as a message on the page (works for generators too)."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except USER_ERRORS as error:
                raise gr.Error(message_of(error)) from None

        return generator

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except USER_ERRORS as error:
            raise gr.Error(message_of(error)) from None

    return wrapper
