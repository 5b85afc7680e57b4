"""Hugging Face Space entry: serves the Gradio demo (gradio_app/) from this repository.

The repository root is the `talking_head` package; a Space runs it from a checkout without installing it, so
it is imported here from this folder under its package name.
"""

import importlib.util
import os
import sys
from pathlib import Path

# On a shared Space CPU, idle OpenMP threads must sleep rather than spin (README, Performance); read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent

if "talking_head" not in sys.modules:
    spec = importlib.util.spec_from_file_location("talking_head", ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    package = importlib.util.module_from_spec(spec)
    sys.modules["talking_head"] = package
    spec.loader.exec_module(package)

from talking_head.gradio_app import launch  # noqa: E402

if __name__ == "__main__":
    launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"))  # a Space sets it; elsewhere every interface
