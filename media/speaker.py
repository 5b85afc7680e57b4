"""Speaker identity embeddings from Resemblyzer's GE2E speaker encoder (its weights ship in its wheel)."""

import functools

import numpy as np

from ..errors import AudioError, ModelError
from .audio import SAMPLE_RATE

MIN_SPEECH_SECONDS = 0.3


@functools.lru_cache(maxsize=1)
def _voice_encoder():
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as error:
        raise ModelError(
            "speaker embeddings need Resemblyzer: pip install resemblyzer webrtcvad-wheels"
        ) from error
    # Resemblyzer reads its bundled state dict with torch.load, which loads weights only on torch >= 2.6.
    return VoiceEncoder(device="cpu", verbose=False).eval()


def speaker_embedding(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A unit-length float32 [256] GE2E embedding of the voice in a mono waveform at `sample_rate`.

    Long silences are trimmed first (webrtcvad); raises AudioError when less than MIN_SPEECH_SECONDS of speech is left.
    """
    from resemblyzer import preprocess_wav

    if sample_rate != SAMPLE_RATE:
        raise AudioError(f"speaker_embedding expects {SAMPLE_RATE} Hz audio, got {sample_rate} Hz")
    speech = preprocess_wav(np.asarray(waveform, dtype=np.float32), source_sr=SAMPLE_RATE)
    if len(speech) < MIN_SPEECH_SECONDS * SAMPLE_RATE:
        raise AudioError(
            f"the audio holds {len(speech) / SAMPLE_RATE:.1f} s of speech after trimming silence; "
            f"the voice embedding needs at least {MIN_SPEECH_SECONDS} s"
        )
    embedding = _voice_encoder().embed_utterance(speech)
    return embedding.astype(np.float32)
