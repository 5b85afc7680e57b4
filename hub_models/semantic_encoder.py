"""Semantic encoder of a diffusion autoencoder: image -> semantic code ``z_sem``."""

from typing import Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .diffae_blocks import (
    AttentionBlock,
    ConditionedSequential,
    Downsample,
    ResBlock,
    group_norm,
)


class SemanticEncoder(ModelMixin, ConfigMixin):
    """Encoder half of a BeatGANs UNet without time conditioning, pooled to a vector.

    Parameter names match the official checkpoint's ``encoder.*`` keys with the
    prefix removed. Defaults are the official ffhq256 autoencoder's encoder.
    The official encoder's ResBlocks are unconditioned and hold no dropout layer,
    so there is no dropout argument.

    Args:
        sample_size: input image height/width in pixels.
        in_channels: image channels.
        model_channels: base width; level ``i`` has ``model_channels * channel_mult[i]`` channels.
        channel_mult: width multiplier per resolution level (one level per halving).
        num_res_blocks: ResBlocks per level.
        attention_resolutions: input resolutions (pixels) where self-attention is added.
        out_dim: size of ``z_sem``.
        num_heads: attention heads.
        resblock_updown: downsample with ResBlocks (official) instead of plain Downsample.
        conv_resample: plain Downsample uses a strided conv (only when ``resblock_updown=False``).
        num_groups: GroupNorm groups (capped at the channel count).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int = 256,
        in_channels: int = 3,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 1, 2, 2, 4, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (16,),
        out_dim: int = 512,
        num_heads: int = 1,
        resblock_updown: bool = True,
        conv_resample: bool = True,
        num_groups: int = 32,
    ):
        super().__init__()
        self.gradient_checkpointing = False
        attention_resolutions = tuple(attention_resolutions)

        channels = model_channels * channel_mult[0]
        self.input_blocks = nn.ModuleList([ConditionedSequential(nn.Conv2d(in_channels, channels, 3, padding=1))])
        resolution = sample_size
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(channels, model_channels * mult, num_groups=num_groups)]
                channels = model_channels * mult
                if resolution in attention_resolutions:
                    layers.append(AttentionBlock(channels, num_heads, num_groups))
                self.input_blocks.append(ConditionedSequential(*layers))
            if level != len(channel_mult) - 1:
                if resblock_updown:
                    downsample = ResBlock(channels, down=True, num_groups=num_groups)
                else:
                    downsample = Downsample(channels, use_conv=conv_resample)
                self.input_blocks.append(ConditionedSequential(downsample))
                resolution //= 2

        self.middle_block = ConditionedSequential(
            ResBlock(channels, num_groups=num_groups),
            AttentionBlock(channels, num_heads, num_groups),
            ResBlock(channels, num_groups=num_groups),
        )
        self.out = nn.Sequential(
            group_norm(channels, num_groups),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(channels, out_dim, 1),
            nn.Flatten(),
        )

    def _run_block(self, block: ConditionedSequential, h: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(block, h)
        return block(h)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode ``images`` [B, in_channels, H, W] in [-1, 1] to ``z_sem`` [B, out_dim]."""
        h = images
        for block in self.input_blocks:
            h = self._run_block(block, h)
        h = self._run_block(self.middle_block, h)  # [B, C, H / 2^(levels-1), W / 2^(levels-1)]
        return self.out(h)  # [B, out_dim]
