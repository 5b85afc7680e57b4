"""Paste-back: each frame's lower face (the portrait's own, moved at its own resolution, or a generated one) blended
into the full portrait, the head moved inside a soft ellipse; and the skin colour of generated lower faces matched to
the portrait's."""

import cv2
import numpy as np

from .align import apply_affine, box_to_affine, compose_affine, invert_affine
from .landmarks import OUTER_LIPS
from .mouth_window import WindowRefiner
from .portrait import PortraitFace
from .render import lower_face_mask
from .warp import compose_lower_face, with_still_jaw

# Softness of the pasted lower face's edge, as a fraction of the crop size.
PASTE_FEATHER = 0.03


def paste_back(face: PortraitFace, crops: np.ndarray, landmarks: np.ndarray, transforms: np.ndarray,
               lower_face: str = "warped", refiner: WindowRefiner | None = None) -> np.ndarray:
    """Full frames [N,H,W,3]: the portrait with its head moved by `transforms` and each frame's lower face blended in.

    With `lower_face` "warped" the lower face is the portrait's own, moved onto the frame's landmarks at the portrait's
    own resolution, with the inside of the mouth from the generated crops (uint8 [N,S,S,3] at the size of
    `face.crop`; see `compose_lower_face`), each mouth redrawn at that resolution by the `refiner` if one is given;
    with "drawn" it is the generated crop's, enlarged. Only the region under the face's crop box changes: the head
    moves inside a soft ellipse there, so the background and the body stay still.
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
    still_region = face.image[y0:y1, x0:x1]
    head = cv2.warpAffine(_head_ellipse(size), crop_to_region, region_size, flags=cv2.INTER_LINEAR)[..., None]
    if lower_face == "warped":
        # The paste mask follows the jaw as the warp moves it (with the head), so its edge does not flicker.
        masks = paste_masks(with_still_jaw(face.crop_landmarks, landmarks), size)
        lower_faces = compose_lower_face(still_region, apply_affine(face.crop_landmarks, crop_to_region),
                                         apply_affine(landmarks, crop_to_region), crops, crop_to_region, refiner)
    else:
        masks = paste_masks(landmarks, size)
        lower_faces = [cv2.warpAffine(crop, crop_to_region, region_size, flags=cv2.INTER_CUBIC,
                                      borderMode=cv2.BORDER_REPLICATE) for crop in crops]
    frames = np.repeat(face.image[None], len(crops), axis=0)
    for frame, lower, mask, transform in zip(frames, lower_faces, masks, transforms):
        region = still_region.astype(np.float32)
        if not np.allclose(transform, np.eye(2, 3)):
            motion = compose_affine(crop_to_region, compose_affine(transform, image_to_crop))
            moved = cv2.warpAffine(face.image, motion, region_size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            region = region + head * (moved - region)
        alpha = cv2.warpAffine(mask, crop_to_region, region_size, flags=cv2.INTER_LINEAR)[..., None]
        frame[y0:y1, x0:x1] = np.clip(region + alpha * (lower.astype(np.float32) - region), 0, 255).round()
    return frames


def paste_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The soft masks [N,S,S] in 0..1 with which generated lower faces (around `landmarks` [N,68,2], crop
    pixels) replace the portrait's."""
    return lower_face_mask(landmarks, size, feather=PASTE_FEATHER)


def paste_into_crops(crops: np.ndarray, generated: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """uint8 face crops [N,S,S,3] with the generated crops' lower faces blended in, as `paste_back` blends
    them into the full frames; `landmarks` [N,68,2] are those the generated crops were drawn from."""
    alpha = paste_masks(landmarks, crops.shape[1])[..., None]
    blended = crops.astype(np.float32) + alpha * (generated.astype(np.float32) - crops)
    return np.clip(blended, 0, 255).round().astype(np.uint8)


def lower_face_skin(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Boolean mask [S,S] of the lower face's skin around `landmarks` [68,2] (crop pixels): the lower face
    without the lips, whose opening changes the colours there from frame to frame."""
    lips = np.zeros((size, size), np.uint8)
    cv2.fillPoly(lips, [np.round(landmarks[list(OUTER_LIPS)]).astype(np.int32)], 1)
    lips = cv2.dilate(lips, np.ones((5, 5), np.uint8))
    return (lower_face_mask(landmarks, size, grow=0.0) > 0.5) & (lips == 0)


def match_skin_colour(crops: np.ndarray, landmarks: np.ndarray, reference: np.ndarray,
                      reference_landmarks: np.ndarray) -> np.ndarray:
    """uint8 crops [N,S,S,3] whose lower face (around `landmarks` [N,68,2], under the paste mask) is recoloured
    so that its skin has the mean and spread, per channel in CIELAB, of the reference crop's skin (Reinhard's
    colour transfer); the rest of each crop stays as it was.

    L2V draws unseen faces' lower halves in the skin tone of the faces it was trained on; the portrait's own
    skin puts the pasted face back into its colours.
    """
    reference_lab = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float32)
    reference_skin = reference_lab[lower_face_skin(reference_landmarks, len(reference))]
    if len(reference_skin) < 2:
        return crops
    target_mean, target_std = reference_skin.mean(0), reference_skin.std(0)
    recoloured = crops.copy()
    for crop, points, out in zip(crops, landmarks, recoloured):
        lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB).astype(np.float32)
        skin = lab[lower_face_skin(points, len(crop))]
        if len(skin) < 2:
            continue
        lab = (lab - skin.mean(0)) / np.maximum(skin.std(0), 1.0) * target_std + target_mean
        out[:] = cv2.cvtColor(np.clip(lab, 0, 255).round().astype(np.uint8), cv2.COLOR_LAB2RGB)
    return paste_into_crops(crops, recoloured, landmarks)


def _head_ellipse(size: int) -> np.ndarray:
    """A soft ellipse [S,S] over the head in a face crop: the part of the portrait that moves with the head."""
    mask = cv2.ellipse(np.zeros((size, size), np.float32), (size // 2, round(size * 0.45)),
                       (round(size * 0.36), round(size * 0.46)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), size * 0.05)
