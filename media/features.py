"""Per-video-frame audio features: log-mel (no weights), or the hidden states of a pretrained speech model:
Whisper's audio encoder, wav2vec 2.0 or HuBERT."""

import hashlib
import math
import os

import numpy as np
import torch
import transformers
from transformers import WhisperFeatureExtractor
from transformers.audio_utils import mel_filter_bank

from ..errors import AudioError, ModelError
from .audio import SAMPLE_RATE, num_video_frames, resample_audio
from .feature_kinds import KINDS, LAYERS
from .whisper import OUTPUT_RATE as WHISPER_OUTPUT_RATE
from .whisper import WhisperEncoder, load_whisper_encoder

# A speech model's class and the model its features come from when no other is named.
_SPEECH_MODELS = {
    "wav2vec2": (transformers.Wav2Vec2Model, "facebook/wav2vec2-base-960h"),
    "hubert": (transformers.HubertModel, "facebook/hubert-base-ls960"),
    "whisper": (WhisperEncoder, "openai/whisper-base"),
}
SPEECH_MODEL_KINDS = tuple(_SPEECH_MODELS)  # the feature kinds that come from a speech model
SPEECH_MODEL_CLASSES = tuple(model_class for model_class, _ in _SPEECH_MODELS.values())

_MEL_BINS = 80
_MEL_STEPS_PER_FRAME = 4  # mel vectors stacked per video frame, so the feature size does not depend on fps
_N_FFT = 400  # 25 ms at 16 kHz
_HOP = 160  # 10 ms at 16 kHz: 100 mel frames per second
_WHISPER_STEPS_PER_FRAME = 2  # Whisper vectors (50 a second) stacked per video frame: all of them at 25 fps

_WINDOW_SECONDS = 20.0  # longest stretch of audio given to wav2vec 2.0 / HuBERT at once
_CONTEXT_SECONDS = 1.0  # audio on each side of a window's kept part, so stitched windows match
_WHISPER_CONTEXT_SECONDS = 2.0  # the same for Whisper's fixed 30 s windows


def speech_model_class(kind: str):
    """The transformers class of a speech model feature kind ("whisper": WhisperEncoder, "wav2vec2": Wav2Vec2Model,
    "hubert": HubertModel)."""
    if kind not in _SPEECH_MODELS:
        raise ValueError(f"{kind!r} features come from no speech model; the speech models are {', '.join(_SPEECH_MODELS)}")
    return _SPEECH_MODELS[kind][0]


def load_speech_model(kind: str, name_or_path: str | os.PathLike, dtype: torch.dtype | None = None):
    """A speech model from a Hub repo id or a folder (safetensors only; for Whisper also an OpenAI .pt checkpoint,
    of which only the encoder is kept), in eval mode.

    Raises ModelError, saying how to get it, when it cannot be loaded.
    """
    try:
        if kind == "whisper":
            return load_whisper_encoder(name_or_path, dtype or torch.float32)
        model = speech_model_class(kind).from_pretrained(name_or_path, use_safetensors=True,
                                                         **({"dtype": dtype} if dtype is not None else {}))
    except ModelError:
        raise
    except Exception as err:
        raise ModelError(
            f"Could not load the {kind} audio model {str(name_or_path)!r} ({type(err).__name__}: {err}). "
            "Download it once with internet access or pass a local folder as model_name, "
            'or use AudioFeatureExtractor(kind="logmel"), which needs no weights.'
        ) from err
    return model.eval()


def front_end_of(config, device="cpu", model=None) -> "AudioFeatureExtractor":
    """The audio front end a Speech2Latent / A2L config records (`feature_kind`, `feature_model_name`,
    `feature_layers`, `fps`), with `model` as its speech model when given (a pipeline's `speech_model`)."""
    return AudioFeatureExtractor(kind=config.feature_kind, fps=config.fps, model_name=config.feature_model_name,
                                 layers=config.feature_layers, device=device, model=model)


class AudioFeatureExtractor:
    """Turns a 16 kHz waveform into one feature vector per video frame.

    kind "logmel": 80 normalised log-mel bins at 100 Hz, interpolated to 4 steps per video frame and stacked (320
    values per frame). kind "whisper": Whisper's audio encoder over 30 s windows (fed by transformers'
    `WhisperFeatureExtractor`), its 50 vectors a second interpolated to 2 steps per video frame and stacked.
    kind "wav2vec2" / "hubert": the model's hidden states interpolated to the video frame times. `layers` says which
    hidden states of a speech model: "last" (its output), "mean" (the mean of its layers' outputs) or "all" (side by
    side). The speech model is `model`, when given (a pipeline's own `speech_model` component), or `model_name`
    loaded on first use; it runs on `device`, and features come back on the CPU. Audio longer than a window is
    encoded in overlapping windows whose overlaps are cut away, so memory does not grow with its length.
    """

    def __init__(self, kind: str = "logmel", fps: float = 25.0, model_name: str | None = None, device="cpu",
                 model=None, layers: str = "last"):
        if kind not in KINDS:
            raise ValueError(f"Unknown audio feature kind {kind!r}; choose one of {', '.join(KINDS)}")
        if kind == "logmel" and (model_name is not None or model is not None):
            raise ValueError("kind='logmel' uses no model; leave model_name and model as None")
        if model is not None and not isinstance(model, speech_model_class(kind)):
            raise ValueError(f"{kind} features need a {speech_model_class(kind).__name__}, not a {type(model).__name__}")
        if layers not in LAYERS:
            raise ValueError(f"Unknown layers {layers!r}; choose one of {', '.join(LAYERS)}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.kind = kind
        self.fps = float(fps)
        self.layers = "last" if kind == "logmel" else layers
        self.model_name = _SPEECH_MODELS[kind][1] if kind != "logmel" and model_name is None else model_name
        self.device = torch.device(device)
        self._model = None if model is None else model.to(self.device).eval()
        self._mel_filters = None
        self._whisper_mel = None
        self._fingerprint = None

    @property
    def feature_dim(self) -> int:
        """Size of each frame's feature vector (loads the speech model for kinds other than logmel)."""
        if self.kind == "logmel":
            return _MEL_BINS * _MEL_STEPS_PER_FRAME
        config = self.speech_model.config
        width = config.d_model if self.kind == "whisper" else config.hidden_size
        num_layers = config.encoder_layers if self.kind == "whisper" else config.num_hidden_layers
        width *= num_layers if self.layers == "all" else 1
        return width * (_WHISPER_STEPS_PER_FRAME if self.kind == "whisper" else 1)

    @property
    def speech_model(self):
        """The speech model (loaded on first use), to save as a pipeline's `speech_model` component."""
        if self.kind == "logmel":
            raise ValueError("log-mel features use no speech model")
        if self._model is None:
            self._model = load_speech_model(self.kind, self.model_name).to(self.device)
        return self._model

    @property
    def cache_name(self) -> str:
        """What a dataset's cached features of this front end are called: "logmel", or the kind, layers and a hash
        of the speech model's weights, so other weights never read a stale cache."""
        if self.kind == "logmel":
            return "logmel"
        if self._fingerprint is None:
            digest = hashlib.sha1(f"{self.kind}-{self.layers}".encode())
            for name, tensor in sorted(self.speech_model.state_dict().items()):
                digest.update(name.encode())
                digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:12]
        return f"{self.kind}-{self.layers}-{self._fingerprint}"

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
            if self.kind == "whisper":
                return self._whisper_features(samples, num_frames)
            return self._speech_model_features(samples, num_frames)

    def to(self, device) -> "AudioFeatureExtractor":
        """Run the speech model (when there is one) on `device` from now on."""
        self.device = torch.device(device)
        if self._model is not None:
            self._model.to(self.device)
        return self

    def to_config(self) -> dict:
        """JSON-serialisable description of this front end, to save next to a model trained on it."""
        return {"kind": self.kind, "fps": self.fps, "model_name": self.model_name, "layers": self.layers}

    @classmethod
    def from_config(cls, config: dict, device="cpu") -> "AudioFeatureExtractor":
        """Rebuild the front end described by `to_config()`."""
        return cls(kind=config["kind"], fps=config["fps"], model_name=config.get("model_name"), device=device,
                   layers=config.get("layers", "last"))

    def _hidden_states(self, output) -> torch.Tensor:
        """The hidden states [T,D] (or [T,L*D] for "all") of one window's model output that `layers` asks for."""
        if self.layers == "last":
            return output.last_hidden_state[0]
        layer_outputs = output.hidden_states[1:]
        if self.layers == "mean":
            return torch.stack(layer_outputs).mean(0)[0]
        return torch.cat(layer_outputs, dim=-1)[0]

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

    def _whisper_features(self, samples: torch.Tensor, num_frames: int) -> torch.Tensor:
        model = self.speech_model
        window_seconds = model.config.max_source_positions // WHISPER_OUTPUT_RATE  # 30 s for every Whisper
        if self._whisper_mel is None:
            self._whisper_mel = WhisperFeatureExtractor(feature_size=model.config.num_mel_bins,
                                                        chunk_length=window_seconds)
        samples_per_output = SAMPLE_RATE // WHISPER_OUTPUT_RATE
        window = window_seconds * SAMPLE_RATE
        context = int(_WHISPER_CONTEXT_SECONDS * SAMPLE_RATE)
        core = window - 2 * context

        # Each 30 s window keeps the outputs of its core; the context on either side is there so that the kept
        # outputs hear what surrounds them, as they would in one long pass.
        kept_hidden = []
        for core_start in range(0, samples.numel(), core):
            core_end = min(core_start + core, samples.numel())
            window_start = max(0, core_start - context)
            piece = samples[window_start:window_start + window].numpy()
            mel = self._whisper_mel(piece, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
            output = model(mel.to(self.device, model.dtype), output_hidden_states=self.layers != "last")
            first = (core_start - window_start) // samples_per_output
            end = math.ceil((core_end - window_start) / samples_per_output)
            kept_hidden.append(self._hidden_states(output)[first:end].float().cpu())
        hidden_states = torch.cat(kept_hidden)

        # Output vector m is centred at m / 50 s (two strided convolutions over mel frames every 10 ms).
        positions = _frame_times(num_frames, self.fps, _WHISPER_STEPS_PER_FRAME) * WHISPER_OUTPUT_RATE
        steps = _interpolate_rows(hidden_states, positions)
        return steps.reshape(num_frames, _WHISPER_STEPS_PER_FRAME * hidden_states.shape[-1])

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
            output = model(window[None].to(self.device), output_hidden_states=self.layers != "last")
            first, end = (core_start - window_start) // stride, (core_end - window_start) // stride
            kept_hidden.append(self._hidden_states(output)[first:end].cpu())
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
