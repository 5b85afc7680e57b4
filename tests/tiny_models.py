"""Tiny, untrained models for behaviour tests: real classes, test-size configs."""

from pathlib import Path

import torch
from diffusers import DDIMScheduler, UNet2DConditionModel

from talking_head.hub_models.dae_unet import DAEUNet
from talking_head.hub_models.autoencoders import downsampling_factor
from talking_head.hub_models.frame_autoencoder import build_frame_autoencoder
from talking_head.hub_models.tiny_autoencoder import TinyAutoencoder
from talking_head.hub_models.a2l import AudioToLandmarks
from talking_head.hub_models.landmark_encoder import LandmarkEncoder
from talking_head.hub_models.presets import (A2L_PRESETS, DAE_UNET_PRESETS, L2V_SCHEDULER_CONFIG, L2V_UNET_PRESETS,
                                             LANDMARK_ENCODER_PRESETS, SEMANTIC_ENCODER_PRESETS, SPEECH2LATENT_PRESETS)
from talking_head.hub_models.semantic_encoder import SemanticEncoder
from talking_head.hub_models.speech2latent import Speech2Latent
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

LOGMEL_DIM = 320


def randomise_zero_initialised_layers(model: torch.nn.Module) -> torch.nn.Module:
    """Give the layers that diffae initialises to zero random values, so every input reaches the output."""
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(std=0.2)
    return model


def tiny_dae_pipeline(latent_space: bool = False, seed: int = 0) -> DAETalkerPipeline:
    """A tiny DAE-Talker (16x16 pixels, or 64x64 frames through a 16x16 autoencoder latent) with random weights."""
    torch.manual_seed(seed)
    image_size = 64 if latent_space else 16
    unet = randomise_zero_initialised_layers(DAEUNet(**DAE_UNET_PRESETS["tiny"]))
    encoder = SemanticEncoder(**{**SEMANTIC_ENCODER_PRESETS["tiny"], "sample_size": image_size})
    speech2latent = Speech2Latent(**SPEECH2LATENT_PRESETS["tiny"], feature_dim=LOGMEL_DIM, semantic_dim=16)
    scheduler = DDIMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02, prediction_type="v_prediction")
    vae = build_frame_autoencoder("tiny", image_size) if latent_space else None
    return DAETalkerPipeline(unet=unet, semantic_encoder=encoder, scheduler=scheduler, vae=vae,
                             speech2latent=speech2latent).eval_mode()


def tiny_taesd(latent_channels: int = 3, licence: str | None = None) -> TinyAutoencoder:
    """A TAESD-family autoencoder (f=8) with 8 feature channels and random weights."""
    return TinyAutoencoder(latent_channels=latent_channels, channels=8, licence=licence).eval()


def tiny_landmark_pipeline(seed: int = 0, vae=None) -> LandmarkDiffusionPipeline:
    """A tiny landmark pipeline (32x32 face crops; an 8x8 latent, or `vae`'s) with random weights; A2L moves
    points by ~1%."""
    torch.manual_seed(seed)
    a2l = AudioToLandmarks(**A2L_PRESETS["tiny"], feature_dim=LOGMEL_DIM)
    a2l.displacement_std.fill_(0.01)
    vae = vae if vae is not None else build_frame_autoencoder("tiny", 32)
    channels = vae.config.latent_channels
    unet_config = {**L2V_UNET_PRESETS["tiny"], "sample_size": 32 // downsampling_factor(vae),
                   "in_channels": 4 * channels, "out_channels": channels}
    return LandmarkDiffusionPipeline(
        vae=vae,
        unet=randomise_zero_initialised_layers(UNet2DConditionModel(**unet_config)),
        landmark_encoder=LandmarkEncoder(**LANDMARK_ENCODER_PRESETS["tiny"]),
        scheduler=DDIMScheduler(**L2V_SCHEDULER_CONFIG),
        a2l=a2l,
    ).eval_mode()


def save_tiny_wav2vec2(folder: Path, **overrides) -> Path:
    """A wav2vec 2.0 model with 32-d hidden states and random weights, saved to `folder` (50 frames per second)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(0)
    settings = dict(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(32, 32),
        conv_kernel=(20, 16),
        conv_stride=(20, 16),  # 320 samples per output frame: 50 Hz like the real models
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        vocab_size=12,
    )
    settings.update(overrides)
    Wav2Vec2Model(Wav2Vec2Config(**settings)).save_pretrained(folder)
    return folder


def tiny_whisper_config(**overrides):
    """A Whisper config with a 16-d, 2-layer encoder: real window length (3000 mel frames), tiny width."""
    from transformers import WhisperConfig

    # OpenAI's checkpoints name no feed-forward width: it is 4 times d_model, as here.
    settings = dict(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
                    decoder_attention_heads=2, decoder_ffn_dim=64, max_target_positions=16, num_mel_bins=80,
                    max_source_positions=1500)
    settings.update(overrides)
    return WhisperConfig(**settings)


def tiny_whisper_encoder(**overrides):
    """A Whisper audio encoder with random weights (seeded), in eval mode."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    return WhisperEncoder(tiny_whisper_config(**overrides)).eval()


def save_tiny_whisper(folder: Path, layout: str = "encoder") -> Path:
    """A tiny random Whisper saved as `layout`: "encoder" (WhisperEncoder names, as `convert-whisper` writes),
    "transformers" (a whole WhisperForConditionalGeneration folder) or "openai" (an OpenAI `.pt` checkpoint, `folder`
    being the file). Returns the saved path; `tiny_whisper_reference(layout)` is the encoder it holds."""
    from transformers import WhisperForConditionalGeneration

    if layout == "encoder":
        tiny_whisper_encoder().save_pretrained(folder)
        return folder
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(tiny_whisper_config()).eval()
    if layout == "transformers":
        model.save_pretrained(folder)
        return folder
    # OpenAI's own names for the same tensors (whisper/model.py: AudioEncoder, ResidualAttentionBlock).
    names = {"embed_positions.weight": "positional_embedding", "self_attn.q_proj.": "attn.query.",
             "self_attn.k_proj.": "attn.key.", "self_attn.v_proj.": "attn.value.", "self_attn.out_proj.": "attn.out.",
             "self_attn_layer_norm.": "attn_ln.", "fc1.": "mlp.0.", "fc2.": "mlp.2.", "final_layer_norm.": "mlp_ln.",
             "layers.": "blocks.", "layer_norm.": "ln_post."}  # in this order: the last only renames what is left
    state = {}
    for name, tensor in model.model.encoder.state_dict().items():
        for ours, theirs in names.items():
            name = name.replace(ours, theirs)
        state["encoder." + name] = tensor.clone()
    state["decoder.token_embedding.weight"] = model.model.decoder.embed_tokens.weight.clone()
    config = model.config
    dims = {"n_mels": config.num_mel_bins, "n_audio_ctx": config.max_source_positions,
            "n_audio_state": config.d_model, "n_audio_head": config.encoder_attention_heads,
            "n_audio_layer": config.encoder_layers, "n_vocab": config.vocab_size,
            "n_text_ctx": config.max_target_positions, "n_text_state": config.d_model,
            "n_text_head": config.decoder_attention_heads, "n_text_layer": config.decoder_layers}
    torch.save({"dims": dims, "model_state_dict": state}, folder)
    return folder


def tiny_whisper_reference(layout: str = "encoder"):
    """The encoder that `save_tiny_whisper(..., layout)` saves, to compare a loaded one with."""
    from transformers import WhisperForConditionalGeneration

    if layout == "encoder":
        return tiny_whisper_encoder()
    torch.manual_seed(0)
    return WhisperForConditionalGeneration(tiny_whisper_config()).eval().model.encoder
