"""talking-head-diffusion: speech-driven talking-head video with diffusion models.

Importing the package is cheap: models, pipelines and their heavy dependencies load on first use.
"""

import importlib

__version__ = "0.1.0"

_LAZY_EXPORTS = {
    "DAETalkerPipeline": ".pipelines.dae_talker",
    "DAEUNet": ".hub_models.dae_unet",
    "SemanticEncoder": ".hub_models.semantic_encoder",
    "Speech2Latent": ".hub_models.speech2latent",
    "LandmarkDiffusionPipeline": ".pipelines.landmark",
    "AudioToLandmarks": ".hub_models.a2l",
    "LandmarkEncoder": ".hub_models.landmark_encoder",
    "render_landmarks": ".faces.render",
    "AudioFeatureExtractor": ".media.features",
    "load_audio": ".media.audio",
    "prepare_dataset": ".data.prepare",
    "TalkingHeadError": ".errors",
    # ComfyUI loads the repository as a custom node pack and reads these two.
    "NODE_CLASS_MAPPINGS": ".nodes",
    "NODE_DISPLAY_NAME_MAPPINGS": ".nodes",
}

__all__ = list(_LAZY_EXPORTS)


def __getattr__(name: str):
    if name in _LAZY_EXPORTS:
        return getattr(importlib.import_module(_LAZY_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
