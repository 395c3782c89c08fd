"""The Gradio page, as a package of panels.

- ``page``: the layout, the page's opening, and each panel's ``wire`` called in turn; ``build_app``.
- ``live``: camera, image and video inputs, the prediction, the embedding map and the activation grid.
- ``classes``: the class cards with hold-to-record, the "help it learn" tray and the class tools.
- ``hood``: evaluation, data coach, class summary and unit view.
- ``layers``: layer pickers and the Activation Atlas.
- ``files``: save, export, open, the demo project and start over.
- ``joining``: the address and QR code others join by.
- ``wiring``, ``static_files``: outputs by name and what every panel's events share; the panels' style and script
  files (``static/``).
- ``settings``, ``context``, ``errors``, ``lifecycle``, ``saving``, ``served``, ``decoding``, ``server``: what the
  panels share and how the page is served.

Each panel module has a ``build`` (its components), its handlers, a ``wire`` (its events) and its files in
``static/``.

Every handler is a thin call into the person's :class:`~teachable.session.Session`; user errors become messages
on the page, never stack traces.
"""

from ..assets import ASSETS, DEMO_PROJECT, SAMPLES
from .page import build_app, load_icons
from .server import launch, prepare, serve
from .settings import ServerSettings

__all__ = ["build_app", "prepare", "serve", "launch", "load_icons", "ServerSettings", "ASSETS", "DEMO_PROJECT", "SAMPLES"]
