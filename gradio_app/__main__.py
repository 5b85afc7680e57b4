"""python -m talking_head.gradio_app [--host 127.0.0.1] [--port 7860] [--share]: the same as `talking-head app`."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))
