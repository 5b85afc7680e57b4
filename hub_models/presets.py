"""Named constructor configs for :class:`DAEUNet` and :class:`SemanticEncoder`.

Use as ``DAEUNet(**DAE_UNET_PRESETS["latent-small"])``.

The ``ffhq256`` presets reproduce the official Diff-AE ``ffhq256_autoenc``
model (phizaz/diffae ``templates.py``): decoder 138,341,891 parameters,
encoder 30,150,400, together 168,492,291 (the official code prints this as
"160.68 M" because it divides by 1024**2).

The official checkpoints were trained and are sampled with:
  - 1000 diffusion steps, linear betas from 1e-4 to 0.02 (``np.linspace``,
    identical to diffusers' ``beta_schedule="linear"``),
  - epsilon prediction, fixed-large variance, MSE loss,
  - unscaled integer timesteps 0..999 fed to the model,
  - images in [-1, 1]; sampling with DDIM (20 steps for evaluation).
``DIFFAE_SCHEDULER_CONFIG`` holds the matching diffusers scheduler arguments.
"""

from .a2l import SPEECH_POINTS

DIFFAE_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "prediction_type": "epsilon",
}

DAE_UNET_PRESETS = {
    # Official ffhq256 autoencoder decoder: 138.3M parameters.
    "ffhq256": {
        "sample_size": 256,
        "in_channels": 3,
        "out_channels": 3,
        "model_channels": 128,
        "channel_mult": (1, 1, 2, 2, 4, 4),
        "num_res_blocks": 2,
        "attention_resolutions": (16,),
        "semantic_dim": 512,
        "embed_channels": 512,
        "dropout": 0.1,
        "num_heads": 1,
        "resblock_updown": True,
        "conv_resample": True,
        "num_groups": 32,
    },
    # 3-channel 32x32 latent, levels 32/16/8 px, attention at 16 and 8: 6.5M parameters.
    # For a 16x16 latent set sample_size=16 (attention then sits at the 16 and 8 px levels).
    "latent-small": {
        "sample_size": 32,
        "in_channels": 3,
        "out_channels": 3,
        "model_channels": 64,
        "channel_mult": (1, 1, 2),
        "num_res_blocks": 2,
        "attention_resolutions": (16, 8),
        "semantic_dim": 512,
        "embed_channels": 256,
        "dropout": 0.1,
        "num_heads": 4,
        "resblock_updown": True,
        "conv_resample": True,
        "num_groups": 32,
    },
    # For tests: 16x16 input, 55k parameters.
    "tiny": {
        "sample_size": 16,
        "in_channels": 3,
        "out_channels": 3,
        "model_channels": 8,
        "channel_mult": (1, 2),
        "num_res_blocks": 1,
        "attention_resolutions": (8,),
        "semantic_dim": 16,
        "embed_channels": 32,
        "dropout": 0.0,
        "num_heads": 2,
        "resblock_updown": True,
        "conv_resample": True,
        "num_groups": 4,
    },
}

SEMANTIC_ENCODER_PRESETS = {
    # Official ffhq256 autoencoder encoder: 30.2M parameters.
    "ffhq256": {
        "sample_size": 256,
        "in_channels": 3,
        "model_channels": 128,
        "channel_mult": (1, 1, 2, 2, 4, 4, 4),
        "num_res_blocks": 2,
        "attention_resolutions": (16,),
        "out_dim": 512,
        "num_heads": 1,
        "resblock_updown": True,
        "conv_resample": True,
        "num_groups": 32,
    },
    # 128 px faces (also runs at 64 px), pooled from 8x8: 3.2M parameters.
    "small": {
        "sample_size": 128,
        "in_channels": 3,
        "model_channels": 32,
        "channel_mult": (1, 2, 2, 4, 8),
        "num_res_blocks": 2,
        "attention_resolutions": (16,),
        "out_dim": 512,
        "num_heads": 1,
        "resblock_updown": True,
        "conv_resample": True,
        "num_groups": 32,
    },
    # For tests: 16x16 input, pairs with the "tiny" DAEUNet (out_dim == semantic_dim).
    "tiny": {
        "sample_size": 16,
        "in_channels": 3,
        "model_channels": 8,
        "channel_mult": (1, 2),
        "num_res_blocks": 1,
        "attention_resolutions": (8,),
        "out_dim": 16,
        "num_heads": 1,
        "resblock_updown": True,
        "conv_resample": True,
        "num_groups": 4,
    },
}

SPEECH2LATENT_PRESETS = {
    # Conformer width 256, 4 blocks before and 4 after the pose adaptor: 9.6M parameters with log-mel input.
    "base": {"hidden_dim": 256, "num_heads": 4, "num_blocks_before_pose": 4, "num_blocks_after_pose": 4,
             "ff_expansion": 4, "conv_kernel_size": 15, "dropout": 0.1},
    # 2 + 2 blocks of width 192, for a CPU or a few minutes of footage.
    "small": {"hidden_dim": 192, "num_heads": 4, "num_blocks_before_pose": 2, "num_blocks_after_pose": 2,
              "ff_expansion": 4, "conv_kernel_size": 15, "dropout": 0.1},
    # For tests.
    "tiny": {"hidden_dim": 32, "num_heads": 2, "num_blocks_before_pose": 1, "num_blocks_after_pose": 1,
             "ff_expansion": 2, "conv_kernel_size": 5, "dropout": 0.0},
}

# L2V's denoising UNet (diffusers' UNet2DConditionModel). Input: the noisy latent concatenated with the
# latents of the rendered landmarks, the pose reference and the identity reference (4 x 3 channels).
_L2V_COMMON = {"in_channels": 12, "out_channels": 3, "flip_sin_to_cos": True, "freq_shift": 0}
L2V_UNET_PRESETS = {
    # Paper size: 256x256 frames, a 64x64x3 latent; the widths of LDM's CelebA-HQ model: 415M parameters.
    "paper": {**_L2V_COMMON, "sample_size": 64, "block_out_channels": (224, 448, 672, 896), "layers_per_block": 2,
              "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
              "cross_attention_dim": 512, "attention_head_dim": 32, "norm_num_groups": 32},
    # 96x96 frames, a 24x24 latent, attention at 12 and 6 px: 4.2M parameters, trains on a CPU.
    "small": {**_L2V_COMMON, "sample_size": 24, "block_out_channels": (32, 64, 128), "layers_per_block": 1,
              "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
              "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
              "cross_attention_dim": 128, "attention_head_dim": 8, "norm_num_groups": 16},
    # 128x128 frames in the pretrained TAEF2's 16x16x32 latent (the task sets the channels), attention at 8 and
    # 4 px: 6.8M parameters, trains on a CPU.
    "medium": {**_L2V_COMMON, "sample_size": 16, "block_out_channels": (64, 128, 128), "layers_per_block": 1,
               "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
               "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
               "cross_attention_dim": 128, "attention_head_dim": 8, "norm_num_groups": 32},
    # For tests.
    "tiny": {**_L2V_COMMON, "sample_size": 8, "block_out_channels": (8, 16), "layers_per_block": 1,
             "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
             "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
             "cross_attention_dim": 16, "attention_head_dim": 4, "norm_num_groups": 4},
}

LANDMARK_ENCODER_PRESETS = {
    "paper": {"hidden_dim": 256, "output_dim": 512, "num_layers": 4, "num_heads": 8},
    "small": {"hidden_dim": 128, "output_dim": 128, "num_layers": 2, "num_heads": 4},
    "medium": {"hidden_dim": 128, "output_dim": 128, "num_layers": 2, "num_heads": 4},
    "tiny": {"hidden_dim": 16, "output_dim": 16, "num_layers": 1, "num_heads": 2},
}

# The latent diffusion schedule of LDM's CelebA-HQ model ("linear" in LDM is diffusers' "scaled_linear"),
# with 1000 training steps as in the paper; v-prediction trains faster on small data.
L2V_SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.0015,
    "beta_end": 0.0195,
    "prediction_type": "v_prediction",
    "clip_sample": False,
}

A2L_PRESETS = {
    # The paper's widths (content and identity dimensions 256): 5.9M parameters with log-mel input.
    "paper": {"hidden_dim": 256, "content_layers": 2, "identity_layers": 1, "dropout": 0.1},
    # For a few minutes of footage: only the lips and chin move.
    "small": {"hidden_dim": 128, "content_layers": 2, "identity_layers": 1, "dropout": 0.2,
              "moving_points": list(SPEECH_POINTS)},
    # For tests.
    "tiny": {"hidden_dim": 16, "content_layers": 1, "identity_layers": 1, "dropout": 0.0},
}
