"""Speech2Latent: DAE-Talker's Conformer model from per-frame speech features to semantic latents.

features [B,T,F] -> linear + convolution blocks -> Conformer blocks -> pose adaptor -> Conformer blocks
-> linear projection -> z_sem [B,T,semantic_dim].

The pose adaptor predicts a head-pose sequence from the speech (trained with its own loss) and a pose
projector adds a pose sequence back into the features: the ground-truth pose while training, the
predicted one or one the caller gives at inference (the paper's pose control).
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


class FeedForward(nn.Module):
    """Conformer feed-forward module (pre-norm, Swish, dropout)."""

    def __init__(self, dim: int, expansion: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.linear_in = nn.Linear(dim, dim * expansion)
        self.linear_out = nn.Linear(dim * expansion, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(F.silu(self.linear_in(self.norm(hidden_states))))
        return self.dropout(self.linear_out(hidden_states))


class ConvModule(nn.Module):
    """Conformer convolution module: pointwise GLU, depthwise conv over time, norm, Swish, pointwise."""

    def __init__(self, dim: int, kernel_size: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.batch_norm = nn.GroupNorm(1, dim)  # length-independent, unlike BatchNorm, for any batch size
        self.pointwise_out = nn.Conv1d(dim, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.norm(hidden_states).transpose(1, 2)  # [B,D,T]
        hidden_states = F.glu(self.pointwise_in(hidden_states), dim=1)
        hidden_states = F.silu(self.batch_norm(self.depthwise(hidden_states)))
        hidden_states = self.dropout(self.pointwise_out(hidden_states))
        return hidden_states.transpose(1, 2)  # [B,T,D]


class ConformerBlock(nn.Module):
    """Macaron Conformer block: half FFN, self-attention, convolution, half FFN, final norm."""

    def __init__(self, dim: int, num_heads: int, ff_expansion: int, conv_kernel_size: int, dropout: float):
        super().__init__()
        self.ff_first = FeedForward(dim, ff_expansion, dropout)
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.attention_dropout = nn.Dropout(dropout)
        self.conv = ConvModule(dim, conv_kernel_size, dropout)
        self.ff_last = FeedForward(dim, ff_expansion, dropout)
        self.final_norm = nn.LayerNorm(dim)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + 0.5 * self.ff_first(hidden_states)
        normed = self.attention_norm(hidden_states)
        attended, _ = self.attention(normed, normed, normed, attn_mask=attention_bias, need_weights=False)
        hidden_states = hidden_states + self.attention_dropout(attended)
        hidden_states = hidden_states + self.conv(hidden_states)
        hidden_states = hidden_states + 0.5 * self.ff_last(hidden_states)
        return self.final_norm(hidden_states)


def relative_position_bias(num_frames: int, num_heads: int, max_distance: int, slopes: torch.Tensor) -> torch.Tensor:
    """ALiBi-style attention bias [num_heads, T, T]: attention fades with the distance between frames.

    Works for any length, so the model trained on short clips runs on long audio.
    """
    positions = torch.arange(num_frames, device=slopes.device)
    distance = (positions[None, :] - positions[:, None]).abs().clamp(max=max_distance).float()
    return -slopes[:, None, None] * distance[None]


class Speech2Latent(ModelMixin, ConfigMixin):
    """Speech features per video frame to DAE semantic latents, with a pose adaptor.

    `feature_kind`, `feature_model_name`, `feature_layers` and `fps` record the audio front end the model was trained on
    (see `media.features.AudioFeatureExtractor`), so a saved model brings its front end with it.
    """

    @register_to_config
    def __init__(
        self,
        feature_dim: int = 768,
        semantic_dim: int = 512,
        pose_dim: int = 6,
        hidden_dim: int = 256,
        num_heads: int = 4,
        num_conv_layers: int = 2,
        num_blocks_before_pose: int = 4,
        num_blocks_after_pose: int = 4,
        ff_expansion: int = 4,
        conv_kernel_size: int = 15,
        dropout: float = 0.1,
        max_attention_distance: int = 64,
        feature_kind: str = "logmel",
        feature_model_name: str | None = None,
        fps: float = 25.0,
        feature_layers: str = "last",
    ):
        super().__init__()
        self.input_projection = nn.Linear(feature_dim, hidden_dim)
        self.conv_layers = nn.ModuleList(
            nn.Conv1d(hidden_dim, hidden_dim, kernel_size=5, padding=2) for _ in range(num_conv_layers)
        )
        self.conv_norms = nn.ModuleList(nn.LayerNorm(hidden_dim) for _ in range(num_conv_layers))
        self.blocks_before_pose = nn.ModuleList(
            ConformerBlock(hidden_dim, num_heads, ff_expansion, conv_kernel_size, dropout)
            for _ in range(num_blocks_before_pose)
        )
        self.pose_predictor = nn.Sequential(
            nn.Linear(hidden_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, pose_dim)
        )
        self.pose_projector = nn.Sequential(
            nn.Linear(pose_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )
        self.blocks_after_pose = nn.ModuleList(
            ConformerBlock(hidden_dim, num_heads, ff_expansion, conv_kernel_size, dropout)
            for _ in range(num_blocks_after_pose)
        )
        self.output_projection = nn.Linear(hidden_dim, semantic_dim)
        # Head slopes for the distance bias, as in ALiBi: a geometric series per head.
        self.register_buffer(
            "attention_slopes", 2.0 ** (-8.0 * torch.arange(1, num_heads + 1) / num_heads), persistent=False
        )
        # Statistics of the training targets; outputs are de-normalised with them. Saved with the weights.
        self.register_buffer("latent_mean", torch.zeros(semantic_dim))
        self.register_buffer("latent_std", torch.ones(semantic_dim))
        self.register_buffer("pose_mean", torch.zeros(pose_dim))
        self.register_buffer("pose_std", torch.ones(pose_dim))

    def set_statistics(self, latents: torch.Tensor, poses: torch.Tensor) -> None:
        """Store the mean and std of training latents [N,semantic_dim] and poses [N,pose_dim]."""
        self.latent_mean.copy_(latents.mean(0))
        self.latent_std.copy_(latents.std(0).clamp(min=1e-5))
        self.pose_mean.copy_(poses.mean(0))
        self.pose_std.copy_(poses.std(0).clamp(min=1e-5))

    def _attention_bias(self, num_frames: int, batch_size: int) -> torch.Tensor:
        bias = relative_position_bias(
            num_frames, self.config.num_heads, self.config.max_attention_distance, self.attention_slopes
        )
        return bias.repeat(batch_size, 1, 1).to(self.dtype)  # [B*heads,T,T]

    def encode_speech(self, features: torch.Tensor) -> torch.Tensor:
        """features [B,T,F] -> hidden states before the pose adaptor [B,T,hidden_dim]."""
        hidden_states = self.input_projection(features)
        for conv, norm in zip(self.conv_layers, self.conv_norms):
            convolved = conv(hidden_states.transpose(1, 2)).transpose(1, 2)
            hidden_states = hidden_states + F.gelu(norm(convolved))
        bias = self._attention_bias(hidden_states.shape[1], hidden_states.shape[0])
        for block in self.blocks_before_pose:
            hidden_states = block(hidden_states, bias)
        return hidden_states

    def predict_pose(self, features: torch.Tensor) -> torch.Tensor:
        """Head pose predicted from speech: features [B,T,F] -> pose [B,T,pose_dim] in real units."""
        normalised_pose = self.pose_predictor(self.encode_speech(features))
        return normalised_pose * self.pose_std + self.pose_mean

    def forward(self, features: torch.Tensor, pose: torch.Tensor | None = None) -> dict:
        """Map speech features [B,T,F] (and optionally a pose [B,T,pose_dim] in real units) to latents.

        Returns a dict with `latents` [B,T,semantic_dim] and `pose` [B,T,pose_dim] (real units), plus the
        normalised values `normalised_latents` and `normalised_pose_prediction` that the losses use.
        """
        hidden_states = self.encode_speech(features)
        normalised_pose_prediction = self.pose_predictor(hidden_states)
        if pose is None:
            normalised_pose = normalised_pose_prediction
        else:
            normalised_pose = (pose.to(hidden_states.dtype) - self.pose_mean) / self.pose_std
        hidden_states = hidden_states + self.pose_projector(normalised_pose)
        bias = self._attention_bias(hidden_states.shape[1], hidden_states.shape[0])
        for block in self.blocks_after_pose:
            hidden_states = block(hidden_states, bias)
        normalised_latents = self.output_projection(hidden_states)
        return {
            "latents": normalised_latents * self.latent_std + self.latent_mean,
            "pose": normalised_pose * self.pose_std + self.pose_mean,
            "normalised_latents": normalised_latents,
            "normalised_pose_prediction": normalised_pose_prediction,
        }
