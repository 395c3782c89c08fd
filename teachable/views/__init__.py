"""HTML for the page, one module per panel. Pure functions of a session's data: class names are escaped,
thumbnails are inlined as data URIs (they are JPEG already, so nothing is decoded or written to disk per frame).

- ``html``: the class colours, inlined pictures and the message line every panel uses;
- ``prediction``: the top label, the confidence bars and the nearest examples;
- ``classes``: the class cards, the "help it learn" tray and the strip of a class's examples;
- ``embedding_map``: the map's points, each class's reach, and the live frame's moving point;
- ``grid``: the activation grid and the icon sheet it is drawn from;
- ``hood``: the evaluation, the classification view, class summaries and the unit view;
- ``layers``: the backbone's stages and the Activation Atlas.

Their styles are the page's files beside the panels (``teachable/webapp/static/``).
"""

from .classes import class_cards_html, classes_html, strip_html, tray_html
from .embedding_map import (
    MAX_DRAWN_POINTS,
    density_image,
    drawn_rows,
    map_live_html,
    map_points_html,
    outside_reach,
)
from .grid import grid_html, icon_sheet_html
from .hood import CLASSIFICATION_VIEW_EXAMPLES, channels_html, evaluation_html, unit_html
from .html import class_colour, image_html, message_html
from .layers import architecture_html, atlas_image
from .prediction import neighbours_html, neighbours_key, prediction_html

__all__ = [
    "prediction_html",
    "classes_html",
    "message_html",
    "class_colour",
    "map_points_html",
    "map_live_html",
    "image_html",
    "grid_html",
    "icon_sheet_html",
    "atlas_image",
    "architecture_html",
    "evaluation_html",
    "channels_html",
    "unit_html",
    "strip_html",
    "class_cards_html",
    "neighbours_html",
    "neighbours_key",
    "tray_html",
    "outside_reach",
    "density_image",
    "drawn_rows",
    "MAX_DRAWN_POINTS",
    "CLASSIFICATION_VIEW_EXAMPLES",
]
