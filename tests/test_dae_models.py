"""Tests for the Diff-AE UNet decoder, semantic encoder, presets and the official-checkpoint converter."""

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from talking_head.convert.diffae_checkpoint import convert_diffae_checkpoint, convert_to_pretrained
from talking_head.errors import ModelError
from talking_head.hub_models.dae_unet import DAEUNet
from talking_head.hub_models.diffae_blocks import ResBlock, timestep_embedding
from talking_head.hub_models.presets import DAE_UNET_PRESETS, SEMANTIC_ENCODER_PRESETS
from talking_head.hub_models.semantic_encoder import SemanticEncoder

FIXTURE_KEYS = Path(__file__).parent / "fixtures" / "diffae_ffhq256_keys.json"


def randomized(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter with small random values (zero-initialised convs would hide the conditioning)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model.eval()


def tiny_unet(seed: int = 0) -> DAEUNet:
    return randomized(DAEUNet(**DAE_UNET_PRESETS["tiny"]), seed)


def tiny_encoder(seed: int = 0) -> SemanticEncoder:
    return randomized(SemanticEncoder(**SEMANTIC_ENCODER_PRESETS["tiny"]), seed)


def tiny_inputs(batch: int = 2):
    generator = torch.Generator().manual_seed(1)
    size = DAE_UNET_PRESETS["tiny"]["sample_size"]
    sample = torch.randn(batch, 3, size, size, generator=generator)
    z_sem = torch.randn(batch, DAE_UNET_PRESETS["tiny"]["semantic_dim"], generator=generator)
    return sample, z_sem


def fixture_shapes() -> dict:
    return json.loads(FIXTURE_KEYS.read_text())


def save_synthetic_checkpoint(path: Path, shapes: dict) -> dict:
    """Save ``{"state_dict": ...}`` with one random value per key broadcast to its shape (a tiny file)."""
    generator = torch.Generator().manual_seed(0)
    state_dict = {key: torch.randn(1, generator=generator).expand(shape) for key, shape in shapes.items()}
    torch.save({"state_dict": state_dict, "global_step": 1}, path)
    return state_dict


# --- blocks --------------------------------------------------------------------------------------


def test_timestep_embedding_equals_diffae_cos_then_sin_formula():
    timesteps = torch.tensor([0.0, 1.0, 17.0, 999.0])
    dim = 10
    frequencies = torch.exp(-math.log(10000) * torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
    angles = timesteps[:, None] * frequencies[None]
    expected = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    torch.testing.assert_close(timestep_embedding(timesteps, dim), expected)


def test_resblock_applies_time_scale_shift_then_semantic_scale_after_groupnorm():
    block = randomized(ResBlock(8, 8, time_embed_dim=6, cond_embed_dim=5, num_groups=2))
    x, time_emb, cond_emb = torch.randn(2, 8, 4, 4), torch.randn(2, 6), torch.randn(2, 5)

    h = block.in_layers(x)
    time_scale, time_shift = block.emb_layers(time_emb)[..., None, None].chunk(2, dim=1)
    cond_scale = block.cond_emb_layers(cond_emb)[..., None, None]
    h = block.out_layers[0](h) * (1 + time_scale) + time_shift
    h = h * (1 + cond_scale)
    expected = x + block.out_layers[3](F.silu(h))

    torch.testing.assert_close(block(x, time_emb, cond_emb), expected)


# --- models --------------------------------------------------------------------------------------


def test_tiny_unet_predicts_a_tensor_shaped_like_its_input():
    sample, z_sem = tiny_inputs()
    with torch.no_grad():
        prediction = tiny_unet()(sample, torch.tensor([3, 900]), z_sem)
    assert isinstance(prediction, torch.Tensor)
    assert prediction.shape == sample.shape


def test_unet_accepts_int_float_and_scalar_tensor_timesteps_alike():
    unet = tiny_unet()
    sample, z_sem = tiny_inputs()
    with torch.no_grad():
        reference = unet(sample, torch.tensor([42, 42]), z_sem)
        for timestep in (42, 42.0, torch.tensor(42), torch.tensor([42])):
            torch.testing.assert_close(unet(sample, timestep, z_sem), reference)


def test_tiny_semantic_encoder_maps_images_to_one_vector_each():
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z_sem = tiny_encoder()(images)
    assert z_sem.shape == (3, SEMANTIC_ENCODER_PRESETS["tiny"]["out_dim"])


def test_different_z_sem_give_different_predictions():
    unet = tiny_unet()
    sample, z_sem = tiny_inputs()
    with torch.no_grad():
        first = unet(sample, 500, z_sem)
        second = unet(sample, 500, z_sem + 1.0)
    assert not torch.allclose(first, second, atol=1e-4)


def test_different_timesteps_give_different_predictions():
    unet = tiny_unet()
    sample, z_sem = tiny_inputs()
    with torch.no_grad():
        early = unet(sample, 10, z_sem)
        late = unet(sample, 900, z_sem)
    assert not torch.allclose(early, late, atol=1e-4)


def test_save_pretrained_then_from_pretrained_gives_identical_outputs(tmp_path):
    unet, encoder = tiny_unet(), tiny_encoder()
    unet.save_pretrained(tmp_path / "unet")
    encoder.save_pretrained(tmp_path / "semantic_encoder")
    reloaded_unet = DAEUNet.from_pretrained(tmp_path / "unet").eval()
    reloaded_encoder = SemanticEncoder.from_pretrained(tmp_path / "semantic_encoder").eval()

    sample, _ = tiny_inputs()
    with torch.no_grad():
        z_sem = encoder(sample)
        torch.testing.assert_close(reloaded_encoder(sample), z_sem, rtol=0, atol=1e-6)
        torch.testing.assert_close(reloaded_unet(sample, 321, z_sem), unet(sample, 321, z_sem), rtol=0, atol=1e-6)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert list(reloaded_unet.config.channel_mult) == list(DAE_UNET_PRESETS["tiny"]["channel_mult"])


def test_gradient_checkpointing_gives_the_same_gradients():
    sample, z_sem = tiny_inputs()
    gradients = []
    for checkpointing in (False, True):
        unet = tiny_unet()
        if checkpointing:
            unet.enable_gradient_checkpointing()
        unet(sample, 100, z_sem).square().mean().backward()
        gradients.append(unet.time_embed.time_embed[0].weight.grad)
    torch.testing.assert_close(gradients[0], gradients[1])


def test_paper_size_ffhq256_models_run_once_at_256px_and_have_the_official_parameter_count():
    # About 10 s on 2 CPU cores: one image, one timestep, no autograd.
    torch.manual_seed(0)
    unet = DAEUNet(**DAE_UNET_PRESETS["ffhq256"]).eval()
    encoder = SemanticEncoder(**SEMANTIC_ENCODER_PRESETS["ffhq256"]).eval()
    unet_params = sum(p.numel() for p in unet.parameters())
    encoder_params = sum(p.numel() for p in encoder.parameters())
    print(f"ffhq256 DAEUNet {unet_params:,} + SemanticEncoder {encoder_params:,} = {unet_params + encoder_params:,}")
    # Official ffhq256_autoenc: 138,341,891 + 30,150,400 (its log says "160.68 M" = /1024**2).
    assert 130e6 < unet_params < 145e6
    assert 28e6 < encoder_params < 32e6

    image = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        z_sem = encoder(image)
        prediction = unet(torch.randn(1, 3, 256, 256), 500, z_sem)
    assert z_sem.shape == (1, 512)
    assert prediction.shape == (1, 3, 256, 256)
    assert torch.isfinite(prediction).all()


# --- converter -----------------------------------------------------------------------------------


def test_converter_maps_every_official_ffhq256_key_into_unet_and_encoder_with_strict_loading(tmp_path):
    shapes = fixture_shapes()
    saved = save_synthetic_checkpoint(tmp_path / "last.ckpt", shapes)

    unet_state, encoder_state, extras = convert_diffae_checkpoint(tmp_path / "last.ckpt")

    ema_keys = [key for key in shapes if key.startswith("ema_model.")]
    assert len(unet_state) + len(encoder_state) == len(ema_keys)
    assert set(extras) == {"x_T"}
    torch.testing.assert_close(unet_state["out.2.weight"], saved["ema_model.out.2.weight"])
    torch.testing.assert_close(encoder_state["out.3.weight"], saved["ema_model.encoder.out.3.weight"])
    with torch.device("meta"):
        unet = DAEUNet(**DAE_UNET_PRESETS["ffhq256"])
        encoder = SemanticEncoder(**SEMANTIC_ENCODER_PRESETS["ffhq256"])
    unet.load_state_dict(unet_state, strict=True, assign=True)
    encoder.load_state_dict(encoder_state, strict=True, assign=True)


def test_converter_takes_the_non_ema_weights_when_asked(tmp_path):
    saved = save_synthetic_checkpoint(tmp_path / "last.ckpt", fixture_shapes())
    unet_state, _, _ = convert_diffae_checkpoint(tmp_path / "last.ckpt", use_ema=False)
    torch.testing.assert_close(unet_state["out.2.weight"], saved["model.out.2.weight"])


@pytest.mark.parametrize(
    "change, named_key",
    [
        (lambda shapes: shapes.update({"ema_model.extra_head.weight": [4, 4]}), "ema_model.extra_head.weight"),
        (lambda shapes: shapes.update({"optimizer_leftover": [2]}), "optimizer_leftover"),
        (lambda shapes: shapes.pop("ema_model.middle_block.1.qkv.weight"), "ema_model.middle_block.1.qkv.weight"),
        (lambda shapes: shapes.pop("ema_model.encoder.out.3.bias"), "ema_model.encoder.out.3.bias"),
        (lambda shapes: shapes.update({"ema_model.out.2.weight": [3, 64, 3, 3]}), "ema_model.out.2.weight"),
    ],
    ids=["extra-model-key", "unmapped-top-level-key", "missing-unet-key", "missing-encoder-key", "wrong-shape"],
)
def test_converter_error_names_each_extra_missing_or_misshapen_key(tmp_path, change, named_key):
    shapes = fixture_shapes()
    change(shapes)
    save_synthetic_checkpoint(tmp_path / "last.ckpt", shapes)
    with pytest.raises(ModelError, match=named_key.replace(".", r"\.")):
        convert_diffae_checkpoint(tmp_path / "last.ckpt")


def test_converter_refuses_checkpoints_that_need_unpickling_arbitrary_objects(tmp_path):
    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(lr=1e-4)}, tmp_path / "unsafe.ckpt")
    with pytest.raises(ModelError, match="weights_only"):
        convert_diffae_checkpoint(tmp_path / "unsafe.ckpt")


def test_convert_to_pretrained_writes_loadable_unet_and_encoder_folders(tmp_path):
    trained, ema = (tiny_unet(0), tiny_encoder(0)), (tiny_unet(1), tiny_encoder(1))
    state_dict = {"x_T": torch.randn(2, 3, 16, 16)}
    for prefix, (unet, encoder) in (("model.", trained), ("ema_model.", ema)):
        state_dict.update({prefix + key: value for key, value in unet.state_dict().items()})
        state_dict.update({prefix + "encoder." + key: value for key, value in encoder.state_dict().items()})
    torch.save({"state_dict": state_dict}, tmp_path / "tiny.ckpt")

    output_dir = convert_to_pretrained(tmp_path / "tiny.ckpt", tmp_path / "converted", preset="tiny")

    assert (output_dir / "semantic_encoder" / "diffusion_pytorch_model.safetensors").is_file()
    unet = DAEUNet.from_pretrained(output_dir / "unet").eval()
    encoder = SemanticEncoder.from_pretrained(output_dir / "semantic_encoder").eval()
    sample, z_sem = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(unet(sample, 7, z_sem), ema[0](sample, 7, z_sem), rtol=0, atol=1e-6)
        torch.testing.assert_close(encoder(sample), ema[1](sample), rtol=0, atol=1e-6)
