"""The frame autoencoders a pipeline's `vae` component may be, behind one interface.

- `TinyAutoencoder`: the pretrained f=8 TAEF2 (the default of new models), per-channel latent scaling;
- `AutoencoderKL`: the project's own small f=4 autoencoder (earlier models), one scaling factor;
- `VQModel`: an f=4 VQ autoencoder from the Hub (e.g. `CompVis/ldm-celebahq-256`).

Every caller encodes and decodes through `encode_latents` / `decode_latents`, which give and take the
latents the diffusion models see, so a pipeline works the same with any of them.
"""

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, VQModel

from ..errors import ModelError
from .tiny_autoencoder import TinyAutoencoder

FrameAutoencoder = TinyAutoencoder | AutoencoderKL | VQModel
FRAME_AUTOENCODER_CLASSES = (TinyAutoencoder, AutoencoderKL, VQModel)
AUTOENCODER_CLASSES = {cls.__name__: cls for cls in FRAME_AUTOENCODER_CLASSES}


def autoencoder_class(folder: str | Path) -> type:
    """The class a saved autoencoder folder (its config.json `_class_name`) loads with."""
    config_path = Path(folder) / "config.json"
    if not config_path.exists():
        raise ModelError(f"{folder} holds no autoencoder (no config.json)")
    name = json.loads(config_path.read_text()).get("_class_name")
    if name not in AUTOENCODER_CLASSES:
        raise ModelError(f"{folder} holds a {name}; a frame autoencoder is one of {', '.join(AUTOENCODER_CLASSES)}")
    return AUTOENCODER_CLASSES[name]


def load_autoencoder(folder: str | Path) -> FrameAutoencoder:
    """A saved frame autoencoder, frozen and in eval mode."""
    return autoencoder_class(folder).from_pretrained(folder).eval().requires_grad_(False)


def downsampling_factor(vae: FrameAutoencoder) -> int:
    """How many pixels one latent cell covers along a side."""
    if isinstance(vae, TinyAutoencoder):
        return vae.downsampling_factor
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode_raw(vae: FrameAutoencoder, images: torch.Tensor) -> torch.Tensor:
    """Images [N,3,H,W] in [-1,1] to the autoencoder's own latents, before any scaling (what caches hold)."""
    images = images.to(vae.device, vae.dtype)
    if isinstance(vae, TinyAutoencoder):
        return vae.encode_raw(images)
    encoded = vae.encode(images)
    return encoded.latents if isinstance(vae, VQModel) else encoded.latent_dist.mode()


def scale_raw(vae: FrameAutoencoder, raw: torch.Tensor) -> torch.Tensor:
    """The autoencoder's own latents to the scaled latents the diffusion models work in."""
    if isinstance(vae, TinyAutoencoder):
        return vae.scale(raw)
    return raw * vae.config.scaling_factor


def encode_latents(vae: FrameAutoencoder, images: torch.Tensor) -> torch.Tensor:
    """Images [N,3,H,W] in [-1,1] to the scaled latents the diffusion models work in."""
    return scale_raw(vae, encode_raw(vae, images))


def decode_latents(vae: FrameAutoencoder, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents to images [N,3,H,W] in [-1,1]."""
    latents = latents.to(vae.device, vae.dtype)
    if isinstance(vae, TinyAutoencoder):
        return vae.decode_latents(latents)
    return vae.decode(latents / vae.config.scaling_factor).sample.clamp(-1, 1)


@torch.no_grad()
def measure_latent_statistics(vae: TinyAutoencoder, raw_latents: torch.Tensor) -> None:
    """Store per-channel mean and standard deviation of raw latents [N,C,h,w] in the autoencoder's config,
    so that `encode_latents` gives zero-mean, unit-variance channels on data like these."""
    channels = raw_latents.transpose(0, 1).reshape(raw_latents.shape[1], -1).double()
    vae.register_to_config(latents_mean=[round(float(v), 6) for v in channels.mean(dim=1)],
                           latents_std=[round(float(v), 6) for v in channels.std(dim=1).clamp_min(1e-4)])
