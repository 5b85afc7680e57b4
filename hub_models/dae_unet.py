"""Conditional UNet decoder of a diffusion autoencoder (Diff-AE, Preechakul et al. 2022)."""

from typing import Sequence, Union

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .diffae_blocks import (
    AttentionBlock,
    ConditionedSequential,
    Downsample,
    ResBlock,
    Upsample,
    group_norm,
    timestep_embedding,
    timesteps_for_batch,
    zero_init,
)


class TimeEmbedding(nn.Module):
    """MLP on the sinusoidal timestep embedding.

    The MLP sits in a ``time_embed`` child so parameter names match the official
    ``time_embed.time_embed.{0,2}.*`` keys (diffae's ``TimeStyleSeperateEmbed``).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.time_embed = nn.Sequential(
            nn.Linear(in_channels, out_channels),
            nn.SiLU(),
            nn.Linear(out_channels, out_channels),
        )

    def forward(self, sinusoid: torch.Tensor) -> torch.Tensor:
        return self.time_embed(sinusoid)


class DAEUNet(ModelMixin, ConfigMixin):
    """Noise-prediction UNet conditioned on a timestep and a semantic code ``z_sem``.

    Every ResBlock applies diffae's AdaGN: ``GN(h) * (1 + t_scale) + t_shift``
    from the timestep embedding, then ``* (1 + z_scale)`` from ``z_sem``.
    Parameter names match the official ``BeatGANsAutoencModel`` minus its
    ``encoder.*`` part. Defaults are the official ffhq256 autoencoder.

    Args:
        sample_size: input height/width (image or latent) in pixels.
        in_channels / out_channels: channels of the noisy input / the prediction.
        model_channels: base width; level ``i`` has ``model_channels * channel_mult[i]`` channels.
        channel_mult: width multiplier per resolution level (one level per halving).
        num_res_blocks: ResBlocks per level on the way down (one more on the way up).
        attention_resolutions: input resolutions (pixels) where self-attention is added.
        semantic_dim: size of ``z_sem``.
        embed_channels: size of the timestep embedding after its MLP.
        dropout: dropout inside the conditioned ResBlocks.
        num_heads: attention heads.
        resblock_updown: resample with ResBlocks (official) instead of plain Down/Upsample.
        conv_resample: plain Down/Upsample use a conv (only when ``resblock_updown=False``).
        num_groups: GroupNorm groups (capped at the channel count).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        sample_size: int = 256,
        in_channels: int = 3,
        out_channels: int = 3,
        model_channels: int = 128,
        channel_mult: Sequence[int] = (1, 1, 2, 2, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (16,),
        semantic_dim: int = 512,
        embed_channels: int = 512,
        dropout: float = 0.1,
        num_heads: int = 1,
        resblock_updown: bool = True,
        conv_resample: bool = True,
        num_groups: int = 32,
    ):
        super().__init__()
        self.gradient_checkpointing = False
        attention_resolutions = tuple(attention_resolutions)
        block_kwargs = dict(
            time_embed_dim=embed_channels,
            cond_embed_dim=semantic_dim,
            dropout=dropout,
            num_groups=num_groups,
        )

        self.time_embed = TimeEmbedding(model_channels, embed_channels)

        channels = model_channels * channel_mult[0]
        first_channels = channels
        self.input_blocks = nn.ModuleList([ConditionedSequential(nn.Conv2d(in_channels, channels, 3, padding=1))])
        skip_channels = [channels]  # channels of every input-block output, consumed in reverse by the decoder
        resolution = sample_size
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(channels, model_channels * mult, **block_kwargs)]
                channels = model_channels * mult
                if resolution in attention_resolutions:
                    layers.append(AttentionBlock(channels, num_heads, num_groups))
                self.input_blocks.append(ConditionedSequential(*layers))
                skip_channels.append(channels)
            if level != len(channel_mult) - 1:
                if resblock_updown:
                    downsample = ResBlock(channels, down=True, **block_kwargs)
                else:
                    downsample = Downsample(channels, use_conv=conv_resample)
                self.input_blocks.append(ConditionedSequential(downsample))
                skip_channels.append(channels)
                resolution //= 2

        self.middle_block = ConditionedSequential(
            ResBlock(channels, **block_kwargs),
            AttentionBlock(channels, num_heads, num_groups),
            ResBlock(channels, **block_kwargs),
        )

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for block_index in range(num_res_blocks + 1):
                layers = [ResBlock(channels + skip_channels.pop(), model_channels * mult, **block_kwargs)]
                channels = model_channels * mult
                if resolution in attention_resolutions:
                    layers.append(AttentionBlock(channels, num_heads, num_groups))
                if level and block_index == num_res_blocks:
                    if resblock_updown:
                        layers.append(ResBlock(channels, up=True, **block_kwargs))
                    else:
                        layers.append(Upsample(channels, use_conv=conv_resample))
                    resolution *= 2
                self.output_blocks.append(ConditionedSequential(*layers))

        self.out = nn.Sequential(
            group_norm(channels, num_groups),
            nn.SiLU(),
            zero_init(nn.Conv2d(first_channels, out_channels, 3, padding=1)),
        )

    def _run_block(self, block: ConditionedSequential, h, time_emb, cond_emb) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return self._gradient_checkpointing_func(block, h, time_emb, cond_emb)
        return block(h, time_emb, cond_emb)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: Union[int, float, torch.Tensor],
        z_sem: torch.Tensor,
    ) -> torch.Tensor:
        """Predict the noise of ``sample`` [B, C, H, W] at ``timestep`` given ``z_sem`` [B, semantic_dim].

        Returns a [B, out_channels, H, W] tensor.
        """
        timesteps = timesteps_for_batch(timestep, sample.shape[0], sample.device)
        sinusoid = timestep_embedding(timesteps, self.config.model_channels).to(sample.dtype)
        time_emb = self.time_embed(sinusoid)  # [B, embed_channels]
        cond_emb = z_sem.to(sample.dtype)  # [B, semantic_dim]

        h = sample
        skips = []
        for block in self.input_blocks:
            h = self._run_block(block, h, time_emb, cond_emb)
            skips.append(h)
        h = self._run_block(self.middle_block, h, time_emb, cond_emb)
        for block in self.output_blocks:
            h = torch.cat([h, skips.pop()], dim=1)  # [B, C + C_skip, H, W]
            h = self._run_block(block, h, time_emb, cond_emb)
        return self.out(h)
