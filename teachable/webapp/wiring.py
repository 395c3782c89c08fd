"""How the panels wire their events: outputs by name, and what every panel's events share.

A handler with several outputs returns one frozen dataclass of its panel (``LiveOutputs``, ``ClassOutputs``, ...),
one field per thing it may change; a field it leaves at :data:`KEEP` stays as it is on the page. The wiring
fills an instance of the same dataclass with components, and :func:`wired` turns the handler's answer into
Gradio's ``{component: value}``. So an output is found by its name, never by its position: adding one cannot
shift the others, and a handler that draws less simply leaves fields out.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Shown:
...     label: object = KEEP
...     note: object = KEEP
>>> handler, outputs = wired(lambda: Shown(note="hello"), Shown(label="label box", note="note box"))
>>> outputs, handler()
(['label box', 'note box'], {'note box': 'hello'})
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields

import gradio as gr

from .context import AppContext
from .saving import reattach

__all__ = ["KEEP", "PageWiring", "wired", "handler_name"]


class _Keep:
    """The value of an output a handler leaves as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = _Keep()


def handler_name(handler: Callable) -> str:
    """A handler's function name, through ``functools.partial`` (Gradio names events after it)."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    return getattr(handler, "__name__", "handler")


def wired(handler: Callable, targets) -> tuple[Callable, list]:
    """``handler`` as Gradio calls it, and the event's outputs.

    ``targets`` is the handler's output dataclass filled with components (a field left None or KEEP is not an
    output of this event). The outputs are those components in field order, which is also the order an API client gets them
    in; the wrapped handler (plain, generator or async, like ``handler``) answers ``{component: value}`` for the
    fields its answer sets."""
    shown = [(field.name, getattr(targets, field.name)) for field in fields(targets)]
    shown = [(name, component) for name, component in shown if component is not None and component is not KEEP]
    kind = type(targets)

    def by_component(answer) -> dict:
        if not isinstance(answer, kind):
            raise TypeError(f"{handler_name(handler)} answered {type(answer).__name__}, not {kind.__name__}")
        values = [(component, getattr(answer, name)) for name, component in shown]
        return {component: value for component, value in values if value is not KEEP} or gr.skip()  # all stay

    if inspect.isgeneratorfunction(handler):

        def run(*args, **kwargs):
            for answer in handler(*args, **kwargs):
                yield by_component(answer)

    elif inspect.iscoroutinefunction(handler):

        async def run(*args, **kwargs):
            return by_component(await handler(*args, **kwargs))

    else:

        def run(*args, **kwargs):
            return by_component(handler(*args, **kwargs))

    functools.update_wrapper(run, handler)  # Gradio reads the handler's signature (gr.Progress, gr.Request)
    run.__name__ = handler_name(handler)
    return run, [component for _, component in shown]


@dataclass(frozen=True)
class PageWiring:
    """What every panel's events need from the page: the server's context, the per-browser states, and the step
    chained after every change to the examples (it refreshes "Under the hood", which also autosaves)."""

    app: AppContext
    session: gr.State
    page: gr.State
    browser_key: gr.BrowserState | None
    after_change: tuple
    """``(handler, inputs, outputs)`` for ``.then(*after_change)``."""

    def own(self, handler: Callable, inputs, outputs) -> tuple[Callable, list, object]:
        """``(handler, inputs, outputs)`` of an event whose first input is the session, made to work on the session
        this browser owns: with autosave on, the page state follows the session and the browser key follows the
        other inputs, and the session becomes the one ``saving.reattach`` finds (as :meth:`reattaching` does for
        frames and card commands). A page whose state Gradio dropped (its cap counts every page load) then saves,
        exports and reviews its own work, not an empty session. Parameters Gradio fills in itself (a
        ``gr.Progress`` default) keep their place after the inputs."""
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if self.browser_key is None:
            return handler, inputs, outputs
        app, count = self.app, len(inputs)

        def owned(args: tuple) -> tuple:
            session, page, key = args[0], args[1], args[count + 1]
            return reattach(app, session, page, key), *args[2 : count + 1], *args[count + 2 :]

        if inspect.iscoroutinefunction(handler):  # Gradio awaits it (an export waiting for its slot)

            async def run(*args):
                return await handler(*owned(args))

        elif inspect.isgeneratorfunction(handler):

            def run(*args):
                yield from handler(*owned(args))

        else:

            def run(*args):
                return handler(*owned(args))

        parameters = list(inspect.signature(handler).parameters.values())
        positional = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        keywords = [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]
        page = inspect.Parameter("_page", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        key = inspect.Parameter("_browser_key", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
        run.__signature__ = inspect.Signature([positional[0], page, *positional[1:count], key, *positional[count:],
                                               *keywords])  # fmt: skip
        run.__name__ = handler_name(handler)
        return run, [inputs[0], self.page, *inputs[1:], self.browser_key], outputs

    def reattaching(self, handler: Callable, at: int) -> tuple[Callable, list]:
        """``handler`` and the inputs to add after its own: with autosave on, the browser key comes last, and the
        session argument at ``at`` (the page state follows it) becomes the one ``saving.reattach`` finds, so a page
        whose state Gradio dropped carries on with its own session instead of an empty one."""
        if self.browser_key is None:
            return handler, []
        app = self.app

        def run(*args):
            *args, key = args
            args[at] = reattach(app, args[at], args[at + 1], key)
            return handler(*args)

        run.__name__ = handler_name(handler)
        return run, [self.browser_key]
