"""Start the teachable web app: `python app.py [--host H] [--port P] [--https] [--backbone NAME] [--device D]`.

The same as `teachable app`; this file exists so hosting platforms that run `app.py` find it.
"""

import sys

from teachable.spaces_gpu import import_spaces_first

import_spaces_first()  # on a ZeroGPU Space, `spaces` must be imported before anything starts CUDA

from teachable.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
