"""Faces through a video: landmarks in every frame, and the head pose they give."""

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import FaceError, TalkingHeadError
from ..media.video import read_video_frames
from .landmarks import get_landmarker, largest_face_landmarks
from .pose import estimate_head_pose

MAX_MISSING_FACE_FRACTION = 0.2


def track_landmarks(video: Path, fps: float, landmarker, progress: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """Landmarks [N,68,2] of the largest face in every frame of a video file; gaps are filled from neighbouring frames."""
    frames = tqdm(read_video_frames(video, fps=fps), desc=f"landmarks {video.name}", unit="batch", disable=not progress)
    return landmarks_through_frames(frames, landmarker, str(video))


def landmarks_through_frames(batches: Iterable[np.ndarray], landmarker, what: str) -> tuple[np.ndarray, tuple[int, int]]:
    """Landmarks [N,68,2] of the largest face in every frame of uint8 batches [B,H,W,3], and the frame size (w, h).

    Frames without a face copy the nearest frame with one; FaceError when more than a fifth have none.
    """
    per_frame, image_size = [], None
    for batch in batches:
        for frame in batch:
            image_size = (frame.shape[1], frame.shape[0])
            per_frame.append(largest_face_landmarks(landmarker, frame))
    found = np.array([points is not None for points in per_frame])
    if not found.any():
        raise FaceError(f"no face found in any frame of {what}")
    if 1 - found.mean() > MAX_MISSING_FACE_FRACTION:
        raise FaceError(f"no face found in {100 * (1 - found.mean()):.0f}% of the frames of {what}; use footage that shows the face throughout")
    landmarks = np.zeros((len(per_frame), 68, 2), np.float32)
    known = np.flatnonzero(found)
    for index in known:
        landmarks[index] = per_frame[index]
    for index in np.flatnonzero(~found):  # copy the nearest frame with a face
        landmarks[index] = landmarks[known[np.abs(known - index).argmin()]]
    return landmarks, image_size


def ping_pong(length: int, num_frames: int) -> np.ndarray:
    """Indices [num_frames] that play a sequence of `length` forward, backward and forward again as often as needed."""
    if length < 1:
        raise TalkingHeadError("cannot stretch an empty sequence")
    cycle = np.concatenate([np.arange(length), np.arange(length - 2, 0, -1)]) if length > 2 else np.arange(length)
    return cycle[np.arange(num_frames) % len(cycle)]


def pose_from_video(video: str | Path, fps: float = 25.0, landmark_backend: str = "dlib") -> np.ndarray:
    """Head pose per frame [N,6] of the face in a reference video, at `fps`."""
    video = Path(video)
    if not video.exists():
        raise TalkingHeadError(f"pose video not found: {video}")
    landmarks, image_size = track_landmarks(video, fps, get_landmarker(landmark_backend))
    return estimate_head_pose(landmarks, image_size).astype(np.float32)
