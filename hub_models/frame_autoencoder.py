"""The small frame autoencoder (downsampling factor 4, 3-channel latent) shared by both pipelines.

It is diffusers' `AutoencoderKL`, configured small enough to train on one person's frames in minutes;
DAE-Talker's latent-space decoder and the landmark pipeline's L2V both diffuse in its latent. Any f=4
autoencoder from the Hub (e.g. the VQ model of `CompVis/ldm-celebahq-256`) can stand in for it.
"""

from diffusers import AutoencoderKL

FRAME_AUTOENCODER_PRESETS = {
    # ~1M parameters: trains in minutes on a CPU at 64x64 to 128x128.
    "small": dict(block_out_channels=(32, 64, 64), layers_per_block=1, norm_num_groups=16, mid_block_add_attention=False),
    # ~3.5M parameters, for 256x256 frames on a GPU.
    "base": dict(block_out_channels=(64, 128, 128), layers_per_block=2, norm_num_groups=32, mid_block_add_attention=True),
    # for tests
    "tiny": dict(block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, mid_block_add_attention=False),
}


def build_frame_autoencoder(preset: str = "small", sample_size: int = 64) -> AutoencoderKL:
    """A new, untrained f=4 autoencoder with a 3-channel latent."""
    settings = FRAME_AUTOENCODER_PRESETS[preset]
    num_blocks = len(settings["block_out_channels"])  # f = 2 ** (num_blocks - 1) = 4
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * num_blocks,
        up_block_types=("UpDecoderBlock2D",) * num_blocks,
        latent_channels=3,
        sample_size=sample_size,
        scaling_factor=1.0,
        **settings,
    )
