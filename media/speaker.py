"""Speaker identity embeddings from a GE2E speaker encoder: by default the bundled conversion of Resemblyzer's
published voice encoder (`pretrained/landmark-diffusion/speaker_encoder`), which gives Resemblyzer's embeddings."""

import functools

import numpy as np
import torch

from ..bundled import BUNDLED_MODELS, LANDMARK_DIFFUSION
from ..errors import ModelError
from ..hub_models.speaker_encoder import SpeakerEncoder
from .audio import MIN_SPEECH_SECONDS
from .audio import SAMPLE_RATE

__all__ = ["BUNDLED_SPEAKER_ENCODER", "MIN_SPEECH_SECONDS", "bundled_speaker_encoder", "speaker_embedding"]

BUNDLED_SPEAKER_ENCODER = BUNDLED_MODELS[LANDMARK_DIFFUSION] / "speaker_encoder"


@functools.lru_cache(maxsize=1)
def bundled_speaker_encoder() -> SpeakerEncoder:
    """The bundled speaker encoder, float32 on the CPU, loaded once."""
    if not (BUNDLED_SPEAKER_ENCODER / "config.json").is_file():
        raise ModelError(f"the bundled speaker encoder is missing ({BUNDLED_SPEAKER_ENCODER}); convert Resemblyzer's "
                         "pretrained.pt there with `talking-head convert-ge2e`")
    return SpeakerEncoder.from_pretrained(BUNDLED_SPEAKER_ENCODER, torch_dtype=torch.float32).eval()


def speaker_embedding(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE,
                      encoder: SpeakerEncoder | None = None) -> np.ndarray:
    """A unit-length float32 [256] GE2E embedding of the voice in a mono waveform at `sample_rate`.

    Long silences are trimmed first (webrtcvad); raises AudioError when less than MIN_SPEECH_SECONDS of speech is left.
    `encoder` defaults to the bundled one.
    """
    return (encoder if encoder is not None else bundled_speaker_encoder()).embed(waveform, sample_rate)
