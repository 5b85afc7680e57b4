"""Small image helpers for training: quality figures and sample grids."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..evaluation import metrics
from ..media.images import to_uint8


def psnr(images: torch.Tensor, references: torch.Tensor) -> float:
    """Mean PSNR in dB of images against references, both in [-1,1]."""
    return metrics.psnr((images.clamp(-1, 1) + 1) / 2, (references + 1) / 2)


def save_image_grid(rows: list[torch.Tensor], path: Path) -> None:
    """Save rows of [N,3,H,W] images in [-1,1] as one PNG grid, one row per tensor."""
    grid = np.concatenate([np.concatenate(list(to_uint8(row)), axis=1) for row in rows], axis=0)
    Image.fromarray(grid).save(path)
