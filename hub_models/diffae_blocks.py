"""Building blocks shared by the diffusion-autoencoder UNet decoder and semantic encoder.

Module and attribute names follow the official diffusion-autoencoders
(BeatGANs) layout so that official state dicts load without key renaming:
``in_layers``, ``emb_layers``, ``cond_emb_layers``, ``out_layers``,
``skip_connection``, ``norm``/``qkv``/``proj_out``, ``op``/``conv``.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn


def timestep_embedding(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``[cos(t * f_i), sin(t * f_i)]`` with ``f_i = 10000^(-i / (dim // 2))``.

    Equals diffae's ``timestep_embedding``: cosines first, no frequency shift.
    timesteps: [B] -> [B, dim] (float32).
    """
    return get_timestep_embedding(timesteps, dim, flip_sin_to_cos=True, downscale_freq_shift=0)


def timesteps_for_batch(timestep, batch_size: int, device: torch.device) -> torch.Tensor:
    """Turn an int, float, 0-d, [1] or [B] timestep into a [B] tensor on ``device``."""
    timesteps = torch.as_tensor(timestep, device=device)
    if timesteps.ndim == 0:
        timesteps = timesteps[None]
    if timesteps.ndim != 1 or timesteps.shape[0] not in (1, batch_size):
        raise ValueError(f"timestep must be a scalar or have shape [{batch_size}], got {tuple(timesteps.shape)}")
    return timesteps.expand(batch_size)


class FloatGroupNorm(nn.GroupNorm):
    """GroupNorm computed in float32 and cast back (stable under fp16/bf16)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.group_norm(x.float(), self.num_groups, weight, bias, self.eps).type(x.dtype)


def group_norm(channels: int, num_groups: int) -> FloatGroupNorm:
    """GroupNorm with ``min(num_groups, channels)`` groups, as diffae's ``normalization``."""
    return FloatGroupNorm(min(num_groups, channels), channels)


def zero_init(module: nn.Module) -> nn.Module:
    """Zero all parameters of ``module`` in place and return it."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


class Downsample(nn.Module):
    """Halve H and W with a stride-2 3x3 conv (``op`` conv) or 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        if use_conv:
            self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        else:
            self.op = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Double H and W with nearest-neighbour interpolation, optionally followed by a 3x3 conv."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class ResBlock(nn.Module):
    """Residual block with diffae's adaptive GroupNorm (AdaGN) conditioning.

    Conditioned (``time_embed_dim`` given)::

        h = conv(SiLU(GN(x)))
        h = GN(h) * (1 + t_scale) + t_shift        # from the timestep embedding
        h = h * (1 + z_scale)                      # from z_sem, when ``cond_embed_dim`` is given
        out = skip(x) + conv(dropout(SiLU(h)))

    Unconditioned (semantic encoder): ``out = skip(x) + conv(SiLU(GN(x)))``.
    ``up``/``down`` resample both paths between the in-layer activation and its conv.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: Optional[int] = None,
        time_embed_dim: Optional[int] = None,
        cond_embed_dim: Optional[int] = None,
        dropout: float = 0.0,
        up: bool = False,
        down: bool = False,
        num_groups: int = 32,
    ):
        super().__init__()
        out_channels = out_channels or in_channels
        self.out_channels = out_channels
        self.in_layers = nn.Sequential(
            group_norm(in_channels, num_groups),
            nn.SiLU(),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
        )

        if up:
            self.resample = Upsample(in_channels, use_conv=False)
        elif down:
            self.resample = Downsample(in_channels, use_conv=False)
        else:
            self.resample = None

        self.is_conditioned = time_embed_dim is not None
        if self.is_conditioned:
            self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(time_embed_dim, 2 * out_channels))
            if cond_embed_dim is not None:
                self.cond_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(cond_embed_dim, out_channels))
            else:
                self.cond_emb_layers = None
            self.out_layers = nn.Sequential(
                group_norm(out_channels, num_groups),
                nn.SiLU(),
                nn.Dropout(p=dropout),
                zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
            )
        elif cond_embed_dim is not None:
            raise ValueError("cond_embed_dim requires time_embed_dim (AdaGN needs the timestep scale/shift)")

        if out_channels == in_channels:
            self.skip_connection = nn.Identity()
        else:
            self.skip_connection = nn.Conv2d(in_channels, out_channels, 1)

    def forward(
        self,
        x: torch.Tensor,
        time_emb: Optional[torch.Tensor] = None,
        cond_emb: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        # x: [B, C_in, H, W] -> [B, C_out, H', W'] (H' = 2H up, H/2 down)
        if self.resample is not None:
            norm_act, conv = self.in_layers[:-1], self.in_layers[-1]
            h = conv(self.resample(norm_act(x)))
            x = self.resample(x)
        else:
            h = self.in_layers(x)

        if self.is_conditioned:
            norm, act_dropout_conv = self.out_layers[0], self.out_layers[1:]
            h = norm(h)
            # [B, 2 * C_out] -> two [B, C_out, 1, 1]
            time_scale, time_shift = self.emb_layers(time_emb).type(h.dtype)[..., None, None].chunk(2, dim=1)
            h = h * (1 + time_scale) + time_shift
            if self.cond_emb_layers is not None:
                cond_scale = self.cond_emb_layers(cond_emb).type(h.dtype)[..., None, None]  # [B, C_out, 1, 1]
                h = h * (1 + cond_scale)
            h = act_dropout_conv(h)

        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over spatial positions with a residual connection.

    Heads are split before q/k/v (diffae's ``QKVAttentionLegacy`` order), so the
    fused ``qkv`` 1x1 conv weights of official checkpoints apply unchanged.
    """

    def __init__(self, channels: int, num_heads: int = 1, num_groups: int = 32):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.norm = group_norm(channels, num_groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.reshape(batch, channels, height * width)  # [B, C, T]
        qkv = self.qkv(self.norm(tokens))  # [B, 3C, T]
        head_dim = channels // self.num_heads
        # [B * heads, 3 * head_dim, T] -> q, k, v each [B * heads, T, head_dim]
        q, k, v = qkv.reshape(batch * self.num_heads, 3 * head_dim, -1).transpose(1, 2).split(head_dim, dim=2)
        attended = F.scaled_dot_product_attention(q, k, v)  # [B * heads, T, head_dim], scale 1/sqrt(head_dim)
        attended = attended.transpose(1, 2).reshape(batch, channels, -1)  # [B, C, T]
        return (tokens + self.proj_out(attended)).reshape(batch, channels, height, width)


class ConditionedSequential(nn.Sequential):
    """Sequential container passing the time and semantic embeddings to its ResBlocks."""

    def forward(
        self,
        x: torch.Tensor,
        time_emb: Optional[torch.Tensor] = None,
        cond_emb: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        for layer in self:
            x = layer(x, time_emb, cond_emb) if isinstance(layer, ResBlock) else layer(x)
        return x
