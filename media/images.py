"""The one conversion between the pixels users see and the tensors the models take."""

import numpy as np
import torch


def to_model_range(frames) -> torch.Tensor:
    """uint8 frames [N,H,W,3] (numpy, read-only too, or torch) to float [N,3,H,W] in [-1,1]."""
    pixels = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else frames
    return torch.from_numpy(np.array(pixels, dtype=np.float32)).permute(0, 3, 1, 2) / 127.5 - 1


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images [N,3,H,W] in [-1,1] (clamped) to uint8 frames [N,H,W,3] on the CPU."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
