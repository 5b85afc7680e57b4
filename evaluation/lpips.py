"""LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric"), computed as the reference `lpips` package does, from torchvision's ImageNet AlexNet weights and
the LPIPS linear-layer weights."""

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import MetricWeightsError
from .weights import fetch_weights, load_state_dict

ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
LINEAR_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"

# Channels of AlexNet's relu1..relu5 outputs, and the index in `features` of each of those ReLUs.
LAYER_CHANNELS = (64, 192, 384, 256, 256)
RELU_INDICES = (1, 4, 7, 9, 11)


def _alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet `features` up to relu5 (its last max-pool is not used), with the same layer indices."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
    )


def _unit_normalize(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each spatial position's feature vector divided by its length over channels."""
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def _load_into(module: nn.Module, state: dict, path: Path, what: str) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise MetricWeightsError(f"{path} is not a {what} weights file ({error})") from None


class LPIPS(nn.Module):
    """LPIPS distance, v0.1, AlexNet backbone: lower is more alike, 0 for identical images."""

    def __init__(self):
        super().__init__()
        # The reference ScalingLayer: inputs in [-1, 1] are shifted and scaled per channel.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.features = _alexnet_features()
        self.linear_layers = nn.ModuleList(nn.Conv2d(channels, 1, kernel_size=1, bias=False)
                                           for channels in LAYER_CHANNELS)

    @classmethod
    def load(cls, backbone_path: str | os.PathLike | None = None,
             linear_path: str | os.PathLike | None = None) -> "LPIPS":
        """LPIPS in eval mode without gradients, from the given weight files or, for each one not given, a download.

        `backbone_path`: torchvision's ImageNet AlexNet state dict (alexnet-owt-7be5be79.pth);
        `linear_path`: the lpips v0.1 alex.pth.
        """
        backbone_file = fetch_weights(ALEXNET_URL, backbone_path, "LPIPS (AlexNet backbone)", "--lpips-backbone-weights")
        linear_file = fetch_weights(LINEAR_URL, linear_path, "LPIPS", "--lpips-weights")
        backbone_state = load_state_dict(backbone_file, "torchvision AlexNet")
        linear_state = load_state_dict(linear_file, "LPIPS linear-layer")
        model = cls()
        # The torchvision file also holds the classifier, which LPIPS does not use.
        _load_into(model.features, {key.removeprefix("features."): value for key, value in backbone_state.items()
                                    if key.startswith("features.")}, backbone_file, "torchvision AlexNet")
        # lpips names the layers lin0..lin4, each a Sequential of dropout (index 0) and the 1x1 convolution.
        lpips_names = {f"lin{index}.model.1.weight": f"{index}.weight" for index in range(len(LAYER_CHANNELS))}
        _load_into(model.linear_layers, {ours: linear_state[theirs] for theirs, ours in lpips_names.items()
                                         if theirs in linear_state}, linear_file, "LPIPS linear-layer")
        return model.eval().requires_grad_(False)

    def _relu_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        hidden = (2 * images - 1 - self.shift) / self.scale
        for index, layer in enumerate(self.features):
            hidden = layer(hidden)
            if index in RELU_INDICES:
                outputs.append(hidden)
        return outputs

    def forward(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        """LPIPS distance of each image to its reference [N]; both [N,3,H,W] in [0,1]."""
        if images.shape != references.shape:
            raise ValueError(f"images {tuple(images.shape)} and references {tuple(references.shape)} differ in shape")
        distance = images.new_zeros(images.shape[0])
        for linear, image_features, reference_features in zip(
                self.linear_layers, self._relu_outputs(images), self._relu_outputs(references)):
            squared_difference = (_unit_normalize(image_features) - _unit_normalize(reference_features)).pow(2)
            distance = distance + linear(squared_difference).mean(dim=(1, 2, 3))
        return distance
