"""Writing small audio files for tests."""

import wave
from pathlib import Path

import numpy as np

from talking_head.media.audio import SAMPLE_RATE


def write_wav(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float samples in [-1,1] as a 16-bit wav file."""
    with wave.open(str(path), "wb") as wav_file:
        wav_file.setnchannels(1)
        wav_file.setsampwidth(2)
        wav_file.setframerate(sample_rate)
        wav_file.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path
