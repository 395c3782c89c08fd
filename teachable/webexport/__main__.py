"""`python -m teachable.webexport --vendor [TARBALL]`: refresh the bundled onnxruntime-web files from the pinned npm
package (``npm pack`` into the cache unless a downloaded ``onnxruntime-web-<version>.tgz`` is named).

`python -m teachable.webexport --fetch` only puts the pinned tarball into the cache (the tests compare the bundled
files with it when it is there).
"""

import sys
from pathlib import Path

from . import WebExportError, fetch_ort_web, vendor_ort_web

USAGE = "usage: python -m teachable.webexport --vendor [onnxruntime-web-VERSION.tgz] | --fetch"

arguments = sys.argv[1:]
try:
    if arguments == ["--fetch"]:
        print(fetch_ort_web())
    elif arguments[:1] == ["--vendor"] and len(arguments) <= 2:
        tarball = Path(arguments[1]) if len(arguments) == 2 else fetch_ort_web()
        print(f"Wrote onnxruntime-web from {tarball} into {vendor_ort_web(tarball)}.")
    else:
        sys.exit(USAGE)
except WebExportError as error:
    sys.exit(f"teachable: error: {error}")
