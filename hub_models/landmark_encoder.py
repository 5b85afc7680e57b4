"""L2V's landmark-coordinate encoder: 68 points to the tokens the denoising UNet cross-attends to.

Each point becomes a token: its (x, y) through an MLP plus a learned embedding of which point it is;
a small Transformer lets the tokens see each other (the mouth's shape is a relation between points).
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class LandmarkEncoder(ModelMixin, ConfigMixin):
    """Landmarks [B,68,2] in the crop's normalised coordinates (-1..1) -> tokens [B,68,output_dim]."""

    @register_to_config
    def __init__(self, num_points: int = 68, hidden_dim: int = 128, output_dim: int = 128, num_layers: int = 2,
                 num_heads: int = 4):
        super().__init__()
        self.coordinates = nn.Sequential(nn.Linear(2, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.point_embedding = nn.Parameter(torch.randn(num_points, hidden_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(hidden_dim, num_heads, 2 * hidden_dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden_dim)
        self.projection = nn.Linear(hidden_dim, output_dim)

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        if landmarks.shape[1:] != (self.config.num_points, 2):
            raise ValueError(f"expected landmarks [B,{self.config.num_points},2], got {tuple(landmarks.shape)}")
        tokens = self.coordinates(landmarks) + self.point_embedding
        return self.projection(self.norm(self.transformer(tokens)))
