"""LPIPS and FID (evaluation/lpips.py, evaluation/fid.py).

The real weights cannot be downloaded in tests: LPIPS is loaded from random weights saved in the formats of the real
files (torchvision's full AlexNet state dict, lpips' alex.pth), with non-negative linear weights as the real ones
have. FID's Inception network comes from torch-fidelity, which is simulated as missing, or replaced by a stand-in.
"""

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from talking_head.errors import MetricWeightsError
from talking_head.evaluation.fid import InceptionFeatures, feature_statistics, frechet_distance
from talking_head.evaluation.lpips import ALEXNET_URL, LAYER_CHANNELS, LINEAR_URL, LPIPS


def random_lpips_state_dicts(seed: int = 0) -> tuple[dict, dict]:
    """(backbone, linear) state dicts of a randomly initialised LPIPS, keyed as the real weight files are."""
    torch.manual_seed(seed)
    model = LPIPS()
    backbone = {f"features.{key}": value for key, value in model.features.state_dict().items()}
    # The real file is the whole torchvision AlexNet: its classifier comes along and must be ignored.
    backbone |= {"classifier.1.weight": torch.randn(4096, 9216), "classifier.1.bias": torch.zeros(4096),
                 "classifier.6.weight": torch.randn(1000, 4096), "classifier.6.bias": torch.zeros(1000)}
    linear = {f"lin{index}.model.1.weight": layer.weight.detach().abs().clone()
              for index, layer in enumerate(model.linear_layers)}
    return backbone, linear


@pytest.fixture
def weight_files(tmp_path):
    backbone, linear = random_lpips_state_dicts()
    backbone_path, linear_path = tmp_path / "alexnet-owt-7be5be79.pth", tmp_path / "alex.pth"
    torch.save(backbone, backbone_path)
    torch.save(linear, linear_path)
    return backbone_path, linear_path


@pytest.fixture
def lpips_model(weight_files):
    backbone_path, linear_path = weight_files
    return LPIPS.load(backbone_path=backbone_path, linear_path=linear_path)


@pytest.fixture
def failing_downloads(tmp_path, monkeypatch):
    """An empty torch hub cache in tmp_path, and every download failing as with no network."""
    def no_network(url, destination, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    previous_hub_dir = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield
    torch.hub.set_dir(previous_hub_dir)


def smooth_images(count: int, size: int = 64) -> torch.Tensor:
    """Images with edges and texture: coloured stripes and squares, plus a little noise, in [0,1]."""
    generator = torch.Generator().manual_seed(1)
    coordinates = torch.linspace(0, 1, size)
    y, x = torch.meshgrid(coordinates, coordinates, indexing="ij")
    images = []
    for index in range(count):
        stripes = (torch.sin((x * (6 + index) + y * 3) * torch.pi) > 0).float()
        square = ((x - 0.5).abs() < 0.2 + 0.05 * index) & ((y - 0.4).abs() < 0.25)
        images.append(torch.stack([stripes, square.float(), 0.5 * stripes + 0.5 * square.float()]))
    images = torch.stack(images)
    return (0.8 * images + 0.2 * torch.rand(images.shape, generator=generator)).clamp(0, 1)


def box_blur(images: torch.Tensor, radius: int) -> torch.Tensor:
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    return F.avg_pool2d(padded, kernel_size=2 * radius + 1, stride=1)


def test_loaded_lpips_is_frozen_and_in_eval_mode(lpips_model, weight_files):
    backbone = torch.load(weight_files[0], weights_only=True)
    linear = torch.load(weight_files[1], weights_only=True)
    assert not lpips_model.training
    assert not any(parameter.requires_grad for parameter in lpips_model.parameters())
    assert torch.equal(lpips_model.features[10].weight, backbone["features.10.weight"])
    for index, channels in enumerate(LAYER_CHANNELS):
        assert torch.equal(lpips_model.linear_layers[index].weight, linear[f"lin{index}.model.1.weight"])
        assert lpips_model.linear_layers[index].weight.shape == (1, channels, 1, 1)


def test_identical_images_are_at_distance_zero(lpips_model):
    images = smooth_images(3)
    distances = lpips_model(images, images.clone())
    assert distances.shape == (3,)
    assert torch.equal(distances, torch.zeros(3))


def test_more_blur_is_farther(lpips_model):
    images = smooth_images(2)
    slightly_blurred = lpips_model(box_blur(images, 1), images)
    much_blurred = lpips_model(box_blur(images, 3), images)
    assert slightly_blurred.shape == much_blurred.shape == (2,)
    assert (slightly_blurred > 0).all()
    assert (much_blurred > slightly_blurred).all()


def test_lpips_is_symmetric_and_per_image(lpips_model):
    images, blurred = smooth_images(2), box_blur(smooth_images(2), 2)
    both = lpips_model(images, blurred)
    torch.testing.assert_close(both, lpips_model(blurred, images))
    torch.testing.assert_close(both[1:], lpips_model(images[1:], blurred[1:]))


def test_missing_weights_file_names_the_path(tmp_path, weight_files):
    missing = tmp_path / "nowhere" / "alex.pth"
    with pytest.raises(MetricWeightsError, match="nowhere"):
        LPIPS.load(backbone_path=weight_files[0], linear_path=missing)
    with pytest.raises(MetricWeightsError, match="nowhere"):
        LPIPS.load(backbone_path=missing, linear_path=weight_files[1])


@pytest.mark.usefixtures("failing_downloads")
def test_failed_download_names_the_url_and_the_option(weight_files):
    with pytest.raises(MetricWeightsError) as backbone_error:
        LPIPS.load(linear_path=weight_files[1])
    assert ALEXNET_URL in str(backbone_error.value) and "--lpips-backbone-weights" in str(backbone_error.value)
    with pytest.raises(MetricWeightsError) as linear_error:
        LPIPS.load(backbone_path=weight_files[0])
    assert LINEAR_URL in str(linear_error.value) and "--lpips-weights" in str(linear_error.value)


def test_file_that_is_not_a_state_dict_is_refused(tmp_path, weight_files):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    a_list = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], a_list)
    for bad_file in (garbage, a_list):
        with pytest.raises(MetricWeightsError, match=bad_file.name):
            LPIPS.load(backbone_path=weight_files[0], linear_path=bad_file)


def test_weights_of_the_wrong_network_are_refused(weight_files):
    backbone_path, linear_path = weight_files
    with pytest.raises(MetricWeightsError, match="AlexNet"):
        LPIPS.load(backbone_path=linear_path, linear_path=linear_path)
    with pytest.raises(MetricWeightsError, match="LPIPS linear-layer"):
        LPIPS.load(backbone_path=backbone_path, linear_path=backbone_path)


def test_frechet_distance_of_identical_statistics_is_zero():
    features = np.random.default_rng(0).normal(size=(300, 16))
    mu, sigma = feature_statistics(features)
    assert mu.shape == (16,) and sigma.shape == (16, 16)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-8)


def test_frechet_distance_of_singular_identical_statistics_is_near_zero():
    # Fewer samples than dimensions, as with few frames and 2048-d features: a singular covariance.
    mu, sigma = feature_statistics(np.random.default_rng(1).normal(size=(5, 64)))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-4)


def test_frechet_distance_matches_the_closed_form_for_diagonal_covariances():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 3.0, -2.0])
    variances1, variances2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(variances1 + variances2 - 2 * np.sqrt(variances1 * variances2))
    actual = frechet_distance(mu1, np.diag(variances1), mu2, np.diag(variances2))
    assert actual == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_the_closed_form_for_full_covariances():
    # sigma2 = a sigma1 a with a symmetric, positive and commuting with sigma1: the root of sigma1 sigma2 is a sigma1.
    rng = np.random.default_rng(2)
    basis, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    sigma1 = basis @ np.diag(rng.uniform(0.5, 2, 6)) @ basis.T
    a = basis @ np.diag(rng.uniform(0.5, 2, 6)) @ basis.T
    sigma2 = a @ sigma1 @ a
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * a @ sigma1)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)


def test_feature_statistics_needs_two_samples():
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 8)))


def test_inception_features_without_torch_fidelity_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    with pytest.raises(MetricWeightsError, match="torch-fidelity") as error:
        InceptionFeatures()
    assert "pip install torch-fidelity" in str(error.value)


def test_inception_features_batches_uint8_channel_first_frames(monkeypatch):
    seen_batches = []

    class StandInExtractor(torch.nn.Module):
        """Records its inputs; its 'features' are each frame's mean colour, repeated to 2048."""

        def __init__(self, name, features_list):
            super().__init__()
            assert features_list == ["2048"]

        def forward(self, batch):
            seen_batches.append(batch)
            return (batch.float().mean(dim=(2, 3)).repeat(1, 2048 // 3 + 1)[:, :2048],)

    stand_in_package = types.ModuleType("torch_fidelity")
    stand_in_package.FeatureExtractorInceptionV3 = StandInExtractor
    monkeypatch.setitem(sys.modules, "torch_fidelity", stand_in_package)
    frames = np.random.default_rng(3).integers(0, 256, size=(5, 12, 10, 3), dtype=np.uint8)
    features = InceptionFeatures(batch_size=2)(frames)
    assert [tuple(batch.shape) for batch in seen_batches] == [(2, 3, 12, 10), (2, 3, 12, 10), (1, 3, 12, 10)]
    assert all(batch.dtype == torch.uint8 for batch in seen_batches)
    assert features.shape == (5, 2048) and features.dtype == np.float64
    np.testing.assert_allclose(features[:, :3], frames.reshape(5, -1, 3).mean(axis=1), rtol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        InceptionFeatures()(frames.astype(np.float32))


def test_inception_features_whose_weights_cannot_be_had(monkeypatch):
    def download_fails(name, features_list):
        raise OSError("network is unreachable")

    stand_in_package = types.ModuleType("torch_fidelity")
    stand_in_package.FeatureExtractorInceptionV3 = download_fails
    monkeypatch.setitem(sys.modules, "torch_fidelity", stand_in_package)
    with pytest.raises(MetricWeightsError, match="network is unreachable"):
        InceptionFeatures()
