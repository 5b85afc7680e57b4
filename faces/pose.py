"""Head pose (yaw, pitch, roll and position) from 68-point landmarks with a generic 3D face."""

from __future__ import annotations

import numpy as np

from ..errors import FaceError

# Generic adult face for the landmarks that barely move with speech or expression (nose, eye
# corners, mouth corners), in millimetres. Axes as the camera's when the person looks straight into
# it: x to the person's left (image right), y down, z away from the camera; the origin is midway
# between the inner eye corners. Hand-made by us from rounded mean adult measurements reported in
# anthropometry (Farkas, "Anthropometry of the Head and Face", 1994): outer eye corners 90 mm apart,
# inner 32 mm, mouth corners 52 mm; nose tip about 36 mm below the eye line and 25 mm in front of
# the inner eye corners; mouth corners about 65 mm below the eye line. Left/right exactly symmetric.
MEAN_FACE_INDICES = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45, 48, 54)
MEAN_FACE_3D = np.array(
    [
        [0.0, -8.0, -10.0],  # 27 nasion (top of the nose bridge)
        [0.0, 6.7, -15.0],  # 28 nose bridge
        [0.0, 21.3, -20.0],  # 29 nose bridge
        [0.0, 36.0, -25.0],  # 30 nose tip
        [-13.0, 41.0, 0.0],  # 31 right nostril wing
        [-7.0, 43.0, -3.0],  # 32
        [0.0, 44.0, -5.0],  # 33 base of the nose (subnasale)
        [7.0, 43.0, -3.0],  # 34
        [13.0, 41.0, 0.0],  # 35 left nostril wing
        [-45.0, 0.0, 17.0],  # 36 right eye, outer corner
        [-16.0, 0.0, 0.0],  # 39 right eye, inner corner
        [16.0, 0.0, 0.0],  # 42 left eye, inner corner
        [45.0, 0.0, 17.0],  # 45 left eye, outer corner
        [-26.0, 65.0, 10.0],  # 48 right mouth corner
        [26.0, 65.0, 10.0],  # 54 left mouth corner
    ]
)
_EYE_SPAN_MM = 90.0  # outer eye corner to outer eye corner in MEAN_FACE_3D


def estimate_head_pose(landmarks, image_size) -> np.ndarray:
    """Head pose per frame from landmarks [T,68,2] (or [68,2]) in an image of ``image_size`` = (w, h).

    Returns float32 [T,6] (or [6]): ``yaw, pitch, roll`` in degrees and ``tx, ty, scale``.
    Angles are relative to the line of sight from the camera to the face, zero when the person looks
    straight into the camera wherever they are in the image; ``yaw > 0`` when they turn to
    their own left (the nose moves to the image's right), ``pitch > 0`` when they look up, and
    ``roll > 0`` when the head tilts towards their left shoulder (clockwise on screen). Mirroring the
    image negates yaw and roll. ``tx, ty``: position of the point between the eyes relative to the
    image centre, as fractions of the image width and height (right and down positive). ``scale``:
    apparent width of the outer eye corners' span as a fraction of the image width, were the face
    turned to the camera. Solved with cv2.solvePnP on a pinhole camera with focal length = image width.
    """
    try:
        import cv2
    except ImportError as e:
        raise ImportError("estimate_head_pose needs OpenCV: pip install 'talking-head-diffusion[face]'") from e
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape[-2:] != (68, 2) or pts.ndim not in (2, 3):
        raise ValueError(f"expected landmarks [68,2] or [T,68,2], got shape {pts.shape}")
    w, h = (float(v) for v in image_size)
    focal = w
    camera = np.array([[focal, 0.0, (w - 1) / 2], [0.0, focal, (h - 1) / 2], [0.0, 0.0, 1.0]])
    frames = pts.reshape(-1, 68, 2)
    poses = np.empty((len(frames), 6), dtype=np.float64)
    for i, frame in enumerate(frames):
        image_points = frame[list(MEAN_FACE_INDICES)]
        # Start every frame from a frontal head at the distance that matches the eye span.
        eye_span_px = max(np.linalg.norm(frame[45] - frame[36]), 1.0)
        depth = focal * _EYE_SPAN_MM / eye_span_px
        between_eyes = (frame[39] + frame[42]) / 2
        tvec = np.append((between_eyes - camera[:2, 2]) * depth / focal, depth)[:, None]
        ok, rvec, tvec = cv2.solvePnP(
            MEAN_FACE_3D, image_points, camera, None, np.zeros((3, 1)), tvec, True, cv2.SOLVEPNP_ITERATIVE
        )
        if not ok or not (np.isfinite(rvec).all() and np.isfinite(tvec).all()) or tvec[2, 0] <= 0:
            raise FaceError(f"head pose could not be estimated for frame {i}: the landmarks do not fit a face")
        tx, ty, tz = tvec[:, 0]
        # Measure the angles against the line of sight, so a face looking into the camera reads as
        # frontal wherever it sits in the image.
        rotation = _line_of_sight(tvec[:, 0]).T @ cv2.Rodrigues(rvec)[0]
        poses[i, :3] = _euler_degrees(rotation)
        poses[i, 3:] = (tx / tz, focal * ty / (tz * h), _EYE_SPAN_MM / tz)
    poses = poses.astype(np.float32)
    return poses[0] if pts.ndim == 2 else poses


def _line_of_sight(position: np.ndarray) -> np.ndarray:
    """The smallest rotation taking the optical axis (0, 0, 1) onto the direction of ``position`` (z > 0)."""
    sight = position / np.linalg.norm(position)
    vx, vy, vz = np.cross([0.0, 0.0, 1.0], sight)
    cross = np.array([[0.0, -vz, vy], [vz, 0.0, -vx], [-vy, vx, 0.0]])
    return np.eye(3) + cross + cross @ cross / (1.0 + sight[2])


def _euler_degrees(rotation: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll (degrees; sign conventions of estimate_head_pose) of a model-to-camera rotation."""
    forward = -rotation[:, 2]  # where the face points; (0, 0, -1) = at the camera
    yaw = np.arctan2(forward[0], -forward[2])
    pitch = np.arctan2(-forward[1], np.hypot(forward[0], forward[2]))
    # Roll: the face's left-pointing axis measured in the frame the face would have after yaw and pitch alone.
    level = np.cross(forward, [0.0, 1.0, 0.0])
    level /= np.linalg.norm(level)
    down = np.cross(level, forward)
    left_axis = rotation[:, 0]
    roll = np.arctan2(left_axis @ down, left_axis @ level)
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))
