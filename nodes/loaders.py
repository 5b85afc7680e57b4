"""Loader nodes: a pipeline from the bundled defaults, a folder under models/talking_head, or a Hub repo id."""

import json
import logging
from pathlib import Path

import torch

from ..bundled import DAE_TALKER, LANDMARK_DIFFUSION, PRETRAINED
from ..errors import ModelError
from ..pipelines.dae_talker import DAETalkerPipeline
from ..pipelines.hub import MODEL_INDEX
from ..pipelines.landmark import LandmarkDiffusionPipeline
from . import services
from .values import DAE_MODEL, LANDMARK_MODEL
from .widgets import DAE_CATEGORY, LANDMARK_CATEGORY

logger = logging.getLogger(__name__)

BUNDLED_PREFIX = "bundled/"
PRECISIONS = {"auto": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _pipeline_class_of(folder: Path) -> str | None:
    try:
        return json.loads((folder / MODEL_INDEX).read_text()).get("_class_name")
    except (OSError, json.JSONDecodeError):
        return None


def model_choices(pipeline_class: type) -> list[str]:
    """Loader choices for one pipeline class: the bundled models first, then matching folders in the model folders."""
    bundled = [BUNDLED_PREFIX + folder.name for folder in sorted(PRETRAINED.iterdir())
               if _pipeline_class_of(folder) == pipeline_class.__name__] if PRETRAINED.is_dir() else []
    local = []
    for root in services.model_folders():
        if root.is_dir():
            local += [folder.name for folder in sorted(root.iterdir())
                      if folder.name != services.HUB_CACHE and _pipeline_class_of(folder) == pipeline_class.__name__]
    return bundled + local


def _resolve_choice(choice: str) -> Path:
    if choice.startswith(BUNDLED_PREFIX):
        return PRETRAINED / choice[len(BUNDLED_PREFIX):]
    for root in services.model_folders():
        if (root / choice).is_dir():
            return root / choice
    raise ModelError(f"model {choice!r} is in none of the model folders ({', '.join(map(str, services.model_folders()))})")


def _dtype(precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if PRECISIONS[precision] is not None:
        return PRECISIONS[precision]
    return torch.float16 if services.device().type == "cuda" else torch.float32


class _PipelineLoader:
    PIPELINE: type
    DEFAULT: str

    @classmethod
    def INPUT_TYPES(cls):
        choices = model_choices(cls.PIPELINE) or [cls.DEFAULT]
        return {
            "required": {
                "model": (choices, {"default": cls.DEFAULT if cls.DEFAULT in choices else choices[0],
                                    "tooltip": "A bundled model or a pipeline folder under models/talking_head."}),
                "hub_repo_id": ("STRING", {"default": "",
                                           "tooltip": "A Hugging Face Hub repo id (org/name), or a folder path. When set it "
                                                      "replaces `model`; a repo is downloaded into models/talking_head/hub "
                                                      "when the node runs."}),
                "precision": (list(PRECISIONS), {"default": "auto",
                                                 "tooltip": "Weights' precision: auto is fp16 on a GPU and fp32 on the CPU."}),
            }
        }

    FUNCTION = "load"

    def load(self, model: str, hub_repo_id: str = "", precision: str = "auto"):
        source = hub_repo_id.strip() or _resolve_choice(model)
        pipeline = self.PIPELINE.from_pretrained(source, torch_dtype=_dtype(precision), cache_dir=services.hub_cache())
        pipeline.warn_if_untrained()
        return (pipeline,)


class LoadDAETalker(_PipelineLoader):
    """Load a DAE-Talker pipeline (diffusion autoencoder, speech2latent and pose predictor)."""

    PIPELINE = DAETalkerPipeline
    DEFAULT = BUNDLED_PREFIX + DAE_TALKER
    RETURN_TYPES = (DAE_MODEL,)
    RETURN_NAMES = ("model",)
    CATEGORY = DAE_CATEGORY
    DESCRIPTION = "Loads a DAE-Talker model: one person's diffusion autoencoder and the speech model that drives it."


class LoadLandmarkDiffusion(_PipelineLoader):
    """Load a landmark-guided pipeline (A2L and L2V)."""

    PIPELINE = LandmarkDiffusionPipeline
    DEFAULT = BUNDLED_PREFIX + LANDMARK_DIFFUSION
    RETURN_TYPES = (LANDMARK_MODEL,)
    RETURN_NAMES = ("model",)
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = "Loads a landmark-guided model: A2L (speech to landmarks) and L2V (landmarks to face images)."
