"""A second, independent judge of the mouth: Google MediaPipe's Face Landmarker (a 478-point face mesh and 52
blendshapes, Apache-2.0), trained on other data than dlib's 68-point predictor that A2L learnt from and `evaluate`
measures with. Per frame it gives the mouth opening (the gap between the inner lips' middle points over the
outer-eye-corner distance, as dlib's measure) and the `jawOpen` blendshape score.

Optional: `pip install "talking-head-diffusion[mediapipe]"`; the model file (`face_landmarker.task`) is a file the user
gives or a download from Google's model store on first use.
"""

import os

import numpy as np

from ..errors import MetricWeightsError
from .metrics import filled, pearson
from .weights import fetch_weights

MODEL_URL = ("https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
             "face_landmarker.task")
# Face-mesh points: the middle of the upper and lower inner lip, and the outer eye corners.
UPPER_INNER_LIP, LOWER_INNER_LIP = 13, 14
OUTER_EYE_CORNERS = (33, 263)
MIN_SIDE = 256  # smaller frames are enlarged for the detector, as for dlib


class MediaPipeMouth:
    """The mouth opening and `jawOpen` of the face in each frame, by MediaPipe's Face Landmarker."""

    def __init__(self, model_path: str | os.PathLike | None = None):
        try:
            from mediapipe.tasks.python import BaseOptions, vision
        except ImportError:
            raise MetricWeightsError("the MediaPipe mouth measure needs the mediapipe package: "
                                     "pip install \"talking-head-diffusion[mediapipe]\"") from None
        path = fetch_weights(MODEL_URL, model_path, what="MediaPipe's Face Landmarker", option="--mediapipe-model")
        options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                               running_mode=vision.RunningMode.IMAGE, num_faces=1,
                                               output_face_blendshapes=True)
        try:
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as error:
            raise MetricWeightsError(f"{path} is not a MediaPipe Face Landmarker model ({error})") from None

    def measure(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """{"opening": [N], "jaw_open": [N]} of uint8 frames [N,H,W,3]; NaN where no face is found."""
        import cv2
        import mediapipe

        opening, jaw_open = np.full(len(frames), np.nan), np.full(len(frames), np.nan)
        for index, frame in enumerate(frames):
            scale = max(1.0, MIN_SIDE / min(frame.shape[:2]))
            if scale > 1:
                frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            image = mediapipe.Image(image_format=mediapipe.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
            result = self._landmarker.detect(image)
            if not result.face_landmarks:
                continue
            height, width = frame.shape[:2]
            points = np.array([(point.x * width, point.y * height) for point in result.face_landmarks[0]])
            eye_distance = np.linalg.norm(points[OUTER_EYE_CORNERS[0]] - points[OUTER_EYE_CORNERS[1]])
            opening[index] = np.linalg.norm(points[UPPER_INNER_LIP] - points[LOWER_INNER_LIP]) / eye_distance
            jaw_open[index] = next(shape.score for shape in result.face_blendshapes[0]
                                   if shape.category_name == "jawOpen")
        return {"opening": opening, "jaw_open": jaw_open}

    def compare(self, generated: np.ndarray, real: np.ndarray) -> dict:
        """`mouth_figures` of generated uint8 frames [N,H,W,3] against the real frames at the same times."""
        return mouth_figures(self.measure(generated), self.measure(real))

    def close(self) -> None:
        """Free MediaPipe's graph."""
        self._landmarker.close()


def mouth_figures(measured: dict[str, np.ndarray], real_measured: dict[str, np.ndarray]) -> dict:
    """How the mouth `measure` found in generated frames follows the real one's: the correlations of the openings and
    of `jawOpen` (frames without a face take the mean), and the fraction of generated frames with a face."""
    return {"mediapipe_mouth_correlation": pearson(filled(measured["opening"]), filled(real_measured["opening"])),
            "mediapipe_jaw_open_correlation": pearson(filled(measured["jaw_open"]), filled(real_measured["jaw_open"])),
            "mediapipe_face_found_fraction": float(np.mean(~np.isnan(measured["opening"])))}
