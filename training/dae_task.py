"""Training the diffusion autoencoder on a person's frames (`talking-head train dae`).

The semantic encoder and the conditional UNet decoder are trained together with the denoising loss, in
pixel space as in the paper, or in the latent space of a trained frame autoencoder (`--autoencoder`).
With `--mouth-weight` the loss counts the mouth, a small part of the frame that the plain loss nearly ignores,
more than the rest, to push its shape into the semantic latent (on 16 s of footage it did not: see the README).
With `--mouth-head-weight` a small training-only head predicts the lip landmarks' shape from z_sem, so the encoder
must put the mouth into the code; the head is not exported, and inference needs no landmarks, as in the paper.
With `--init` the decoder, the semantic encoder and the frame autoencoder start from a trained DAE-Talker's (another
person's, say): it already draws faces, and learns a new one sooner than from nothing.
"""

from pathlib import Path

import torch
from torch import nn
from diffusers import DDIMScheduler, DDPMScheduler

from ..errors import TalkingHeadError
from ..faces.landmarks import INNER_LIPS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE
from ..hub_models.autoencoders import TinyAutoencoder, load_autoencoder, measure_latent_statistics, scale_raw
from ..hub_models.dae_unet import DAEUNet
from ..hub_models.presets import DAE_UNET_PRESETS, DIFFAE_SCHEDULER_CONFIG, SEMANTIC_ENCODER_PRESETS
from ..hub_models.semantic_encoder import SemanticEncoder
from ..media.images import to_model_range
from ..pipelines.base import TRAINING_RECORD, default_device, read_json_record
from ..pipelines.dae_talker import DAETalkerPipeline
from ..data.dataset import TalkingHeadDataset
from .images import psnr, save_image_grid
from .latent_cache import cached_raw_latents, module_fingerprint
from .loop import module_device

NUM_SAMPLE_FRAMES = 8
SAMPLE_STEPS = 20
MOUTH_POINTS = list(OUTER_LIPS + INNER_LIPS)


def diffae_noise_schedule(prediction_type: str) -> DDPMScheduler:
    """The paper's schedule: 1000 steps, betas linear from 1e-4 to 0.02."""
    return DDPMScheduler(**{**DIFFAE_SCHEDULER_CONFIG, "prediction_type": prediction_type}, clip_sample=False)


def mouth_weights(landmarks: torch.Tensor, from_size: int, size: int, weight: float) -> torch.Tensor:
    """Per-pixel loss weights [N,1,size,size] for [N,68,2] landmarks given in `from_size` pixels: `weight`
    over each frame's mouth (its lip points' box, grown by half the mouth's width on every side), 1 elsewhere."""
    lips = landmarks[:, MOUTH_POINTS].float() * (size / from_size)
    low, high = lips.min(dim=1).values, lips.max(dim=1).values
    margin = (high[:, :1] - low[:, :1]) / 2
    low, high = low - margin, high + margin
    centres = torch.arange(size).float() + 0.5
    inside_x = (centres >= low[:, 0, None]) & (centres <= high[:, 0, None])
    inside_y = (centres >= low[:, 1, None]) & (centres <= high[:, 1, None])
    inside = inside_y[:, :, None] & inside_x[:, None, :]
    return 1 + (weight - 1) * inside[:, None].float()


def mouth_shapes(landmarks: torch.Tensor) -> torch.Tensor:
    """The lips' shape [N, 2 * 20] of [N,68,2] landmarks: the lip points about their centre, divided by the
    distance between the eye centres, so that it holds neither the head's position nor its size."""
    lips = landmarks[:, MOUTH_POINTS].float()
    eyes = (landmarks[:, list(LEFT_EYE)].float().mean(1) - landmarks[:, list(RIGHT_EYE)].float().mean(1)).norm(dim=-1)
    return ((lips - lips.mean(dim=1, keepdim=True)) / eyes[:, None, None]).flatten(1)


def clip_raw_latents(dataset, clip, image_size: int, vae, fingerprint: str) -> torch.Tensor:
    """Raw latents [N,C,h,w] of all of a clip's frames at `image_size` through the frame autoencoder `vae` (whose
    `module_fingerprint` is `fingerprint`), encoded once and cached beside the clip."""
    return cached_raw_latents(clip, "frames", image_size, 1, vae, fingerprint,
                              lambda: dataset.iter_clip_frames(clip, "all", image_size))


class DAETask:
    """Denoising loss of the decoder conditioned on the encoder's z_sem of the same frame."""

    def __init__(self, dataset: TalkingHeadDataset, *, image_size: int = 64, autoencoder: str | Path | None = None,
                 unet_preset: str = "latent-small", encoder_preset: str = "small",
                 prediction_type: str = "v_prediction", mouth_weight: float = 1.0, mouth_head_weight: float = 0.0,
                 init: str | Path | None = None):
        start = None
        if init is not None:
            if autoencoder is not None:
                raise TalkingHeadError("--init keeps the frame autoencoder of the DAE it starts from; leave out "
                                       "--autoencoder")
            start = DAETalkerPipeline.from_pretrained(init)
            if start.image_size != image_size:
                raise TalkingHeadError(f"the DAE of --init works at {start.image_size}x{start.image_size}; train at "
                                       f"that size (--resolution {start.image_size})")
            prediction_type = start.scheduler.config.prediction_type
        if mouth_weight < 1:
            raise TalkingHeadError(f"--mouth-weight must be at least 1 (1 weighs the mouth like the rest), not {mouth_weight}")
        if mouth_head_weight < 0:
            raise TalkingHeadError(f"--mouth-head-weight must be 0 (no mouth head) or more, not {mouth_head_weight}")
        self.dataset = dataset
        self.image_size = image_size
        self.train_images = dataset.frames("train", image_size)
        self.val_images = dataset.frames("val", image_size)
        self.vae, self.autoencoder_record, self.init_record = None, None, None
        if start is not None:
            self.vae = start.vae
            self.autoencoder_record = (start.training_record or {}).get("autoencoder")
            self.init_record = {"model": start.config.get("_name_or_path"), "training": start.training_record}
        elif autoencoder is not None:
            self.vae = load_autoencoder(autoencoder)
            self.autoencoder_record = read_json_record(Path(autoencoder) / TRAINING_RECORD)
        if self.vae is not None:
            self.vae = self.vae.to(default_device())  # encodes the cache on the GPU, if any
            self.autoencoder_fingerprint = module_fingerprint(self.vae)
        self.train_targets, self.val_targets = self.train_images, self.val_images
        if self.vae is not None:
            train_latents, val_latents = self._raw_latents("train"), self._raw_latents("val")
            if isinstance(self.vae, TinyAutoencoder) and self.vae.config.latents_mean is None:
                measure_latent_statistics(self.vae, train_latents)
            self.train_targets = scale_raw(self.vae, train_latents)
            self.val_targets = scale_raw(self.vae, val_latents) if len(val_latents) else val_latents
        channels, size = self.train_targets.shape[1], self.train_targets.shape[-1]
        if start is not None:
            self.unet = start.unet.train().requires_grad_(True)
            self.encoder = start.semantic_encoder.train().requires_grad_(True)
        else:
            self.unet = DAEUNet(**{**DAE_UNET_PRESETS[unet_preset], "sample_size": size, "in_channels": channels,
                                   "out_channels": channels})
            self.encoder = SemanticEncoder(**{**SEMANTIC_ENCODER_PRESETS[encoder_preset], "sample_size": image_size})
        self.noise_schedule = diffae_noise_schedule(prediction_type)
        self.mouth_weight = mouth_weight
        self.train_weights = None
        if mouth_weight > 1:
            self.train_weights = mouth_weights(dataset.arrays("landmarks", "train"), dataset.resolution, size,
                                               mouth_weight)
        self.mouth_head_weight = mouth_head_weight
        self.mouth_head = None
        if mouth_head_weight > 0:
            train_shapes = mouth_shapes(dataset.arrays("landmarks", "train"))
            mean, std = train_shapes.mean(0), train_shapes.std(0).clamp_min(1e-6)
            self.train_mouths = (train_shapes - mean) / std  # unit variance per coordinate
            self.val_mouths = (mouth_shapes(dataset.arrays("landmarks", "val")) - mean) / std
            code_dim = self.encoder.config.out_dim
            self.mouth_head = nn.Sequential(nn.Linear(code_dim, 256), nn.SiLU(), nn.Linear(256, train_shapes.shape[1]))

    def _raw_latents(self, split: str) -> torch.Tensor:
        """The autoencoder's raw latents of a split's frames, in the order of `dataset.frames`, encoded once per
        clip and cached (see `latent_cache`)."""
        latents = []
        for clip in self.dataset.clips:
            start, stop = clip.frame_range(split)
            if stop <= start:
                continue
            raw = clip_raw_latents(self.dataset, clip, self.image_size, self.vae, self.autoencoder_fingerprint)
            latents.append(raw[start:stop])
        return torch.cat(latents) if latents else torch.zeros(0)

    def modules(self):
        trained = {"unet": self.unet, "semantic_encoder": self.encoder}
        return trained if self.mouth_head is None else {**trained, "mouth_head": self.mouth_head}

    def batches(self, batch_size, generator):
        while True:
            index = torch.randint(len(self.train_images), (batch_size,), generator=generator)
            batch = {"images": self.train_images[index], "targets": self.train_targets[index]}
            if self.train_weights is not None:
                batch["weights"] = self.train_weights[index]
            if self.mouth_head is not None:
                batch["mouths"] = self.train_mouths[index]
            yield batch

    def _losses(self, modules, images, targets, mouths=None, generator=None, weights=None) -> dict[str, torch.Tensor]:
        """The denoising loss, and with a mouth head the error of its lip shapes read from z_sem."""
        device = module_device(modules["unet"])
        images, targets = images.to(device), targets.to(device)
        z_sem = modules["semantic_encoder"](images)
        losses = {"denoising": self._denoising_loss(modules, z_sem, targets, generator, weights)}
        if mouths is not None:
            losses["mouth_head"] = (modules["mouth_head"](z_sem) - mouths.to(device)).pow(2).mean()
        return losses

    def _denoising_loss(self, modules, z_sem, targets, generator, weights):
        device = targets.device
        noise = torch.randn(targets.shape, generator=generator).to(targets)
        timesteps = torch.randint(0, self.noise_schedule.config.num_train_timesteps, (len(targets),),
                                  generator=generator).to(device)
        noisy = self.noise_schedule.add_noise(targets, noise, timesteps)
        if self.noise_schedule.config.prediction_type == "v_prediction":
            goal = self.noise_schedule.get_velocity(targets, noise, timesteps)
        else:
            goal = noise
        squared_error = (modules["unet"](noisy, timesteps, z_sem) - goal).pow(2)
        if weights is None:
            return squared_error.mean()
        weights = weights.to(device)
        return (squared_error * weights).mean() / weights.mean()

    def loss(self, modules, batch):
        losses = self._losses(modules, batch["images"], batch["targets"], weights=batch.get("weights"),
                              mouths=batch.get("mouths"))
        return losses["denoising"] + self.mouth_head_weight * losses.get("mouth_head", 0.0)

    def validate(self, modules):
        generator = torch.Generator().manual_seed(0)  # the same noise and timesteps at every validation
        images, targets = self.val_images.split(64), self.val_targets.split(64)
        mouths = self.val_mouths.split(64) if self.mouth_head is not None else [None] * len(images)
        losses = [self._losses(modules, *chunk, generator=generator) for chunk in zip(images, targets, mouths)]
        figures = {"val_loss": sum(l["denoising"].item() for l in losses) / len(losses)}
        if self.mouth_head is not None:  # 1 is a head that has learnt nothing (its targets have unit variance)
            figures["val_mouth_head_loss"] = sum(l["mouth_head"].item() for l in losses) / len(losses)
        return figures

    def _pipeline(self, modules) -> DAETalkerPipeline:
        scheduler = DDIMScheduler.from_config(self.noise_schedule.config)
        vae = None if self.vae is None else self.vae.to(module_device(modules["unet"]))
        return DAETalkerPipeline(unet=modules["unet"], semantic_encoder=modules["semantic_encoder"],
                                 scheduler=scheduler, vae=vae).eval_mode()

    def save_samples(self, modules, path):
        """Validation frames re-decoded from their own z_sem, all from one shared x_T."""
        pipeline = self._pipeline(modules)
        originals = self.val_images[:: max(1, len(self.val_images) // NUM_SAMPLE_FRAMES)][:NUM_SAMPLE_FRAMES]
        frames = next(pipeline.decode_latents(pipeline.encode_frames(originals), pipeline.initial_noise(0),
                                              SAMPLE_STEPS, batch_size=len(originals)))
        decoded = to_model_range(frames)  # on the CPU, like originals
        save_image_grid([originals, decoded], path)
        return {"sample_psnr": psnr(decoded, originals)}

    def export(self, modules, output_dir: Path, training_summary: dict):
        pipeline = self._pipeline(modules)
        pipeline.training_record = {"dae": {**training_summary, "image_size": self.image_size,
                                            "latent_space": self.vae is not None,
                                            "mouth_weight": self.mouth_weight,
                                            "mouth_head_weight": self.mouth_head_weight,
                                            "dataset": self.dataset.name,
                                            **({"init": self.init_record} if self.init_record else {})}}
        if self.autoencoder_record is not None:
            pipeline.training_record["autoencoder"] = self.autoencoder_record
        pipeline.save_pretrained(output_dir)
