"""Every named model size constructs and runs a forward pass (the paper-size DAE presets: test_dae_models.py)."""

import pytest
import torch

from talking_head.hub_models.a2l import AudioToLandmarks
from talking_head.hub_models.frame_autoencoder import FRAME_AUTOENCODER_PRESETS, build_frame_autoencoder
from talking_head.hub_models.landmark_encoder import LandmarkEncoder
from talking_head.hub_models.presets import A2L_PRESETS, L2V_UNET_PRESETS, LANDMARK_ENCODER_PRESETS, SPEECH2LATENT_PRESETS
from talking_head.hub_models.speech2latent import Speech2Latent


@pytest.mark.parametrize("preset", sorted(SPEECH2LATENT_PRESETS))
def test_speech2latent_presets_map_wav2vec2_features_to_latents_and_pose(preset):
    model = Speech2Latent(**SPEECH2LATENT_PRESETS[preset], feature_dim=768).eval()
    with torch.no_grad():
        output = model(torch.randn(1, 250, 768))  # 10 s at 25 fps
    assert output["latents"].shape == (1, 250, 512) and output["pose"].shape == (1, 250, 6)


@pytest.mark.parametrize("preset", sorted(FRAME_AUTOENCODER_PRESETS))
def test_frame_autoencoder_presets_downsample_by_four_into_three_channels(preset):
    autoencoder = build_frame_autoencoder(preset, sample_size=256 if preset == "base" else 64).eval()
    size = autoencoder.config.sample_size
    with torch.no_grad():
        latent = autoencoder.encode(torch.randn(1, 3, size, size)).latent_dist.mode()
        assert latent.shape == (1, 3, size // 4, size // 4)
        assert autoencoder.decode(latent).sample.shape == (1, 3, size, size)


@pytest.mark.parametrize("preset", sorted(L2V_UNET_PRESETS))
def test_l2v_presets_denoise_a_latent_given_three_condition_latents_and_landmark_tokens(preset):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(**L2V_UNET_PRESETS[preset]).eval()
    encoder = LandmarkEncoder(**LANDMARK_ENCODER_PRESETS[preset]).eval()
    size = unet.config.sample_size
    with torch.no_grad():
        tokens = encoder(torch.rand(1, 68, 2) * 2 - 1)
        output = unet(torch.randn(1, 12, size, size), 500, encoder_hidden_states=tokens).sample
    assert tokens.shape == (1, 68, unet.config.cross_attention_dim)
    assert output.shape == (1, 3, size, size) and torch.isfinite(output).all()


@pytest.mark.parametrize("preset", sorted(A2L_PRESETS))
def test_a2l_presets_give_68_points_per_frame(preset):
    model = AudioToLandmarks(**A2L_PRESETS[preset]).eval()
    with torch.no_grad():
        output = model(torch.randn(1, 250, 320), torch.rand(1, 256), torch.rand(1, 68, 2))
    assert output["displacements"].shape == (1, 250, 68, 2)
