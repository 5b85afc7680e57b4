"""Landmark-guided talking heads: speech and one portrait to a video, after the landmark-guided diffusion of
Tan, Cheng, Xiong et al. (2024).

A2L turns the speech (features and a voice embedding) and the portrait's landmarks into a landmark sequence;
head motion comes from a reference video's landmarks or the head stays still. L2V, a latent diffusion
model, then draws every frame's face crop from the rendered landmarks, a pose reference (the portrait's
crop, moved with the head, with the lower face masked out), the identity reference (the portrait's crop)
and the landmark coordinates (cross-attention). All frames start from one shared noise; each generated
lower face takes the skin colour of the portrait's (a colour transfer over the lower face's skin). By default
(`lower_face="warped"`) the portrait's own lower face, moved onto each frame's landmarks by a thin-plate spline
(the jaw line with the head and the lower lip), replaces L2V's everywhere but inside the mouth, at the portrait's own
resolution; `"drawn"` keeps L2V's whole lower face, as in the paper. The lower face is pasted back into the full
portrait with a soft mask, so the video keeps the portrait's size, background and sharpness. Frames are made batch by batch and streamed to the file.
"""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.utils import BaseOutput
from transformers import PreTrainedModel

from ..errors import ModelError, TalkingHeadError
from ..faces.align import (
    STABLE_POINTS,
    apply_affine,
    box_to_affine,
    crop_box_from_landmarks,
    fit_similarity,
    from_unit_coordinates,
    invert_affine,
    to_unit_coordinates,
)
from ..faces.landmarks import get_landmarker
from ..faces.paste import match_skin_colour, paste_back
from ..faces.portrait import PortraitFace, find_portrait_face
from ..faces.render import lower_face_mask, render_landmarks
from ..faces.tracking import FaceTrack, ping_pong, track_face, track_landmarks
from ..faces.warp import compose_lower_face
from ..hub_models.a2l import SPEECH_POINTS, AudioToLandmarks
from ..hub_models.autoencoders import (
    FRAME_AUTOENCODER_CLASSES,
    FrameAutoencoder,
    decode_latents,
    downsampling_factor,
    encode_latents,
)
from ..hub_models.landmark_encoder import LandmarkEncoder
from ..hub_models.mouth_refiner import MouthRefiner
from ..hub_models.speaker_encoder import SpeakerEncoder
from ..media.audio import SAMPLE_RATE
from ..media.features import SPEECH_MODEL_CLASSES, AudioFeatureExtractor, front_end_of
from ..media.images import to_model_range, to_uint8
from ..media.speaker import speaker_embedding
from .base import TalkingHeadPipeline, speech_waveform
from .hub import check_speech_model_fits
from .sampling import denoise, make_scheduler
from .settings import (
    DEFAULT_LOWER_FACE,
    DEFAULT_MOTION_SCALE,
    DEFAULT_SETTINGS,
    SamplingSettings,
    check_lower_face,
    check_motion_scale,
)

DEFAULTS = DEFAULT_SETTINGS["landmark"]

ProgressCallback = Callable[[int, int], None]


class LandmarkDiffusionPipeline(TalkingHeadPipeline):
    """Speech plus one portrait to a talking-head video.

    Components: `vae` (the frame autoencoder: TinyAutoencoder, AutoencoderKL or VQModel, see
    `hub_models.autoencoders`), `unet` (UNet2DConditionModel over the
    noisy latent and the three condition latents), `landmark_encoder` (coordinates to cross-attention
    tokens), `scheduler`, and optionally `a2l` (speech to landmarks; absent in an L2V-only pipeline),
    `speaker_encoder` (the GE2E voice embedding A2L hears; without it, the bundled one), `speech_model`
    (the Whisper, wav2vec 2.0 or HuBERT network of A2L's features; none for log-mel) and `mouth_refiner` (redraws
    each mouth at the portrait's resolution when the lower face is pasted back; see `hub_models.mouth_refiner`).
    `crop_scale` is the face crop size the models were trained on (see `crop_box_from_landmarks`).
    """

    # diffusers reads it
    _optional_components = ["a2l", "speaker_encoder", "speech_model", "mouth_refiner"]  # noqa: RUF012
    _component_classes = {"vae": FRAME_AUTOENCODER_CLASSES, "unet": (UNet2DConditionModel,),  # noqa: RUF012
                          "landmark_encoder": (LandmarkEncoder,), "scheduler": (DDIMScheduler,), "a2l": (AudioToLandmarks,),
                          "speaker_encoder": (SpeakerEncoder,), "speech_model": SPEECH_MODEL_CLASSES,
                          "mouth_refiner": (MouthRefiner,)}
    _float32_components = ("speaker_encoder",)  # small and run once per audio; bfloat16 moves its embeddings

    def __init__(self, vae: FrameAutoencoder, unet: UNet2DConditionModel, landmark_encoder: LandmarkEncoder,
                 scheduler: DDIMScheduler, a2l: AudioToLandmarks | None = None,
                 speaker_encoder: SpeakerEncoder | None = None, speech_model: PreTrainedModel | None = None,
                 mouth_refiner: MouthRefiner | None = None, crop_scale: float = 2.0):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, landmark_encoder=landmark_encoder, scheduler=scheduler, a2l=a2l,
                              speaker_encoder=speaker_encoder, speech_model=speech_model, mouth_refiner=mouth_refiner)
        self.register_to_config(crop_scale=crop_scale)
        self._feature_extractor: AudioFeatureExtractor | None = None
        self._check_components_fit()

    def _check_components_fit(self) -> None:
        latent_channels = self.vae.config.latent_channels
        if self.unet.config.in_channels != 4 * latent_channels or self.unet.config.out_channels != latent_channels:
            raise ModelError(f"the UNet maps {self.unet.config.in_channels} to {self.unet.config.out_channels} "
                             f"channels; with a {latent_channels}-channel autoencoder L2V needs {4 * latent_channels} "
                             f"to {latent_channels}")
        if self.unet.config.cross_attention_dim != self.landmark_encoder.config.output_dim:
            raise ModelError(f"the landmark encoder gives {self.landmark_encoder.config.output_dim}-d tokens but the "
                             f"UNet cross-attends to {self.unet.config.cross_attention_dim}-d ones")
        if self.a2l is not None:
            check_speech_model_fits(self.speech_model, self.a2l.config.feature_kind, "A2L")
        if self.a2l is not None and self.speaker_encoder is not None \
                and self.speaker_encoder.config.embedding_size != self.a2l.config.speaker_dim:
            raise ModelError(f"the speaker encoder gives {self.speaker_encoder.config.embedding_size}-d voice "
                             f"embeddings but A2L hears {self.a2l.config.speaker_dim}-d ones")

    # -- properties -------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        """Side of the face crops the models work on, in pixels."""
        return self.unet.config.sample_size * downsampling_factor(self.vae)

    @property
    def fps(self) -> float:
        return self.require_a2l().config.fps

    def require_a2l(self) -> AudioToLandmarks:
        """The A2L model, or a ModelError saying how to train one when the pipeline holds only L2V."""
        if self.a2l is None:
            raise ModelError("this pipeline holds only L2V; train its A2L with `talking-head train a2l`")
        return self.a2l

    # -- stage 1: the portrait ----------------------------------------------------------------------
    def find_face(self, image, face: int | str = "largest", landmark_backend: str = "dlib",
                  what: str = "the portrait") -> PortraitFace:
        """The face to animate in a portrait (path, PIL image or uint8 array) and its crop at the model's size."""
        return find_portrait_face(image, self.image_size, self.config.crop_scale, get_landmarker(landmark_backend),
                                  face=face, what=what)

    # -- stage 2: speech to landmarks ---------------------------------------------------------------
    @property
    def feature_extractor(self) -> AudioFeatureExtractor:
        """The audio front end A2L was trained on."""
        if self._feature_extractor is None:
            config = self.require_a2l().config
            self._feature_extractor = front_end_of(config, self.device, self.speech_model)
        return self._feature_extractor

    def encode_audio(self, audio, sample_rate: int = SAMPLE_RATE):
        """Speech features per video frame [T,F] and the voice embedding [256] of an audio file, or of a waveform
        [S] / [C,S] (numpy or torch) at `sample_rate`."""
        waveform = speech_waveform(audio, sample_rate)
        features = self.feature_extractor(waveform, SAMPLE_RATE)
        return features, torch.from_numpy(speaker_embedding(waveform, SAMPLE_RATE, encoder=self.speaker_encoder))

    @torch.no_grad()
    def audio_to_landmarks(self, features: torch.Tensor, speaker: torch.Tensor, face_landmarks,
                           motion_scale: float = DEFAULT_MOTION_SCALE) -> np.ndarray:
        """Landmarks [T,68,2] in crop pixels, one per video frame, with the head still where `face_landmarks` [68,2] is.

        A2L's displacements are multiplied by its `motion_gain` (measured when it was trained) and by `motion_scale`:
        2 moves the mouth and jaw twice as far, 0 keeps the face still."""
        check_motion_scale(motion_scale)
        model = self.require_a2l()
        size = self.image_size
        face = torch.as_tensor(to_unit_coordinates(np.asarray(face_landmarks, np.float32), size))
        device, dtype = model.device, model.dtype
        displacements = model(features[None].to(device, dtype), speaker[None].to(device, dtype),
                              face[None].to(device, dtype))["displacements"][0].float().cpu()
        gain = model.config.motion_gain * motion_scale
        return from_unit_coordinates((face + gain * displacements).numpy(), size)

    # -- stage 3: head motion -----------------------------------------------------------------------
    def head_motion_from_video(self, video: str | os.PathLike, num_frames: int, landmark_backend: str = "dlib") -> np.ndarray:
        """Per-frame similarity transforms [T,2,3] (crop pixels) that move a face as the head moves in `video`.

        See `head_motion_from_landmarks`.
        """
        video = Path(video)
        if not video.is_file():
            raise TalkingHeadError(f"pose video not found: {video}")
        landmarks, _ = track_landmarks(video, self.fps, get_landmarker(landmark_backend))
        return self.head_motion_from_landmarks(landmarks, num_frames)

    def head_motion_from_landmarks(self, landmarks: np.ndarray, num_frames: int) -> np.ndarray:
        """Per-frame similarity transforms [T,2,3] (crop pixels) that follow a tracked head's landmarks [N,68,2].

        The motion is relative to the first frame; a track shorter than `num_frames` plays forward and
        backward again as often as needed.
        """
        size = self.image_size
        box = np.median(crop_box_from_landmarks(landmarks, self.config.crop_scale), axis=0)
        crop_landmarks = apply_affine(landmarks, box_to_affine(box, size))[:, list(STABLE_POINTS)]
        order = ping_pong(len(landmarks), num_frames)
        return np.stack([fit_similarity(crop_landmarks[0], crop_landmarks[index]) for index in order])

    @staticmethod
    def still_head(num_frames: int) -> np.ndarray:
        """Identity transforms [T,2,3]: the head stays where it is in the portrait."""
        return np.repeat(np.eye(2, 3)[None], num_frames, axis=0)

    @staticmethod
    def move_head(landmarks: np.ndarray, transforms: np.ndarray) -> np.ndarray:
        """Apply per-frame transforms [T,2,3] to landmarks [T,68,2]."""
        if len(landmarks) != len(transforms):
            raise TalkingHeadError(f"{len(transforms)} head transforms for {len(landmarks)} frames of landmarks")
        return np.einsum("tij,tpj->tpi", transforms[:, :, :2], landmarks) + transforms[:, None, :, 2]

    # -- stage 4: L2V ---------------------------------------------------------------------------------
    def render(self, landmarks: np.ndarray, size: int | None = None) -> np.ndarray:
        """The landmarks [T,68,2] (crop pixels) drawn as uint8 images [T,S,S,3], L2V's visual condition."""
        return render_landmarks(landmarks, size or self.image_size, from_size=self.image_size)

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N,3,S,S] in [-1,1] to scaled latents."""
        return encode_latents(self.vae, images)

    def decode_images(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents to images [N,3,S,S] in [-1,1]."""
        return decode_latents(self.vae, latents)

    def pose_references(self, face: PortraitFace, landmarks: np.ndarray, transforms: np.ndarray) -> torch.Tensor:
        """The portrait's crop moved by each transform, with the lower face (around `landmarks` [N,68,2]) blanked: [N,3,S,S]."""
        size = self.image_size
        crops = np.stack([cv2.warpAffine(face.crop, transform, (size, size), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE) for transform in transforms])
        keep = 1 - lower_face_mask(landmarks, size)[..., None]
        return masked_images(crops, keep)

    def initial_noise(self, seed: int = DEFAULTS.seed) -> torch.Tensor:
        """The noise [1,C,h,w] every frame of a video starts from."""
        size, channels = self.unet.config.sample_size, self.unet.config.out_channels
        generator = torch.Generator().manual_seed(seed)
        return torch.randn((1, channels, size, size), generator=generator).to(self.unet.device, self.unet.dtype)

    @torch.no_grad()
    def denoise_frames(self, landmarks: np.ndarray, pose_references: torch.Tensor, identity: torch.Tensor,
                       initial_noise: torch.Tensor, num_inference_steps: int = DEFAULTS.num_inference_steps,
                       sampler: str = DEFAULTS.sampler) -> torch.Tensor:
        """Face crops [N,3,S,S] in [-1,1] for landmarks [N,68,2] (crop pixels), pose references [N,3,S,S]
        and one identity reference [1,3,S,S]."""
        size = self.image_size
        count = len(landmarks)
        renders = to_model_range(self.render(landmarks))
        conditions = torch.cat([self.encode_images(renders), self.encode_images(pose_references),
                                self.encode_images(identity).expand(count, -1, -1, -1)], dim=1)
        unit = torch.from_numpy(to_unit_coordinates(np.asarray(landmarks, np.float32), size))
        tokens = self.landmark_encoder(unit.to(self.unet.device, self.unet.dtype))
        scheduler = make_scheduler(sampler, self.scheduler)

        def predict(sample, timestep):
            return self.unet(torch.cat([sample, conditions], dim=1), timestep, encoder_hidden_states=tokens).sample

        latents = denoise(predict, scheduler, initial_noise.expand(count, -1, -1, -1), num_inference_steps)
        return self.decode_images(latents).float()

    def draw_crops(self, landmarks: np.ndarray, pose_references: torch.Tensor, identity_crop: np.ndarray,
                   identity_landmarks: np.ndarray, initial_noise: torch.Tensor,
                   num_inference_steps: int = DEFAULTS.num_inference_steps, sampler: str = DEFAULTS.sampler,
                   lower_face: str = DEFAULT_LOWER_FACE) -> np.ndarray:
        """uint8 face crops [N,S,S,3]: `denoise_frames` from the identity crop (uint8 [S,S,3], its landmarks
        [68,2]), the skin colour of each drawn lower face matched to the identity crop's; with `lower_face`
        "warped", the identity crop moved onto `landmarks` (its jaw line with the head and the lower lip) everywhere
        but inside the mouth."""
        check_lower_face(lower_face)
        identity = masked_images(identity_crop[None], None)
        crops = to_uint8(self.denoise_frames(landmarks, pose_references, identity, initial_noise, num_inference_steps,
                                             sampler))
        crops = match_skin_colour(crops, landmarks, identity_crop, identity_landmarks)
        if lower_face == "warped":
            crops = compose_lower_face(identity_crop, identity_landmarks, landmarks, crops, np.eye(2, 3))
        return crops

    # -- everything ---------------------------------------------------------------------------------------
    def generate_crops(self, face: PortraitFace, landmarks: np.ndarray, transforms: np.ndarray,
                       initial_noise: torch.Tensor, num_inference_steps: int = DEFAULTS.num_inference_steps,
                       sampler: str = DEFAULTS.sampler, batch_size: int = DEFAULTS.batch_size,
                       callback: ProgressCallback | None = None,
                       lower_face: str = DEFAULT_LOWER_FACE) -> Iterator[np.ndarray]:
        """Generated face crops, uint8 [B,S,S,3] batch by batch, for landmarks [T,68,2] with the head moved by
        `transforms` (`lower_face`: see `draw_crops`)."""
        num_frames = len(landmarks)
        for start in range(0, num_frames, batch_size):
            batch_landmarks = landmarks[start:start + batch_size]
            pose = self.pose_references(face, batch_landmarks, transforms[start:start + batch_size])
            yield self.draw_crops(batch_landmarks, pose, face.crop, face.crop_landmarks, initial_noise,
                                  num_inference_steps, sampler, lower_face)
            if callback is not None:
                callback(min(start + batch_size, num_frames), num_frames)

    def generate_frames(self, face: PortraitFace, landmarks: np.ndarray, transforms: np.ndarray,
                        initial_noise: torch.Tensor, num_inference_steps: int = DEFAULTS.num_inference_steps,
                        sampler: str = DEFAULTS.sampler, batch_size: int = DEFAULTS.batch_size,
                        callback: ProgressCallback | None = None,
                        lower_face: str = DEFAULT_LOWER_FACE) -> Iterator[np.ndarray]:
        """Full-size uint8 frames [B,H,W,3], batch by batch: `generate_crops` pasted back into the portrait (with
        `lower_face` "warped", the portrait's own lower face moved at its own resolution, the crops' mouths set in)."""
        crops = self.generate_crops(face, landmarks, transforms, initial_noise, num_inference_steps, sampler,
                                    batch_size, callback, lower_face)
        for start, batch in zip(range(0, len(landmarks), batch_size), crops):
            stop = start + len(batch)
            yield paste_back(face, batch, landmarks[start:stop], transforms[start:stop], lower_face,
                             self.mouth_refiner)

    # -- dubbing a video ---------------------------------------------------------------------------------
    def track_face(self, frame_batches, fps: float, face: int | str = "largest", landmark_backend: str = "dlib",
                   what: str = "the video") -> FaceTrack:
        """Follow the face to dub through a video's frames (uint8 batches [B,H,W,3] at `fps`); see `track_face`."""
        return track_face(frame_batches, get_landmarker(landmark_backend), self.config.crop_scale, fps, face, what)

    @torch.no_grad()
    def dubbed_landmarks(self, track: FaceTrack, frame_order: np.ndarray, features: torch.Tensor,
                         speaker: torch.Tensor, fps: float, motion_scale: float = DEFAULT_MOTION_SCALE) -> np.ndarray:
        """Landmarks [M,68,2] in frame pixels for the video's frames `frame_order` [M] (shown at `fps`) dubbed with the
        speech (`features` at the model's frame rate, `speaker`): each frame's own landmarks, with the lips and chin
        A2L's motion from the reference frame's face (the one with the most nearly closed mouth), moved with that
        frame's head. NaN for frames without the face."""
        size, stable, speech = self.image_size, list(STABLE_POINTS), list(SPEECH_POINTS)
        reference = track.reference
        to_crop = box_to_affine(track.boxes[reference], size)
        reference_crop = apply_affine(track.landmarks[reference], to_crop)
        moved = self.audio_to_landmarks(features, speaker, reference_crop, motion_scale)  # [T,68,2], crop pixels
        times = np.arange(len(frame_order)) / fps * self.fps  # output frames on A2L's clock
        moved = np.stack([np.interp(times, np.arange(len(moved)), moved[:, point, axis], right=np.nan)
                          for point in range(68) for axis in (0, 1)], axis=1).reshape(len(times), 68, 2)
        moved = apply_affine(moved, invert_affine(to_crop))  # frame pixels of the reference frame
        targets = np.full((len(frame_order), 68, 2), np.nan)
        for index, frame in enumerate(frame_order):
            if not track.found[frame] or np.isnan(moved[index]).any():
                continue
            own = track.landmarks[frame]
            head = fit_similarity(track.landmarks[reference][stable], own[stable])
            targets[index] = own
            targets[index][speech] = apply_affine(moved[index][speech], head)
        return targets

    def dub_frames(self, frames: np.ndarray, own_landmarks: np.ndarray, targets: np.ndarray, boxes: np.ndarray,
                   reference: PortraitFace, initial_noise: torch.Tensor,
                   num_inference_steps: int = DEFAULTS.num_inference_steps, sampler: str = DEFAULTS.sampler,
                   lower_face: str = DEFAULT_LOWER_FACE) -> np.ndarray:
        """uint8 frames [B,H,W,3] with each face's lower face moved onto `targets` [B,68,2] (frame pixels; NaN rows
        pass their frame through): the frame's own lower face at its own resolution, L2V drawing inside the mouth
        from the reference face's crop ("warped"), or L2V's lower face ("drawn"). `own_landmarks` [B,68,2] are the
        frames' own and `boxes` [B,3] their steady crop boxes."""
        check_lower_face(lower_face)
        size = self.image_size
        dubbed = frames.copy()
        keep = np.flatnonzero(~np.isnan(targets).any(axis=(1, 2)))
        if not len(keep):
            return dubbed
        faces = [PortraitFace.of_frame(frames[i], own_landmarks[i], boxes[i], size) for i in keep]
        target_crops = np.stack([apply_affine(targets[i], box_to_affine(boxes[i], size)) for i in keep])
        upper_face = 1 - lower_face_mask(target_crops, size)[..., None]
        pose = masked_images(np.stack([face.crop for face in faces]), upper_face)
        drawn = self.draw_crops(target_crops, pose, reference.crop, reference.crop_landmarks, initial_noise,
                                num_inference_steps, sampler, "drawn")
        for index, face, crop, target in zip(keep, faces, drawn, target_crops):
            dubbed[index] = paste_back(face, crop[None], target[None], self.still_head(1), lower_face,
                                       self.mouth_refiner)[0]
        return dubbed

    @torch.no_grad()
    def __call__(self, speech: np.ndarray | torch.Tensor, image, sample_rate: int = SAMPLE_RATE, *,
                 head_motion: np.ndarray | None = None, num_inference_steps: int = DEFAULTS.num_inference_steps,
                 sampler: str = DEFAULTS.sampler, seed: int = DEFAULTS.seed, face: int | str = "largest",
                 batch_size: int = DEFAULTS.batch_size, motion_scale: float = DEFAULT_MOTION_SCALE,
                 lower_face: str = DEFAULT_LOWER_FACE, output_type: str = "np",
                 callback: ProgressCallback | None = None) -> "LandmarkDiffusionOutput":
        """Speech (a waveform [S] or [C,S] at `sample_rate`, or an audio file) and a portrait (path, PIL image or
        uint8 array) to full-size frames in memory; writes no file (`talking_head.jobs` writes videos, streaming).
        `head_motion` [T,2,3] moves the head (see `head_motion_from_video`; still otherwise); `motion_scale` scales
        the mouth and jaw motion (see `audio_to_landmarks`); `lower_face` says how the lower face is made (see
        `draw_crops`); `callback(done, total)` follows the frames."""
        SamplingSettings(num_inference_steps, sampler, seed, batch_size)  # one clear error for a bad setting
        check_motion_scale(motion_scale)
        check_lower_face(lower_face)
        self.warn_if_untrained()
        face_found = self.find_face(image, face)
        features, speaker = self.encode_audio(speech, sample_rate)
        landmarks = self.audio_to_landmarks(features, speaker, face_found.crop_landmarks, motion_scale)
        transforms = self.still_head(len(landmarks)) if head_motion is None else head_motion
        landmarks = self.move_head(landmarks, transforms)
        batches = self.generate_frames(face_found, landmarks, transforms, self.initial_noise(seed),
                                       num_inference_steps, sampler, batch_size, callback, lower_face)
        return LandmarkDiffusionOutput(frames=self.frames_as(np.concatenate(list(batches)), output_type),
                                       landmarks=landmarks, head_motion=transforms)


@dataclass
class LandmarkDiffusionOutput(BaseOutput):
    """The full-size frames (uint8 [T,H,W,3], float [T,3,H,W] or PIL images, as `output_type` asked), the landmark
    sequence [T,68,2] in face-crop pixels and the head motion [T,2,3] that moved it."""

    frames: np.ndarray | torch.Tensor | list
    landmarks: np.ndarray
    head_motion: np.ndarray


def masked_images(images: np.ndarray, keep: np.ndarray | None) -> torch.Tensor:
    """uint8 images [N,S,S,3] to floats [N,3,S,S] in [-1,1], with pixels where `keep` [N,S,S,1] is 0 set to 0 (grey)."""
    floats = to_model_range(images)
    if keep is not None:
        floats = floats * torch.from_numpy(np.asarray(keep, np.float32)).permute(0, 3, 1, 2)
    return floats
