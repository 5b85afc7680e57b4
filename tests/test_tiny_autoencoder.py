"""The pretrained TAESD-family frame autoencoder: exact conversion of the published files, per-channel latent
scaling, the latent cache, and its place as the `vae` of both pipelines."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from talking_head.cli import main
from talking_head.convert.tiny_autoencoder import convert_tiny_autoencoder
from talking_head.errors import ModelError
from talking_head.faces.landmarks import get_landmarker
from talking_head.faces.portrait import find_portrait_face
from talking_head.hub_models.autoencoders import (
    decode_latents,
    encode_latents,
    load_autoencoder,
    measure_latent_statistics,
)
from talking_head.hub_models.tiny_autoencoder import TinyAutoencoder
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline
from talking_head.data.dataset import Clip
from talking_head.training.latent_cache import cached_raw_latents, module_fingerprint
from tiny_models import tiny_dae_pipeline, tiny_landmark_pipeline, tiny_taesd

TAEF2 = Path(__file__).resolve().parents[2] / "shared" / "weights" / "taef2"
ASTRONAUT = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


def published_files(model: TinyAutoencoder, folder: Path) -> tuple[Path, Path]:
    """The model's weights written as the published files are: two half-precision state dicts, unprefixed."""
    state = model.state_dict()
    paths = []
    for part in ("encoder", "decoder"):
        weights = {key[len(part) + 1:]: value.half() for key, value in state.items() if key.startswith(part + ".")}
        paths.append(folder / f"tiny_{part}.pth")
        torch.save(weights, paths[-1])
    return tuple(paths)


def _block(x, weights, prefix):
    """A published residual block, evaluated straight from its state dict."""
    if f"{prefix}.pool.0.weight" in weights:
        wide = F.conv2d(x, weights[f"{prefix}.pool.0.weight"])
        wide = F.group_norm(wide, 4, weights[f"{prefix}.pool.1.weight"], weights[f"{prefix}.pool.1.bias"])
        x = x + F.conv2d(F.relu(wide), weights[f"{prefix}.pool.3.weight"])
    y = x
    for i in (0, 2, 4):
        y = F.conv2d(y, weights[f"{prefix}.conv.{i}.weight"], weights[f"{prefix}.conv.{i}.bias"], padding=1)
        y = F.relu(y) if i < 4 else y
    return F.relu(y + x)


def _conv(x, weights, index, stride=1):
    return F.conv2d(x, weights[f"{index}.weight"], weights.get(f"{index}.bias"), stride=stride, padding=1)


def reference_encode(weights, images01):
    """The published encoder's layout read off its key names: conv, block, then 3 x (stride-2 conv, 3 blocks), conv."""
    x = _block(_conv(images01, weights, 0), weights, 1)
    index = 2
    for _ in range(3):
        x = _conv(x, weights, index, stride=2)
        for block in range(index + 1, index + 4):
            x = _block(x, weights, block)
        index += 4
    return _conv(x, weights, index)


def reference_decode(weights, latents):
    """The published decoder: soft clamp, conv, ReLU, 3 x (3 blocks, upsample, conv), block, conv; output in [0,1]."""
    x = F.relu(_conv(torch.tanh(latents / 3) * 3, weights, 1))
    index = 3
    for _ in range(3):
        for block in range(index, index + 3):
            x = _block(x, weights, block)
        x = _conv(F.interpolate(x, scale_factor=2, mode="nearest"), weights, index + 4)
        index += 5
    return _conv(_block(x, weights, index), weights, index + 1).clamp(0, 1)


@pytest.fixture
def tiny_random_files(tmp_path):
    torch.manual_seed(0)
    model = TinyAutoencoder(latent_channels=4, channels=8, norm_bottleneck=True)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=0.3)
    return published_files(model, tmp_path)


def test_the_converter_reproduces_the_published_networks_exactly(tiny_random_files, tmp_path):
    encoder_file, decoder_file = tiny_random_files
    folder = convert_tiny_autoencoder(encoder_file, decoder_file, tmp_path / "converted")
    converted = load_autoencoder(folder)
    assert isinstance(converted, TinyAutoencoder)
    assert (converted.config.latent_channels, converted.config.channels) == (4, 8)
    encoder = {k: v.float() for k, v in torch.load(encoder_file, weights_only=True).items()}
    decoder = {k: v.float() for k, v in torch.load(decoder_file, weights_only=True).items()}
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        raw = converted.encode_raw(images)
        assert torch.allclose(raw, reference_encode(encoder, (images + 1) / 2), atol=1e-5)
        assert raw.shape == (2, 4, 4, 4)
        decoded = converted.decode_raw(raw)
        assert torch.allclose((decoded + 1) / 2, reference_decode(decoder, raw), atol=1e-5)
    for key, value in converted.state_dict().items():
        part, name = key.split(".", 1)
        assert torch.equal(value, (encoder if part == "encoder" else decoder)[name]), key


def test_files_of_another_layout_are_refused_by_name(tiny_random_files, tmp_path):
    encoder_file, decoder_file = tiny_random_files
    broken = torch.load(decoder_file, weights_only=True)
    del broken["19.bias"]
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match=r"missing: decoder\.19\.bias"):
        convert_tiny_autoencoder(encoder_file, tmp_path / "broken.pth", tmp_path / "out")
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(ModelError, match="not a plain PyTorch checkpoint"):
        convert_tiny_autoencoder(tmp_path / "text.pth", decoder_file, tmp_path / "out")
    with pytest.raises(ModelError, match="not found"):
        convert_tiny_autoencoder(tmp_path / "absent.pth", decoder_file, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_published_taef2_reconstructs_a_face_it_never_saw(tmp_path, capsys):
    if not (TAEF2 / "taef2_encoder.pth").exists():
        pytest.skip(f"the TAEF2 weights are absent ({TAEF2}; the ../shared folder is not checked out here)")
    assert main(["convert-taesd", "--encoder", str(TAEF2 / "taef2_encoder.pth"), "--decoder",
                 str(TAEF2 / "taef2_decoder.pth"), "--licence", str(TAEF2 / "LICENSE"), "--out", str(tmp_path / "taef2")]) == 0
    vae = load_autoencoder(tmp_path / "taef2")
    assert "Ollin Boer Bohan" in (tmp_path / "taef2" / "LICENSE").read_text()
    face = find_portrait_face(ASTRONAUT, 128, 2.0, get_landmarker("dlib")).crop
    images = torch.from_numpy(face.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        latents = encode_latents(vae, images)
        reconstructed = decode_latents(vae, latents)
    assert latents.shape == (1, 32, 16, 16)
    psnr = 10 * torch.log10(4 / (reconstructed - images).pow(2).mean())
    assert psnr > 30, f"{psnr:.1f} dB"


def test_measured_statistics_give_unit_variance_latents_and_decode_back():
    vae = tiny_taesd()
    images = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        raw = vae.encode_raw(images)
        measure_latent_statistics(vae, raw)
        latents = encode_latents(vae, images)
        flat = latents.transpose(0, 1).reshape(latents.shape[1], -1)
        assert torch.allclose(flat.mean(1), torch.zeros(len(flat)), atol=1e-3)
        assert torch.allclose(flat.std(1), torch.ones(len(flat)), atol=1e-3)
        assert torch.allclose(decode_latents(vae, latents), vae.decode_raw(raw), atol=1e-5)


def test_latents_are_encoded_once_and_a_changed_autoencoder_does_not_read_them(tmp_path):
    clip = Clip("clip", tmp_path, 4, (0, 3), (3, 4))
    vae = tiny_taesd()
    frames = torch.rand(4, 3, 32, 32) * 2 - 1
    encoded = []

    def images():
        encoded.append(len(frames))
        yield frames

    fingerprint = module_fingerprint(vae)
    first = cached_raw_latents(clip, "frames", 32, 1, vae, fingerprint, images)
    again = cached_raw_latents(clip, "frames", 32, 1, vae, fingerprint, images)
    assert encoded == [4] and torch.equal(first, again)
    assert len(list(tmp_path.glob("latents-frames-32px-every1-*.npy"))) == 1
    with torch.no_grad():
        vae.decoder[-1].bias.add_(0.5)  # the decoder alone changes: another autoencoder all the same
    assert module_fingerprint(vae) != fingerprint
    cached_raw_latents(clip, "frames", 32, 1, vae, module_fingerprint(vae), images)
    assert encoded == [4, 4] and not list(tmp_path.glob(".*"))


def test_the_landmark_pipeline_keeps_its_tiny_autoencoder_and_the_licence_in_the_card(tmp_path):
    landmark = tiny_landmark_pipeline(vae=tiny_taesd(licence="MIT License\nCopyright (c) someone"))
    assert landmark.image_size == 32
    landmark.save_pretrained(tmp_path)
    loaded = LandmarkDiffusionPipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.vae, TinyAutoencoder) and loaded.image_size == 32
    assert "Copyright (c) someone" in (tmp_path / "vae" / "LICENSE").read_text()
    card = (tmp_path / "README.md").read_text()
    assert "## Licence of the weights of `vae`" in card and "Copyright (c) someone" in card
    frames = loaded.decode_images(loaded.encode_images(torch.zeros(1, 3, 32, 32)))
    assert frames.shape == (1, 3, 32, 32)


def test_the_dae_pipeline_takes_the_tiny_autoencoder_as_its_latent_space(tmp_path):
    dae = tiny_dae_pipeline(latent_space=True)
    vae = tiny_taesd(latent_channels=dae.vae.config.latent_channels)
    dae = DAETalkerPipeline(unet=dae.unet, semantic_encoder=dae.semantic_encoder, scheduler=dae.scheduler, vae=vae,
                            speech2latent=dae.speech2latent)
    dae.save_pretrained(tmp_path)
    loaded = DAETalkerPipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.vae, TinyAutoencoder)
    frames = list(loaded.decode_latents(torch.zeros(2, 16), loaded.initial_noise(0), 2))
    assert np.concatenate(frames).shape[0] == 2
