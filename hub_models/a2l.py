"""A2L: speech features, a voice embedding and a face's landmarks to a landmark sequence.

After the landmark-guided paper's two LSTMs: a *content* network turns per-frame speech features and the
face's own landmarks into speaker-independent landmark motion; an *identity* network refines it with the
speaker's voice embedding (GE2E). The output is, per video frame, each of the 68 points' displacement
from the face's landmarks with the head held still, in the crop's normalised coordinates (-1..1).
`moving_points` can confine the motion to the points speech moves (the mouth and chin); the others then
keep the face's own positions, which matters when a few minutes of footage cannot teach the rest.
`motion_gain` is what the pipeline multiplies the displacements by: a least-squares model predicts the mean of the
motions a sound may go with, so it moves less than a real face; `train a2l` measures the gain on its validation
frames (1 for models trained before it did).
"""

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..faces.landmarks import CHIN, INNER_LIPS, OUTER_LIPS

NUM_POINTS = 68
# The lips and the chin: what speech moves.
SPEECH_POINTS = CHIN + OUTER_LIPS + INNER_LIPS


class AudioToLandmarks(ModelMixin, ConfigMixin):
    """features [B,T,F], speaker [B,S], landmarks [B,68,2] -> displacements [B,T,68,2] (and the intermediate ones)."""

    @register_to_config
    def __init__(self, feature_dim: int = 320, speaker_dim: int = 256, hidden_dim: int = 256, content_layers: int = 2,
                 identity_layers: int = 1, dropout: float = 0.1, feature_kind: str = "logmel",
                 feature_model_name: str | None = None, fps: float = 25.0, moving_points: list[int] | None = None,
                 motion_gain: float = 1.0, feature_layers: str = "last"):
        super().__init__()
        points = NUM_POINTS * 2
        self.feature_in = nn.Sequential(nn.Linear(feature_dim, hidden_dim), nn.SiLU(), nn.Dropout(dropout))
        self.face_in = nn.Linear(points, hidden_dim)
        self.content = nn.LSTM(2 * hidden_dim, hidden_dim, content_layers, batch_first=True, bidirectional=True,
                               dropout=dropout if content_layers > 1 else 0.0)
        self.content_out = nn.Linear(2 * hidden_dim, points)
        self.speaker_in = nn.Linear(speaker_dim, hidden_dim)
        self.identity = nn.LSTM(2 * hidden_dim + hidden_dim + points, hidden_dim, identity_layers, batch_first=True,
                                bidirectional=True)
        self.identity_out = nn.Linear(2 * hidden_dim, points)
        # Displacements are tiny in normalised coordinates; the model works in units of their spread.
        self.register_buffer("displacement_std", torch.ones(points))
        moving = torch.zeros(NUM_POINTS, 2) if moving_points is not None else torch.ones(NUM_POINTS, 2)
        if moving_points is not None:
            moving[list(moving_points)] = 1
        self.register_buffer("moving", moving.flatten(), persistent=False)

    def forward(self, features: torch.Tensor, speaker: torch.Tensor, landmarks: torch.Tensor) -> dict:
        batch, frames = features.shape[:2]
        face = self.face_in(landmarks.reshape(batch, 1, -1)).expand(-1, frames, -1)
        content, _ = self.content(torch.cat([self.feature_in(features), face], dim=-1))
        intermediate = self.content_out(content)
        speaker_code = self.speaker_in(speaker)[:, None].expand(-1, frames, -1)
        refined, _ = self.identity(torch.cat([content, speaker_code, intermediate], dim=-1))
        final = intermediate + self.identity_out(refined)
        scale = self.displacement_std * self.moving
        return {"displacements": (final * scale).reshape(batch, frames, NUM_POINTS, 2),
                "intermediate": (intermediate * scale).reshape(batch, frames, NUM_POINTS, 2)}
