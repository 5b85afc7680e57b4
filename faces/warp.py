"""The portrait's own face moved onto new landmarks, and a drawn mouth set into it.

A thin-plate spline through the 68 landmarks (the crop's border held still) carries the portrait crop's pixels
to where each frame's landmarks put them: its skin, lips and beard stay the person's own. What a warp cannot
show is the inside of a mouth that opens wider than the portrait's (teeth, tongue); `set_mouth` takes that
region from a drawn crop. `with_still_jaw` keeps the jaw line out of it: a jaw that A2L drops too far or bends
(it does on faces unlike its training footage) would drag the chin and neck with it.
"""

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from .align import STABLE_POINTS, apply_affine, fit_similarity
from .landmarks import CHIN, INNER_LIPS

# Points per side of the crop's border that the warp holds still.
_BORDER_POINTS_PER_SIDE = 9
# Regularisation of the spline (in crop pixels squared), so that jittering neighbouring points cannot fold it.
_SMOOTHING = 1.0


def _border_points(size: int) -> np.ndarray:
    ticks = np.linspace(0, size - 1, _BORDER_POINTS_PER_SIDE)
    return np.array([(x, y) for x in ticks for y in ticks if x in (0, size - 1) or y in (0, size - 1)])


def warp_to_landmarks(image: np.ndarray, landmarks: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """uint8 crops [N,S,S,3]: the crop `image` (uint8 [S,S,3]) whose landmarks [68,2] (crop pixels) are moved onto
    each of `targets` [N,68,2] by a thin-plate spline, the crop's border held still."""
    size = image.shape[0]
    border = _border_points(size)
    rows, columns = np.mgrid[0:size, 0:size]
    grid = np.stack([columns.ravel(), rows.ravel()], axis=1).astype(np.float64)
    sources = np.concatenate([np.asarray(landmarks, np.float64), border])
    warped = np.empty((len(targets), *image.shape), np.uint8)
    for out, target in zip(warped, np.asarray(targets, np.float64)):
        # Backward map: for every output pixel, where to read the portrait.
        spline = RBFInterpolator(np.concatenate([target, border]), sources, kernel="thin_plate_spline",
                                 smoothing=_SMOOTHING)
        where = spline(grid).astype(np.float32).reshape(size, size, 2)
        out[:] = cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped


def with_still_jaw(landmarks: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`targets` [N,68,2] with the jaw line's points put where the face's own (`landmarks` [68,2]) go when moved
    with the head (the similarity that best puts its nose and eye corners onto each target's)."""
    stable, jaw = list(STABLE_POINTS), list(CHIN)
    held = np.array(targets, np.float64)
    for points in held:
        points[jaw] = apply_affine(landmarks[jaw], fit_similarity(landmarks[stable], points[stable]))
    return held


def mouth_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Soft masks [N,S,S] in 0..1 of the inside of each mouth (the inner-lip polygon of landmarks [N,68,2], grown
    and softened by about one pixel per 128)."""
    step = max(1, round(size / 128))
    kernel = np.ones((2 * step + 1, 2 * step + 1), np.uint8)
    masks = np.zeros((len(landmarks), size, size), np.float32)
    for mask, points in zip(masks, np.asarray(landmarks)):
        polygon = cv2.fillPoly(np.zeros((size, size), np.uint8), [np.round(points[list(INNER_LIPS)]).astype(np.int32)], 1)
        mask[:] = cv2.GaussianBlur(cv2.dilate(polygon, kernel).astype(np.float32), (0, 0), step)
    return masks


def set_mouth(faces: np.ndarray, drawn: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """uint8 crops [N,S,S,3]: `faces` with the inside of each mouth (around `landmarks` [N,68,2]) taken from `drawn`."""
    alpha = mouth_masks(landmarks, faces.shape[1])[..., None]
    blended = faces.astype(np.float32) + alpha * (drawn.astype(np.float32) - faces)
    return np.clip(blended, 0, 255).round().astype(np.uint8)
