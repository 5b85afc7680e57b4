"""Convert published TAESD-family weights (e.g. `taef2_encoder.pth` + `taef2_decoder.pth`) to a TinyAutoencoder folder.

The published files are plain state dicts, loaded with `torch.load(weights_only=True)`. Their parameter
names are TinyAutoencoder's under `encoder.` / `decoder.`, so the conversion copies every tensor exactly
(float16 values are held exactly in float32) and refuses files whose names or shapes differ.
"""

from pathlib import Path

from ..errors import ModelError
from .checkpoints import describe_mismatch, load_checkpoint, save_atomically, tensors_only
from ..hub_models.tiny_autoencoder import TinyAutoencoder

def tiny_autoencoder_from_files(encoder_path: str | Path, decoder_path: str | Path,
                                licence: str | None = None) -> TinyAutoencoder:
    """A TinyAutoencoder (float32) holding the published encoder and decoder weights and their licence text."""
    encoder = tensors_only(load_checkpoint(encoder_path, "encoder"), encoder_path)
    decoder = tensors_only(load_checkpoint(decoder_path, "decoder"), decoder_path)
    final_conv = max((k for k in encoder if k.endswith(".weight") and encoder[k].ndim == 4),
                     key=lambda k: int(k.split(".")[0]))
    latent_channels, channels = encoder[final_conv].shape[:2]
    norm_bottleneck = any(".pool." in k for k in encoder)
    model = TinyAutoencoder(latent_channels=int(latent_channels), channels=int(channels),
                            norm_bottleneck=norm_bottleneck, licence=licence)
    state = {f"encoder.{k}": v for k, v in encoder.items()} | {f"decoder.{k}": v for k, v in decoder.items()}
    mismatch = describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise ModelError(f"{encoder_path} and {decoder_path} do not fit a TAESD-family autoencoder ({mismatch})")
    model.load_state_dict(state)  # half-precision values are held exactly in float32
    return model.eval()


def convert_tiny_autoencoder(encoder_path: str | Path, decoder_path: str | Path, output_dir: str | Path,
                             licence: str | Path | None = None) -> Path:
    """Write the converted autoencoder (config, safetensors, and the licence file's text if given) to `output_dir`."""
    licence_text = None
    if licence is not None:
        if not Path(licence).is_file():
            raise ModelError(f"licence file not found: {licence}")
        licence_text = Path(licence).read_text()
    model = tiny_autoencoder_from_files(encoder_path, decoder_path, licence_text)
    return save_atomically(model, output_dir)
