"""Start the teachable web app: `python app.py [--host H] [--port P] [--share] [--backbone NAME] [--device D]`.

The same as `teachable app`; this file exists so hosting platforms that run `app.py` find it.
"""

import sys

from teachable.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
