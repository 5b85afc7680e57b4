"""What flows along the pack's wires: ComfyUI's core IMAGE and AUDIO layouts, and the pack's own types.

Core types at the edges: IMAGE is a float tensor [B,H,W,C] in 0..1, AUDIO a dict
{"waveform": [B,C,T] float tensor, "sample_rate": int}. Between the pack's nodes travel the dataclasses
below, under type names prefixed TALKINGHEAD_.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import TalkingHeadError
from ..media.audio import prepare_waveform

# Type names of the pack's wires.
DAE_MODEL = "TALKINGHEAD_DAE_MODEL"
LANDMARK_MODEL = "TALKINGHEAD_LANDMARK_MODEL"
SPEECH = "TALKINGHEAD_SPEECH"
POSE = "TALKINGHEAD_POSE"
LATENTS = "TALKINGHEAD_LATENTS"
FACE = "TALKINGHEAD_FACE"  # a faces.portrait.PortraitFace
HEAD_MOTION = "TALKINGHEAD_HEAD_MOTION"
LANDMARKS = "TALKINGHEAD_LANDMARKS"
FACE_TRACK = "TALKINGHEAD_FACE_TRACK"


@dataclass
class Speech:
    """Speech features at the video frame rate, for the model whose front end made them."""

    features: torch.Tensor  # [T,F]
    fps: float
    front_end: dict  # the AudioFeatureExtractor's config: kind, fps, model name
    voice: torch.Tensor | None  # [256] GE2E voice embedding (landmark pipeline), else None
    seconds: float | None = None  # the speech's own length (features cover it to the nearest frame)

    @property
    def num_frames(self) -> int:
        return len(self.features)


@dataclass
class Pose:
    """Head pose per video frame [T,6]: yaw, pitch, roll (degrees), tx, ty, scale."""

    values: torch.Tensor
    fps: float


@dataclass
class Latents:
    """DAE-Talker semantic latents per video frame [T,D]."""

    values: torch.Tensor
    fps: float


@dataclass
class HeadMotion:
    """A tracked head: landmarks [N,68,2] of a reference video's face, one per frame at `fps`."""

    landmarks: np.ndarray
    fps: float


@dataclass
class FaceTrackValue:
    """A face followed through a video's frames (`faces.tracking.FaceTrack`), the frames' rate, and the crop size of
    the model that tracked it."""

    track: object
    fps: float
    crop_size: int


@dataclass
class Landmarks:
    """A2L's landmark sequence [T,68,2] in face-crop pixels, with the head transforms [T,2,3] that moved it."""

    points: np.ndarray
    transforms: np.ndarray
    crop_size: int
    fps: float


def audio_waveform(audio: dict) -> np.ndarray:
    """16 kHz mono float32 from a ComfyUI AUDIO value; AudioError when empty or silent."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise TalkingHeadError("the audio input is not a ComfyUI AUDIO value (a dict with 'waveform' and 'sample_rate')")
    waveform = audio["waveform"]
    waveform = waveform.detach().float().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    return prepare_waveform(waveform, int(audio["sample_rate"]), what="the audio input")


def image_frames(image: torch.Tensor, what: str) -> np.ndarray:
    """uint8 frames [B,H,W,3] from a ComfyUI IMAGE [B,H,W,C] in 0..1 (C of 1, 3 or 4; alpha dropped)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[0] == 0:
        raise TalkingHeadError(f"{what} is not a ComfyUI IMAGE batch [B,H,W,C]")
    channels = image.shape[-1]
    if channels not in (1, 3, 4):
        raise TalkingHeadError(f"{what} has {channels} channels; expected 1, 3 or 4")
    frames = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return np.repeat(frames, 3, axis=-1) if channels == 1 else frames[..., :3]


def image_batches(image: torch.Tensor, what: str, indices: np.ndarray | None = None, batch_size: int = 32):
    """uint8 frames [B,H,W,3] of a ComfyUI IMAGE (or of its frames at `indices`), a few at a time."""
    indices = np.arange(len(image)) if indices is None else indices
    for start in range(0, len(indices), batch_size):
        yield image_frames(image[torch.from_numpy(indices[start:start + batch_size])], what)


def comfy_image(frames: np.ndarray) -> torch.Tensor:
    """A ComfyUI IMAGE [B,H,W,3] float32 in 0..1 from uint8 frames [B,H,W,3]."""
    return torch.from_numpy(np.asarray(frames, dtype=np.float32) / 255)


class ImageBatch:
    """A ComfyUI IMAGE of `count` frames filled batch by batch, so only the result is held in full."""

    def __init__(self, count: int):
        self.count = count
        self.image: torch.Tensor | None = None
        self.filled = 0

    def add(self, frames: np.ndarray) -> None:
        if self.image is None:
            self.image = torch.empty((self.count, *frames.shape[1:]), dtype=torch.float32)
        self.image[self.filled:self.filled + len(frames)] = comfy_image(frames)
        self.filled += len(frames)


def resample_frames(count: int, fps: float, target_fps: float) -> np.ndarray:
    """Indices of the nearest of `count` frames at `fps` for each frame of the same span at `target_fps`."""
    if fps <= 0:
        raise TalkingHeadError(f"frame rate must be positive, got {fps}")
    num_frames = max(1, round(count / fps * target_fps))
    return np.minimum(np.round(np.arange(num_frames) * fps / target_fps).astype(int), count - 1)
