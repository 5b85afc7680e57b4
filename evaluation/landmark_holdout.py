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
  pasted in (what a dubbed video shows) and of the pasted pixels alone (`lower_face_psnr`), and the mouth
  opening found by dlib in the generated frames against the real one;
- speech sync: how the mouth opening follows the loudness of the speech, in the real and generated frames.
"""

import numpy as np
import torch

from ..faces.align import STABLE_POINTS, fit_similarity
from ..faces.landmarks import get_landmarker, mouth_opening
from ..faces.paste import paste_into_crops, paste_masks
from ..faces.render import lower_face_mask
from ..media.audio import SAMPLE_RATE
from ..media.images import to_uint8
from ..media.speaker import speaker_embedding
from ..pipelines.landmark import masked_images
from ..pipelines.settings import DEFAULT_LOWER_FACE, DEFAULT_MOTION_SCALE, DEFAULT_SETTINGS, check_lower_face
from ..data.dataset import TalkingHeadDataset
from .holdout import MAX_LAG_FRAMES, compare_frames
from .metrics import best_lag, landmark_errors, loudness_per_frame, psnr, ssim

DEFAULTS = DEFAULT_SETTINGS["landmark"]


def _frames(pipeline, landmarks, real_uint8, identity_landmarks, noise, steps, sampler, batch_size,
            lower_face) -> np.ndarray:
    """The pipeline's face crops for `landmarks`, the first real crop the identity, the real crops with the
    lower face blanked the pose references."""
    size = pipeline.image_size
    outputs = []
    for start in range(0, len(landmarks), batch_size):
        batch = landmarks[start:start + batch_size]
        keep = 1 - lower_face_mask(batch, size)[..., None]
        pose = masked_images(real_uint8[start:start + batch_size], keep)
        outputs.append(pipeline.draw_crops(batch, pose, real_uint8[0], identity_landmarks, noise, steps, sampler,
                                           lower_face))
    return np.concatenate(outputs)


def _pasted_figures(generated: np.ndarray, real: np.ndarray, landmarks: np.ndarray) -> dict:
    """PSNR and SSIM of the real crops (uint8 [N,S,S,3]) with the generated lower faces pasted in, and the
    PSNR of the pasted pixels alone (weighted by the paste mask)."""
    def unit(images):
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255

    pasted, generated_images, real_images = unit(paste_into_crops(real, generated, landmarks)), unit(generated), unit(real)
    masks = torch.from_numpy(paste_masks(landmarks, real.shape[1]))[:, None]
    return {"pasted_psnr": psnr(pasted, real_images), "pasted_ssim": ssim(pasted, real_images),
            "lower_face_psnr": psnr(generated_images, real_images, masks)}


@torch.no_grad()
def evaluate_landmark_pipeline(pipeline, dataset: TalkingHeadDataset, *,
                               num_inference_steps: int = DEFAULTS.num_inference_steps, sampler: str = DEFAULTS.sampler, seed: int = DEFAULTS.seed,
                               batch_size: int = DEFAULTS.batch_size, motion_scale: float = DEFAULT_MOTION_SCALE,
                               lower_face: str = DEFAULT_LOWER_FACE) -> dict:
    """Measure A2L and L2V on every clip's held-out frames (A2L's motion scaled by `motion_scale`, as in
    `audio_to_landmarks`; the lower face made as `lower_face` says, as in `draw_crops`); returns per-clip and
    averaged figures."""
    check_lower_face(lower_face)
    size = pipeline.image_size
    feature_kind = pipeline.a2l.config.feature_kind
    landmarker = get_landmarker("dlib")
    noise = pipeline.initial_noise(seed)
    stable = list(STABLE_POINTS)
    per_clip = []
    for clip in dataset.clips:
        start, stop = clip.frame_range("val")
        if stop - start < 2:
            continue
        real = to_uint8(dataset.clip_frames(clip, "val", size))
        real_landmarks = (dataset.clip_array(clip, "landmarks", "val").numpy() + 0.5) * size / dataset.resolution - 0.5
        audio = np.asarray(clip.array("audio"))[round(start / dataset.fps * SAMPLE_RATE):round(stop / dataset.fps * SAMPLE_RATE)]
        features = dataset.clip_array(clip, f"features-{feature_kind}", "val")
        speaker = torch.from_numpy(speaker_embedding(audio))
        face = real_landmarks[0]
        motion = np.stack([fit_similarity(face[stable], points[stable]) for points in real_landmarks])
        predicted = pipeline.move_head(pipeline.audio_to_landmarks(features, speaker, face, motion_scale), motion)
        still = pipeline.move_head(np.repeat(face[None], len(motion), axis=0), motion)
        real_opening = mouth_opening(real_landmarks)
        loudness = loudness_per_frame(audio, SAMPLE_RATE, dataset.fps, len(real))
        figures = {"clip": clip.name, "frames": stop - start}
        figures.update({f"a2l_{k}": v for k, v in landmark_errors(predicted, real_landmarks).items()})
        figures.update({f"still_{k}": v for k, v in landmark_errors(still, real_landmarks).items()
                        if k != "mouth_opening_correlation"})
        real_speech_lag, real_speech_correlation = best_lag(real_opening, loudness, MAX_LAG_FRAMES)
        figures.update({"real_mouth_speech_correlation": real_speech_correlation,
                        "real_mouth_speech_lag_frames": real_speech_lag})
        real_images = masked_images(real, None)
        reconstructed = np.concatenate([to_uint8(pipeline.decode_images(pipeline.encode_images(chunk)))
                                        for chunk in real_images.split(batch_size)])
        figures.update({f"autoencoder_{k}": v for k, v in
                        compare_frames(reconstructed, real_images, real_opening, landmarker).items()})
        for name, landmarks in (("l2v_real_landmarks", real_landmarks), ("speech", predicted)):
            generated = _frames(pipeline, landmarks, real, face, noise, num_inference_steps, sampler, batch_size,
                                lower_face)
            figures.update({f"{name}_{k}": v for k, v in
                            compare_frames(generated, real_images, real_opening, landmarker, loudness).items()})
            figures.update({f"{name}_{k}": v for k, v in _pasted_figures(generated, real, landmarks).items()})
        per_clip.append(figures)
    numeric = [k for k, v in per_clip[0].items() if isinstance(v, (int, float)) and k != "frames"]
    return {"settings": {"steps": num_inference_steps, "sampler": sampler, "seed": seed, "image_size": size,
                         "motion_scale": motion_scale, "lower_face": lower_face, "a2l_motion_gain": pipeline.a2l.config.motion_gain},
            "mean": {k: float(np.mean([c[k] for c in per_clip])) for k in numeric}, "clips": per_clip}
