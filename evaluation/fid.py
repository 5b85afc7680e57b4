"""Fréchet Inception Distance: the Fréchet distance of two Gaussians fitted to the 2048-d pool features of the FID
Inception network, which torch-fidelity provides (it is not reimplemented here)."""

import warnings

import numpy as np
import torch
from scipy import linalg

from ..errors import MetricWeightsError


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D,D] (float64) of features [N,D], N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"feature statistics need features [N,D] with N >= 2, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2):
    |mu1 - mu2|^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    When the square root of the product is not finite (a near-singular product), `eps` is added to both diagonals;
    the tiny imaginary parts rounding leaves in the square root are dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"mismatched statistics: means {mu1.shape} and {mu2.shape}, "
                         f"covariances {sigma1.shape} and {sigma2.shape}")
    with warnings.catch_warnings():
        # A singular product is expected with fewer samples than dimensions; a non-finite root is handled below.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        sqrt_product = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(sqrt_product).all():
            offset = np.eye(sigma1.shape[0]) * eps
            sqrt_product = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(sqrt_product):
        largest_imaginary = np.abs(np.diagonal(sqrt_product).imag).max()
        if largest_imaginary > 1e-3:
            raise ValueError(f"the square root of the covariance product has an imaginary component {largest_imaginary}")
        sqrt_product = sqrt_product.real
    mean_difference = mu1 - mu2
    return float(mean_difference @ mean_difference + np.trace(sigma1) + np.trace(sigma2)
                 - 2 * np.trace(sqrt_product))


class InceptionFeatures:
    """The 2048-d pool features of the FID Inception network (torch-fidelity's `FeatureExtractorInceptionV3`, which
    downloads its weights on first use)."""

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 32):
        try:
            from torch_fidelity import FeatureExtractorInceptionV3
        except Exception as error:  # missing, or present but its torchvision does not import
            raise MetricWeightsError(
                f"FID needs the package torch-fidelity, which could not be imported ({error}); "
                "install it with `pip install torch-fidelity` (it needs a torchvision that matches torch)") from None
        try:
            self.extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"]).to(device)
        except Exception as error:  # mostly a failed download of its weights
            raise MetricWeightsError(f"FID could not load the Inception network of torch-fidelity ({error})") from None
        self.device = torch.device(device)
        self.batch_size = batch_size

    def __call__(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """Pool features [N,2048] (float64) of uint8 RGB frames [N,H,W,3] of any size (resized to 299 inside)."""
        frames = torch.as_tensor(frames)
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected uint8 frames [N,H,W,3], got {frames.dtype} {tuple(frames.shape)}")
        batches = []
        with torch.inference_mode():
            for start in range(0, frames.shape[0], self.batch_size):
                batch = frames[start:start + self.batch_size].permute(0, 3, 1, 2).contiguous().to(self.device)
                (pool_features,) = self.extractor(batch)
                batches.append(pool_features.cpu().double().numpy())
        return np.concatenate(batches) if batches else np.zeros((0, 2048))
