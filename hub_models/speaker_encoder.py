"""A GE2E speaker encoder (Wan et al., 2018) as a Hub component: a voice to a unit-length 256-d embedding.

The network and its front end follow Resemblyzer's published voice encoder (Apache-2.0, Resemble AI), so its
weights convert exactly (`convert.speaker_encoder`) and `embed` gives Resemblyzer's embeddings for the same
waveform, without Resemblyzer, librosa or a C compiler:

- the volume is raised (never lowered) to `target_dbfs`;
- long silences are cut: webrtcvad (the `webrtcvad-wheels` package) marks 30 ms windows as voiced, a moving
  average smooths the marks, each voiced run is widened by `vad_max_silence_windows` and the rest dropped;
- a 40-channel mel power spectrogram (25 ms Hann windows every 10 ms, centred on zero-padded audio, Slaney's
  mel scale and area normalisation: what `librosa.feature.melspectrogram` gives) is cut into partial
  utterances of 160 frames (1.6 s), `partials_per_second` apart; the last one is kept when at least
  `min_partial_coverage` of it holds audio;
- a 3-layer LSTM reads each partial; its last hidden state goes through a linear layer and a ReLU and is
  L2-normalised; the utterance's embedding is the L2-normalised mean of the partials' embeddings.

`licence` carries the weights' licence text, which saving writes beside them as LICENSE.
"""

import os
from pathlib import Path

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..errors import AudioError, ModelError
from ..media.audio import MIN_SPEECH_SECONDS  # the least speech either pipeline takes; a voice embedding needs it too

INT16_MAX = 2**15 - 1


class SpeakerEncoder(ModelMixin, ConfigMixin):
    """mel frames [B,T,mel_channels] -> unit-length embeddings [B,embedding_size]; `embed` for a whole waveform."""

    @register_to_config
    def __init__(self, mel_channels: int = 40, hidden_size: int = 256, embedding_size: int = 256,
                 num_layers: int = 3, sample_rate: int = 16000, window_ms: int = 25, hop_ms: int = 10,
                 partial_frames: int = 160, partials_per_second: float = 1.3, min_partial_coverage: float = 0.75,
                 target_dbfs: float = -30.0, vad_window_ms: int = 30, vad_mode: int = 3,
                 vad_moving_average_width: int = 8, vad_max_silence_windows: int = 6, licence: str | None = None):
        super().__init__()
        self.lstm = nn.LSTM(mel_channels, hidden_size, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, embedding_size)
        self.relu = nn.ReLU()
        self._mel_filters: np.ndarray | None = None

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Save config and weights (safetensors), and the weights' licence as LICENSE when known."""
        super().save_pretrained(save_directory, **kwargs)
        if self.config.licence:
            (Path(save_directory) / "LICENSE").write_text(self.config.licence)

    # -- the network ------------------------------------------------------------------------------
    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """Mel frames [B,T,mel_channels] (power, not log) to unit-length embeddings [B,embedding_size]."""
        _, (hidden, _) = self.lstm(mels)
        embeddings = self.relu(self.linear(hidden[-1]))
        return embeddings / torch.norm(embeddings, dim=1, keepdim=True)

    # -- silence trimming -------------------------------------------------------------------------
    def normalise_volume(self, waveform: np.ndarray) -> np.ndarray:
        """The waveform raised to `target_dbfs` (RMS, 16-bit full scale); louder ones are left as they are."""
        rms = np.sqrt(np.mean((waveform * INT16_MAX) ** 2))
        if rms == 0:
            return waveform
        gain_db = self.config.target_dbfs - 20 * np.log10(rms / INT16_MAX)
        if gain_db < 0:
            return waveform
        return waveform * (10 ** (gain_db / 20))

    def voiced_windows(self, waveform: np.ndarray) -> np.ndarray:
        """Whether webrtcvad hears voice in each whole `vad_window_ms` window of a float waveform: bool [W]."""
        try:
            import webrtcvad
        except ImportError as error:
            raise ModelError("trimming silence needs webrtcvad: pip install webrtcvad-wheels") from error
        window = self.config.vad_window_ms * self.config.sample_rate // 1000
        count = len(waveform) // window
        pcm = np.round(waveform[:count * window] * INT16_MAX).astype(np.int16).tobytes()
        vad = webrtcvad.Vad(self.config.vad_mode)
        step = 2 * window  # bytes per window
        return np.array([vad.is_speech(pcm[i * step:(i + 1) * step], self.config.sample_rate) for i in range(count)],
                        dtype=bool)

    def trim_silences(self, waveform: np.ndarray) -> np.ndarray:
        """Volume-normalised speech with every silence longer than `vad_max_silence_windows` windows cut out
        (and the last partial VAD window dropped), as Resemblyzer's `preprocess_wav` gives at 16 kHz."""
        waveform = self.normalise_volume(waveform)
        window = self.config.vad_window_ms * self.config.sample_rate // 1000
        voiced = self.voiced_windows(waveform).astype(np.float64)
        if len(voiced) == 0:
            return waveform[:0]
        # Moving average over `width` windows, from (width-1)//2 before to width//2 after, zeros outside.
        width = self.config.vad_moving_average_width
        smoothed = np.convolve(voiced, np.ones(width))[width // 2:width // 2 + len(voiced)] / width
        keep = np.round(smoothed) > 0
        # Widen each voiced run by `reach` windows on both sides: shorter silences inside speech stay.
        reach = self.config.vad_max_silence_windows // 2
        keep = np.convolve(keep.astype(np.int64), np.ones(2 * reach + 1, np.int64))[reach:reach + len(keep)] > 0
        return waveform[:len(keep) * window][np.repeat(keep, window)]

    # -- the mel front end ------------------------------------------------------------------------
    @property
    def fft_size(self) -> int:
        return self.config.sample_rate * self.config.window_ms // 1000

    @property
    def hop_length(self) -> int:
        return self.config.sample_rate * self.config.hop_ms // 1000

    def mel_filters(self) -> np.ndarray:
        """Triangular mel filters [mel_channels, fft_size//2+1] on Slaney's mel scale, area-normalised (float32)."""
        if self._mel_filters is None:
            rate, channels = self.config.sample_rate, self.config.mel_channels
            bins = np.fft.rfftfreq(self.fft_size, 1 / rate)
            edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(rate / 2), channels + 2))
            widths = np.diff(edges)
            rising = (bins[None] - edges[:-2, None]) / widths[:-1, None]
            falling = (edges[2:, None] - bins[None]) / widths[1:, None]
            triangles = np.maximum(0, np.minimum(rising, falling)).astype(np.float32)
            self._mel_filters = (triangles * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)
        return self._mel_filters

    def mel_spectrogram(self, waveform: np.ndarray) -> np.ndarray:
        """Mel power spectrogram frames [1 + len//hop, mel_channels] (float32) of a float waveform."""
        size, hop = self.fft_size, self.hop_length
        padded = np.pad(np.asarray(waveform, np.float32), (size // 2, size // 2))
        frames = np.lib.stride_tricks.sliding_window_view(padded, size)[::hop]
        periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(size) / size)
        spectrum = np.fft.rfft(frames * periodic_hann, axis=-1).astype(np.complex64)
        power = np.abs(spectrum) ** 2
        return power @ self.mel_filters().T

    # -- whole utterances -------------------------------------------------------------------------
    def partial_slices(self, num_samples: int) -> list[slice]:
        """Where the partial utterances of a waveform of `num_samples` lie, in mel frames (at least one)."""
        hop, length = self.hop_length, self.config.partial_frames
        num_frames = int(np.ceil((num_samples + 1) / hop))
        step = int(np.round(self.config.sample_rate / self.config.partials_per_second / hop))
        if not 0 < step <= length:
            raise ModelError(f"partials_per_second={self.config.partials_per_second} puts partials {step} frames "
                             f"apart; they must be 1 to {length} frames apart")
        slices = [slice(start, start + length) for start in range(0, max(1, num_frames - length + step + 1), step)]
        coverage = (num_samples - slices[-1].start * hop) / (length * hop)
        if coverage < self.config.min_partial_coverage and len(slices) > 1:
            slices = slices[:-1]
        return slices

    @torch.no_grad()
    def embed_speech(self, speech: np.ndarray) -> np.ndarray:
        """The unit-length float32 embedding [embedding_size] of speech whose silences are already trimmed."""
        slices = self.partial_slices(len(speech))
        end = slices[-1].stop * self.hop_length
        speech = np.pad(speech, (0, max(0, end - len(speech))))
        mel = self.mel_spectrogram(speech)
        partials = torch.from_numpy(np.stack([mel[s] for s in slices]))
        embeddings = self(partials.to(self.device, self.dtype)).float().cpu().numpy()
        mean = embeddings.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def embed(self, waveform: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
        """A unit-length float32 [embedding_size] embedding of the voice in a mono float waveform at `sample_rate`.

        Long silences are trimmed first; raises AudioError when less than MIN_SPEECH_SECONDS of speech is left.
        """
        if sample_rate != self.config.sample_rate:
            raise AudioError(f"speaker_embedding expects {self.config.sample_rate} Hz audio, got {sample_rate} Hz")
        speech = self.trim_silences(np.asarray(waveform, dtype=np.float32))
        if len(speech) < MIN_SPEECH_SECONDS * sample_rate:
            raise AudioError(
                f"the audio holds {len(speech) / sample_rate:.1f} s of speech after trimming silence; "
                f"the voice embedding needs at least {MIN_SPEECH_SECONDS} s of speech"
            )
        return self.embed_speech(speech)


# Slaney's mel scale (the Auditory Toolbox's): linear below 1 kHz, logarithmic above.
_MEL_LINEAR_HZ = 200.0 / 3
_MEL_BREAK_HZ = 1000.0
_MEL_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz):
    hz = np.asarray(hz, np.float64)
    linear = hz / _MEL_LINEAR_HZ
    above = _MEL_BREAK_HZ / _MEL_LINEAR_HZ + np.log(np.maximum(hz, _MEL_BREAK_HZ) / _MEL_BREAK_HZ) / _MEL_LOG_STEP
    return np.where(hz >= _MEL_BREAK_HZ, above, linear)


def _mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    break_mel = _MEL_BREAK_HZ / _MEL_LINEAR_HZ
    above = _MEL_BREAK_HZ * np.exp(_MEL_LOG_STEP * (np.maximum(mel, break_mel) - break_mel))
    return np.where(mel >= break_mel, above, mel * _MEL_LINEAR_HZ)
