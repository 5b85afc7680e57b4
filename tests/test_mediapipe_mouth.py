"""The second judge of the mouth: MediaPipe's Face Landmarker (the `mediapipe` extra and the shared model file)."""

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

from talking_head.errors import MetricWeightsError
from talking_head.evaluation.metrics import pearson
from talking_head.faces.landmarks import get_landmarker, landmarks_per_frame, mouth_opening
from talking_head.media.video import read_video_frames

pytest.importorskip("mediapipe", reason="the mediapipe extra is not installed")
from talking_head.evaluation.mediapipe_mouth import MediaPipeMouth  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODEL = SHARED / "weights" / "mediapipe-face-landmarker" / "face_landmarker.task"
TALKING = SHARED / "media" / "video" / "edtalk_mouth_source_av.mp4"


@pytest.fixture(scope="module")
def judge():
    if not MODEL.is_file():
        pytest.skip(f"the shared MediaPipe model is not available: {MODEL}")
    judge = MediaPipeMouth(MODEL)
    yield judge
    judge.close()


@pytest.fixture(scope="module")
def talking_frames():
    if not TALKING.is_file():
        pytest.skip(f"shared media file not available: {TALKING}")
    return next(read_video_frames(TALKING, batch=100))


def test_on_real_footage_its_mouth_opening_agrees_with_dlibs(judge, talking_frames):
    measured = judge.measure(talking_frames)
    dlib_opening = mouth_opening(landmarks_per_frame(talking_frames, get_landmarker("dlib")))

    assert not np.isnan(measured["opening"]).any() and not np.isnan(measured["jaw_open"]).any()
    assert pearson(measured["opening"], dlib_opening) > 0.8
    assert pearson(measured["jaw_open"], dlib_opening) > 0.5


def test_a_video_against_itself_correlates_fully_and_a_still_one_not_at_all(judge, talking_frames):
    assert judge.compare(talking_frames, talking_frames)["mediapipe_mouth_correlation"] == pytest.approx(1.0)
    still = np.repeat(talking_frames[:1], len(talking_frames), axis=0)
    figures = judge.compare(still, talking_frames)
    assert figures["mediapipe_mouth_correlation"] == 0.0 and figures["mediapipe_face_found_fraction"] == 1.0


def test_frames_without_a_face_are_counted_not_measured(judge):
    blank = np.full((3, 128, 128, 3), 127, np.uint8)
    assert np.isnan(judge.measure(blank)["opening"]).all()


def test_a_missing_or_wrong_model_file_gets_one_clear_error(tmp_path):
    with pytest.raises(MetricWeightsError, match="weights not found"):
        MediaPipeMouth(tmp_path / "gone.task")
    (tmp_path / "bad.task").write_bytes(b"not a model")
    with pytest.raises(MetricWeightsError, match="is not a MediaPipe Face Landmarker model"):
        MediaPipeMouth(tmp_path / "bad.task")


def test_the_extra_leaves_one_working_cv2_beside_the_projects_opencv():
    # mediapipe brings opencv-contrib-python; it and opencv-python-headless write the same cv2 package, which holds
    # together only when both are the same version.
    import cv2

    versions = {name: importlib.metadata.version(name) for name in ("opencv-python-headless", "opencv-contrib-python")
                if _installed(name)}
    assert len(set(versions.values())) == 1, versions
    assert cv2.resize(np.zeros((8, 8, 3), np.uint8), (4, 4)).shape == (4, 4, 3)


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
