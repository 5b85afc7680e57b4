"""The landmark pipeline's mouth refiner: a second stage that redraws the mouth in a window of many more pixels.

L2V draws the whole face crop at its own size (128 px), so the inside of the mouth is a few latent cells enlarged.
The refiner works on a square window around the mouth, sampled from the composed lower face at its own resolution
(see `faces.mouth_window`): it sees that window (the portrait's lips and skin moved onto the frame's landmarks, with
L2V's mouth set in), L2V's drawing alone, and masks of the inside of the mouth and of the lips, and adds a correction
to the window. Trained by regression on real frames (`talking-head train mouth-refiner`), it is a stage for one
person: trained on a person's footage it draws that person's mouth better in new sentences, while one trained on
many people learned their mouths and not mouths in general (docs/models.md). Its last layer starts at zero, so an
untrained refiner changes nothing.
"""

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from torch import nn

INPUT_CHANNELS = 8  # the composed window and L2V's drawing (RGB each), the mouth and lip masks


class MouthRefiner(ModelMixin, ConfigMixin):
    """Windows [B,8,W,W] (composed and drawn RGB in -1..1, mouth and lip masks in 0..1) -> corrected composed RGB
    windows [B,3,W,W] in -1..1: a small UNet of ResNet blocks, working at half the window's side on 2x2 pixel blocks
    (so it is cheap at 128 px), whose output is added to the composed window."""

    @register_to_config
    def __init__(self, window_size: int = 128, channels: tuple[int, ...] = (32, 64, 128), groups: int = 8):
        super().__init__()
        self.conv_in = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * INPUT_CHANNELS, channels[0], 3, padding=1))
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for index, width in enumerate(channels):
            previous = channels[max(index - 1, 0)]
            self.down.append(ResnetBlock2D(in_channels=previous, out_channels=width, temb_channels=None, groups=groups))
            last = index == len(channels) - 1
            self.downsample.append(nn.Identity() if last else Downsample2D(width, use_conv=True, name="op"))
        self.middle = ResnetBlock2D(in_channels=channels[-1], out_channels=channels[-1], temb_channels=None,
                                    groups=groups)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for index in reversed(range(len(channels))):
            below = channels[min(index + 1, len(channels) - 1)]
            self.upsample.append(Upsample2D(below, use_conv=True) if index < len(channels) - 1 else nn.Identity())
            self.up.append(ResnetBlock2D(in_channels=below + channels[index], out_channels=channels[index],
                                         temb_channels=None, groups=groups))
        self.norm_out = nn.GroupNorm(groups, channels[0])
        self.conv_out = nn.Conv2d(channels[0], 4 * 3, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        self.to_pixels = nn.PixelShuffle(2)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        size = self.config.window_size
        if windows.shape[1:] != (INPUT_CHANNELS, size, size) or size % 2 ** len(self.config.channels):
            raise ValueError(f"expected windows [B,{INPUT_CHANNELS},{size},{size}], got {tuple(windows.shape)}")
        hidden = self.conv_in(windows)
        skips = []
        for block, downsample in zip(self.down, self.downsample):
            hidden = block(hidden, None)
            skips.append(hidden)
            hidden = downsample(hidden)
        hidden = self.middle(hidden, None)
        for block, upsample in zip(self.up, self.upsample):
            hidden = block(torch.cat([upsample(hidden), skips.pop()], dim=1), None)
        return windows[:, :3] + self.to_pixels(self.conv_out(nn.functional.silu(self.norm_out(hidden))))

    @property
    def window_size(self) -> int:
        """Side of the mouth windows it redraws, in pixels."""
        return self.config.window_size

    @torch.no_grad()
    def refine(self, composed: np.ndarray, drawn: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """uint8 windows [N,W,W,3]: `composed` (uint8 [N,W,W,3]) corrected, given L2V's `drawn` windows (uint8) and
        the mouth and lip `masks` (float [N,W,W,2])."""
        parameter = next(self.parameters())
        images = np.concatenate([composed, drawn], axis=-1).astype(np.float32) / 127.5 - 1
        inputs = torch.from_numpy(np.concatenate([images, masks.astype(np.float32)], axis=-1)).permute(0, 3, 1, 2)
        refined = self(inputs.to(parameter.device, parameter.dtype)).float().clamp(-1, 1)
        return ((refined.permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().astype(np.uint8)
