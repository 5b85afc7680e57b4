"""The landmark pipeline on held-out footage: A2L's landmarks and L2V's frames against the real ones.

For each clip (its validation part, or all of it for footage prepared with `--val-fraction 1`), the first
frame is the portrait: its crop is the identity reference and its landmarks A2L's reference face. The
real head motion moves the landmarks, and the real frames with the lower face blanked are the pose
references, as when dubbing a video (the paper's test set-up). Figures:
- A2L: landmark error (NME: mean point distance over the outer-eye-corner distance) of all points and of
  the mouth, beside the error of a still face (the first frame's landmarks moved with the head), and the
  correlation of the predicted mouth opening with the real one;
- the frame autoencoder: PSNR and SSIM of the real face crops encoded and decoded (the ceiling of L2V);
- L2V from the real landmarks (its ceiling) and the whole pipeline from speech: PSNR and SSIM of the face
  crop as the pipeline makes it (L2V, the skin colour of the identity crop, and with `lower_face="warped"` the
  identity crop warped onto the landmarks everywhere but inside the mouth), of the real crop with that lower face
  pasted in (what a dubbed video shows), of its mouth region and of the pasted pixels alone (`lower_face_psnr`),
  the pasted pixels' change from frame to frame beside the real one's, and the mouth opening found by dlib (and
  with a judge, MediaPipe) in the generated frames against the real one. At a crop size above the model's, L2V
  draws at the model's size and the lower face is made at the larger size, as the video makes it at the
  portrait's;
- speech sync: how the mouth opening follows the loudness of the speech, in the real and generated frames.
"""

import cv2
import numpy as np
import torch

from ..faces.align import STABLE_POINTS, fit_similarity, rescaled_landmarks, rescaling_affine
from ..errors import TalkingHeadError
from ..faces.landmarks import OUTER_LIPS, get_landmarker, mouth_opening
from ..faces.paste import paste_masks
from ..faces.warp import compose_lower_face, with_still_jaw
from ..faces.render import lower_face_mask
from ..media.audio import SAMPLE_RATE
from ..media.images import to_uint8
from ..media.video import resize_frames
from ..media.speaker import speaker_embedding
from ..pipelines.landmark import masked_images
from ..pipelines.settings import DEFAULT_LOWER_FACE, DEFAULT_MOTION_SCALE, DEFAULT_SETTINGS, check_lower_face
from ..data.dataset import TalkingHeadDataset
from .holdout import MAX_LAG_FRAMES, compare_frames
from .metrics import best_lag, landmark_errors, loudness_per_frame, psnr, ssim

DEFAULTS = DEFAULT_SETTINGS["landmark"]


def crops_from_landmarks(pipeline, landmarks: np.ndarray, real: np.ndarray, noise, steps, sampler, batch_size,
                         lower_face) -> np.ndarray:
    """The pipeline's face crops at the size of the real crops (uint8 [N,S,S,3]) for `landmarks` [N,68,2] (in their
    pixels), made as the video makes them at the portrait's size: L2V draws at the model's size from the real crops
    shrunk to it (the first the identity, the others with the lower face blanked the pose references); the lower face
    is then the first crop's own, warped, with L2V's mouth (redrawn by the pipeline's mouth refiner, if it has one)
    ("warped"), or L2V's enlarged ("drawn")."""
    size, model_size = real.shape[1], pipeline.image_size
    small = resize_frames(real, model_size)
    small_landmarks = rescaled_landmarks(landmarks, size, model_size)
    drawn = []
    for start in range(0, len(landmarks), batch_size):
        batch = small_landmarks[start:start + batch_size]
        keep = 1 - lower_face_mask(batch, model_size)[..., None]
        pose = masked_images(small[start:start + batch_size], keep)
        drawn.append(pipeline.draw_crops(batch, pose, small[0], small_landmarks[0], noise, steps, sampler, lower_face))
    drawn = np.concatenate(drawn)
    to_size = rescaling_affine(model_size, size)
    if lower_face == "warped":
        return compose_lower_face(real[0], landmarks[0], landmarks, drawn, to_size, pipeline.mouth_refiner)
    return np.stack([cv2.warpAffine(crop, to_size, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
                     for crop in drawn])


def _pasted_figures(generated: np.ndarray, real: np.ndarray, landmarks: np.ndarray, mask_landmarks: np.ndarray) -> dict:
    """Figures of the real crops (uint8 [N,S,S,3]) with the generated lower faces pasted in under the masks of
    `mask_landmarks` (as the video pastes them): PSNR and SSIM of the whole crop, of the mouth region (the box of the
    real lips grown by half their width on every side) and of the pasted pixels alone (weighted by the mask), and
    the temporal coherence of the pasted pixels (the mean squared change between consecutive frames, the real
    frames' beside it)."""
    def unit(images):
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255

    masks = paste_masks(mask_landmarks, real.shape[1])
    alpha = masks[..., None]
    blended = real.astype(np.float32) + alpha * (generated.astype(np.float32) - real)
    pasted = unit(np.clip(blended, 0, 255).round().astype(np.uint8))
    generated_images, real_images = unit(generated), unit(real)
    weights = torch.from_numpy(masks)[:, None]
    x0, y0, x1, y1 = _mouth_box(landmarks, real.shape[1])
    mouth, real_mouth = pasted[..., y0:y1, x0:x1], real_images[..., y0:y1, x0:x1]
    change = ((pasted[1:] - pasted[:-1]).pow(2) * weights[1:]).sum() / (weights[1:].sum() * 3)
    real_change = ((real_images[1:] - real_images[:-1]).pow(2) * weights[1:]).sum() / (weights[1:].sum() * 3)
    return {"pasted_psnr": psnr(pasted, real_images), "pasted_ssim": ssim(pasted, real_images),
            "mouth_region_psnr": psnr(mouth, real_mouth), "mouth_region_ssim": ssim(mouth, real_mouth),
            "lower_face_psnr": psnr(generated_images, real_images, weights),
            "pasted_pixel_mse": float(change), "pasted_pixel_mse_real": float(real_change)}


def _mouth_box(landmarks: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """One box over every frame's mouth: the outer lips' box over all `landmarks` [N,68,2], grown by half its width
    on every side (in a crop of `size` pixels)."""
    lips = np.asarray(landmarks)[:, list(OUTER_LIPS)].reshape(-1, 2)
    low, high = lips.min(0), lips.max(0)
    margin = (high[0] - low[0]) / 2
    x0, y0 = np.clip(np.floor(low - margin), 0, size).astype(int)
    x1, y1 = np.clip(np.ceil(high + margin), 0, size).astype(int)
    return x0, y0, x1, y1


@torch.no_grad()
def evaluate_landmark_pipeline(pipeline, dataset: TalkingHeadDataset, *,
                               num_inference_steps: int = DEFAULTS.num_inference_steps, sampler: str = DEFAULTS.sampler, seed: int = DEFAULTS.seed,
                               batch_size: int = DEFAULTS.batch_size, motion_scale: float = DEFAULT_MOTION_SCALE,
                               lower_face: str = DEFAULT_LOWER_FACE, mouth_judge=None, a2l_only: bool = False,
                               size: int | None = None) -> dict:
    """Measure A2L and L2V on every clip's held-out frames (A2L's motion scaled by `motion_scale`, as in
    `audio_to_landmarks`; the lower face made as `lower_face` says, as in `draw_crops`); returns per-clip and
    averaged figures. `mouth_judge` (a `MediaPipeMouth`) also measures the drawn mouths a second way; `a2l_only`
    measures A2L's landmarks alone and draws no frames (seconds instead of minutes). `size` is the crop size the figures
    are measured at (the model's by default): L2V draws at the model's size, and the lower face is made at `size` as
    the video makes it at the portrait's."""
    check_lower_face(lower_face)
    model_size = pipeline.image_size
    size = size or model_size
    if size > dataset.resolution:
        raise TalkingHeadError(f"the held-out crops are {dataset.resolution} pixels; measure at that size or less, "
                               f"not {size}")
    landmarker = get_landmarker("dlib")
    noise = pipeline.initial_noise(seed)
    stable = list(STABLE_POINTS)
    per_clip = []
    for clip in dataset.clips:
        start, stop = clip.frame_range("val")
        if stop - start < 2:
            continue
        real = to_uint8(dataset.clip_frames(clip, "val", size))
        real_landmarks = rescaled_landmarks(dataset.clip_array(clip, "landmarks", "val").numpy(), dataset.resolution,
                                            size)
        audio = np.asarray(clip.array("audio"))[round(start / dataset.fps * SAMPLE_RATE):round(stop / dataset.fps * SAMPLE_RATE)]
        features = dataset.clip_features(clip, pipeline.feature_extractor, "val")
        speaker = torch.from_numpy(speaker_embedding(audio))
        face = rescaled_landmarks(real_landmarks[0], size, model_size)  # A2L works in the model's crop
        motion = np.stack([fit_similarity(real_landmarks[0][stable], points[stable]) for points in real_landmarks])
        spoken = pipeline.audio_to_landmarks(features, speaker, face, motion_scale)
        predicted = pipeline.move_head(rescaled_landmarks(spoken, model_size, size), motion)
        still = pipeline.move_head(np.repeat(real_landmarks[:1], len(motion), axis=0), motion)
        real_opening = mouth_opening(real_landmarks)
        loudness = loudness_per_frame(audio, SAMPLE_RATE, dataset.fps, len(real))
        figures = {"clip": clip.name, "frames": stop - start}
        figures.update({f"a2l_{k}": v for k, v in landmark_errors(predicted, real_landmarks).items()})
        figures.update({f"still_{k}": v for k, v in landmark_errors(still, real_landmarks).items()
                        if k != "mouth_opening_correlation"})
        real_speech_lag, real_speech_correlation = best_lag(real_opening, loudness, MAX_LAG_FRAMES)
        figures.update({"real_mouth_speech_correlation": real_speech_correlation,
                        "real_mouth_speech_lag_frames": real_speech_lag})
        if a2l_only:
            per_clip.append(figures)
            continue
        small = masked_images(resize_frames(real, model_size), None)
        reconstructed = np.concatenate([to_uint8(pipeline.decode_images(pipeline.encode_images(chunk)))
                                        for chunk in small.split(batch_size)])
        figures.update({f"autoencoder_{k}": v for k, v in compare_frames(
            reconstructed, small, mouth_opening(rescaled_landmarks(real_landmarks, size, model_size)),
            landmarker).items()})
        real_images = masked_images(real, None)
        for name, landmarks in (("l2v_real_landmarks", real_landmarks), ("speech", predicted)):
            generated = crops_from_landmarks(pipeline, landmarks, real, noise, num_inference_steps, sampler, batch_size,
                                             lower_face)
            figures.update({f"{name}_{k}": v for k, v in
                            compare_frames(generated, real_images, real_opening, landmarker, loudness,
                                           mouth_judge).items()})
            mask_landmarks = with_still_jaw(landmarks[0], landmarks) if lower_face == "warped" else landmarks
            figures.update({f"{name}_{k}": v for k, v in
                            _pasted_figures(generated, real, landmarks, mask_landmarks).items()})
        per_clip.append(figures)
    numeric = [k for k, v in per_clip[0].items() if isinstance(v, (int, float)) and k != "frames"]
    return {"settings": {"steps": num_inference_steps, "sampler": sampler, "seed": seed, "image_size": size,
                         "model_image_size": model_size,
                         "motion_scale": motion_scale, "lower_face": lower_face, "a2l_only": a2l_only,
                         "a2l_motion_gain": pipeline.a2l.config.motion_gain},
            "mean": {k: float(np.mean([c[k] for c in per_clip])) for k in numeric}, "clips": per_clip}
