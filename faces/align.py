"""Stable square face crops for portraits and video frames.

A crop box is ``(cx, cy, size)``: the centre in pixel coordinates (pixel centres at integers, like
landmarks) and the side length in pixels. Boxes may extend past the image; the missing part is padded.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter1d

from ..errors import FaceError
from .landmarks import LEFT_EYE, RIGHT_EYE


def crop_box_from_landmarks(landmarks, scale: float = 2.4) -> np.ndarray:
    """Square crop box ``[cx, cy, size]`` (or ``[T,3]`` for ``[T,68,2]`` landmarks) around a face.

    The face measure is ``max(2.0 * eye distance, 1.8 * eye-to-mouth distance)`` and the box side is
    ``scale`` times it; the centre sits a quarter of the way from the eyes to the mouth. The default
    ``scale=2.4`` frames the whole head, hair included, and the top of the shoulders.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape[-2:] != (68, 2) or pts.ndim not in (2, 3):
        raise ValueError(f"expected landmarks [68,2] or [T,68,2], got shape {pts.shape}")
    right_eye = pts[..., list(RIGHT_EYE), :].mean(axis=-2)
    left_eye = pts[..., list(LEFT_EYE), :].mean(axis=-2)
    eyes = (right_eye + left_eye) / 2
    mouth = (pts[..., 48, :] + pts[..., 54, :]) / 2
    face = np.maximum(
        2.0 * np.linalg.norm(left_eye - right_eye, axis=-1), 1.8 * np.linalg.norm(mouth - eyes, axis=-1)
    )
    centre = eyes + 0.25 * (mouth - eyes)
    return np.concatenate([centre, scale * face[..., None]], axis=-1)


def smooth_track(boxes, mode: str = "fixed", window_s: float = 0.5, fps: float = 25.0) -> np.ndarray:
    """Steady crop boxes ``[T,3]`` for a video from per-frame boxes ``[T,3]``.

    ``mode="fixed"``: one box for the whole video, the per-frame median (best for a static speaker).
    ``mode="smooth"``: a centred moving average over ``window_s`` seconds at ``fps``.
    Rows of NaN (frames where no face was found) are filled from their neighbours.
    """
    track = np.asarray(boxes, dtype=np.float64)
    if track.ndim != 2 or track.shape[1] != 3 or len(track) == 0:
        raise ValueError(f"expected boxes [T,3], got shape {track.shape}")
    valid = np.isfinite(track).all(axis=1)
    if not valid.any():
        raise FaceError("no face found in any frame of the video")
    if mode == "fixed":
        return np.repeat(np.median(track[valid], axis=0, keepdims=True), len(track), axis=0)
    if mode != "smooth":
        raise ValueError(f"mode must be 'fixed' or 'smooth', got {mode!r}")
    frames = np.arange(len(track))
    filled = np.stack([np.interp(frames, frames[valid], track[valid, i]) for i in range(3)], axis=1)
    window = max(1, round(window_s * fps)) | 1  # odd, so the average is centred
    return uniform_filter1d(filled, size=window, axis=0, mode="nearest")


def box_to_affine(box, size: int) -> np.ndarray:
    """2x3 matrix mapping image pixel coordinates to pixel coordinates of the ``size`` x ``size`` crop of ``box``."""
    cx, cy, side = (float(v) for v in box)
    k = size / side
    return np.array([[k, 0.0, (side / 2 - cx) * k - 0.5], [0.0, k, (side / 2 - cy) * k - 0.5]])


def apply_affine(points, M) -> np.ndarray:
    """Apply a 2x3 affine matrix to points ``[..., 2]``."""
    pts = np.asarray(points, dtype=np.float64)
    M = np.asarray(M, dtype=np.float64)
    return pts @ M[:, :2].T + M[:, 2]


def invert_affine(M) -> np.ndarray:
    """The inverse of a 2x3 affine matrix, as a 2x3 matrix."""
    M = np.asarray(M, dtype=np.float64)
    inv = np.linalg.inv(M[:, :2])
    return np.concatenate([inv, -inv @ M[:, 2:]], axis=1)


def crop_and_resize(image, box, size: int, pad_mode: str = "edge") -> np.ndarray:
    """Crop ``box`` from a uint8 image [H,W] or [H,W,C] and resize it to ``size`` x ``size`` (Lanczos).

    Parts of the box outside the image are padded with numpy's ``pad_mode`` ("edge" replicates the
    border, "reflect" mirrors it). The result lines up exactly with ``box_to_affine(box, size)``.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 image [H,W] or [H,W,C], got dtype {arr.dtype} and shape {arr.shape}")
    cx, cy, side = (float(v) for v in box)
    if not side > 0:
        raise ValueError(f"crop box size must be positive, got {side}")
    # Box edges in continuous coordinates, where pixel j covers [j, j + 1].
    x0, y0 = cx + 0.5 - side / 2, cy + 0.5 - side / 2
    x1, y1 = x0 + side, y0 + side
    # Integer region with a one-pixel margin for the resampling filter.
    xa, ya, xb, yb = math.floor(x0) - 1, math.floor(y0) - 1, math.ceil(x1) + 1, math.ceil(y1) + 1
    h, w = arr.shape[:2]
    region = arr[max(ya, 0) : min(yb, h), max(xa, 0) : min(xb, w)]
    if region.size == 0:
        raise ValueError(f"crop box {tuple(box)} lies entirely outside the {w}x{h} image")
    pad = [(max(0, -ya), max(0, yb - h)), (max(0, -xa), max(0, xb - w))] + [(0, 0)] * (arr.ndim - 2)
    if any(p for pair in pad for p in pair):
        region = np.pad(region, pad, mode=pad_mode)
    resized = Image.fromarray(region).resize(
        (size, size), Image.Resampling.LANCZOS, box=(x0 - xa, y0 - ya, x1 - xa, y1 - ya)
    )
    return np.asarray(resized)


# Points that move with the head but hardly with speech or expression: the nose and the eye corners.
STABLE_POINTS = tuple(range(27, 36)) + (36, 39, 42, 45)


def fit_similarity(source, target) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, shift) that best maps points ``source`` onto ``target``.

    Least squares over the points (Umeyama's method); both are ``[N,2]``.
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / src_c.var(0).sum()
    linear = scale * rotation
    return np.concatenate([linear, (dst_mean - linear @ src_mean)[:, None]], axis=1)


def compose_affine(outer, inner) -> np.ndarray:
    """The 2x3 matrix applying ``inner`` first, then ``outer``."""
    outer, inner = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


def rescaled_landmarks(landmarks: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """Landmarks in the pixels of a `from_size` crop moved to those of the same crop at `to_size`."""
    return (np.asarray(landmarks, np.float64) + 0.5) * to_size / from_size - 0.5


def rescaling_affine(from_size: int, to_size: int) -> np.ndarray:
    """The 2x3 map that `rescaled_landmarks` applies: a `from_size` crop's pixels to the same crop's at `to_size`
    (pixel centres kept)."""
    factor = to_size / from_size
    return np.array([[factor, 0.0, (factor - 1) / 2], [0.0, factor, (factor - 1) / 2]])


def to_unit_coordinates(points, size: int):
    """Pixel coordinates of a ``size`` x ``size`` image to -1..1 (the image's edges); numpy or torch."""
    return (points + 0.5) / size * 2 - 1


def from_unit_coordinates(points, size: int):
    """The inverse of `to_unit_coordinates`."""
    return (points + 1) / 2 * size - 0.5
