"""The portrait's face moved onto new landmarks by a thin-plate spline, and a drawn mouth set into it."""

import numpy as np

from talking_head.faces.align import apply_affine
from talking_head.faces.landmarks import CHIN, INNER_LIPS
from talking_head.faces.warp import (
    compose_lower_face,
    mouth_masks,
    own_mouth_mask,
    set_mouth,
    warp_maps,
    warp_to_landmarks,
    with_still_jaw,
)

SIZE = 64


def _textured_crop() -> np.ndarray:
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    return np.stack([columns * 4, rows * 4, (columns + rows) * 2], axis=-1).clip(0, 255).astype(np.uint8)


def test_landmarks_that_stay_put_leave_the_crop_as_it_was(face_points):
    crop = _textured_crop()
    warped = warp_to_landmarks(crop, face_points, face_points[None])
    assert warped.shape == (1, SIZE, SIZE, 3) and warped.dtype == np.uint8
    assert np.abs(warped[0].astype(int) - crop).max() <= 1


def test_the_pixels_follow_their_landmarks_and_the_border_holds_still(face_points):
    crop = _textured_crop()
    spot = np.round(face_points[66]).astype(int)  # the middle of the lower inner lip
    crop[spot[1] - 1:spot[1] + 2, spot[0] - 1:spot[0] + 2] = (255, 0, 255)
    lowered = face_points.copy()
    lowered[[*range(5, 12), *range(48, 68)]] += (0, 4)  # the mouth and the chin drop 4 pixels
    warped = warp_to_landmarks(crop, face_points, np.stack([face_points, lowered]))[1]
    magenta = (warped[..., 0] > 200) & (warped[..., 1] < 60) & (warped[..., 2] > 200)
    rows, columns = np.nonzero(magenta)
    assert abs(rows.mean() - (spot[1] + 4)) < 1 and abs(columns.mean() - spot[0]) < 1
    assert np.abs(warped[0].astype(int) - crop[0]).max() <= 1 and np.abs(warped[-1].astype(int) - crop[-1]).max() <= 1
    assert np.abs(warped[:, 0].astype(int) - crop[:, 0]).max() <= 1
    assert np.abs(warped[:, -1].astype(int) - crop[:, -1]).max() <= 1


def test_the_drawn_crop_shows_only_inside_the_mouth(face_points):
    masks = mouth_masks(face_points[None], SIZE)
    centre = np.round(face_points[list(INNER_LIPS)].mean(0)).astype(int)
    assert masks.shape == (1, SIZE, SIZE) and masks[0, centre[1], centre[0]] > 0.9
    eye = np.round(face_points[36:42].mean(0)).astype(int)
    assert masks[0, eye[1], eye[0]] == 0 and masks[0, 60, 32] == 0  # the eyes and the chin are not the mouth
    own, drawn = np.full((1, SIZE, SIZE, 3), 40, np.uint8), np.full((1, SIZE, SIZE, 3), 200, np.uint8)
    mixed = set_mouth(own, drawn, face_points[None])[0]
    assert (mixed[centre[1], centre[0]] > 180).all() and (mixed[eye[1], eye[0]] == 40).all()
    assert ((mixed >= 40) & (mixed <= 200)).all()


def test_a_still_jaw_moves_only_with_the_head(face_points):
    angle = np.radians(6)
    head = np.array([[1.1 * np.cos(angle), -1.1 * np.sin(angle), 3.0], [1.1 * np.sin(angle), 1.1 * np.cos(angle), -2.0]])
    target = apply_affine(face_points, head)
    dropped = target.copy()
    dropped[list(CHIN)] += (1.0, 6.0)  # a jaw dropped and pushed sideways on top of the head motion
    held = with_still_jaw(face_points, np.stack([dropped, target]))
    np.testing.assert_allclose(held[0, list(CHIN)], target[list(CHIN)], atol=1e-9)
    others = [i for i in range(68) if i not in CHIN]
    np.testing.assert_array_equal(held[0, others], dropped[others])  # the lips keep their motion
    np.testing.assert_allclose(held[1], target, atol=1e-9)


def test_a_large_image_warps_as_if_the_spline_were_evaluated_at_every_pixel(face_points):
    from scipy.interpolate import RBFInterpolator

    scale = 8  # a 512-pixel image: the spline is evaluated on 128x128 points and interpolated between them
    points, lowered = face_points * scale, face_points * scale
    lowered = lowered.copy()
    lowered[[*range(5, 12), *range(48, 68)]] += (0, 4 * scale)
    where = next(warp_maps(points, lowered[None], (SIZE * scale, SIZE * scale)))

    ticks = np.linspace(0, SIZE * scale - 1, 9)
    border = np.array([(x, y) for x in ticks for y in ticks if x in (0, ticks[-1]) or y in (0, ticks[-1])])
    exact = RBFInterpolator(np.concatenate([lowered, border]), np.concatenate([points, border]),
                            kernel="thin_plate_spline", smoothing=(SIZE * scale / 128) ** 2)
    rows, columns = np.mgrid[0:SIZE * scale:7, 0:SIZE * scale:7]  # every 7th pixel: off the evaluated grid too
    expected = exact(np.stack([columns.ravel(), rows.ravel()], axis=1)).reshape(*rows.shape, 2)
    assert np.abs(where[rows, columns] - expected).max() < 0.25  # a quarter of a pixel, for a 32-pixel drop


def _face_image(face_points, scale: int, mouth_colour=None) -> np.ndarray:
    """A face-sized image with fine texture (a 2-pixel checkerboard) and, optionally, the inside of its mouth filled."""
    import cv2

    size = SIZE * scale
    rows, columns = np.mgrid[0:size, 0:size]
    image = np.repeat((((rows // 2 + columns // 2) % 2) * 120 + 60).astype(np.uint8)[..., None], 3, axis=2)
    if mouth_colour is not None:
        cv2.fillPoly(image, [np.round(face_points[list(INNER_LIPS)] * scale).astype(np.int32)], mouth_colour)
    return image


def _opened(face_points, by: float) -> np.ndarray:
    opened = face_points.copy()
    opened[[*range(5, 12), *range(55, 60), *range(64, 68)]] += (0, by)  # the lower lip and chin drop
    return opened


def test_a_closed_portrait_mouth_that_opens_is_filled_from_the_drawn_crop(face_points):
    closed = face_points.copy()
    closed[[64, 65, 66, 67]] = closed[[62, 61, 60, 63]][::-1][[0, 1, 2, 3]]  # the inner lips meet
    closed[list(INNER_LIPS)[5:]] = closed[list(INNER_LIPS)[1:4]][::-1]
    assert not own_mouth_mask(closed, (SIZE, SIZE)).any()
    drawn = np.full((1, SIZE, SIZE, 3), (255, 0, 0), np.uint8)
    target = _opened(closed, 5.0)
    composed = compose_lower_face(_face_image(closed, 1), closed, target[None], drawn, np.eye(2, 3))[0]
    centre = np.round(target[list(INNER_LIPS)].mean(0)).astype(int)
    assert tuple(composed[centre[1], centre[0]]) == (255, 0, 0)


def test_the_portraits_own_open_mouth_stays_its_own_at_full_resolution(face_points):
    scale = 4
    image = _face_image(face_points, scale, mouth_colour=(250, 250, 250))  # the portrait shows white teeth
    target = _opened(face_points, 1.0) * scale
    drawn = np.full((1, SIZE, SIZE, 3), (255, 0, 0), np.uint8)  # a drawn crop at the model's size
    composed = compose_lower_face(image, face_points * scale, target[None], drawn,
                                  np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]]))[0]
    centre = np.round(target[list(INNER_LIPS)].mean(0)).astype(int)
    assert tuple(composed[centre[1], centre[0]]) == (250, 250, 250)  # the teeth, not the drawing
    eye = np.round(face_points[36:42].mean(0) * scale).astype(int)
    assert np.abs(composed[eye[1] - 3:eye[1] + 3, eye[0] - 3:eye[0] + 3].astype(int)
                  - image[eye[1] - 3:eye[1] + 3, eye[0] - 3:eye[0] + 3]).max() <= 1  # untouched away from the mouth
