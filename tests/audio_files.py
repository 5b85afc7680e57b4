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


def write_prepared_dataset(folder: Path, waveform: np.ndarray, fps: float = 25.0, val_fraction: float = 0.25) -> Path:
    """A prepared-dataset folder holding one clip's speech and nothing else (enough for its features)."""
    import json

    from talking_head.data.dataset import DATASET_FILE, DATASET_FORMAT
    from talking_head.media.audio import num_video_frames

    num_frames = num_video_frames(len(waveform), SAMPLE_RATE, fps)
    num_train = round(num_frames * (1 - val_fraction))
    (folder / "clips" / "speech").mkdir(parents=True)
    np.save(folder / "clips" / "speech" / "audio.npy", waveform.astype(np.float32))
    clip = {"name": "speech", "source": "speech.wav", "num_frames": num_frames, "train_frames": [0, num_train],
            "val_frames": [num_train, num_frames]}
    index = {"format": DATASET_FORMAT, "fps": fps, "resolution": 64, "sample_rate": SAMPLE_RATE, "features": {},
             "clips": [clip]}
    (folder / DATASET_FILE).write_text(json.dumps(index))
    return folder
