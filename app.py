"""Start the web app: `python app.py [--host H] [--port P] [--https] [--backbone NAME] [--device D]`.

The same as `teachable app`; this file exists so hosting platforms that run `app.py` find it. The page is built
when the file is run or imported and kept in `demo`, where Gradio's reload mode (`gradio app.py`) looks for it.
"""

import sys

from teachable.runners.zero_gpu import import_spaces_first

import_spaces_first()  # on a ZeroGPU Space, `spaces` must be imported before anything starts CUDA

from teachable.cli import hosted_app  # noqa: E402

demo, serve = hosted_app(sys.argv[1:])

if __name__ == "__main__":
    serve()
