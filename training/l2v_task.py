"""Training L2V, the landmark pipeline's latent diffusion model (`talking-head train l2v`).

Each training example is one frame of a prepared clip: the target is its latent; the conditions are its
rendered landmarks, the frame itself with the lower face blanked (the pose reference), another frame of
the same clip (the identity reference, so the mouth must come from the landmarks) and the landmark
coordinates. The frozen autoencoder's latents of all of them are computed once before training.
"""

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel

from ..errors import TalkingHeadError
from ..faces.align import to_unit_coordinates
from ..faces.render import lower_face_mask, render_landmarks
from ..hub_models.landmark_encoder import LandmarkEncoder
from ..hub_models.presets import (
    L2V_SCHEDULER_CONFIG,
    L2V_UNET_PRESETS,
    LANDMARK_ENCODER_PRESETS,
)
from ..pipelines.landmark import LandmarkDiffusionPipeline, masked_images
from .dataset import TalkingHeadDataset
from .images import psnr, save_image_grid, to_uint8
from .loop import module_device

NUM_SAMPLE_FRAMES = 8
SAMPLE_STEPS = 25


class L2VTask:
    """Denoising loss of the UNet given the three condition latents and the landmark tokens."""

    def __init__(self, dataset: TalkingHeadDataset, autoencoder: str | Path, *, image_size: int = 96,
                 preset: str = "small"):
        self.dataset = dataset
        self.image_size = image_size
        self.vae = AutoencoderKL.from_pretrained(autoencoder).eval().requires_grad_(False)
        record_path = Path(autoencoder) / "training.json"
        self.autoencoder_record = json.loads(record_path.read_text()) if record_path.exists() else None
        self.crop_scale = float(dataset.index.get("crop_scale", 2.4))
        latent_size = image_size // 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.unet = UNet2DConditionModel(**{**L2V_UNET_PRESETS[preset], "sample_size": latent_size,
                                            "in_channels": 4 * self.vae.config.latent_channels,
                                            "out_channels": self.vae.config.latent_channels})
        self.landmark_encoder = LandmarkEncoder(**LANDMARK_ENCODER_PRESETS[preset])
        self.noise_schedule = DDPMScheduler(**L2V_SCHEDULER_CONFIG)
        self.train = self._examples("train")
        self.val = self._examples("val")
        if not len(self.train["targets"]):
            raise TalkingHeadError(f"{dataset.root} has no training frames")

    @torch.no_grad()
    def _examples(self, split: str) -> dict:
        """Latents and landmarks of every frame of a split, and for each frame the frames of its clip."""
        parts = {"images": [], "targets": [], "renders": [], "poses": [], "landmarks": [], "clip_start": [],
                 "clip_stop": []}
        size, offset = self.image_size, 0
        for clip in self.dataset.clips:
            start, stop = clip.frame_range(split)
            if stop <= start:
                continue
            images = self.dataset.clip_frames(clip, split, size)
            landmarks = self.dataset.clip_array(clip, "landmarks", split).numpy()
            landmarks = (landmarks + 0.5) * size / self.dataset.resolution - 0.5
            uint8_images = to_uint8(images)
            keep = 1 - lower_face_mask(landmarks, size)[..., None]
            renders = render_landmarks(landmarks, size)
            parts["images"].append(images)
            parts["targets"].append(self._encode(images))
            parts["renders"].append(self._encode(masked_images(renders, None)))
            parts["poses"].append(self._encode(masked_images(uint8_images, keep)))
            parts["landmarks"].append(torch.from_numpy(to_unit_coordinates(landmarks, size)).float())
            parts["clip_start"].append(torch.full((len(images),), offset))
            parts["clip_stop"].append(torch.full((len(images),), offset + len(images)))
            offset += len(images)
        if not parts["images"]:
            return {name: torch.zeros(0) for name in parts}
        return {name: torch.cat(values) for name, values in parts.items()}

    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        scale = self.vae.config.scaling_factor
        return torch.cat([self.vae.encode(chunk).latent_dist.mode() * scale for chunk in images.split(64)])

    def modules(self):
        return {"unet": self.unet, "landmark_encoder": self.landmark_encoder}

    def _identity_indices(self, examples: dict, index: torch.Tensor, generator) -> torch.Tensor:
        """For each frame, a random other frame of the same clip."""
        start, stop = examples["clip_start"][index], examples["clip_stop"][index]
        return start + (torch.rand(len(index), generator=generator) * (stop - start)).long()

    def _batch(self, examples: dict, index: torch.Tensor, generator) -> dict:
        identity = self._identity_indices(examples, index, generator)
        return {"targets": examples["targets"][index], "renders": examples["renders"][index],
                "poses": examples["poses"][index], "identities": examples["targets"][identity],
                "landmarks": examples["landmarks"][index]}

    def batches(self, batch_size, generator):
        while True:
            index = torch.randint(len(self.train["targets"]), (batch_size,), generator=generator)
            yield self._batch(self.train, index, generator)

    def _denoising_loss(self, modules, batch, generator=None):
        device = module_device(modules["unet"])
        batch = {name: value.to(device) for name, value in batch.items()}
        targets = batch["targets"]
        noise = torch.randn(targets.shape, generator=generator).to(targets)
        timesteps = torch.randint(0, self.noise_schedule.config.num_train_timesteps, (len(targets),),
                                  generator=generator).to(device)
        noisy = self.noise_schedule.add_noise(targets, noise, timesteps)
        goal = self.noise_schedule.get_velocity(targets, noise, timesteps)
        model_input = torch.cat([noisy, batch["renders"], batch["poses"], batch["identities"]], dim=1)
        tokens = modules["landmark_encoder"](batch["landmarks"])
        return (modules["unet"](model_input, timesteps, encoder_hidden_states=tokens).sample - goal).pow(2).mean()

    def loss(self, modules, batch):
        return self._denoising_loss(modules, batch)

    def validate(self, modules):
        if not len(self.val["targets"]):
            return {}
        generator = torch.Generator().manual_seed(0)  # the same noise, timesteps and references every time
        losses = []
        for index in torch.arange(len(self.val["targets"])).split(64):
            losses.append(self._denoising_loss(modules, self._batch(self.val, index, generator), generator).item())
        return {"val_loss": sum(losses) / len(losses)}

    def pipeline(self, modules) -> LandmarkDiffusionPipeline:
        """A pipeline around the modules being trained (no A2L)."""
        vae = self.vae.to(module_device(modules["unet"]))
        return LandmarkDiffusionPipeline(vae=vae, unet=modules["unet"], landmark_encoder=modules["landmark_encoder"],
                                         scheduler=DDIMScheduler.from_config(self.noise_schedule.config),
                                         crop_scale=self.crop_scale).eval_mode()

    def save_samples(self, modules, path):
        """Validation frames redrawn from their landmarks, pose reference and the clip's first frame, from one noise."""
        examples = self.val if len(self.val["targets"]) else self.train
        pipeline = self.pipeline(modules)
        count = len(examples["targets"])
        index = torch.arange(0, count, max(1, count // NUM_SAMPLE_FRAMES))[:NUM_SAMPLE_FRAMES]
        images = examples["images"][index]
        landmarks = (examples["landmarks"][index].numpy() + 1) / 2 * self.image_size - 0.5
        keep = 1 - lower_face_mask(landmarks, self.image_size)[..., None]
        poses = masked_images(to_uint8(images), keep)
        generated = []
        for i, frame in enumerate(index):
            identity = examples["images"][examples["clip_start"][frame]][None]
            generated.append(pipeline.denoise_frames(landmarks[i:i + 1], poses[i:i + 1], identity,
                                                     pipeline.initial_noise(0), SAMPLE_STEPS).cpu())
        generated = torch.cat(generated)
        renders = masked_images(pipeline.render(landmarks), None)
        save_image_grid([images, renders, poses, generated], path)
        return {"sample_psnr": psnr(generated, images)}

    def export(self, modules, output_dir: Path, training_summary: dict):
        pipeline = self.pipeline(modules)
        pipeline.training_record = {"l2v": {**training_summary, "image_size": self.image_size,
                                            "crop_scale": self.crop_scale, "dataset": str(self.dataset.root),
                                            "clips": [clip.name for clip in self.dataset.clips]}}
        if self.autoencoder_record is not None:
            pipeline.training_record["autoencoder"] = self.autoencoder_record
        pipeline.save_pretrained(output_dir)
