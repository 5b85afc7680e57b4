"""The prepared-footage dataset that `talking-head prepare` writes and every training task reads.

Layout of a dataset folder:

    dataset.json                    format, fps, resolution, sample rate, feature front ends, clips
    clips/<name>/frames.npy         uint8 [N,R,R,3] aligned face crops, one per video frame
    clips/<name>/audio.npy          float32 [S] mono speech at 16 kHz
    clips/<name>/features-<name>.npy float32 [N,F] audio features per video frame, by front end (`clip_features`)
    clips/<name>/pose.npy           float32 [N,6] yaw, pitch, roll (degrees), tx, ty, scale
    clips/<name>/landmarks.npy      float32 [N,68,2] landmarks in crop pixels

Each clip is split by time: its first frames train, its last `val_fraction` validate.
"""

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import TalkingHeadError
from ..media.audio import SAMPLE_RATE
from ..media.features import AudioFeatureExtractor
from ..media.images import to_model_range

DATASET_FORMAT = "talking-head-dataset/1"
DATASET_FILE = "dataset.json"


@dataclass
class Clip:
    """One prepared video: its arrays are memory-mapped, so large datasets stay on disk."""

    name: str
    folder: Path
    num_frames: int
    train_range: tuple[int, int]
    val_range: tuple[int, int]

    def array(self, what: str) -> np.ndarray:
        """A clip array by name ("frames", "pose", "landmarks", "audio", "features-logmel")."""
        path = self.folder / f"{what}.npy"
        if not path.exists():
            raise TalkingHeadError(f"the dataset clip '{self.name}' has no {what}.npy; run `talking-head prepare` again")
        return np.load(path, mmap_mode="r")

    def frame_range(self, split: str) -> tuple[int, int]:
        """The frames of a split: "train", "val" or "all"."""
        if split == "all":
            return 0, self.num_frames
        return self.train_range if split == "train" else self.val_range


class TalkingHeadDataset:
    """A prepared dataset folder, or several trained together (same frame rate and crop resolution)."""

    def __init__(self, root: str | Path | Sequence[str | Path]):
        roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
        if not roots:
            raise TalkingHeadError("no dataset folder given")
        self.root, self.roots = roots[0], roots
        indexes = [_read_index(folder) for folder in roots]
        self.index = dict(indexes[0])
        for folder, index in zip(roots[1:], indexes[1:]):
            for key in ("fps", "resolution"):
                if index[key] != self.index[key]:
                    raise TalkingHeadError(f"{folder} has {key} {index[key]} but {self.root} has {self.index[key]}; "
                                           "datasets trained together must match")
        self.fps = float(self.index["fps"])
        self.resolution = int(self.index["resolution"])
        self.clips = [
            Clip(c["name"], folder / "clips" / c["name"], c["num_frames"], tuple(c["train_frames"]), tuple(c["val_frames"]))
            for folder, index in zip(roots, indexes) for c in index["clips"]
        ]

    @property
    def name(self) -> str:
        """The dataset folders' names (not their paths), for training records."""
        return " + ".join(root.name for root in self.roots)

    def frames(self, split: str, image_size: int) -> torch.Tensor:
        """All frames of a split, resized to `image_size`, as float [N,3,S,S] in [-1,1]."""
        return torch.cat([self.clip_frames(clip, split, image_size) for clip in self.clips if _length(clip, split)])

    def arrays(self, what: str, split: str) -> torch.Tensor:
        """A per-frame array of every clip for a split, concatenated in the order of `frames`."""
        return torch.cat([self.clip_array(clip, what, split) for clip in self.clips if _length(clip, split)])

    def clip_frames(self, clip: Clip, split: str, image_size: int, batch: int = 256) -> torch.Tensor:
        """One clip's frames of a split as float [N,3,S,S] in [-1,1], resized in batches."""
        return torch.cat(list(self.iter_clip_frames(clip, split, image_size, batch)))

    def iter_clip_frames(self, clip: Clip, split: str, image_size: int, batch: int = 256,
                         stride: int = 1) -> Iterator[torch.Tensor]:
        """One clip's frames of a split (every `stride`-th) in batches of float [B,3,S,S] in [-1,1], read from
        disk as they go."""
        start, stop = clip.frame_range(split)
        frames = clip.array("frames")
        for first in range(start, stop, batch * stride):
            chunk = torch.from_numpy(np.array(frames[first:min(first + batch * stride, stop):stride]))
            yield resize_images(to_model_range(chunk), image_size)

    def clip_features(self, clip: Clip, front_end: AudioFeatureExtractor, split: str) -> torch.Tensor:
        """A clip's speech features [N,F] from `front_end`, restricted to a split: read from the clip's
        `features-<front_end.cache_name>.npy` when it exists, else computed from its speech once and kept there."""
        path = clip.folder / f"features-{front_end.cache_name}.npy"
        if not path.exists():
            if front_end.fps != self.fps:
                raise TalkingHeadError(f"the features are for {front_end.fps} fps but {self.root} has {self.fps} fps")
            features = front_end(np.array(clip.array("audio")), SAMPLE_RATE)[:clip.num_frames]
            save_array_atomically(path, features.numpy())
        start, stop = clip.frame_range(split)
        return torch.from_numpy(np.array(np.load(path, mmap_mode="r")[start:stop])).float()

    def clip_array(self, clip: Clip, what: str, split: str) -> torch.Tensor:
        """A per-frame clip array restricted to a split, as a float tensor."""
        start, stop = clip.frame_range(split)
        return torch.from_numpy(np.array(clip.array(what)[start:stop])).float()


def _read_index(root: Path) -> dict:
    index_path = root / DATASET_FILE
    if not index_path.exists():
        raise TalkingHeadError(f"{root} is not a prepared dataset (no {DATASET_FILE}); run `talking-head prepare`")
    index = json.loads(index_path.read_text())
    if index.get("format") != DATASET_FORMAT:
        raise TalkingHeadError(f"{index_path} has format {index.get('format')!r}, expected {DATASET_FORMAT!r}")
    return index


def _length(clip: Clip, split: str) -> int:
    start, stop = clip.frame_range(split)
    return stop - start


def save_array_atomically(path: Path, array: np.ndarray) -> None:
    """Write `array` to the .npy file `path` whole, or not at all."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.save(file, array)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def resize_images(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize [N,C,H,W] images to a square `image_size` (area filter when shrinking)."""
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    mode = "area" if images.shape[-1] > image_size else "bicubic"
    resized = F.interpolate(images, size=(image_size, image_size), mode=mode)
    return resized.clamp(-1, 1)
