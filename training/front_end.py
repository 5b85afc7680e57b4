"""What a trained speech-to-motion model records of the audio front end it learnt from, and the speech model its
pipeline carries."""

from ..media.features import AudioFeatureExtractor
from ..pipelines.base import public_model_name


def front_end_config(front_end: AudioFeatureExtractor) -> dict:
    """The config entries of a Speech2Latent / A2L model trained on `front_end`'s features (the speech model named
    by its public name, never a local path)."""
    model_name = None if front_end.model_name is None else public_model_name(front_end.model_name)
    return {"feature_dim": front_end.feature_dim, "feature_kind": front_end.kind, "feature_model_name": model_name,
            "feature_layers": front_end.layers, "fps": front_end.fps}


def speech_model_component(front_end: AudioFeatureExtractor):
    """The speech model a pipeline saves as its `speech_model` component: the front end's network, none for log-mel."""
    return None if front_end.kind == "logmel" else front_end.speech_model
