"""Faces: landmarks, crops and head pose, checked on real portraits and a real talking-head video."""

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from talking_head.errors import FaceError
from talking_head.faces.align import (
    apply_affine,
    box_to_affine,
    crop_and_resize,
    crop_box_from_landmarks,
    invert_affine,
    smooth_track,
)
from talking_head.faces.landmarks import (
    FACE_PARTS,
    LEFT_EYE,
    OUTER_LIPS,
    RIGHT_EYE,
    FaceAlignmentLandmarker,
    detect_face_landmarks,
    get_landmarker,
    mouth_opening,
)

MEDIA = Path(__file__).resolve().parents[2] / "shared/media"


def _media(relative: str) -> Path:
    path = MEDIA / relative
    if not path.is_file():
        pytest.skip(f"real test media {relative} not found under {MEDIA} (the shared media folder is absent)")
    return path


def _image(name: str) -> np.ndarray:
    return np.asarray(Image.open(_media(f"image/{name}")).convert("RGB"))


@pytest.fixture(scope="module")
def landmarker():
    pytest.importorskip("dlib", reason="dlib is not installed (pip install 'talking-head-diffusion[face]')")
    return get_landmarker("dlib")


@pytest.fixture(scope="module")
def pose():
    pytest.importorskip("cv2", reason="OpenCV is not installed (pip install 'talking-head-diffusion[face]')")
    from talking_head.faces.pose import estimate_head_pose

    return estimate_head_pose


@pytest.fixture(scope="module")
def video_landmarks(landmarker):
    """Landmarks [50,68,2] of the first 50 frames of the Obama clip, and the frame size (w, h)."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(_media("video/styletalk_Obama_clip1_av.mp4")))
    width, height = next(reader)["size"]
    landmarks = []
    for raw in reader:
        frame = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
        landmarks.append(detect_face_landmarks(frame, landmarker, what="a video frame").landmarks)
        if len(landmarks) == 50:
            break
    reader.close()
    return np.stack(landmarks), (width, height)


def _eye_centres(landmarks):
    return landmarks[list(RIGHT_EYE)].mean(axis=0), landmarks[list(LEFT_EYE)].mean(axis=0)


@pytest.mark.parametrize("name", ["face_recognition_obama.jpg", "skimage_astronaut.png", "hallo_ref6.jpg"])
def test_landmarks_land_on_the_face_in_the_right_order(landmarker, name):
    image = _image(name)
    found = detect_face_landmarks(image, landmarker, what=name)
    points = found.landmarks
    assert found.count == 1 and points.shape == (68, 2) and points.dtype == np.float32
    x0, y0, x1, y1 = found.box
    margin = 0.15 * (x1 - x0)
    assert (points[:, 0] > x0 - margin).all() and (points[:, 0] < x1 + margin).all()
    assert (points[:, 1] > y0 - margin).all() and (points[:, 1] < y1 + margin).all()
    right_eye, left_eye = _eye_centres(points)
    nose_tip, mouth = points[30], points[list(OUTER_LIPS)].mean(axis=0)
    assert max(right_eye[1], left_eye[1]) < nose_tip[1] < mouth[1]
    # The person's right eye is on the image's left; corners run 36 < 39 < 42 < 45 from left to right.
    assert right_eye[0] < nose_tip[0] < left_eye[0]
    assert points[36, 0] < points[39, 0] < points[42, 0] < points[45, 0]


def test_a_3500_pixel_upscale_still_finds_the_face_and_its_landmarks_scale_with_it(landmarker):
    image = Image.open(_media("image/face_recognition_obama.jpg")).convert("RGB")
    original = detect_face_landmarks(np.asarray(image), landmarker).landmarks
    factor = 3500 / max(image.size)
    big = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC)
    found = detect_face_landmarks(np.asarray(big), landmarker, what="the upscaled portrait")
    expected = (original + 0.5) * np.array(big.size) / np.array(image.size) - 0.5
    face_width = found.box[2] - found.box[0]
    error = np.linalg.norm(found.landmarks - expected, axis=1)
    assert np.median(error) < 0.01 * face_width
    assert error.max() < 0.03 * face_width


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_an_image_without_a_face_raises_face_error_naming_the_problem(landmarker, kind):
    rng = np.random.default_rng(0)
    image = np.full((320, 320, 3), 128, np.uint8) if kind == "blank" else rng.integers(0, 256, (320, 320, 3), np.uint8)
    with pytest.raises(FaceError, match=f"no face found in the {kind} image"):
        detect_face_landmarks(image, landmarker, what=f"the {kind} image")
    with pytest.raises(FaceError, match="no face found"):
        landmarker.landmarks(image)


def test_two_portraits_side_by_side_count_two_faces_and_the_largest_is_used(landmarker, caplog):
    small = Image.open(_media("image/face_recognition_obama.jpg")).convert("RGB").resize((546, 682))
    large = Image.open(_media("image/hallo_ref6.jpg")).convert("RGB").resize((437, 437))
    canvas = Image.new("RGB", (small.width + large.width, small.height), (90, 90, 90))
    canvas.paste(small, (0, 0))
    canvas.paste(large, (small.width, 120))
    with caplog.at_level(logging.WARNING, logger="talking_head.faces.landmarks"):
        found = detect_face_landmarks(np.asarray(canvas), landmarker, what="the pair")
    assert found.count == 2 and found.index == 0
    assert found.box[0] > small.width - 10  # the larger face is the right-hand portrait
    assert (found.landmarks[:, 0] > small.width).all()
    assert "2 faces found in the pair" in caplog.text


def test_the_crop_affine_round_trips_points_and_maps_the_box_onto_the_crop():
    rng = np.random.default_rng(1)
    points = rng.uniform(-50, 900, size=(40, 2))
    for box in [(300.0, 250.0, 400.0), (10.5, -20.25, 137.0), (640.0, 480.0, 1500.0)]:
        M = box_to_affine(box, 256)
        assert np.allclose(apply_affine(apply_affine(points, M), invert_affine(M)), points, atol=1e-9)
        # The box centre lands on the crop centre; one box side spans the crop.
        cx, cy, side = box
        assert np.allclose(apply_affine([cx, cy], M), [127.5, 127.5])
        assert np.allclose(apply_affine([cx + side, cy], M) - apply_affine([cx, cy], M), [256, 0])


def test_landmarks_found_in_the_crop_match_the_mapped_image_landmarks(landmarker):
    image = _image("face_recognition_obama.jpg")
    points = detect_face_landmarks(image, landmarker).landmarks
    box = crop_box_from_landmarks(points)
    crop = crop_and_resize(image, box, 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    in_crop = detect_face_landmarks(crop, landmarker, what="the crop").landmarks
    mapped = apply_affine(points, box_to_affine(box, 256))
    assert np.median(np.linalg.norm(in_crop - mapped, axis=1)) < 2.0
    # Head-and-shoulders framing: the face well inside the crop, the eyes in its upper half.
    assert mapped.min() > 0.2 * 256 and mapped.max() < 0.9 * 256
    assert max(eye[1] for eye in _eye_centres(mapped)) < 0.5 * 256


def test_a_box_leaving_the_image_is_padded_by_replicating_the_edge():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :50] = (255, 0, 0)
    image[:, 50:] = (0, 0, 255)
    crop = crop_and_resize(image, (0.0, 49.5, 100.0), 64)  # left half of the box is outside the image
    assert crop.shape == (64, 64, 3)
    assert (crop[:, :20] == (255, 0, 0)).all()
    reflected = crop_and_resize(image, (120.0, 49.5, 60.0), 32, pad_mode="reflect")
    assert (reflected[:, -4:] == (0, 0, 255)).all()
    with pytest.raises(ValueError, match="outside"):
        crop_and_resize(image, (500.0, 500.0, 50.0), 32)


def test_fixed_mode_gives_every_video_frame_the_same_box_holding_the_face(video_landmarks):
    landmarks, (width, height) = video_landmarks
    boxes = crop_box_from_landmarks(landmarks)
    assert boxes.shape == (len(landmarks), 3)
    fixed = smooth_track(boxes, mode="fixed", fps=30)
    assert (fixed == fixed[0]).all()
    for points in landmarks:
        inside = apply_affine(points, box_to_affine(fixed[0], 256))
        assert inside.min() > 0 and inside.max() < 256


def test_smooth_mode_reduces_frame_to_frame_jitter_and_fills_missing_frames(video_landmarks):
    landmarks, _ = video_landmarks
    boxes = crop_box_from_landmarks(landmarks)
    smooth = smooth_track(boxes, mode="smooth", window_s=0.3, fps=30)
    jitter = lambda track: np.abs(np.diff(track, axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.5 * jitter(boxes)
    holed = boxes.copy()
    holed[[0, 10, 11]] = np.nan
    assert np.isfinite(smooth_track(holed, mode="smooth", fps=30)).all()
    with pytest.raises(FaceError, match="no face found in any frame"):
        smooth_track(np.full((5, 3), np.nan))


def test_mouth_opening_is_non_negative_and_much_larger_on_open_mouth_frames(video_landmarks):
    landmarks, _ = video_landmarks
    opening = mouth_opening(landmarks)
    assert opening.shape == (len(landmarks),)
    assert (opening >= 0).all()
    assert opening.max() - opening.min() > 0.15
    assert opening.max() > 4 * opening.min()
    assert mouth_opening(landmarks[int(opening.argmax())]) == pytest.approx(opening.max())


def test_a_frontal_face_has_near_zero_yaw_and_roll_and_mirroring_flips_their_sign(landmarker, pose):
    portrait = _image("face_recognition_obama.jpg")
    size = (portrait.shape[1], portrait.shape[0])
    yaw, pitch, roll = pose(detect_face_landmarks(portrait, landmarker).landmarks, size)[:3]
    assert abs(yaw) < 15 and abs(roll) < 10 and abs(pitch) < 20

    turned = _image("hallo_ref6.jpg")  # slightly turned and tilted: both angles clearly non-zero
    size = (turned.shape[1], turned.shape[0])
    straight = pose(detect_face_landmarks(turned, landmarker).landmarks, size)
    mirrored = pose(detect_face_landmarks(turned[:, ::-1].copy(), landmarker).landmarks, size)
    assert abs(straight[0]) > 3 and abs(straight[2]) > 3
    assert np.sign(mirrored[0]) == -np.sign(straight[0]) and abs(mirrored[0] + straight[0]) < 3
    assert np.sign(mirrored[2]) == -np.sign(straight[2]) and abs(mirrored[2] + straight[2]) < 3
    assert abs(mirrored[1] - straight[1]) < 3


def test_turning_the_image_clockwise_increases_roll_by_about_the_same_angle(landmarker, pose):
    image = Image.open(_media("image/face_recognition_obama.jpg")).convert("RGB")
    size = image.size
    before = pose(detect_face_landmarks(np.asarray(image), landmarker).landmarks, size)
    after_image = np.asarray(image.rotate(-12, resample=Image.Resampling.BICUBIC))  # PIL: positive = anticlockwise
    after = pose(detect_face_landmarks(after_image, landmarker).landmarks, size)
    assert 8 < after[2] - before[2] < 16


def test_pose_recovers_known_rotations_of_the_reference_face(pose):
    import cv2

    from talking_head.faces.pose import MEAN_FACE_3D, MEAN_FACE_INDICES

    width, height = 640, 480
    # cv2 rotation vectors about the camera axes: -y turns the person to their left (yaw +),
    # -x tips the head back (pitch +), +z tilts it clockwise on screen (roll +).
    for rvec, expected in [((0, -0.35, 0), (20.05, 0, 0)), ((-0.2, 0, 0), (0, 11.46, 0)), ((0, 0, 0.15), (0, 0, 8.59))]:
        rotation = cv2.Rodrigues(np.array(rvec, float))[0]
        camera_points = MEAN_FACE_3D @ rotation.T + [0.0, 0.0, 600.0]
        projected = camera_points[:, :2] / camera_points[:, 2:] * width + [(width - 1) / 2, (height - 1) / 2]
        landmarks = np.zeros((68, 2))
        landmarks[list(MEAN_FACE_INDICES)] = projected
        result = pose(landmarks, (width, height))
        assert result.shape == (6,)
        assert np.allclose(result[:3], expected, atol=0.1)
        assert np.allclose(result[3:5], 0, atol=1e-3) and result[5] == pytest.approx(90 / 600, rel=1e-3)


def test_pose_over_video_frames_is_finite_and_smooth(video_landmarks, pose):
    landmarks, size = video_landmarks
    poses = pose(landmarks, size)
    assert poses.shape == (len(landmarks), 6) and np.isfinite(poses).all()
    assert np.median(np.abs(np.diff(poses[:, :3], axis=0))) < 2.0
    assert (np.abs(poses[:, [0, 2]]) < 20).all()


def test_face_parts_cover_the_68_points_once():
    indices = sorted(i for part in FACE_PARTS.values() for i in part)
    assert indices == list(range(68))


@pytest.mark.skipif(importlib.util.find_spec("face_alignment") is not None, reason="face_alignment is installed")
def test_the_face_alignment_backend_without_its_package_says_how_to_install_it():
    with pytest.raises(ImportError, match="pip install 'talking-head-diffusion\\[face-alignment\\]'"):
        FaceAlignmentLandmarker()


def test_a_landmark_backend_is_named_as_the_cli_spells_it_and_an_unknown_one_is_a_clear_error(capsys):
    from talking_head.cli import main
    from talking_head.errors import ModelError

    with pytest.raises(ModelError, match="unknown landmark backend 'hog'; choose one of dlib, face_alignment"):
        get_landmarker("hog")
    if importlib.util.find_spec("dlib"):
        assert get_landmarker("dlib") is get_landmarker("dlib")
    with pytest.raises(SystemExit) as stopped:
        main(["prepare", "--video", "a.mp4", "--out", "data", "--landmarks", "face_alignment"])
    assert stopped.value.code == 2 and "choose from 'dlib', 'face-alignment'" in capsys.readouterr().err
