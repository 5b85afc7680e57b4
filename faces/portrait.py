"""Reading a portrait photo and finding the face to animate in it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import FaceError
from .align import apply_affine, box_to_affine, crop_and_resize, crop_box_from_landmarks, invert_affine
from .landmarks import detect_face_landmarks

logger = logging.getLogger(__name__)


def load_portrait(image) -> np.ndarray:
    """A portrait as uint8 RGB [H,W,3] from a path, a PIL image or an array.

    Greyscale (8 or 16 bits) becomes three equal channels; transparency is flattened onto white. Raises FaceError for a
    missing or unreadable file.
    """
    if isinstance(image, (str, Path)):
        path = Path(image)
        if path.is_dir():
            raise FaceError(f"the portrait {path} is a folder, not an image file")
        if not path.is_file():
            raise FaceError(f"portrait not found: {path}")
        try:
            with Image.open(path) as opened:
                opened.load()
                image = opened.copy()
        except (UnidentifiedImageError, OSError) as error:
            raise FaceError(f"{path} could not be read as an image: {error}") from None
    if isinstance(image, Image.Image):
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            # 16-bit greyscale (PNG): PIL's own conversion clips every value above 255 to white.
            levels = np.asarray(image, dtype=np.float64)
            image = Image.fromarray(np.clip(levels / 257.0, 0, 255).round().astype(np.uint8), "L")
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            logger.info("the portrait has transparency; flattening it onto white")
            rgba = image.convert("RGBA")
            flattened = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(flattened, rgba)
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise FaceError(f"expected a uint8 image [H,W], [H,W,3] or [H,W,4], got {array.dtype} {array.shape}")
    if array.ndim == 2 or array.shape[2] == 1:
        return np.repeat(array.reshape(array.shape[0], array.shape[1], 1), 3, axis=2)
    if array.shape[2] == 4:
        return load_portrait(Image.fromarray(array, "RGBA"))
    return np.ascontiguousarray(array)


@dataclass
class PortraitFace:
    """The face chosen in a portrait: the image, its landmarks, the square crop the model sees, and that crop."""

    image: np.ndarray  # uint8 [H,W,3], the whole portrait
    landmarks: np.ndarray  # [68,2] in portrait pixels
    box: np.ndarray  # crop box [cx, cy, side] in portrait pixels
    crop: np.ndarray  # uint8 [S,S,3]
    crop_landmarks: np.ndarray  # [68,2] in crop pixels
    face_index: int
    face_count: int

    @classmethod
    def of_frame(cls, frame: np.ndarray, landmarks: np.ndarray, box: np.ndarray, size: int) -> "PortraitFace":
        """A video frame (uint8 [H,W,3]) as a portrait: its face's landmarks [68,2] and the crop of `box` at `size`."""
        crop = crop_and_resize(frame, box, size)
        return cls(frame, landmarks, np.asarray(box), crop, apply_affine(landmarks, box_to_affine(box, size)), 0, 1)

    @property
    def crop_to_image(self) -> np.ndarray:
        """2x3 matrix from crop pixels to portrait pixels."""
        return invert_affine(box_to_affine(self.box, len(self.crop)))


def find_portrait_face(image, size: int, crop_scale: float, landmarker=None, face: int | str = "largest",
                       what: str = "the portrait") -> PortraitFace:
    """Find the face to animate in a portrait (the largest, or `face` by index, largest first) and crop it.

    Raises FaceError when there is no face or the face is too small for a model working at `size` pixels.
    """
    portrait = load_portrait(image)
    height, width = portrait.shape[:2]
    if min(height, width) < size // 2:
        raise FaceError(f"{what} is {width}x{height} pixels; this model needs at least {size // 2} pixels a side")
    found = detect_face_landmarks(portrait, landmarker, which=face, what=what)
    box = crop_box_from_landmarks(found.landmarks, crop_scale)
    if box[2] < size / 2:
        raise FaceError(f"the face in {what} is too small: its crop is {box[2]:.0f} pixels across, and this model "
                        f"needs at least {size // 2} (it works at {size}); use a closer or larger photo")
    crop = crop_and_resize(portrait, box, size)
    crop_landmarks = apply_affine(found.landmarks, box_to_affine(box, size))
    return PortraitFace(portrait, found.landmarks, box, crop, crop_landmarks, found.index, found.count)
