"""The portrait's own face moved onto new landmarks, at the portrait's own resolution, and a drawn mouth set into it.

A thin-plate spline through the 68 landmarks (the image's border held still) carries the portrait's pixels to where
each frame's landmarks put them: its skin, lips and beard stay the person's own, as sharp as in the photo. The
spline is evaluated on a grid of about 128 points a side and interpolated in between, so that a large image costs
little more than a face crop. What a warp cannot show is the inside of a mouth that opens wider than the
portrait's (teeth, tongue): `compose_lower_face` takes that from a drawn crop, and keeps the portrait's own mouth
where the moved mouth still shows it (its teeth, when the photo shows them). The jaw line does not follow A2L's own
jaw points, which drop too far or bend on faces unlike its training footage and would drag the chin and neck with
them: `with_jaw_on_the_lips` moves it with the head and, under the mouth, with the lower lip's own motion, so the chin
drops as the mouth opens; a ring of points below the jaw holds the neck and collar still.
"""

from collections.abc import Iterator

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from .align import STABLE_POINTS, apply_affine, fit_similarity
from .landmarks import CHIN, INNER_LIP_LOWER, INNER_LIP_UPPER, INNER_LIPS, LEFT_EYE, RIGHT_EYE
from .mouth_window import WindowRefiner, refine_mouths

# How far each chin point (5..11, cheek to cheek) follows the lower lip's own motion.
_CHIN_FOLLOWS_LIP = 0.7 * np.array([0.25, 0.5, 0.8, 1.0, 0.8, 0.5, 0.25])
LOWER_LIP_MIDDLE = 57
# How much further from the face's centre than the jaw line the warp holds the neck still.
_NECK_RING = 0.5
# Points per side of the image's border that the warp holds still.
_BORDER_POINTS_PER_SIDE = 9
# Regularisation of the spline (in pixels squared of a 128-pixel face), so that jittering neighbouring points cannot
# fold it.
_SMOOTHING = 1.0
# The spline is evaluated on at most this many points a side; the map is interpolated between them.
_MAP_GRID = 128
# A portrait's own mouth is shown inside a moved mouth when its lips are at least this far apart (the gap between the
# facing inner-lip points over the distance between the eye centres): a closed mouth has no inside to show.
_OPEN_MOUTH = 0.06


def _border_points(height: int, width: int) -> np.ndarray:
    xs, ys = np.linspace(0, width - 1, _BORDER_POINTS_PER_SIDE), np.linspace(0, height - 1, _BORDER_POINTS_PER_SIDE)
    return np.array([(x, y) for x in xs for y in ys if x in (0, width - 1) or y in (0, height - 1)])


def _interpolation_matrix(size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` sample positions spread over 0..size-1, and the [size,count] matrix that interpolates values at them
    linearly to every position 0..size-1 (the identity when count == size)."""
    positions = np.linspace(0, size - 1, count)
    matrix = np.zeros((size, count))
    place = np.interp(np.arange(size), positions, np.arange(count))
    lower = np.minimum(np.floor(place).astype(int), count - 1)
    upper = np.minimum(lower + 1, count - 1)
    weight = place - lower
    matrix[np.arange(size), lower] += 1 - weight
    matrix[np.arange(size), upper] += weight
    return positions, matrix


def warp_maps(landmarks: np.ndarray, targets: np.ndarray, shape: tuple[int, int]) -> Iterator[np.ndarray]:
    """For each of `targets` [N,68,2], the backward map float32 [H,W,2] of an image of `shape` (H, W) whose
    `landmarks` [68,2] move onto those targets by a thin-plate spline, the image's border held still: for every output
    pixel, where to read the image (x, y)."""
    height, width = shape
    border = _border_points(height, width)
    ys, rows = _interpolation_matrix(height, min(height, _MAP_GRID))
    xs, columns = _interpolation_matrix(width, min(width, _MAP_GRID))
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    sources = np.concatenate([np.asarray(landmarks, np.float64), border])
    smoothing = _SMOOTHING * (max(height, width) / 128) ** 2
    for target in np.asarray(targets, np.float64):
        spline = RBFInterpolator(np.concatenate([target, border]), sources, kernel="thin_plate_spline",
                                 smoothing=smoothing)
        coarse = spline(grid).reshape(len(ys), len(xs), 2)
        yield np.stack([rows @ coarse[..., axis] @ columns.T for axis in (0, 1)], axis=-1).astype(np.float32)


def remap(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """`image` read at the backward map `where` [H,W,2] (bicubic, edges repeated)."""
    return cv2.remap(image, where[..., 0], where[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


def warp_to_landmarks(image: np.ndarray, landmarks: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """uint8 images [N,H,W,3]: `image` (uint8 [H,W,3]) whose landmarks [68,2] (its pixels) are moved onto each of
    `targets` [N,68,2] by a thin-plate spline, the image's border held still."""
    return np.stack([remap(image, where) for where in warp_maps(landmarks, targets, image.shape[:2])])


def _moved_jaw(landmarks: np.ndarray, targets: np.ndarray, lip_share: np.ndarray) -> np.ndarray:
    """`targets` [N,68,2] with the jaw line's points put where the face's own (`landmarks` [68,2]) go when moved with
    the head, plus `lip_share` (one weight per jaw point) of the lower lip's own motion (its middle point's, the head
    taken out)."""
    stable, jaw = list(STABLE_POINTS), list(CHIN)
    held = np.array(targets, np.float64)
    for points in held:
        head = fit_similarity(landmarks[stable], points[stable])
        lip_motion = points[LOWER_LIP_MIDDLE] - apply_affine(landmarks[LOWER_LIP_MIDDLE][None], head)[0]
        points[jaw] = apply_affine(landmarks[jaw], head) + lip_share[:, None] * lip_motion
    return held


def with_still_jaw(landmarks: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`targets` [N,68,2] with the jaw line's points put where the face's own (`landmarks` [68,2]) go when moved
    with the head (the similarity that best puts its nose and eye corners onto each target's)."""
    return _moved_jaw(landmarks, targets, np.zeros(len(CHIN)))


def with_jaw_on_the_lips(landmarks: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """`targets` [N,68,2] with the jaw line moved with the head (as `with_still_jaw` moves it) and, on top, by the
    lower lip's own motion: fully under the lip, less towards the cheeks. The chin drops as the mouth opens, whatever
    the targets' own jaw points did."""
    return _moved_jaw(landmarks, targets, _CHIN_FOLLOWS_LIP)


def _mask_shape(shape: int | tuple[int, int]) -> tuple[int, int]:
    return (shape, shape) if isinstance(shape, (int, np.integer)) else tuple(shape)


def _default_step(shape: tuple[int, int]) -> int:
    """How far the mouth masks grow and soften by default: about a pixel per 128 of the image's size."""
    return max(1, round(max(shape) / 128))


def mouth_masks(landmarks: np.ndarray, shape: int | tuple[int, int], step: int | None = None) -> np.ndarray:
    """Soft masks [N,H,W] in 0..1 of the inside of each mouth (the inner-lip polygon of landmarks [N,68,2], grown
    and softened by `step` pixels: by default about one per 128 of the image's size, which for a face crop is one per
    128 of the face; `shape` is the size of a square or (H, W))."""
    height, width = _mask_shape(shape)
    step = step or _default_step((height, width))
    kernel = np.ones((2 * step + 1, 2 * step + 1), np.uint8)
    masks = np.zeros((len(landmarks), height, width), np.float32)
    for mask, points in zip(masks, np.asarray(landmarks)):
        inner_lips = np.round(points[list(INNER_LIPS)]).astype(np.int32)
        polygon = cv2.fillPoly(np.zeros((height, width), np.uint8), [inner_lips], 1)
        mask[:] = cv2.GaussianBlur(cv2.dilate(polygon, kernel).astype(np.float32), (0, 0), step)
    return masks


def _neck_ring(landmarks: np.ndarray) -> np.ndarray:
    """Points a little outside the lower jaw line (points 3..13 moved a quarter further from the face's centre): where
    a moved chin's pull on the portrait stops, so that the neck and collar below it stay put."""
    jaw = landmarks[list(range(3, 14))]
    centre = landmarks.mean(axis=0)
    return centre + (jaw - centre) * (1 + _NECK_RING)


def own_mouth_mask(landmarks: np.ndarray, shape: tuple[int, int], step: int | None = None) -> np.ndarray:
    """Soft mask [H,W] of what a face's open mouth shows (its teeth, say): the inner-lip polygon of `landmarks` [68,2]
    shrunk and softened by `step` pixels (as in `mouth_masks`); empty when the lips are (nearly) closed."""
    upper, lower = list(INNER_LIP_UPPER), list(INNER_LIP_LOWER)
    eyes = np.linalg.norm(landmarks[list(LEFT_EYE)].mean(0) - landmarks[list(RIGHT_EYE)].mean(0))
    if np.linalg.norm(landmarks[lower] - landmarks[upper], axis=1).mean() < _OPEN_MOUTH * eyes:
        return np.zeros(shape, np.float32)
    step = step or _default_step(shape)
    polygon = cv2.fillPoly(np.zeros(shape, np.uint8), [np.round(landmarks[list(INNER_LIPS)]).astype(np.int32)], 1)
    shrunk = cv2.erode(polygon, np.ones((2 * step + 1, 2 * step + 1), np.uint8)).astype(np.float32)
    return cv2.GaussianBlur(shrunk, (0, 0), step)


def set_mouth(faces: np.ndarray, drawn: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """uint8 crops [N,S,S,3]: `faces` with the inside of each mouth (around `landmarks` [N,68,2]) taken from `drawn`."""
    alpha = mouth_masks(landmarks, faces.shape[1:3])[..., None]
    blended = faces.astype(np.float32) + alpha * (drawn.astype(np.float32) - faces)
    return np.clip(blended, 0, 255).round().astype(np.uint8)


def compose_lower_face(image: np.ndarray, image_landmarks: np.ndarray, targets: np.ndarray, drawn: np.ndarray,
                       drawn_to_image: np.ndarray, refiner: WindowRefiner | None = None) -> np.ndarray:
    """uint8 images [N,H,W,3]: `image` (uint8 [H,W,3], any size; its landmarks [68,2]) moved onto each of `targets`
    [N,68,2] (its pixels), the jaw line with the head and the lower lip (`with_jaw_on_the_lips`), and the inside of
    each moved mouth taken from `drawn` (uint8 [N,s,s,3], mapped into the image by the 2x3 `drawn_to_image`) except
    where it still shows the image's own open mouth; with a `refiner`, each mouth is then redrawn in a window at the
    image's resolution (see `refine_mouths`)."""
    height, width = image.shape[:2]
    image_landmarks = np.asarray(image_landmarks, np.float64)
    held = with_jaw_on_the_lips(image_landmarks, targets)
    # the masks grow by about a pixel per 128 of the face crop, however large the image around the face is
    step = max(1, round(np.hypot(*drawn_to_image[0, :2]) * drawn.shape[2] / 128))
    inside = mouth_masks(targets, (height, width), step)
    own = own_mouth_mask(image_landmarks, (height, width), step)
    composed = np.empty((len(targets), height, width, 3), np.uint8)
    ring = _neck_ring(image_landmarks)  # held still with the head: the chin moves, the neck below it does not
    rings = np.stack([apply_affine(ring, fit_similarity(image_landmarks[list(STABLE_POINTS)], target[list(STABLE_POINTS)]))
                      for target in held])
    maps = warp_maps(np.concatenate([image_landmarks, ring]), np.concatenate([held, rings], axis=1), (height, width))
    for out, where, drawn_crop, mouth in zip(composed, maps, drawn, inside):
        warped = remap(image, where).astype(np.float32)
        drawn_here = cv2.warpAffine(drawn_crop, drawn_to_image, (width, height), flags=cv2.INTER_CUBIC,
                                    borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        alpha = (mouth * (1 - cv2.remap(own, where[..., 0], where[..., 1], cv2.INTER_LINEAR)))[..., None]
        out[:] = np.clip(warped + alpha * (drawn_here - warped), 0, 255).round()
    if refiner is not None:
        refine_mouths(composed, targets, drawn, drawn_to_image, refiner)
    return composed
