"""DAE-Talker on held-back footage: frames generated from the validation audio against the real frames.

Figures: PSNR and SSIM against the real frames for the same audio; the mouth opening (68-point landmarks
of the generated frames) against the real one: its correlation and the lag that aligns them best. With
`with_ceiling`, the same for each stage alone, so the figures show where quality is lost:
`measured_` the real frames shrunk to the model's size (what the mouth measurement itself can reach),
`autoencoder_` the real frames through the frame autoencoder (latent-space models), and `ceiling_` frames
decoded from the real frames' own semantic latents (the most speech2latent could reach with this decoder),
and `semantic_` what the semantic code holds: how many principal directions of the training frames' codes
carry 99 % of their variance, and how well a linear read-out along them, fitted on the training frames,
predicts the held-back frames' mouth opening (a mouth the code does not hold no decoder can draw). A clip held
back whole (prepared with `--val-fraction 1`, e.g. sentences the model never saw) has no training frames: its
read-out is fitted on the other clips' held-back frames instead. With `semantic_only`, only the last: it
draws no frames, so it judges a DAE in minutes, before a speech2latent is trained on it.
"""

import numpy as np
import torch

from ..faces.landmarks import get_landmarker, landmarks_per_frame, mouth_opening
from ..hub_models.autoencoders import decode_latents, encode_latents
from ..media.images import to_uint8
from ..pipelines.settings import DEFAULT_SETTINGS
from ..data.dataset import TalkingHeadDataset
from ..errors import ModelError
from .metrics import best_lag, filled, pearson, psnr, ssim

DEFAULTS = DEFAULT_SETTINGS["dae"]
MAX_LAG_FRAMES = 10


def mouth_openings(frames: np.ndarray, landmarker) -> np.ndarray:
    """Mouth opening per frame (NaN where no face is found) of uint8 frames [N,H,W,3]."""
    landmarks = landmarks_per_frame(frames, landmarker)
    found = ~np.isnan(landmarks).any(axis=(1, 2))
    openings = np.full(len(frames), np.nan)
    if found.any():
        openings[found] = mouth_opening(landmarks[found])
    return openings


def compare_frames(generated: np.ndarray, real: torch.Tensor, real_opening: np.ndarray, landmarker,
                   loudness: np.ndarray | None = None, judge=None) -> dict:
    """Figures of generated uint8 frames [N,H,W,3] against real frames [N,3,H,W] in [-1,1] and their mouth opening.

    With `loudness` (per frame), also how the generated mouth opening follows the speech, at its best lag. With
    `judge` (a `MediaPipeMouth`), also that second measure of the mouth in both.
    """
    generated_images = torch.from_numpy(generated).permute(0, 3, 1, 2).float() / 255
    real_images = (real + 1) / 2
    opening = mouth_openings(generated, landmarker)
    found = ~np.isnan(opening)
    opening_found = filled(opening)
    lag, lag_correlation = best_lag(opening_found, real_opening, MAX_LAG_FRAMES)
    figures = {"psnr": psnr(generated_images, real_images), "ssim": ssim(generated_images, real_images),
               "mouth_correlation": pearson(opening_found, real_opening), "mouth_lag_frames": lag,
               "mouth_correlation_at_best_lag": lag_correlation, "face_found_fraction": float(found.mean()),
               "mouth_opening_std_generated": float(np.std(opening[found])) if found.any() else float("nan"),
               "mouth_opening_std_real": float(np.std(real_opening))}
    if loudness is not None:
        speech_lag, speech_correlation = best_lag(opening_found, loudness, MAX_LAG_FRAMES)
        figures.update({"mouth_speech_correlation": speech_correlation, "mouth_speech_lag_frames": speech_lag})
    if judge is not None:
        figures.update(judge.compare(generated, to_uint8(real)))
    return figures


def semantic_code_figures(train_codes: np.ndarray, train_opening: np.ndarray, held_back_codes: np.ndarray,
                          held_back_opening: np.ndarray, variance: float = 0.99) -> dict:
    """What semantic codes [N,D] hold: the number of principal directions of the training codes that carry
    `variance` of their variance, and the correlation with the held-back mouth opening of a linear read-out
    along those directions fitted to the training frames' mouth opening."""
    centre = train_codes.mean(axis=0)
    _, singular_values, directions = np.linalg.svd(train_codes - centre, full_matrices=False)
    explained = np.cumsum(singular_values**2) / np.sum(singular_values**2)
    count = min(int(np.searchsorted(explained, variance)) + 1, len(singular_values))

    def design(codes: np.ndarray) -> np.ndarray:
        return np.c_[(codes - centre) @ directions[:count].T, np.ones(len(codes))]

    weights = np.linalg.lstsq(design(train_codes), train_opening, rcond=None)[0]
    return {"semantic_dimensions_99pct_variance": count,
            "semantic_mouth_readout_correlation": pearson(design(held_back_codes) @ weights, held_back_opening)}


def _joined(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Codes and mouth openings of several clips stacked, or None for no clips."""
    return (np.concatenate([c for c, _ in pairs]), np.concatenate([o for _, o in pairs])) if pairs else None


def _semantic_codes(pipeline, dataset: TalkingHeadDataset, clip, real: torch.Tensor, real_opening: np.ndarray
                    ) -> tuple[torch.Tensor, dict]:
    """A clip's held-back semantic latents, and its held-back (and training, if any) codes with their mouth opening."""
    own_latents = torch.cat([pipeline.encode_frames(chunk) for chunk in real.split(64)])
    codes = {"held_back": (own_latents.numpy(), real_opening)}
    train_latents = [pipeline.encode_frames(chunk) for chunk in
                     dataset.iter_clip_frames(clip, "train", pipeline.image_size, 64)]
    if train_latents:
        train_opening = mouth_opening(dataset.clip_array(clip, "landmarks", "train").numpy())
        codes["train"] = (torch.cat(train_latents).numpy(), train_opening)
    return own_latents, codes


@torch.no_grad()
def evaluate_on_holdout(pipeline, dataset: TalkingHeadDataset, *, num_inference_steps: int = DEFAULTS.num_inference_steps,
                        sampler: str = DEFAULTS.sampler, seed: int = DEFAULTS.seed,
                        batch_size: int = DEFAULTS.batch_size, use_real_pose: bool = False,
                        with_ceiling: bool = False, semantic_only: bool = False, mouth_judge=None) -> dict:
    """Generate every clip's validation frames from its audio and measure them; returns averaged figures.
    `mouth_judge` (a `MediaPipeMouth`) also measures the generated mouths a second way.

    `semantic_only` measures only what the semantic code holds: it draws no frames and needs no speech2latent, so a
    DAE can be judged before one is trained on it.
    """
    if pipeline.speech2latent is None and not semantic_only:
        raise ModelError(f"model {pipeline.config.get('_name_or_path')} has no speech2latent to generate from: "
                         "train one on it with `talking-head train speech2latent --dae MODEL`, or measure the DAE "
                         "alone with --semantic-only")
    landmarker = get_landmarker("dlib")
    initial_noise = pipeline.initial_noise(seed)
    per_clip, codes = [], {}
    for clip in dataset.clips:
        start, stop = clip.frame_range("val")
        if stop - start < 2:
            continue
        real = dataset.clip_frames(clip, "val", pipeline.image_size)
        real_opening = mouth_opening(dataset.clip_array(clip, "landmarks", "val").numpy())
        figures = {"clip": clip.name, "frames": stop - start}
        if with_ceiling or semantic_only:
            own_latents, codes[clip.name] = _semantic_codes(pipeline, dataset, clip, real, real_opening)
        if not semantic_only:
            features = dataset.clip_features(clip, pipeline.feature_extractor, "val")
            pose = dataset.clip_array(clip, "pose", "val") if use_real_pose else None
            latents = pipeline.speech_to_latents(features, pose)
            generated = np.concatenate(list(pipeline.decode_latents(latents, initial_noise, num_inference_steps,
                                                                    sampler, batch_size)))
            figures.update(compare_frames(generated, real, real_opening, landmarker, judge=mouth_judge))
        if with_ceiling and not semantic_only:
            measured = compare_frames(to_uint8(real), real, real_opening, landmarker)
            figures.update({f"measured_{k}": v for k, v in measured.items() if k.startswith("mouth_")})
            if pipeline.vae is not None:
                reconstructed = torch.cat([decode_latents(pipeline.vae, encode_latents(pipeline.vae, chunk)).float().cpu()
                                           for chunk in real.split(batch_size)])
                figures.update({f"autoencoder_{k}": v for k, v in
                                compare_frames(to_uint8(reconstructed), real, real_opening, landmarker).items()})
            decoded = np.concatenate(list(pipeline.decode_latents(own_latents, initial_noise, num_inference_steps,
                                                                  sampler, batch_size)))
            figures.update({f"ceiling_{k}": v for k, v in compare_frames(decoded, real, real_opening, landmarker).items()})
        per_clip.append(figures)
    for figures in per_clip if codes else []:
        own = codes[figures["clip"]]
        fit = own.get("train") or _joined([other["held_back"] for name, other in codes.items() if name != figures["clip"]])
        if fit is not None:
            figures.update(semantic_code_figures(*fit, *own["held_back"]))
    numeric = [k for k, v in per_clip[0].items() if isinstance(v, (int, float)) and k != "frames"]
    mean = {k: float(np.mean([c[k] for c in per_clip])) for k in numeric}
    settings = ({"semantic_only": True} if semantic_only else
                {"steps": num_inference_steps, "sampler": sampler, "seed": seed,
                 "pose": "real" if use_real_pose else "predicted"})
    return {"settings": settings, "mean": mean, "clips": per_clip}
