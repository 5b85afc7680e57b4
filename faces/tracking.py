"""Faces through a video: landmarks in every frame, the head pose they give, and one face followed through a video
to dub it."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d
from tqdm.auto import tqdm

from ..errors import FaceError, TalkingHeadError
from ..media.video import read_video_frames
from .align import crop_box_from_landmarks, smooth_track
from .landmarks import get_landmarker, largest_face_landmarks, mouth_opening
from .portrait import PortraitFace
from .pose import estimate_head_pose

logger = logging.getLogger(__name__)

MAX_MISSING_FACE_FRACTION = 0.2
# A followed face's landmarks are smoothed over time with a Gaussian of this many frames (detection jitter, not motion).
LANDMARK_SMOOTHING_FRAMES = 0.7
# A face in the next frame is the followed one when its centre is within this fraction of the face's size.
FOLLOW_DISTANCE = 0.5


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


@dataclass
class FaceTrack:
    """One face followed through a video: its landmarks [N,68,2] in frame pixels (smoothed over time; NaN in frames
    where it was not found), which frames show it [N], a steady crop box per frame [N,3] (cx, cy, side), the frame
    size (w, h), how many faces the video shows at most, and the reference: the frame where the face's mouth is most
    nearly closed, its index and pixels (what a dubbed mouth moves from)."""

    landmarks: np.ndarray
    found: np.ndarray
    boxes: np.ndarray
    frame_size: tuple[int, int]
    face_count: int
    reference: int
    reference_frame: np.ndarray

    def __len__(self) -> int:
        return len(self.found)

    def reference_face(self, size: int) -> PortraitFace:
        """The reference frame as a portrait, its face cropped at `size` (L2V's identity reference)."""
        return PortraitFace.of_frame(self.reference_frame, self.landmarks[self.reference], self.boxes[self.reference],
                                     size)


def track_face(batches: Iterable[np.ndarray], landmarker, crop_scale: float, fps: float,
               face: int | str = "largest", what: str = "the video") -> FaceTrack:
    """Follow one face through uint8 frame batches [B,H,W,3]: `face` (the largest, or an index, largest first) where it
    first appears, then in each frame the face nearest to where it was. Frames without it are marked; FaceError when
    no frame shows a face."""
    points, counts, frame_size, previous = [], [], None, None
    reference, reference_frame, least_opening = -1, None, np.inf
    for batch in batches:
        for frame in batch:
            frame_size = (frame.shape[1], frame.shape[0])
            boxes = landmarker.detect(frame)
            counts.append(len(boxes))
            box = _followed_box(boxes, previous, face, what)
            points.append(None if box is None else landmarker.landmarks(frame, box))
            previous = box if box is not None else previous
            if points[-1] is not None and mouth_opening(points[-1]) < least_opening:
                reference, reference_frame, least_opening = len(points) - 1, frame.copy(), mouth_opening(points[-1])
    found = np.array([p is not None for p in points], bool)
    if not found.any():
        raise FaceError(f"no face found in any frame of {what}")
    landmarks = np.full((len(points), 68, 2), np.nan)
    landmarks[found] = np.stack([p for p in points if p is not None])
    landmarks[found] = gaussian_filter1d(landmarks[found], LANDMARK_SMOOTHING_FRAMES, axis=0, mode="nearest")
    if not found.all():
        logger.warning("no face in %d of the %d frames of %s: they pass through unchanged", (~found).sum(),
                       len(found), what)
    boxes = np.full((len(points), 3), np.nan)
    boxes[found] = crop_box_from_landmarks(landmarks[found], crop_scale)
    return FaceTrack(landmarks, found, smooth_track(boxes, mode="smooth", fps=fps), frame_size, max(counts), reference,
                     reference_frame)


def _followed_box(boxes: list, previous, face: int | str, what: str):
    """The box of the followed face among a frame's `boxes` (largest first): by `face` where it first appears, then
    the one nearest to the previous box, if near enough."""
    if not boxes:
        return None
    if previous is None:
        index = 0 if face == "largest" else face
        if not isinstance(index, int) or not 0 <= index < len(boxes):
            raise FaceError(f"{len(boxes)} face(s) where {what} first shows one, so face {face!r} does not exist; "
                            f"choose a face index from 0 (the largest) to {len(boxes) - 1}")
        if len(boxes) > 1:
            logger.warning("%d faces in %s; following face %d", len(boxes), what, index)
        return boxes[index]
    centre, size = _centre_and_size(previous)
    distances = [np.linalg.norm(_centre_and_size(box)[0] - centre) for box in boxes]
    nearest = int(np.argmin(distances))
    return boxes[nearest] if distances[nearest] < FOLLOW_DISTANCE * size else None


def _centre_and_size(box) -> tuple[np.ndarray, float]:
    x0, y0, x1, y1 = box
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2]), max(x1 - x0, y1 - y0)
