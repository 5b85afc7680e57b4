"""The Gradio demo: speech (uploaded or recorded) and a portrait or a trained person to a talking-head video.

Run it with `python -m talking_head.gradio_app` or `talking-head app`; on a Hugging Face Space `app.py` starts it.
"""

from .ui import build_app, launch

__all__ = ["build_app", "launch"]
