"""teachable: teach a pretrained CNN by example from a webcam, and see inside it.

The modules follow the data: frames -> backbones -> knn -> project -> session, with projection, activations,
atlas, coach and summary beside them, and views/webapp/cli on top (docs/ARCHITECTURE.md).

Importing the package keeps it offline: the libraries it loads would otherwise reach out on their own, and
:data:`teachable.settings.LIBRARY_DEFAULTS` are set before any of them loads (a person's own setting wins).
tests/test_offline.py watches the app and the CLI for any outside lookup.
"""

from .settings import apply_library_defaults

apply_library_defaults()
