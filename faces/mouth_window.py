"""A square window around each frame's mouth, at the image's own resolution: where the mouth refiner redraws it.

The window is centred on the lips, turned with the line between the eyes' centres, and spans `WINDOW_SPAN` times their
distance, so it moves and scales with the head but not with the mouth's opening (a window that followed the lips'
width would zoom in and out as they move). `refine_mouths` samples each composed frame and its drawn crop
into the window, lets a refiner correct it, and adds the correction back over the lips and a margin around them, at
the image's resolution (so what the refiner leaves alone keeps the image's own detail).
"""

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from .align import apply_affine, compose_affine, invert_affine
from .landmarks import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE

# The window's side, in distances between the eyes' centres.
WINDOW_SPAN = 1.6
# How far around the outer lips the refiner's correction reaches, and how softly (fractions of the side).
PASTE_GROW = 0.08
PASTE_FEATHER = 0.04
_LIPS = list(OUTER_LIPS) + list(INNER_LIPS)


class WindowRefiner(Protocol):
    """What redraws the mouth windows (the landmark pipeline's `MouthRefiner`)."""

    @property
    def window_size(self) -> int: ...

    def refine(self, composed: np.ndarray, drawn: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """uint8 windows [N,W,W,3] from the composed and drawn windows (uint8) and the masks (float [N,W,W,2])."""


def mouth_windows(landmarks: np.ndarray, window_size: int) -> np.ndarray:
    """The affine maps [N,2,3] from an image's pixels to a `window_size` window around each mouth of `landmarks`
    [N,68,2] (the image's pixels)."""
    landmarks = np.asarray(landmarks, np.float64)
    eyes = landmarks[:, list(LEFT_EYE)].mean(axis=1) - landmarks[:, list(RIGHT_EYE)].mean(axis=1)
    scale = window_size / (WINDOW_SPAN * np.linalg.norm(eyes, axis=1))
    angle = np.arctan2(eyes[:, 1], eyes[:, 0])
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    linear = np.stack([np.stack([cos, sin], axis=1), np.stack([-sin, cos], axis=1)], axis=1)  # [N,2,2]
    centre = landmarks[:, _LIPS].mean(axis=1)
    shift = (window_size - 1) / 2 - np.einsum("nij,nj->ni", linear, centre)
    return np.concatenate([linear, shift[..., None]], axis=2)


def window_masks(window_landmarks: np.ndarray, window_size: int) -> np.ndarray:
    """Soft masks float [N,W,W,2] of the inside of each mouth (inner-lip polygon) and of the whole mouth with its
    lips (outer-lip polygon), for landmarks [N,68,2] in the windows' pixels."""
    step = max(1, round(window_size / 128))
    masks = np.zeros((len(window_landmarks), window_size, window_size, 2), np.float32)
    for mask, points in zip(masks, np.asarray(window_landmarks)):
        for channel, part in enumerate((INNER_LIPS, OUTER_LIPS)):
            polygon = cv2.fillPoly(np.zeros((window_size, window_size), np.uint8),
                                   [np.round(points[list(part)]).astype(np.int32)], 1)
            mask[..., channel] = cv2.GaussianBlur(polygon.astype(np.float32), (0, 0), step)
    return masks


def paste_mask(window_landmarks: np.ndarray, window_size: int) -> np.ndarray:
    """Soft mask float [W,W] where the refiner's correction is added: the outer lips grown by `PASTE_GROW` of the
    window, feathered, and fading out before the window's edge."""
    grow, feather = max(1, round(PASTE_GROW * window_size)), max(1.0, PASTE_FEATHER * window_size)
    polygon = cv2.fillPoly(np.zeros((window_size, window_size), np.uint8),
                           [np.round(window_landmarks[list(OUTER_LIPS)]).astype(np.int32)], 1)
    grown = cv2.dilate(polygon, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    mask = cv2.GaussianBlur(grown.astype(np.float32), (0, 0), feather)
    ramp = np.clip(np.minimum(np.arange(window_size), np.arange(window_size)[::-1]) / (2 * feather), 0, 1)
    return mask * np.minimum(ramp[:, None], ramp[None, :])


@dataclass
class MouthWindows:
    """Each frame's mouth window: the maps `affines` [N,2,3] from the image into it, the landmarks [N,68,2] in it."""

    size: int
    affines: np.ndarray
    landmarks: np.ndarray

    @classmethod
    def around(cls, landmarks: np.ndarray, window_size: int) -> "MouthWindows":
        """The windows around the mouths of `landmarks` [N,68,2] (image pixels)."""
        affines = mouth_windows(landmarks, window_size)
        return cls(window_size, affines, np.stack([apply_affine(p, a) for p, a in zip(landmarks, affines)]))

    def sample(self, images: np.ndarray, to_image: np.ndarray | None = None) -> np.ndarray:
        """uint8 windows [N,W,W,3] of `images` (uint8 [N,h,w,3], or one image [h,w,3] for all), mapped into the image
        by the 2x3 `to_image` when they are not in its pixels (drawn crops)."""
        affines = self.affines if to_image is None else np.stack([compose_affine(a, to_image) for a in self.affines])
        images = np.broadcast_to(images, (len(affines), *images.shape[-3:]))
        return np.stack([cv2.warpAffine(image, affine, (self.size, self.size), flags=cv2.INTER_CUBIC,
                                        borderMode=cv2.BORDER_REPLICATE) for image, affine in zip(images, affines)])

    def masks(self) -> np.ndarray:
        """The refiner's mask channels float [N,W,W,2] (see `window_masks`)."""
        return window_masks(self.landmarks, self.size)

    def paste_masks(self) -> np.ndarray:
        """Where each window's correction is added, float [N,W,W] (see `paste_mask`)."""
        return np.stack([paste_mask(points, self.size) for points in self.landmarks])


def refine_mouths(images: np.ndarray, targets: np.ndarray, drawn: np.ndarray, drawn_to_image: np.ndarray,
                  refiner: WindowRefiner) -> np.ndarray:
    """`images` (uint8 [N,H,W,3], composed lower faces; changed in place and returned) with each mouth around
    `targets` [N,68,2] corrected by `refiner` in its window, given the drawn crops (uint8 [N,s,s,3], mapped into the
    images by the 2x3 `drawn_to_image`): the window's change, enlarged to the image, is added under the paste mask."""
    height, width = images.shape[1:3]
    windows = MouthWindows.around(targets, refiner.window_size)
    composed = windows.sample(images)
    refined = refiner.refine(composed, windows.sample(drawn, drawn_to_image), windows.masks())
    corrections = refined.astype(np.float32) - composed  # added at the image's resolution: its own detail stays
    side = windows.size - 1
    corners = np.array([[0, 0], [side, 0], [0, side], [side, side]], np.float64)
    for image, affine, correction, mask in zip(images, windows.affines, corrections, windows.paste_masks()):
        back = invert_affine(affine)
        x0, y0 = np.clip(np.floor(apply_affine(corners, back).min(0)).astype(int) - 1, 0, [width, height])
        x1, y1 = np.clip(np.ceil(apply_affine(corners, back).max(0)).astype(int) + 2, 0, [width, height])
        if x1 <= x0 or y1 <= y0:
            continue
        to_region = compose_affine(np.array([[1.0, 0, -x0], [0, 1.0, -y0]]), back)
        region = image[y0:y1, x0:x1].astype(np.float32)
        correction_here = cv2.warpAffine(correction, to_region, (x1 - x0, y1 - y0), flags=cv2.INTER_CUBIC,
                                         borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(mask, to_region, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)[..., None]
        image[y0:y1, x0:x1] = np.clip(region + alpha * correction_here, 0, 255).round()
    return images
