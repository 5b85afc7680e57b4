"""Faces through a video: landmarks in every frame, and the head pose they give."""

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import FaceError, TalkingHeadError
from ..media.video import read_video_frames
from .landmarks import get_landmarker
from .pose import estimate_head_pose

MAX_MISSING_FACE_FRACTION = 0.2


def track_landmarks(video: Path, fps: float, landmarker, progress: bool = False) -> tuple[np.ndarray, tuple[int, int]]:
    """Landmarks [N,68,2] of the largest face in every frame; gaps are filled from neighbouring frames."""
    per_frame, image_size = [], None
    frames = read_video_frames(video, fps=fps)
    for batch in tqdm(frames, desc=f"landmarks {video.name}", unit="batch", disable=not progress):
        for frame in batch:
            image_size = (frame.shape[1], frame.shape[0])
            boxes = landmarker.detect(frame)
            per_frame.append(landmarker.landmarks(frame, boxes[0]) if boxes else None)
    found = np.array([points is not None for points in per_frame])
    if not found.any():
        raise FaceError(f"no face found in any frame of {video}")
    if 1 - found.mean() > MAX_MISSING_FACE_FRACTION:
        raise FaceError(f"no face found in {100 * (1 - found.mean()):.0f}% of the frames of {video}; use footage that shows the face throughout")
    landmarks = np.zeros((len(per_frame), 68, 2), np.float32)
    known = np.flatnonzero(found)
    for index in known:
        landmarks[index] = per_frame[index]
    for index in np.flatnonzero(~found):  # copy the nearest frame with a face
        landmarks[index] = landmarks[known[np.abs(known - index).argmin()]]
    return landmarks, image_size


def pose_from_video(video: str | Path, fps: float = 25.0, landmark_backend: str = "dlib") -> np.ndarray:
    """Head pose per frame [N,6] of the face in a reference video, at `fps`."""
    video = Path(video)
    if not video.exists():
        raise TalkingHeadError(f"pose video not found: {video}")
    landmarks, image_size = track_landmarks(video, fps, get_landmarker(landmark_backend))
    return estimate_head_pose(landmarks, image_size).astype(np.float32)
