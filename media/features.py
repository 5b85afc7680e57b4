"""Per-video-frame audio features: log-mel (no weights) or wav2vec2 / HuBERT hidden states."""

import math
import os

import numpy as np
import torch
import transformers
from transformers.audio_utils import mel_filter_bank

from ..errors import AudioError, ModelError
from .audio import SAMPLE_RATE, num_video_frames, resample_audio

KINDS = ("logmel", "wav2vec2", "hubert")
_SPEECH_MODELS = {
    "wav2vec2": ("Wav2Vec2Model", "facebook/wav2vec2-base-960h"),
    "hubert": ("HubertModel", "facebook/hubert-base-ls960"),
}
SPEECH_MODEL_KINDS = tuple(_SPEECH_MODELS)  # the feature kinds that come from a speech model
SPEECH_MODEL_CLASSES = tuple(getattr(transformers, class_name) for class_name, _ in _SPEECH_MODELS.values())

_MEL_BINS = 80
_MEL_STEPS_PER_FRAME = 4  # mel vectors stacked per video frame, so the feature size does not depend on fps
_N_FFT = 400  # 25 ms at 16 kHz
_HOP = 160  # 10 ms at 16 kHz: 100 mel frames per second

_WINDOW_SECONDS = 20.0  # longest stretch of audio given to a speech model at once
_CONTEXT_SECONDS = 1.0  # audio on each side of a window's kept part, so stitched windows match


def speech_model_class(kind: str):
    """The transformers class of a speech model feature kind ("wav2vec2": Wav2Vec2Model, "hubert": HubertModel)."""
    if kind not in _SPEECH_MODELS:
        raise ValueError(f"{kind!r} features come from no speech model; the speech models are {', '.join(_SPEECH_MODELS)}")
    return getattr(transformers, _SPEECH_MODELS[kind][0])


def load_speech_model(kind: str, name_or_path: str | os.PathLike, dtype: torch.dtype | None = None):
    """A wav2vec 2.0 / HuBERT model from a Hub repo id or a folder (safetensors only), in eval mode.

    Raises ModelError, saying how to get it, when it cannot be loaded.
    """
    try:
        model = speech_model_class(kind).from_pretrained(name_or_path, use_safetensors=True,
                                                         **({"dtype": dtype} if dtype is not None else {}))
    except Exception as err:
        raise ModelError(
            f"Could not load the {kind} audio model {str(name_or_path)!r} ({type(err).__name__}: {err}). "
            "Download it once with internet access or pass a local folder as model_name, "
            'or use AudioFeatureExtractor(kind="logmel"), which needs no weights.'
        ) from err
    return model.eval()


def speech_model_of(config) -> "transformers.PreTrainedModel | None":
    """The speech model a Speech2Latent / A2L config's features come from (its `feature_kind` and
    `feature_model_name`), to save with the pipeline; None for log-mel."""
    if config.feature_kind not in _SPEECH_MODELS:
        return None
    return AudioFeatureExtractor(config.feature_kind, model_name=config.feature_model_name).speech_model


class AudioFeatureExtractor:
    """Turns a 16 kHz waveform into one feature vector per video frame.

    kind "logmel": 80 normalised log-mel bins at 100 Hz, interpolated to 4 steps per video frame and
    stacked (320 values per frame). kind "wav2vec2" / "hubert": last hidden state of the pretrained
    model, interpolated to the video frame times: `model`, when given (a pipeline's own `speech_model`
    component), or `model_name` loaded on first use. The model runs on `device`; features come back on the CPU.
    """

    def __init__(self, kind: str = "logmel", fps: float = 25.0, model_name: str | None = None, device="cpu",
                 model=None):
        if kind not in KINDS:
            raise ValueError(f"Unknown audio feature kind {kind!r}; choose one of {', '.join(KINDS)}")
        if kind == "logmel" and (model_name is not None or model is not None):
            raise ValueError("kind='logmel' uses no model; leave model_name and model as None")
        if model is not None and not isinstance(model, speech_model_class(kind)):
            raise ValueError(f"{kind} features need a {speech_model_class(kind).__name__}, not a {type(model).__name__}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.kind = kind
        self.fps = float(fps)
        self.model_name = _SPEECH_MODELS[kind][1] if kind != "logmel" and model_name is None else model_name
        self.device = torch.device(device)
        self._model = None if model is None else model.to(self.device).eval()
        self._mel_filters = None

    @property
    def feature_dim(self) -> int:
        """Size of each frame's feature vector (loads the speech model for kinds other than logmel)."""
        if self.kind == "logmel":
            return _MEL_BINS * _MEL_STEPS_PER_FRAME
        return self.speech_model.config.hidden_size

    @property
    def speech_model(self):
        """The wav2vec 2.0 / HuBERT model (loaded on first use), to save as a pipeline's `speech_model` component."""
        if self.kind == "logmel":
            raise ValueError("log-mel features use no speech model")
        if self._model is None:
            self._model = load_speech_model(self.kind, self.model_name).to(self.device)
        return self._model

    def __call__(self, waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """Features of a mono waveform: float32 tensor [num_frames, feature_dim].

        num_frames = num_video_frames(len(waveform), sample_rate, fps); other sample rates are resampled to 16 kHz.
        """
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"Expected a mono waveform of shape [num_samples], got shape {waveform.shape}")
        if waveform.size == 0:
            raise AudioError("The waveform is empty: there is no audio to turn into features")
        num_frames = num_video_frames(waveform.size, sample_rate, self.fps)
        samples = torch.from_numpy(resample_audio(waveform, sample_rate, SAMPLE_RATE))
        with torch.inference_mode():
            if self.kind == "logmel":
                return self._logmel_features(samples, num_frames)
            return self._speech_model_features(samples, num_frames)

    def to(self, device) -> "AudioFeatureExtractor":
        """Run the speech model (when there is one) on `device` from now on."""
        self.device = torch.device(device)
        if self._model is not None:
            self._model.to(self.device)
        return self

    def to_config(self) -> dict:
        """JSON-serialisable description of this front end, to save next to a model trained on it."""
        return {"kind": self.kind, "fps": self.fps, "model_name": self.model_name}

    @classmethod
    def from_config(cls, config: dict, device="cpu") -> "AudioFeatureExtractor":
        """Rebuild the front end described by `to_config()`."""
        return cls(kind=config["kind"], fps=config["fps"], model_name=config.get("model_name"), device=device)

    def _logmel_features(self, samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        if self._mel_filters is None:
            self._mel_filters = torch.from_numpy(
                mel_filter_bank(
                    num_frequency_bins=_N_FFT // 2 + 1,
                    num_mel_filters=_MEL_BINS,
                    min_frequency=0.0,
                    max_frequency=SAMPLE_RATE / 2,
                    sampling_rate=SAMPLE_RATE,
                    norm="slaney",
                    mel_scale="slaney",
                    dtype=np.float32,
                )
            )
        samples = torch.nn.functional.pad(samples, (0, max(0, _N_FFT - samples.numel())))
        spectrum = torch.stft(
            samples, _N_FFT, _HOP, window=torch.hann_window(_N_FFT), center=True, return_complex=True
        )
        mel_power = spectrum.abs().square().T @ self._mel_filters  # [mel frames, bins]
        log_mel = torch.log10(mel_power.clamp(min=1e-10))
        log_mel = (log_mel - log_mel.mean(dim=0)) / (log_mel.std(dim=0, correction=0) + 1e-5)
        step_times = _frame_times(num_frames, self.fps, _MEL_STEPS_PER_FRAME)
        steps = _interpolate_rows(log_mel, step_times * (SAMPLE_RATE / _HOP))  # mel frame m is centred at m * hop
        return steps.reshape(num_frames, _MEL_BINS * _MEL_STEPS_PER_FRAME)

    def _speech_model_features(self, samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        model = self.speech_model
        strides, kernels = model.config.conv_stride, model.config.conv_kernel
        stride = math.prod(strides)
        receptive_field = 1 + sum((kernel - 1) * math.prod(strides[:i]) for i, kernel in enumerate(kernels))
        context = round(_CONTEXT_SECONDS * SAMPLE_RATE / stride) * stride
        core = round((_WINDOW_SECONDS - 2 * _CONTEXT_SECONDS) * SAMPLE_RATE / stride) * stride

        # Zero mean and unit variance, as the wav2vec2 feature extractor prepares its input.
        samples = torch.nn.functional.pad(samples, (0, max(0, receptive_field - samples.numel())))
        samples = (samples - samples.mean()) / torch.sqrt(samples.var(correction=0) + 1e-7)

        # Run windows of core + context on both sides; keep the outputs whose receptive field starts in the core.
        kept_hidden = []
        for core_start in range(0, samples.numel(), core):
            core_end = min(core_start + core, samples.numel())
            window_start = max(0, core_start - context)
            window = samples[window_start : core_end + context]
            hidden = model(window[None].to(self.device)).last_hidden_state[0]
            first, end = (core_start - window_start) // stride, (core_end - window_start) // stride
            kept_hidden.append(hidden[first:end].cpu())
        hidden_states = torch.cat(kept_hidden).float()

        # Output frame m sees samples [m * stride, m * stride + receptive_field).
        positions = (_frame_times(num_frames, self.fps, 1) * SAMPLE_RATE - receptive_field / 2) / stride
        return _interpolate_rows(hidden_states, positions)

def _frame_times(num_frames: int, fps: float, steps_per_frame: int) -> torch.Tensor:
    """Centre times in seconds of `steps_per_frame` equal parts of each video frame."""
    return (torch.arange(num_frames * steps_per_frame, dtype=torch.float64) + 0.5) / (steps_per_frame * fps)


def _interpolate_rows(rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linearly interpolate `rows` [T, D] at fractional row `positions` [N], clamped to the ends."""
    positions = positions.clamp(0, rows.shape[0] - 1)
    lower = positions.floor().long()
    upper = (lower + 1).clamp(max=rows.shape[0] - 1)
    weight = (positions - lower).float()[:, None]
    return rows[lower] * (1 - weight) + rows[upper] * weight
