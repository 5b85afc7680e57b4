"""Decoding speech from any file ffmpeg reads into 16 kHz mono float32 waveforms."""

from pathlib import Path

import numpy as np

from ..errors import AudioError
from ._ffmpeg import input_format, input_streams, last_error_line, run_ffmpeg

SAMPLE_RATE = 16000

# Both pipelines need this much sound (above silence) before anything runs: less holds no speech to animate, and the
# landmark pipeline's voice embedding needs it too (hub_models/speaker_encoder.py).
MIN_SPEECH_SECONDS = 0.5
# Below either level a recording holds no usable speech (16-bit quantisation noise is ~3e-5).
_SILENCE_PEAK = 1e-4
_SILENCE_RMS = 1e-5
# Sound is counted in 20 ms frames; a frame more than 40 dB below the loudest one is silence.
_SOUND_FRAME_SECONDS = 0.02
_SOUND_BELOW_LOUDEST = 0.01

_IMAGE_FORMATS = ("image2", "_pipe")


def load_audio(path, sample_rate: int = SAMPLE_RATE, allow_silence: bool = False) -> np.ndarray:
    """Decode the first audio stream of `path` (any audio file, or the sound of a video) to mono float32 in [-1, 1].

    ffmpeg downmixes to one channel and resamples to `sample_rate`. Raises AudioError when the file is
    missing, empty, corrupt, not audio, has no audio stream, has zero samples or (unless `allow_silence`)
    is silent.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"Audio file not found: {path}")
    if not path.is_file():
        raise AudioError(f"Audio path is not a file: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"Audio file is empty (0 bytes): {path}")

    result = run_ffmpeg(
        ["-i", str(path), "-map", "0:a:0", "-f", "f32le", "-ac", "1", "-ar", str(sample_rate), "-"]
    )
    if result.returncode != 0:
        raise AudioError(_describe_decode_failure(path, result.stderr))
    waveform = np.clip(np.frombuffer(result.stdout, dtype="<f4"), -1.0, 1.0)
    if waveform.size == 0:
        raise AudioError(f"Audio file has zero length (no samples decoded): {path}")
    if not allow_silence:
        _raise_if_unusable(waveform, path, sample_rate)
    return waveform


def resample_audio(waveform: np.ndarray, sample_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A float waveform, mono [T] or with channels [C,T], resampled from `sample_rate` to `target_rate` and mixed
    down to mono [T] by ffmpeg, as `load_audio` mixes and resamples a file (so audio given in memory, as ComfyUI
    gives it, and the same audio read from its file are heard alike)."""
    waveform = np.asarray(waveform, dtype="<f4")
    channels = 1 if waveform.ndim == 1 else waveform.shape[0]
    if sample_rate == target_rate and channels == 1:
        return waveform.reshape(-1)
    result = run_ffmpeg(
        ["-f", "f32le", "-ar", str(sample_rate), "-ac", str(channels), "-i", "pipe:0",
         "-f", "f32le", "-ar", str(target_rate), "-ac", "1", "pipe:1"],
        stdin_bytes=np.ascontiguousarray(waveform.T if channels > 1 else waveform).tobytes(),
    )
    if result.returncode != 0:
        raise AudioError(
            f"Could not resample audio from {sample_rate} Hz to {target_rate} Hz: {last_error_line(result.stderr)}"
        )
    return np.frombuffer(result.stdout, dtype="<f4").copy()


def prepare_waveform(waveform, sample_rate: int, what: str = "the audio", allow_silence: bool = False) -> np.ndarray:
    """A waveform held in memory ([T], or [C,T] / [B,C,T] with its channels mixed down as `load_audio` mixes a file's)
    as 16 kHz mono float32.

    Raises AudioError when it is empty, not finite, at a sample rate that is not a positive number, or
    (unless `allow_silence`) silent.
    """
    samples = np.asarray(waveform, dtype=np.float32)
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"{what} has an invalid sample rate: {sample_rate!r}")
    if samples.ndim > 3:
        raise AudioError(f"{what} has {samples.ndim} dimensions; expected [samples], [channels, samples] or [batch, channels, samples]")
    if samples.size == 0:
        raise AudioError(f"{what} is empty (no samples)")
    if samples.ndim > 1:
        samples = samples.reshape(-1, samples.shape[-1])  # the channels (of every batch item)
    if not np.isfinite(samples).all():
        raise AudioError(f"{what} holds NaN or infinite samples")
    samples = np.clip(resample_audio(samples, int(sample_rate)), -1.0, 1.0)
    if samples.size == 0:
        raise AudioError(f"{what} is too short to hold one sample at {SAMPLE_RATE} Hz")
    if not allow_silence:
        _raise_if_unusable(samples, what, SAMPLE_RATE)
    return samples


def num_video_frames(num_samples: int, sample_rate: int, fps: float) -> int:
    """Number of video frames that cover `num_samples` of audio at `fps` (rounded, at least 1)."""
    return max(1, round(num_samples / sample_rate * fps))


def _describe_decode_failure(path: Path, stderr: str) -> str:
    if "matches no streams" in stderr:
        demuxer = input_format(stderr)
        streams = input_streams(stderr)
        if demuxer.endswith(_IMAGE_FORMATS):
            codec = streams[0][1] if streams else demuxer
            return f"{path} is an image ({codec}), not an audio file ffmpeg can read"
        found = ", ".join(f"{kind.lower()} ({codec})" for kind, codec, _ in streams) or "nothing"
        return f"{path} has no audio stream (ffmpeg found only: {found})"
    return (
        f"{path} could not be decoded: it is corrupt or not an audio file ffmpeg can read "
        f"(ffmpeg: {last_error_line(stderr)})"
    )


def sound_seconds(waveform: np.ndarray, sample_rate: int) -> float:
    """How many seconds of a mono waveform hold sound: its 20 ms frames louder than silence and than 40 dB below the
    loudest frame."""
    frame = max(1, round(_SOUND_FRAME_SECONDS * sample_rate))
    num_frames = len(waveform) // frame
    if num_frames == 0:
        return 0.0
    frames = waveform[:num_frames * frame].reshape(num_frames, frame).astype(np.float64)
    rms = np.sqrt(np.mean(np.square(frames), axis=1))
    threshold = max(_SILENCE_RMS, _SOUND_BELOW_LOUDEST * float(rms.max()))
    return float(np.count_nonzero(rms > threshold)) * frame / sample_rate


def _raise_if_unusable(waveform: np.ndarray, path: Path | str, sample_rate: int) -> None:
    """AudioError for silent audio, or audio with less than MIN_SPEECH_SECONDS of sound."""
    peak = float(np.abs(waveform).max())
    rms = float(np.sqrt(np.mean(np.square(waveform, dtype=np.float64))))
    if peak < _SILENCE_PEAK or rms < _SILENCE_RMS:
        raise AudioError(
            f"{path} is silent (peak {peak:.1e}, RMS {rms:.1e} of full scale): there is no speech to animate"
        )
    sound = sound_seconds(waveform, sample_rate)
    if sound < MIN_SPEECH_SECONDS:
        raise AudioError(f"{path} holds only {sound:.2f} s of sound ({len(waveform) / sample_rate:.2f} s long): too "
                         f"little speech to animate; give at least {MIN_SPEECH_SECONDS} s")
