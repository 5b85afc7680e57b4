"""A pretrained tiny frame autoencoder (the TAESD family: f=8, e.g. TAEF2's 32-channel latent) as a Hub component.

The layout follows the published TAESD-family weights (MIT, Ollin Boer Bohan): an encoder of 3x3 convolutions
and residual blocks with three stride-2 steps, a decoder that mirrors it with nearest-neighbour upsampling,
and, for TAEF2, a GroupNorm bottleneck ("pool") added in the blocks next to the latent. Parameter names
are the published files' names under `encoder.` / `decoder.`, so `convert.tiny_autoencoder` converts them
exactly.

Images are [-1,1]; the published networks work in [0,1]. `encode_latents` gives the latents the diffusion
models see: each channel shifted and scaled by `latents_mean` / `latents_std` (measured on training frames,
see `measure_latent_statistics`) to zero mean and unit variance; `decode_latents` undoes that.
`licence` carries the weights' licence text, which saving writes beside them and model cards quote.
"""

import os
from pathlib import Path

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

DOWNSAMPLING_STEPS = 3
BLOCKS_PER_STEP = 3
# The published decoder squashes latents into (-LATENT_RANGE, LATENT_RANGE) before its first convolution.
LATENT_RANGE = 3.0


class _SoftClamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / LATENT_RANGE) * LATENT_RANGE


class _Block(nn.Module):
    """Three 3x3 convolutions with a residual connection; optionally a GroupNorm bottleneck added first."""

    def __init__(self, channels: int, with_norm_bottleneck: bool):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.pool = None
        if with_norm_bottleneck:
            wide = 4 * channels
            self.pool = nn.Sequential(nn.Conv2d(channels, wide, 1, bias=False), nn.GroupNorm(4, wide), nn.ReLU(),
                                      nn.Conv2d(wide, channels, 1, bias=False))
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + x)


def _conv(channels_in: int, channels_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(channels_in, channels_out, 3, padding=1, **kwargs)


class TinyAutoencoder(ModelMixin, ConfigMixin):
    """An f=8 frame autoencoder of the TAESD family, deterministic, with per-channel latent scaling."""

    @register_to_config
    def __init__(self, latent_channels: int = 32, channels: int = 64, norm_bottleneck: bool = True,
                 latents_mean: list[float] | None = None, latents_std: list[float] | None = None,
                 licence: str | None = None):
        super().__init__()
        c = channels
        encoder: list[nn.Module] = [_conv(3, c), _Block(c, False)]
        for step in range(DOWNSAMPLING_STEPS):
            innermost = step == DOWNSAMPLING_STEPS - 1
            encoder += [_conv(c, c, stride=2, bias=False)]
            encoder += [_Block(c, norm_bottleneck and innermost) for _ in range(BLOCKS_PER_STEP)]
        self.encoder = nn.Sequential(*encoder, _conv(c, latent_channels))
        decoder: list[nn.Module] = [_SoftClamp(), _conv(latent_channels, c), nn.ReLU()]
        for step in range(DOWNSAMPLING_STEPS):
            innermost = step == 0
            decoder += [_Block(c, norm_bottleneck and innermost) for _ in range(BLOCKS_PER_STEP)]
            decoder += [nn.Upsample(scale_factor=2), _conv(c, c, bias=False)]
        self.decoder = nn.Sequential(*decoder, _Block(c, False), _conv(c, 3))

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Save config and weights (safetensors), and the weights' licence as LICENSE when known."""
        super().save_pretrained(save_directory, **kwargs)
        if self.config.licence:
            (Path(save_directory) / "LICENSE").write_text(self.config.licence)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** DOWNSAMPLING_STEPS

    def _channel_statistics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel latent mean and standard deviation [1,C,1,1], in the dtype and device of `like`."""
        channels = self.config.latent_channels
        mean = self.config.latents_mean or [0.0] * channels
        std = self.config.latents_std or [1.0] * channels
        return (torch.tensor(mean, dtype=like.dtype, device=like.device).view(1, -1, 1, 1),
                torch.tensor(std, dtype=like.dtype, device=like.device).view(1, -1, 1, 1))

    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N,3,H,W] in [-1,1] to the network's own latents [N,C,H/8,W/8] (no per-channel scaling)."""
        return self.encoder((images + 1) / 2)

    def scale(self, raw: torch.Tensor) -> torch.Tensor:
        """The network's own latents to unit-scaled ones (each channel by `latents_mean` / `latents_std`)."""
        mean, std = self._channel_statistics(raw)
        return (raw - mean) / std

    def unscale(self, latents: torch.Tensor) -> torch.Tensor:
        """Unit-scaled latents back to the network's own."""
        mean, std = self._channel_statistics(latents)
        return latents * std + mean

    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """Images [N,3,H,W] in [-1,1] to unit-scaled latents [N,C,H/8,W/8]."""
        return self.scale(self.encode_raw(images))

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Unit-scaled latents [N,C,h,w] to images [N,3,8h,8w] in [-1,1]."""
        return self.decode_raw(self.unscale(latents))

    def decode_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """The network's own latents to images in [-1,1]."""
        return self.decoder(raw).clamp(0, 1) * 2 - 1

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruct images [N,3,H,W] in [-1,1]."""
        return self.decode_raw(self.encode_raw(images))
