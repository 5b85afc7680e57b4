"""Training the f=4 frame autoencoder on a person's prepared frames (`talking-head train autoencoder`)."""

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from ..errors import TalkingHeadError
from ..hub_models.frame_autoencoder import build_frame_autoencoder
from ..pipelines.base import TRAINING_RECORD
from ..data.dataset import TalkingHeadDataset
from .images import psnr, save_image_grid
from .loop import module_device

KL_WEIGHT = 1e-6


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and colour changes of images [N,3,H,W] in [-1,1]."""
    count = len(images)
    flip = torch.rand(count, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    swap = torch.rand(count, generator=generator) < 0.3
    orders = torch.stack([torch.randperm(3, generator=generator) for _ in range(count)])
    swapped = torch.stack([image[order] for image, order in zip(images, orders)])
    images = torch.where(swap[:, None, None, None], swapped, images)
    gain = 0.75 + 0.5 * torch.rand(count, 3, 1, 1, generator=generator)
    offset = 0.3 * torch.rand(count, 3, 1, 1, generator=generator) - 0.15
    return ((images + 1) * gain - 1 + offset).clamp(-1, 1)


class AutoencoderTask:
    """Reconstruction (L1 + MSE) with a tiny KL term; exports the autoencoder with its latent scale.

    `init` starts from a trained autoencoder folder; with `decoder_only` its encoder stays frozen, so its
    latent space (and every diffusion model trained in it) stays valid while the decoder gets sharper.
    `augment` flips and recolours the frames (channel gains, offsets, swapped channels), so an autoencoder
    trained on a few people also reconstructs faces, skin tones and backgrounds it never saw.
    """

    def __init__(self, dataset: TalkingHeadDataset, image_size: int = 64, preset: str = "small",
                 init: str | Path | None = None, decoder_only: bool = False, augment: bool = False):
        if decoder_only and init is None:
            raise TalkingHeadError("training the decoder only needs a trained autoencoder to start from (--init)")
        self.image_size = image_size
        self.train_frames = dataset.frames("train", image_size)
        self.val_frames = dataset.frames("val", image_size)
        self.autoencoder = build_frame_autoencoder(preset, image_size) if init is None else AutoencoderKL.from_pretrained(init)
        self.decoder_only = decoder_only
        self.augment = augment
        record = Path(init) / TRAINING_RECORD if init is not None else None
        self.init_record = json.loads(record.read_text()) if record is not None and record.exists() else None
        if decoder_only:
            for module in (self.autoencoder.encoder, self.autoencoder.quant_conv):
                if module is not None:
                    module.requires_grad_(False)

    def modules(self):
        return {"vae": self.autoencoder}

    def batches(self, batch_size, generator):
        while True:
            index = torch.randint(len(self.train_frames), (batch_size,), generator=generator)
            images = self.train_frames[index]
            yield {"images": _augment(images, generator) if self.augment else images}

    def loss(self, modules, batch):
        images = batch["images"]
        posterior = modules["vae"].encode(images).latent_dist
        reconstruction = modules["vae"].decode(posterior.mode() if self.decoder_only else posterior.sample()).sample
        error = reconstruction - images
        kl = 0.0 if self.decoder_only else KL_WEIGHT * posterior.kl().mean()
        return error.abs().mean() + error.pow(2).mean() + kl

    def _reconstruct(self, vae, images):
        device = module_device(vae)
        return torch.cat([vae.decode(vae.encode(chunk.to(device)).latent_dist.mode()).sample.cpu()
                          for chunk in images.split(64)])

    def validate(self, modules):
        reconstruction = self._reconstruct(modules["vae"], self.val_frames)
        return {"val_l1": (reconstruction - self.val_frames).abs().mean().item(),
                "val_psnr": psnr(reconstruction, self.val_frames)}

    def save_samples(self, modules, path):
        originals = self.val_frames[:: max(1, len(self.val_frames) // 8)][:8]
        save_image_grid([originals, self._reconstruct(modules["vae"], originals)], path)
        return {}

    def export(self, modules, output_dir: Path, training_summary: dict):
        vae = modules["vae"]
        device = module_device(vae)
        if not self.decoder_only:  # a frozen encoder keeps its latent scale
            with torch.no_grad():
                latents = torch.cat([vae.encode(chunk.to(device)).latent_dist.mode() for chunk in self.train_frames.split(64)])
            # Scale latents to unit variance for the diffusion model, as Stable Diffusion's VAE does.
            vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
        training_summary = {**training_summary, "decoder_only": self.decoder_only}
        if self.init_record is not None:
            training_summary["continued_from"] = self.init_record
        vae.save_pretrained(output_dir)
        (output_dir / TRAINING_RECORD).write_text(json.dumps(training_summary, indent=2))
