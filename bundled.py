"""The models that ship inside the package, by name: the one place that names their folders."""

from pathlib import Path

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
DAE_TALKER = "dae-talker-grid-s1"  # the default of DAE-Talker
LANDMARK_DIFFUSION = "landmark-diffusion"  # the default of the landmark pipeline
BUNDLED_MODELS = {name: PRETRAINED / name for name in (DAE_TALKER, LANDMARK_DIFFUSION)}
