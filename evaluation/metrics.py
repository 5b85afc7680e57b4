"""Image, landmark and motion metrics: PSNR, SSIM, landmark distances, correlation and the best-aligning lag of two
signals."""

import numpy as np
import torch

from ..faces.landmarks import INNER_LIPS, OUTER_LIPS, mouth_opening

MOUTH = list(OUTER_LIPS + INNER_LIPS)


def psnr(images: torch.Tensor, references: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """Mean PSNR in dB over frames; both [N,3,H,W] in [0,1]. With `weights` [N,1,H,W] in 0..1, only the
    weighted pixels count."""
    squared = (images - references).pow(2)
    if weights is None:
        mse = squared.flatten(1).mean(1)
    else:
        weights = weights.expand_as(squared)
        mse = (squared * weights).flatten(1).sum(1) / weights.flatten(1).sum(1).clamp(min=1e-10)
    mse = mse.clamp(min=1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def ssim(images: torch.Tensor, references: torch.Tensor) -> float:
    """Mean SSIM (Gaussian window 11, sigma 1.5) over frames; both [N,3,H,W] in [0,1]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return float(structural_similarity_index_measure(images.float(), references.float(), data_range=1.0))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long 1-d signals (NaN for fewer than two values, 0 for a flat signal)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2:
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def filled(values: np.ndarray) -> np.ndarray:
    """NaN entries (frames without a face) replaced by the mean of the others (0 when all are NaN)."""
    known = ~np.isnan(values)
    return np.where(known, values, values[known].mean() if known.any() else 0.0)


def best_lag(signal: np.ndarray, reference: np.ndarray, max_lag: int) -> tuple[int, float]:
    """The shift in frames (positive: `signal` lags behind `reference`) that correlates them best, and that correlation."""
    best = (0, -np.inf)
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            shifted, fixed = signal[lag:], reference[: len(reference) - lag]
        else:
            shifted, fixed = signal[: len(signal) + lag], reference[-lag:]
        if len(shifted) > 2:
            correlation = pearson(shifted, fixed)
            if correlation > best[1]:
                best = (lag, correlation)
    return best


def loudness_per_frame(waveform: np.ndarray, sample_rate: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS loudness of the audio under each video frame [num_frames]."""
    hop = sample_rate / fps
    return np.array([np.sqrt(np.mean(np.square(waveform[round(i * hop):round((i + 1) * hop)], dtype=np.float64)))
                     if round(i * hop) < len(waveform) else 0.0 for i in range(num_frames)])


def landmark_errors(predicted: np.ndarray, real: np.ndarray) -> dict:
    """Mean point distance of landmarks [T,68,2] over all 68 points and over the mouth, as a fraction of the real
    outer-eye-corner distance, and the correlation of the mouth openings. Frames with NaN landmarks are left out."""
    keep = ~(np.isnan(predicted).any(axis=(1, 2)) | np.isnan(real).any(axis=(1, 2)))
    predicted, real = predicted[keep], real[keep]
    if not len(real):
        return {"nme": float("nan"), "mouth_nme": float("nan"), "mouth_opening_correlation": float("nan")}
    scale = np.linalg.norm(real[:, 36] - real[:, 45], axis=-1)[:, None]
    distance = np.linalg.norm(predicted - real, axis=-1) / scale
    return {"nme": float(distance.mean()), "mouth_nme": float(distance[:, MOUTH].mean()),
            "mouth_opening_correlation": pearson(mouth_opening(predicted), mouth_opening(real))}
