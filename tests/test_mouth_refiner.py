"""The mouth refiner's window around each mouth, redrawn at the image's own resolution and blended back; the refiner
as a component of the landmark pipeline."""

import numpy as np
import pytest
import torch

from talking_head.faces.align import apply_affine, compose_affine
from talking_head.faces.landmarks import INNER_LIPS, OUTER_LIPS
from talking_head.faces.mouth_window import MouthWindows, mouth_windows, refine_mouths
from talking_head.hub_models.mouth_refiner import MouthRefiner
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline
from test_landmark_pipeline import PORTRAIT
from tiny_models import tiny_landmark_pipeline

WINDOW = 32


def _rotation(degrees: float, centre: np.ndarray) -> np.ndarray:
    angle = np.radians(degrees)
    linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.concatenate([linear, (centre - linear @ centre)[:, None]], axis=1)


class PaintingRefiner:
    """Paints every window one colour: shows where the windows land in the image."""

    window_size = WINDOW

    def refine(self, composed, drawn, masks):
        assert composed.shape == drawn.shape == (len(masks), WINDOW, WINDOW, 3) and masks.shape[-1] == 2
        return np.full_like(composed, 255)


def test_the_window_sits_on_the_lips_and_turns_and_scales_with_the_eyes_not_the_mouth(face_points):
    points = face_points * 4.0  # a 256-pixel face
    window = MouthWindows.around(points[None], WINDOW)
    lips = window.landmarks[0][list(OUTER_LIPS) + list(INNER_LIPS)]
    assert np.abs(lips.mean(0) - (WINDOW - 1) / 2).max() < 1e-6
    assert lips.min() > 0 and lips.max() < WINDOW - 1  # the whole mouth is inside
    opened = points.copy()
    opened[list(range(48, 68))[6:12]] += (0, 12)  # the lower lip drops: the window does not zoom
    opened[list(range(60, 68))[4:]] += (0, 12)
    scale = [np.linalg.det(affine[:, :2]) for affine in mouth_windows(np.stack([points, opened]), WINDOW)]
    assert scale[0] == pytest.approx(scale[1])
    turned = apply_affine(points, _rotation(20, points.mean(0)))
    in_turned = MouthWindows.around(turned[None], WINDOW).landmarks[0]
    np.testing.assert_allclose(in_turned, window.landmarks[0], atol=1e-6)  # the same window on the turned face


def test_an_untrained_refiner_leaves_the_image_and_a_painting_one_only_the_mouth(face_points):
    points = face_points * 4.0
    rows, columns = np.mgrid[0:256, 0:256]
    image = np.stack([columns, rows, (columns + rows) // 2], axis=-1).astype(np.uint8)[None]
    drawn = np.full((1, 64, 64, 3), 90, np.uint8)
    to_image = np.array([[4.0, 0, 1.5], [0, 4.0, 1.5]])
    untouched = refine_mouths(image.copy(), points[None], drawn, to_image, MouthRefiner(window_size=WINDOW))
    np.testing.assert_array_equal(untouched, image)  # no correction: the image's own pixels, not resampled ones
    painted = refine_mouths(image.copy(), points[None], drawn, to_image, PaintingRefiner())[0]
    centre = np.round(points[list(INNER_LIPS)].mean(0)).astype(int)
    assert (painted[centre[1], centre[0]] == 255).all()
    changed = np.any(painted != image[0], axis=-1)
    eyes = np.round(points[36:48]).astype(int)
    assert not changed[eyes[:, 1], eyes[:, 0]].any() and not changed[:, :40].any()  # the eyes and the cheek kept
    corners = apply_affine(np.array([[0, 0], [WINDOW - 1, WINDOW - 1]]), np.linalg.inv(
        np.vstack([mouth_windows(points[None], WINDOW)[0], [0, 0, 1]]))[:2])
    rows_changed, columns_changed = np.nonzero(changed)
    assert rows_changed.min() >= corners[0, 1] - 1 and rows_changed.max() <= corners[1, 1] + 1  # inside the window


def test_the_drawn_crops_are_read_where_they_lie_in_the_image(face_points):
    points = face_points * 4.0
    windows = MouthWindows.around(points[None], WINDOW)
    crop = np.zeros((64, 64, 3), np.uint8)
    centre = np.round(face_points[list(INNER_LIPS)].mean(0)).astype(int)
    crop[centre[1] - 2:centre[1] + 3, centre[0] - 2:centre[0] + 3] = 255  # a bright spot at the mouth of the crop
    to_image = np.array([[4.0, 0, 1.5], [0, 4.0, 1.5]])
    sampled = windows.sample(crop[None], to_image)[0]
    spot = np.argwhere(sampled[..., 0] > 128).mean(0)
    expected = apply_affine(apply_affine(centre[None].astype(float), to_image), windows.affines[0])[0]
    np.testing.assert_allclose(spot[::-1], expected, atol=1.5)
    np.testing.assert_allclose(compose_affine(windows.affines[0], to_image)[:, :2],
                               windows.affines[0][:, :2] * 4.0)


def test_the_refiner_corrects_the_composed_window_and_refuses_other_shapes():
    refiner = MouthRefiner(window_size=WINDOW)
    windows = torch.rand(2, 8, WINDOW, WINDOW) * 2 - 1
    torch.testing.assert_close(refiner(windows), windows[:, :3])  # its last layer starts at zero
    torch.nn.init.normal_(refiner.conv_out.weight, std=0.1)
    assert not torch.allclose(refiner(windows), windows[:, :3])
    with pytest.raises(ValueError, match=r"expected windows \[B,8,32,32\]"):
        refiner(torch.zeros(1, 8, 48, 48))
    composed = np.zeros((1, WINDOW, WINDOW, 3), np.uint8)
    refined = refiner.refine(composed, composed, np.zeros((1, WINDOW, WINDOW, 2), np.float32))
    assert refined.shape == composed.shape and refined.dtype == np.uint8


def test_the_pipeline_carries_its_refiner_and_uses_it_when_it_pastes_the_warped_lower_face(tmp_path):
    plain = tiny_landmark_pipeline()
    refined = LandmarkDiffusionPipeline(**{**plain.components, "mouth_refiner": MouthRefiner(window_size=WINDOW)},
                                        crop_scale=plain.config.crop_scale)
    torch.nn.init.constant_(refined.mouth_refiner.conv_out.bias, 4.0)  # paints the windows white
    refined.save_pretrained(tmp_path)
    loaded = LandmarkDiffusionPipeline.from_pretrained(tmp_path)
    assert loaded.mouth_refiner.window_size == WINDOW
    torch.testing.assert_close(loaded.mouth_refiner.conv_out.bias, refined.mouth_refiner.conv_out.bias)
    portrait = plain.find_face(PORTRAIT)
    landmarks = portrait.crop_landmarks[None].repeat(2, axis=0)
    noise = plain.initial_noise(0)

    def frames(pipeline, lower_face):
        return np.concatenate(list(pipeline.generate_frames(portrait, landmarks, pipeline.still_head(2), noise, 2,
                                                            "ddim", lower_face=lower_face)))

    without, with_refiner = frames(plain, "warped"), frames(loaded, "warped")
    mouth = np.round(portrait.landmarks[list(INNER_LIPS)].mean(0)).astype(int)
    assert (with_refiner[:, mouth[1], mouth[0]] > 235).all() and (without[:, mouth[1], mouth[0]] < 200).any()
    changed = np.any(with_refiner != without, axis=-1).mean()
    assert 0 < changed < 0.05  # the mouth, not the face
    np.testing.assert_array_equal(frames(plain, "drawn"), frames(loaded, "drawn"))  # the paper's way: no refiner
