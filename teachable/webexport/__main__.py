"""`python -m teachable.webexport --fetch`: put the pinned onnxruntime-web package into the cache (make runs it)."""

import sys

from . import WebExportError, fetch_ort_web

if sys.argv[1:] != ["--fetch"]:
    sys.exit("usage: python -m teachable.webexport --fetch")
try:
    print(fetch_ort_web())
except WebExportError as error:  # the app and the ONNX export work without it; only the web page needs it
    print(f"teachable: warning: {error}", file=sys.stderr)
