"""teachable: teach a pretrained CNN by example from a webcam, and see inside it.

The modules follow the data: frames -> backbones -> knn -> project -> session, with projection, activations,
atlas, coach and summary beside them, and views/webapp/cli on top (docs/ARCHITECTURE.md).

Importing the package keeps it offline: the libraries it loads would otherwise reach out on their own, and each
default below is set before any of them loads (a person's own setting wins). ONNX Runtime looks up its telemetry
host every few seconds and writes a device id under the home folder unless ``ORT_DISABLE_TELEMETRY`` is set
(``ort.disable_telemetry_events()`` does not stop it); Gradio reports each launch and checks for a newer version;
the Hugging Face hub client (under timm and Gradio) retries for tens of seconds before it fails without a network.
tests/test_offline.py watches the app and the CLI for any outside lookup.
"""

import os

OFFLINE_DEFAULTS = (("ORT_DISABLE_TELEMETRY", "1"), ("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"))


def _stay_offline() -> None:
    for name, value in OFFLINE_DEFAULTS:
        os.environ.setdefault(name, value)


_stay_offline()
