"""68-point facial landmarks (iBUG 300-W layout) from pluggable backends.

Coordinates are ``(x, y)`` in pixels of the input image, with pixel centres at integer positions.
"Right" and "left" are the person's own sides: the right eye appears on the image's left in an
unmirrored photo. Boxes are ``(x0, y0, x1, y1)`` pixel edges (``x1``/``y1`` exclusive).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import FaceError, ModelError

logger = logging.getLogger(__name__)

JAW = tuple(range(0, 17))
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
INNER_LIPS = tuple(range(60, 68))
# The jaw line under the mouth, from cheek to cheek: what speech moves besides the lips.
CHIN = tuple(range(5, 12))

FACE_PARTS = {
    "jaw": JAW,
    "right_brow": RIGHT_BROW,
    "left_brow": LEFT_BROW,
    "nose": NOSE,
    "right_eye": RIGHT_EYE,
    "left_eye": LEFT_EYE,
    "outer_lips": OUTER_LIPS,
    "inner_lips": INNER_LIPS,
}

# Facing inner-lip points (upper, lower): 61-67, 62-66, 63-65.
INNER_LIP_UPPER = (61, 62, 63)
INNER_LIP_LOWER = (67, 66, 65)


def as_rgb_uint8(image) -> np.ndarray:
    """Return ``image`` (PIL image or uint8 array [H,W], [H,W,3] or [H,W,4]) as a contiguous uint8 RGB array."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ValueError(f"expected a uint8 RGB image [H,W,3], got dtype {arr.dtype} and shape {arr.shape}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def _box_area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _dlib_shape_predictor_path() -> Path:
    # Located via the package folder rather than face_recognition_models.pose_predictor_model_location(),
    # which needs pkg_resources (gone from recent setuptools).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "DlibLandmarker needs the 68-point model from face-recognition-models: "
            "pip install 'talking-head-diffusion[face]'"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"


class DlibLandmarker:
    """dlib's HOG frontal face detector plus its 68-point shape predictor.

    Large images are searched on a copy whose longest side is ``detect_max_side``; when nothing is
    found there, the search is repeated once at twice that resolution to catch small faces. When one
    detection is clear, those scoring below ``min_score`` are dropped as false alarms.
    """

    name = "dlib"

    def __init__(self, model_path: str | Path | None = None, detect_max_side: int = 800, min_score: float = 0.3):
        try:
            import dlib
        except ImportError as e:
            raise ImportError("DlibLandmarker needs dlib: pip install 'talking-head-diffusion[face]'") from e
        path = Path(model_path) if model_path is not None else _dlib_shape_predictor_path()
        if not path.is_file():
            raise ModelError(f"dlib 68-point shape predictor not found at {path}")
        self._rectangle = dlib.rectangle
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(path))
        self.detect_max_side = detect_max_side
        self.min_score = min_score

    def detect(self, image) -> list[tuple[float, float, float, float]]:
        """Face boxes ``(x0, y0, x1, y1)`` in pixels of ``image``, largest first."""
        img = as_rgb_uint8(image)
        h, w = img.shape[:2]
        factor = min(1.0, self.detect_max_side / max(h, w))
        if factor < 1.0:
            small_size = (max(1, round(w * factor)), max(1, round(h * factor)))
            img = np.asarray(Image.fromarray(img).resize(small_size, Image.Resampling.BILINEAR))
        rects, scores, _ = self._detector.run(img, 0, 0.0)
        if len(rects) == 0:
            rects, scores, _ = self._detector.run(img, 1, 0.0)
        # Weak detections beside a clear face are texture that looks like one (a badge, a pattern).
        if len(rects) > 1 and max(scores) >= self.min_score:
            rects = [rect for rect, score in zip(rects, scores) if score >= self.min_score]
        sx, sy = w / img.shape[1], h / img.shape[0]
        boxes = [
            (r.left() * sx, r.top() * sy, (r.right() + 1) * sx, (r.bottom() + 1) * sy) for r in rects
        ]
        return sorted(boxes, key=_box_area, reverse=True)

    def landmarks(self, image, box=None) -> np.ndarray:
        """68 landmarks [68,2] float32 of the face in ``box`` (default: the largest face found)."""
        img = as_rgb_uint8(image)
        if box is None:
            box = _largest_box(self, img)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._predictor(img, self._rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


class FaceAlignmentLandmarker:
    """The ``face_alignment`` package (S3FD detector + 2D FAN); its weights are downloaded on first use."""

    name = "face_alignment"

    def __init__(self, device: str = "cpu"):
        try:
            import face_alignment
        except ImportError as e:
            raise ImportError(
                "FaceAlignmentLandmarker needs the optional package face-alignment: "
                "pip install 'talking-head-diffusion[face-alignment]'"
            ) from e
        types = face_alignment.LandmarksType
        kind = types.TWO_D if hasattr(types, "TWO_D") else types._2D  # renamed in face-alignment 1.4
        try:
            self._fa = face_alignment.FaceAlignment(kind, device=device, flip_input=False)
        except Exception as e:
            raise ModelError(
                "could not load the face_alignment models (their weights are downloaded on first use; "
                f"check the internet connection or the torch hub cache): {e}"
            ) from e

    def detect(self, image) -> list[tuple[float, float, float, float]]:
        """Face boxes ``(x0, y0, x1, y1)`` in pixels of ``image``, largest first."""
        img = as_rgb_uint8(image)
        found = self._fa.face_detector.detect_from_image(img[:, :, ::-1].copy())  # detector expects BGR
        boxes = [tuple(float(v) for v in f[:4]) for f in found]
        return sorted(boxes, key=_box_area, reverse=True)

    def landmarks(self, image, box=None) -> np.ndarray:
        """68 landmarks [68,2] float32 of the face in ``box`` (default: the largest face found)."""
        img = as_rgb_uint8(image)
        if box is None:
            box = _largest_box(self, img)
        preds = self._fa.get_landmarks_from_image(img, detected_faces=[np.array([*box, 1.0])])
        return np.asarray(preds[0], dtype=np.float32)[:, :2]


_LANDMARKERS = {"dlib": DlibLandmarker, "face_alignment": FaceAlignmentLandmarker}
LANDMARK_BACKENDS = tuple(_LANDMARKERS)


def get_landmarker(name: str = "dlib"):
    """The landmark backend ``name`` ("dlib" or "face_alignment", also spelt "face-alignment"), loaded once and cached."""
    backend = name.replace("-", "_")
    if backend not in _LANDMARKERS:
        raise ModelError(f"unknown landmark backend {name!r}; choose one of {', '.join(sorted(_LANDMARKERS))}")
    return _load_landmarker(backend)


@functools.lru_cache(maxsize=None)
def _load_landmarker(name: str):
    return _LANDMARKERS[name]()


def largest_face_landmarks(landmarker, image: np.ndarray) -> np.ndarray | None:
    """Landmarks [68,2] of the largest face in a uint8 RGB image, or None when it shows no face."""
    boxes = landmarker.detect(image)
    return landmarker.landmarks(image, boxes[0]) if boxes else None


MIN_DETECTION_SIDE = 256  # smaller frames are enlarged to this before detection: dlib misses faces in small crops


def landmarks_per_frame(frames: np.ndarray, landmarker) -> np.ndarray:
    """Landmarks [N,68,2] of the largest face in each uint8 frame [N,H,W,3], in the frame's own pixels, NaN where
    there is none; frames smaller than MIN_DETECTION_SIDE are enlarged (bicubic, a whole factor) for the detector."""
    found = np.full((len(frames), 68, 2), np.nan, np.float32)
    height, width = frames.shape[1:3]
    factor = max(1, -(-MIN_DETECTION_SIDE // min(height, width)))
    for index, frame in enumerate(frames):
        if factor > 1:
            frame = np.asarray(Image.fromarray(frame).resize((width * factor, height * factor), Image.BICUBIC))
        points = largest_face_landmarks(landmarker, frame)
        if points is not None:
            found[index] = (points + 0.5) / factor - 0.5
    return found


def _largest_box(landmarker, image, what: str = "the image"):
    boxes = landmarker.detect(image)
    if not boxes:
        raise FaceError(f"no face found in {what}")
    return boxes[0]


@dataclass
class FaceLandmarks:
    """Landmarks [68,2] of the chosen face, its box, its index among the faces (largest first) and the face count."""

    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    index: int
    count: int


def detect_face_landmarks(image, landmarker=None, which="largest", what: str = "the image") -> FaceLandmarks:
    """Find the faces in ``image`` and return the landmarks of one of them.

    ``which`` is "largest" or an index into the faces sorted by area (largest first). ``what`` names
    the image in messages. Raises FaceError when no face is found; logs a warning when several are.
    """
    landmarker = landmarker if landmarker is not None else get_landmarker()
    img = as_rgb_uint8(image)
    boxes = landmarker.detect(img)
    if not boxes:
        raise FaceError(f"no face found in {what}")
    if which == "largest":
        index = 0
    elif isinstance(which, int) and 0 <= which < len(boxes):
        index = which
    else:
        raise FaceError(f"{len(boxes)} face(s) found in {what}, so face {which!r} does not exist; choose a face "
                        f"index from 0 (the largest) to {len(boxes) - 1}")
    box = boxes[index]
    if len(boxes) > 1:
        logger.warning(
            "%d faces found in %s; using face %d (box %s)", len(boxes), what, index, tuple(round(v) for v in box)
        )
    return FaceLandmarks(landmarks=landmarker.landmarks(img, box), box=box, index=index, count=len(boxes))


def mouth_opening(landmarks):
    """Mouth opening of [68,2] or [T,68,2] landmarks: mean distance between the facing inner-lip points
    (61-67, 62-66, 63-65) divided by the distance between the eye centres. A float, or an array [T]."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape[-2:] != (68, 2) or pts.ndim not in (2, 3):
        raise ValueError(f"expected landmarks [68,2] or [T,68,2], got shape {pts.shape}")
    gap = np.linalg.norm(pts[..., list(INNER_LIP_UPPER), :] - pts[..., list(INNER_LIP_LOWER), :], axis=-1).mean(axis=-1)
    eyes = np.linalg.norm(
        pts[..., list(LEFT_EYE), :].mean(axis=-2) - pts[..., list(RIGHT_EYE), :].mean(axis=-2), axis=-1
    )
    opening = gap / eyes
    return float(opening) if opening.ndim == 0 else opening
