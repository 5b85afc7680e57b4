"""Paste-back: generated lower faces blended into the full portrait, the head moved inside a soft ellipse."""

import cv2
import numpy as np

from .align import box_to_affine, compose_affine, invert_affine
from .portrait import PortraitFace
from .render import lower_face_mask

# Softness of the pasted lower face's edge, as a fraction of the crop size.
PASTE_FEATHER = 0.03


def paste_back(face: PortraitFace, crops: np.ndarray, landmarks: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Full frames [N,H,W,3]: the portrait with its head moved by `transforms` and each generated lower face
    (uint8 crops [N,S,S,3] at the size of `face.crop`) blended in.

    Only the region under the face's crop box changes: the head moves inside a soft ellipse there, so
    the background and the body stay still.
    """
    size = len(face.crop)
    image_to_crop = box_to_affine(face.box, size)
    height, width = face.image.shape[:2]
    cx, cy, side = face.box
    x0, y0 = max(0, int(np.floor(cx - side / 2))), max(0, int(np.floor(cy - side / 2)))
    x1, y1 = min(width, int(np.ceil(cx + side / 2)) + 1), min(height, int(np.ceil(cy + side / 2)) + 1)
    region_size = (x1 - x0, y1 - y0)
    image_to_region = np.array([[1.0, 0, -x0], [0, 1.0, -y0]])
    crop_to_region = compose_affine(image_to_region, invert_affine(image_to_crop))
    still_region = face.image[y0:y1, x0:x1].astype(np.float32)
    head = cv2.warpAffine(_head_ellipse(size), crop_to_region, region_size, flags=cv2.INTER_LINEAR)[..., None]
    masks = lower_face_mask(landmarks, size, feather=PASTE_FEATHER)
    frames = np.repeat(face.image[None], len(crops), axis=0)
    for frame, crop, mask, transform in zip(frames, crops, masks, transforms):
        region = still_region
        if not np.allclose(transform, np.eye(2, 3)):
            motion = compose_affine(crop_to_region, compose_affine(transform, image_to_crop))
            moved = cv2.warpAffine(face.image, motion, region_size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            region = still_region + head * (moved - still_region)
        pasted = cv2.warpAffine(crop, crop_to_region, region_size, flags=cv2.INTER_CUBIC,
                                borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        alpha = cv2.warpAffine(mask, crop_to_region, region_size, flags=cv2.INTER_LINEAR)[..., None]
        frame[y0:y1, x0:x1] = np.clip(region + alpha * (pasted - region), 0, 255).round()
    return frames


def _head_ellipse(size: int) -> np.ndarray:
    """A soft ellipse [S,S] over the head in a face crop: the part of the portrait that moves with the head."""
    mask = cv2.ellipse(np.zeros((size, size), np.float32), (size // 2, round(size * 0.45)),
                       (round(size * 0.36), round(size * 0.46)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), size * 0.05)
