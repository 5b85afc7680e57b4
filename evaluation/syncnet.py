"""Lip-sync scores LSE-C and LSE-D with SyncNet, computed as joonson/syncnet_python's evaluation computes them.

SyncNet (v2, Chung & Zisserman 2016) embeds 0.2 s of lips (5 frames at 25 fps) and the 0.2 s of speech under
them (20 MFCC steps at 100 per second) into one 1024-d space, where in-sync pairs lie close. For each lip
window the audio windows from 15 frames earlier to 15 frames later are compared; averaged over the clip, the
smallest mean distance is LSE-D (lower is better) and its gap below the median over the shifts is LSE-C
(higher is better), the shift it lies at being the audio-video offset.
"""

import os

import cv2
import numpy as np
import scipy.fft
import torch
from torch import nn

from ..errors import MetricWeightsError, TalkingHeadError
from .weights import fetch_weights, load_state_dict

SYNCNET_URL = "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model"
VIDEO_FPS = 25
AUDIO_RATE = 16000
MFCC_STEPS_PER_SECOND = 100
WINDOW_FRAMES = 5
WINDOW_MFCC_STEPS = 20
MAX_SHIFT_FRAMES = 15
LIP_SIZE = 224


def _conv_block(conv: nn.Module, norm: nn.Module, pool: nn.Module | None = None) -> list[nn.Module]:
    return [conv, norm, nn.ReLU(inplace=True)] + ([pool] if pool is not None else [])


class SyncNet(nn.Module):
    """SyncNet v2: an audio and a lip branch mapping MFCC [B,1,13,20] and frames [B,3,5,224,224] to 1024-d.

    Layer names follow the official `syncnet_v2.model` state dict (netcnnaud, netfcaud, netcnnlip, netfclip).
    """

    def __init__(self, embedding_size: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv_block(nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64), nn.MaxPool2d(1, 1)),
            *_conv_block(nn.Conv2d(64, 192, 3, padding=1), nn.BatchNorm2d(192), nn.MaxPool2d(3, (1, 2))),
            *_conv_block(nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384)),
            *_conv_block(nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256)),
            *_conv_block(nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256), nn.MaxPool2d(3, 2)),
            *_conv_block(nn.Conv2d(256, 512, (5, 4)), nn.BatchNorm2d(512)),
        )
        self.netfcaud = self._head(embedding_size)
        self.netfclip = self._head(embedding_size)
        self.netcnnlip = nn.Sequential(
            *_conv_block(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), nn.BatchNorm3d(96),
                         nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_conv_block(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), nn.BatchNorm3d(256),
                         nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1))),
            *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256),
                         nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_conv_block(nn.Conv3d(256, 512, (1, 6, 6)), nn.BatchNorm3d(512)),
        )

    @staticmethod
    def _head(embedding_size: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding_size))

    def embed_audio(self, mfcc_windows: torch.Tensor) -> torch.Tensor:
        """Embeddings [B,1024] of MFCC windows [B,1,13,20]."""
        return self.netfcaud(self.netcnnaud(mfcc_windows).flatten(1))

    def embed_lips(self, frame_windows: torch.Tensor) -> torch.Tensor:
        """Embeddings [B,1024] of 5-frame windows [B,3,5,224,224]: BGR channels, pixel values 0..255."""
        return self.netfclip(self.netcnnlip(frame_windows).flatten(1))


def load_syncnet(weights_path: str | os.PathLike | None = None) -> SyncNet:
    """SyncNet in eval mode with the official weights: `weights_path`, or `syncnet_v2.model` downloaded once."""
    path = fetch_weights(SYNCNET_URL, weights_path, what="SyncNet", option="--syncnet-weights")
    state = load_state_dict(path, "SyncNet")
    model = SyncNet()
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of the wrong shape
        raise MetricWeightsError(f"{path} is not a SyncNet weights file ({error})") from None
    # Files saved by old torch have no batch-norm step counters; they do not affect evaluation.
    missing = [name for name in missing if not name.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise MetricWeightsError(f"{path} is not a SyncNet weights file (missing: {missing[:5]}, "
                                 f"unexpected: {unexpected[:5]})")
    return model.eval()


def _hz_to_mel(hz):
    return 2595 * np.log10(1 + hz / 700.0)


def _mel_to_hz(mel):
    return 700 * (10 ** (mel / 2595.0) - 1)


def _mel_filterbank(num_filters: int, fft_size: int, sample_rate: int) -> np.ndarray:
    """Triangular filters [num_filters, fft_size//2+1] on FFT bins, equally spaced in mel from 0 Hz to Nyquist."""
    mel_edges = np.linspace(0, _hz_to_mel(sample_rate / 2), num_filters + 2)
    bins = np.floor((fft_size + 1) * _mel_to_hz(mel_edges) / sample_rate).astype(int)
    filters = np.zeros((num_filters, fft_size // 2 + 1))
    for index, (low, centre, high) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        rising = np.arange(low, centre)
        falling = np.arange(centre, high)
        filters[index, rising] = (rising - low) / (centre - low)
        filters[index, falling] = (high - falling) / (high - centre)
    return filters


def mfcc(waveform: np.ndarray, sample_rate: int = AUDIO_RATE, block_steps: int = 2000) -> np.ndarray:
    """MFCC [13, steps] as python_speech_features.mfcc computes them with its defaults.

    25 ms rectangular windows every 10 ms (the last one zero-padded), pre-emphasis 0.97, 512-point power
    spectrum, 26 mel filters, DCT-II (orthonormal), lifter 22, and row 0 replaced by the log frame energy.
    The values depend on the input's scale: SyncNet saw 16-bit samples (-32768..32767). Computed
    `block_steps` steps at a time so that memory stays small for long audio.
    """
    signal = np.asarray(waveform, dtype=np.float64).reshape(-1)
    window = round(0.025 * sample_rate)
    hop = round(0.01 * sample_rate)
    fft_size, num_filters, num_coefficients, lifter = 512, 26, 13, 22
    num_steps = 1 if len(signal) <= window else 1 + int(np.ceil((len(signal) - window) / hop))
    emphasized = np.append(signal[:1], signal[1:] - 0.97 * signal[:-1])
    emphasized = np.pad(emphasized, (0, (num_steps - 1) * hop + window - len(emphasized)))
    filters = _mel_filterbank(num_filters, fft_size, sample_rate)
    lift = 1 + (lifter / 2) * np.sin(np.pi * np.arange(num_coefficients) / lifter)
    tiny = np.finfo(float).eps
    coefficients = np.empty((num_coefficients, num_steps))
    for first in range(0, num_steps, block_steps):
        steps = np.arange(first, min(first + block_steps, num_steps))
        frames = emphasized[steps[:, None] * hop + np.arange(window)]
        power = np.abs(np.fft.rfft(frames, fft_size)) ** 2 / fft_size
        energy = power.sum(1)
        mel_energies = power @ filters.T
        cepstra = scipy.fft.dct(np.log(np.where(mel_energies == 0, tiny, mel_energies)), type=2, axis=1,
                                norm="ortho")[:, :num_coefficients] * lift
        cepstra[:, 0] = np.log(np.where(energy == 0, tiny, energy))
        coefficients[:, steps] = cepstra.T
    return coefficients


def _lip_windows(face_frames: np.ndarray, first: int, count: int) -> torch.Tensor:
    """Windows [count,3,5,224,224] starting at frames first..first+count-1: resized, BGR, float 0..255."""
    frames = np.stack([cv2.resize(np.ascontiguousarray(frame), (LIP_SIZE, LIP_SIZE))[:, :, ::-1]
                       for frame in face_frames[first:first + count + WINDOW_FRAMES - 1]])
    clip = torch.from_numpy(frames.astype(np.float32)).permute(3, 0, 1, 2)  # [3, frames, H, W]
    return clip.unfold(1, WINDOW_FRAMES, 1).permute(1, 0, 4, 2, 3)


def _audio_windows(coefficients: np.ndarray, first: int, count: int) -> torch.Tensor:
    """MFCC windows [count,1,13,20] under the lip windows starting at frames first..first+count-1."""
    steps_per_frame = MFCC_STEPS_PER_SECOND // VIDEO_FPS
    return torch.from_numpy(np.stack([
        coefficients[:, frame * steps_per_frame:frame * steps_per_frame + WINDOW_MFCC_STEPS]
        for frame in range(first, first + count)])).float()[:, None]


@torch.inference_mode()
def sync_scores(face_frames: np.ndarray, waveform: np.ndarray, model: SyncNet, batch_size: int = 20) -> dict:
    """LSE-C, LSE-D and the audio-video offset of a talking face, as SyncNet's reference evaluation gives them.

    `face_frames`: uint8 [T,H,W,3] RGB face crops at 25 fps, any size (resized here to 224x224). The reference
    crops a square 1.4 times the (smoothed) face box's larger side, from the box's top down past the chin.
    `waveform`: mono float audio at 16 kHz in [-1, 1]. Returns {"lse_c", "lse_d", "offset_frames"}, where a
    positive offset means the lips best match audio that many frames earlier (the video lags the audio).
    Windows go through the network `batch_size` at a time; only the embeddings near the current batch are kept.
    """
    face_frames = np.asarray(face_frames)
    if face_frames.ndim != 4 or face_frames.shape[-1] != 3:
        raise TalkingHeadError(f"face frames must be [T,H,W,3] RGB, got shape {face_frames.shape}")
    # The reference reads 16-bit PCM; the MFCC energy terms depend on that scale.
    samples = np.clip(np.round(np.asarray(waveform, dtype=np.float64).reshape(-1) * 32768), -32768, 32767)
    samples_per_frame = AUDIO_RATE // VIDEO_FPS
    usable_frames = min(len(face_frames), len(samples) // samples_per_frame)
    num_windows = usable_frames - WINDOW_FRAMES  # as the reference counts them: the last full window is left out
    if num_windows < 1:
        raise TalkingHeadError(
            f"too short for SyncNet: {len(face_frames)} frames and {len(samples) / AUDIO_RATE:.2f} s of audio "
            f"give {usable_frames} usable frames at {VIDEO_FPS} fps; at least {WINDOW_FRAMES + 1} are needed")
    coefficients = mfcc(samples)
    device = next(model.parameters()).device
    num_shifts = 2 * MAX_SHIFT_FRAMES + 1
    distance_sums = torch.zeros(num_shifts, dtype=torch.float64)
    audio_embeddings = torch.empty(0, model.netfcaud[-1].out_features)
    audio_first = 0  # window index of audio_embeddings[0]
    for first in range(0, num_windows, batch_size):
        count = min(batch_size, num_windows - first)
        lips = model.embed_lips(_lip_windows(face_frames, first, count).to(device)).cpu()
        # Audio windows within MAX_SHIFT_FRAMES of this batch; those before it are no longer needed.
        needed_first = max(0, first - MAX_SHIFT_FRAMES)
        needed_end = min(num_windows, first + count + MAX_SHIFT_FRAMES)
        audio_embeddings = audio_embeddings[needed_first - audio_first:]
        audio_first = needed_first
        computed_end = audio_first + len(audio_embeddings)
        if needed_end > computed_end:
            new = _audio_windows(coefficients, computed_end, needed_end - computed_end)
            audio_embeddings = torch.cat([audio_embeddings, model.embed_audio(new.to(device)).cpu()])
        # Audio windows from first-15 to first+count+15, zero where the clip has none (the reference pads so).
        padded = torch.zeros(count + 2 * MAX_SHIFT_FRAMES, audio_embeddings.shape[1])
        padded_first = first - MAX_SHIFT_FRAMES
        padded[needed_first - padded_first:needed_end - padded_first] = audio_embeddings[:needed_end - audio_first]
        shifted = padded.unfold(0, num_shifts, 1).permute(0, 2, 1)  # [count, shifts, 1024]
        distances = nn.functional.pairwise_distance(
            lips[:, None].expand_as(shifted).reshape(-1, lips.shape[1]), shifted.reshape(-1, lips.shape[1]))
        distance_sums += distances.view(count, num_shifts).sum(0).double()
    mean_distances = (distance_sums / num_windows).numpy()
    best_shift = int(np.argmin(mean_distances))
    return {"lse_c": float(np.median(mean_distances) - mean_distances[best_shift]),
            "lse_d": float(mean_distances[best_shift]),
            "offset_frames": MAX_SHIFT_FRAMES - best_shift}
