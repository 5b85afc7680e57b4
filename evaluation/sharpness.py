"""How much of a face's fine detail a generated video keeps: the variance of the Laplacian (the usual focus measure)
over the lower face, against the same region of the real face, with the eyes as the control.

The lower face is the box from the nose tip down to the chin, from half a mouth's width left of the left mouth corner
to as far right of the right one: the skin, lips and teeth that a talking-head model makes. The eyes are the box
around both eyes' points, grown by half an eye's width. A generated video loses some of every region's detail in its
encoding alone; the eyes, which the landmark pipeline leaves as they are, measure that loss. The figure to read is
`sharpness_ratio`: how much of the photo's detail the lower face keeps, as a fraction of what the eyes keep (1 when
the lower face is as sharp as the untouched eyes).
"""

import cv2
import numpy as np

CHIN, NOSE_TIP, MOUTH_LEFT, MOUTH_RIGHT = 8, 33, 48, 54
EYES = list(range(36, 48))


def regions(landmarks: np.ndarray) -> dict[str, tuple[int, int, int, int]]:
    """The lower-face and eye boxes (x0, y0, x1, y1) of a face's 68 landmarks [68,2]."""
    mouth_width = landmarks[MOUTH_RIGHT, 0] - landmarks[MOUTH_LEFT, 0]
    lower = (landmarks[MOUTH_LEFT, 0] - mouth_width / 2, landmarks[NOSE_TIP, 1],
             landmarks[MOUTH_RIGHT, 0] + mouth_width / 2, landmarks[CHIN, 1])
    eyes = landmarks[EYES]
    margin = (eyes[:, 0].max() - eyes[:, 0].min()) / 8  # about half an eye's width
    upper = (eyes[:, 0].min() - margin, eyes[:, 1].min() - margin, eyes[:, 0].max() + margin, eyes[:, 1].max() + margin)
    return {"lower_face": tuple(int(round(v)) for v in lower), "eyes": tuple(int(round(v)) for v in upper)}


def detail(frame: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The variance of the Laplacian of a uint8 frame's grey levels inside `box` (NaN for an empty box)."""
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(frame.shape[1], box[2]), min(frame.shape[0], box[3])
    if x1 - x0 < 3 or y1 - y0 < 3:
        return float("nan")
    grey = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def frame_details(frames: np.ndarray, landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """{"lower_face": [N], "eyes": [N]}: the detail of each region of uint8 frames [N,H,W,3] with their landmarks
    [N,68,2] (NaN where no face was found)."""
    figures = {"lower_face": np.full(len(frames), np.nan), "eyes": np.full(len(frames), np.nan)}
    for index, (frame, points) in enumerate(zip(frames, landmarks)):
        if np.isnan(points).any():
            continue
        for name, box in regions(points).items():
            figures[name][index] = detail(frame, box)
    return figures


def sharpness_figures(generated: dict[str, np.ndarray], real: dict[str, np.ndarray]) -> dict:
    """The generated detail of each region as a fraction of the real one (means over the frames with a face), and
    `sharpness_ratio`, the lower face's fraction over the eyes'."""
    kept = {name: float(np.nanmean(generated[name]) / np.nanmean(real[name])) for name in ("lower_face", "eyes")}
    return {"sharpness_lower_face": kept["lower_face"], "sharpness_eyes": kept["eyes"],
            "sharpness_ratio": kept["lower_face"] / kept["eyes"]}
