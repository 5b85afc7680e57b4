"""Drawing landmarks: the L2V model's visual condition, a preview for users, and the lower-face mask.

`render_landmarks` draws each face part as coloured lines on black; L2V was trained on exactly these
drawings, so the colours, widths and the open or closed outline of each part are part of the model.
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmarks import FACE_PARTS

# (part, closed outline, RGB colour)
_PART_STYLE = (
    ("jaw", False, (255, 255, 255)),
    ("right_brow", False, (255, 160, 0)),
    ("left_brow", False, (255, 160, 0)),
    ("nose", False, (0, 170, 255)),
    ("right_eye", True, (0, 255, 0)),
    ("left_eye", True, (0, 255, 0)),
    ("outer_lips", True, (255, 0, 80)),
    ("inner_lips", True, (255, 220, 220)),
)
# The lower face: the jaw line from cheek to cheek, closed over the bridge of the nose.
_LOWER_FACE = list(range(1, 16)) + [29]


def render_landmarks(landmarks, size: int, thickness: int | None = None, from_size: int | None = None) -> np.ndarray:
    """Draw landmarks ``[68,2]`` or ``[T,68,2]`` (pixels of a ``size`` x ``size`` image, or of a ``from_size`` one,
    rescaled) as uint8 RGB images.

    Returns ``[size,size,3]`` or ``[T,size,size,3]``. Lines are ``size / 96`` pixels wide unless given.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if from_size is not None:
        points = (points + 0.5) * (size / from_size) - 0.5  # pixel centres of one image size onto another
    single = points.ndim == 2
    points = points[None] if single else points
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks [68,2] or [T,68,2], got shape {np.shape(landmarks)}")
    width = thickness or max(1, round(size / 96))
    shift = 4  # sub-pixel precision for cv2's fixed-point drawing
    images = np.zeros((len(points), size, size, 3), np.uint8)
    for image, face in zip(images, points):
        for part, closed, colour in _PART_STYLE:
            line = np.round(face[list(FACE_PARTS[part])] * (1 << shift)).astype(np.int32)
            cv2.polylines(image, [line], closed, colour, width, cv2.LINE_AA, shift)
    return images[0] if single else images


def lower_face_mask(landmarks, size: int, grow: float = 0.06, feather: float = 0.0) -> np.ndarray:
    """Float mask ``[size,size]`` (or ``[T,size,size]``) in 0..1 covering the lower face: jaw, mouth, nose tip.

    The region grows by ``grow`` times the image size so an opening jaw stays inside it; ``feather``
    (a fraction of the size) softens its edge with a Gaussian blur, for pasting generated faces back.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    single = points.ndim == 2
    points = points[None] if single else points
    grow_px = max(1, round(grow * size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
    masks = np.zeros((len(points), size, size), np.float32)
    for mask, face in zip(masks, points):
        polygon = np.round(face[_LOWER_FACE]).astype(np.int32)
        region = cv2.fillPoly(np.zeros((size, size), np.uint8), [polygon], 1)
        region = cv2.dilate(region, kernel).astype(np.float32)
        if feather > 0:
            sigma = feather * size
            region = cv2.GaussianBlur(region, (0, 0), sigma)
        mask[:] = region
    return masks[0] if single else masks
