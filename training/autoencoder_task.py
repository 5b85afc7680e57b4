"""Training the f=4 frame autoencoder on a person's prepared frames (`talking-head train autoencoder`)."""

import json
from pathlib import Path

import torch

from ..hub_models.frame_autoencoder import build_frame_autoencoder
from .dataset import TalkingHeadDataset
from .images import psnr, save_image_grid
from .loop import module_device

KL_WEIGHT = 1e-6


class AutoencoderTask:
    """Reconstruction (L1 + MSE) with a tiny KL term; exports the autoencoder with its latent scale."""

    def __init__(self, dataset: TalkingHeadDataset, image_size: int = 64, preset: str = "small"):
        self.image_size = image_size
        self.train_frames = dataset.frames("train", image_size)
        self.val_frames = dataset.frames("val", image_size)
        self.autoencoder = build_frame_autoencoder(preset, image_size)

    def modules(self):
        return {"vae": self.autoencoder}

    def batches(self, batch_size, generator):
        while True:
            index = torch.randint(len(self.train_frames), (batch_size,), generator=generator)
            yield {"images": self.train_frames[index]}

    def loss(self, modules, batch):
        images = batch["images"]
        posterior = modules["vae"].encode(images).latent_dist
        reconstruction = modules["vae"].decode(posterior.sample()).sample
        error = reconstruction - images
        return error.abs().mean() + error.pow(2).mean() + KL_WEIGHT * posterior.kl().mean()

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
        with torch.no_grad():
            latents = torch.cat([vae.encode(chunk.to(device)).latent_dist.mode() for chunk in self.train_frames.split(64)])
        # Scale latents to unit variance for the diffusion model, as Stable Diffusion's VAE does.
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
        vae.save_pretrained(output_dir)
        (output_dir / "training.json").write_text(json.dumps(training_summary, indent=2))
