"""DAE-Talker: speech to semantic latents (Speech2Latent) to frames (the diffusion autoencoder's decoder).

Every frame of a video is decoded from the same initial noise `x_T`, from a seed or from DDIM inversion of a
reference frame, so frames differ only where their semantic latents differ. Frames are produced batch by
batch (`decode_latents`), so a video job (`talking_head.jobs`) streams them to the file and memory does not grow
with the length of the audio.
"""

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler
from diffusers.utils import BaseOutput
from transformers import PreTrainedModel

from ..errors import ModelError, TalkingHeadError
from ..faces.tracking import ping_pong
from ..hub_models.autoencoders import FRAME_AUTOENCODER_CLASSES, FrameAutoencoder, decode_latents, encode_latents
from ..hub_models.dae_unet import DAEUNet
from ..hub_models.semantic_encoder import SemanticEncoder
from ..hub_models.speech2latent import Speech2Latent
from ..media.audio import SAMPLE_RATE
from ..media.features import SPEECH_MODEL_CLASSES, AudioFeatureExtractor, front_end_of
from ..media.images import to_uint8
from .base import TalkingHeadPipeline, speech_waveform
from .hub import check_speech_model_fits
from .sampling import denoise, make_scheduler
from .settings import DEFAULT_SETTINGS, PAPER_SETTINGS, SamplingSettings

DEFAULTS = DEFAULT_SETTINGS["dae"]

# Speech2Latent runs over windows of this many frames, cross-faded over the overlap, so its attention
# cost stays fixed however long the audio is.
LATENT_WINDOW_FRAMES = 250
LATENT_WINDOW_OVERLAP = 50
# Translation and scale of a pose taken from another video are re-centred on the training footage.
POSE_TRANSLATION_DIMS = slice(3, 6)

ProgressCallback = Callable[[int, int], None]


class DAETalkerPipeline(TalkingHeadPipeline):
    """Speech-driven talking-head video for one person, after DAE-Talker (Du et al., 2023).

    Components: `unet` (DAEUNet decoder), `semantic_encoder` (frames to z_sem), `scheduler`, and
    optionally `vae` (the frame autoencoder when the decoder works in its latent space), `speech2latent`
    (speech features to z_sem; absent in a pipeline that holds only a trained DAE) and `speech_model` (the
    wav2vec 2.0 / HuBERT network of speech2latent's features; none for log-mel).
    """

    _optional_components = ["vae", "speech2latent", "speech_model"]
    _component_classes = {"unet": (DAEUNet,), "semantic_encoder": (SemanticEncoder,), "scheduler": (DDIMScheduler,),
                          "vae": FRAME_AUTOENCODER_CLASSES, "speech2latent": (Speech2Latent,),
                          "speech_model": SPEECH_MODEL_CLASSES}

    def __init__(self, unet: DAEUNet, semantic_encoder: SemanticEncoder, scheduler: DDIMScheduler,
                 vae: FrameAutoencoder | None = None, speech2latent: Speech2Latent | None = None,
                 speech_model: PreTrainedModel | None = None):
        super().__init__()
        self.register_modules(unet=unet, semantic_encoder=semantic_encoder, scheduler=scheduler, vae=vae,
                              speech2latent=speech2latent, speech_model=speech_model)
        self._feature_extractor: AudioFeatureExtractor | None = None

    def _check_components_fit(self) -> None:
        semantic_dim = self.unet.config.semantic_dim
        if self.semantic_encoder.config.out_dim != semantic_dim:
            raise ModelError(f"semantic encoder gives {self.semantic_encoder.config.out_dim}-d latents but the decoder expects {semantic_dim}")
        if self.speech2latent is not None and self.speech2latent.config.semantic_dim != semantic_dim:
            raise ModelError(f"speech2latent gives {self.speech2latent.config.semantic_dim}-d latents but the decoder expects {semantic_dim}")
        if self.speech2latent is not None:
            check_speech_model_fits(self.speech_model, self.speech2latent.config.feature_kind, "speech2latent")
        expected_channels = self.vae.config.latent_channels if self.vae is not None else 3
        if self.unet.config.in_channels != expected_channels:
            raise ModelError(f"the decoder takes {self.unet.config.in_channels} channels but its {'latent' if self.vae else 'image'} space has {expected_channels}")

    # -- properties -------------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.semantic_encoder.config.sample_size

    @property
    def fps(self) -> float:
        return self.require_speech2latent().config.fps

    def require_speech2latent(self) -> Speech2Latent:
        """The speech2latent model, or a ModelError saying how to train one when the pipeline holds only the DAE."""
        if self.speech2latent is None:
            raise ModelError("this pipeline holds only a diffusion autoencoder; train its speech2latent with `talking-head train speech2latent`")
        return self.speech2latent

    # -- stage 1: audio features ------------------------------------------------------------------
    @property
    def feature_extractor(self) -> AudioFeatureExtractor:
        """The audio front end the speech2latent model was trained on."""
        if self._feature_extractor is None:
            config = self.require_speech2latent().config
            self._feature_extractor = front_end_of(config, self.device, self.speech_model)
        return self._feature_extractor

    def encode_audio(self, audio, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """Speech features per video frame [T,F] from an audio file, or a waveform [S] / [C,S] (numpy or torch)
        at `sample_rate`."""
        return self.feature_extractor(speech_waveform(audio, sample_rate), SAMPLE_RATE)

    # -- stage 2: pose and latents ----------------------------------------------------------------
    @torch.no_grad()
    def predict_pose(self, features: torch.Tensor) -> torch.Tensor:
        """Head pose [T,6] (yaw, pitch, roll in degrees, tx, ty, scale) predicted from speech features."""
        return self._windowed(lambda window: self.require_speech2latent().predict_pose(window), features)

    def retarget_pose(self, pose: torch.Tensor) -> torch.Tensor:
        """Re-centre the translation and scale of a pose from other footage on the training footage."""
        model = self.require_speech2latent()
        retargeted = pose.clone().float()
        centred = retargeted[:, POSE_TRANSLATION_DIMS] - retargeted[:, POSE_TRANSLATION_DIMS].mean(0)
        retargeted[:, POSE_TRANSLATION_DIMS] = centred + model.pose_mean[POSE_TRANSLATION_DIMS]
        return retargeted

    def follow_pose(self, reference_pose: torch.Tensor, num_frames: int) -> torch.Tensor:
        """A pose [num_frames,6] that follows another video's head pose [N,6]: re-centred on the training
        footage (`retarget_pose`) and played forward and backward as often as needed."""
        return self.retarget_pose(torch.as_tensor(reference_pose)[torch.from_numpy(ping_pong(len(reference_pose), num_frames))])

    @torch.no_grad()
    def speech_to_latents(self, features: torch.Tensor, pose: torch.Tensor | None = None) -> torch.Tensor:
        """Semantic latents [T,semantic_dim] from features [T,F] and the head pose [T,6], predicted from the speech
        (`predict_pose`) when none is given. Either way the whole pose is made first and then fed to every window,
        so windows join the same way whichever path (the pipeline, a job, the nodes) called."""
        model = self.require_speech2latent()
        if pose is None:
            pose = self.predict_pose(features)
        if len(pose) != len(features):
            raise TalkingHeadError(f"the pose has {len(pose)} frames but the audio has {len(features)}")
        return self._windowed(lambda window, pose_window: model(window, pose_window)["latents"], features, pose.float())

    def _windowed(self, run: Callable[..., torch.Tensor], *sequences: torch.Tensor) -> torch.Tensor:
        """Apply a sequence model to overlapping windows of equally long `sequences` [T,D], cross-fading overlaps."""
        model = self.require_speech2latent()
        device, dtype = model.device, model.dtype
        num_frames = len(sequences[0])
        step = LATENT_WINDOW_FRAMES - LATENT_WINDOW_OVERLAP
        output, weight = None, torch.zeros(num_frames, 1)
        for start in range(0, max(num_frames - LATENT_WINDOW_OVERLAP, 1), step):
            stop = min(start + LATENT_WINDOW_FRAMES, num_frames)
            window_output = run(*(sequence[None, start:stop].to(device, dtype) for sequence in sequences))[0].float().cpu()
            ramp = torch.ones(stop - start, 1)
            fade = min(LATENT_WINDOW_OVERLAP, stop - start)
            if start > 0:
                ramp[:fade] = torch.linspace(0, 1, fade + 2)[1:-1, None]
            if stop < num_frames:
                ramp[-fade:] = torch.minimum(ramp[-fade:], torch.linspace(1, 0, fade + 2)[1:-1, None])
            if output is None:
                output = torch.zeros(num_frames, window_output.shape[-1])
            output[start:stop] += window_output * ramp
            weight[start:stop] += ramp
        return output / weight

    # -- stage 3: decoding ------------------------------------------------------------------------
    @property
    def _diffusion_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        return (self.unet.config.in_channels, size, size)

    def initial_noise(self, seed: int = DEFAULTS.seed) -> torch.Tensor:
        """The initial noise x_T [1,C,H,W] that every frame of a video starts from."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randn((1, *self._diffusion_shape), generator=generator).to(self.unet.device, self.unet.dtype)

    def _to_diffusion_space(self, images: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return images
        return encode_latents(self.vae, images)

    def _from_diffusion_space(self, sample: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return sample
        return decode_latents(self.vae, sample)

    @torch.no_grad()
    def encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        """Semantic latents [N,semantic_dim] of frames [N,3,S,S] in [-1,1] at the model's image size."""
        return self.semantic_encoder(images.to(self.unet.device, self.unet.dtype)).float()

    @torch.no_grad()
    def invert(self, reference: torch.Tensor,
               num_inference_steps: int = PAPER_SETTINGS["dae"].num_inference_steps) -> torch.Tensor:
        """x_T [1,C,H,W] by deterministic DDIM inversion of a reference frame [1,3,S,S] in [-1,1]."""
        reference = reference.to(self.unet.device, self.unet.dtype)
        z_sem = self.semantic_encoder(reference)
        inverse = DDIMInverseScheduler.from_config(self.scheduler.config)
        inverse.set_timesteps(num_inference_steps, device=reference.device)
        sample = self._to_diffusion_space(reference)
        for timestep in inverse.timesteps:
            sample = inverse.step(self.unet(sample, timestep, z_sem), timestep, sample).prev_sample
        return sample

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, initial_noise: torch.Tensor,
                       num_inference_steps: int = DEFAULTS.num_inference_steps, sampler: str = DEFAULTS.sampler,
                       batch_size: int = DEFAULTS.batch_size,
                       callback: ProgressCallback | None = None) -> Iterator[np.ndarray]:
        """Decode semantic latents [T,D] to frames, yielding uint8 batches [B,S,S,3]; all start from `initial_noise`."""
        scheduler = make_scheduler(sampler, self.scheduler)
        num_frames = len(latents)
        for start in range(0, num_frames, batch_size):
            z_sem = latents[start:start + batch_size].to(self.unet.device, self.unet.dtype)
            noise = initial_noise.expand(len(z_sem), -1, -1, -1)
            sample = denoise(lambda x, t: self.unet(x, t, z_sem), scheduler, noise, num_inference_steps)
            images = self._from_diffusion_space(sample)
            yield to_uint8(images)
            if callback is not None:
                callback(min(start + batch_size, num_frames), num_frames)

    # -- everything ---------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, speech: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE, *,
                 pose: torch.Tensor | None = None, num_inference_steps: int = DEFAULTS.num_inference_steps,
                 sampler: str = DEFAULTS.sampler, seed: int = DEFAULTS.seed, batch_size: int = DEFAULTS.batch_size,
                 output_type: str = "np", callback: ProgressCallback | None = None) -> "DAETalkerOutput":
        """Speech (a waveform [S] or [C,S] at `sample_rate`, or an audio file) to frames in memory; writes no file
        (`talking_head.jobs` writes videos, streaming). `pose` [T,6] replaces the predicted head pose;
        `callback(done, total)` follows the frames."""
        SamplingSettings(num_inference_steps, sampler, seed, batch_size)  # one clear error for a bad setting
        self.warn_if_untrained()
        features = self.encode_audio(speech, sample_rate)
        pose = self.predict_pose(features) if pose is None else pose
        latents = self.speech_to_latents(features, pose)
        batches = self.decode_latents(latents, self.initial_noise(seed), num_inference_steps, sampler, batch_size,
                                      callback)
        return DAETalkerOutput(frames=self.frames_as(np.concatenate(list(batches)), output_type), pose=pose,
                               latents=latents)


@dataclass
class DAETalkerOutput(BaseOutput):
    """The frames (uint8 [T,H,W,3], float [T,3,H,W] or PIL images, as `output_type` asked), the head pose [T,6]
    and the semantic latents [T,D] they were drawn from."""

    frames: np.ndarray | torch.Tensor | list
    pose: torch.Tensor
    latents: torch.Tensor
