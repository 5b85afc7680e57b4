"""Convert published TAESD-family weights (e.g. `taef2_encoder.pth` + `taef2_decoder.pth`) to a TinyAutoencoder folder.

The published files are plain state dicts, loaded with `torch.load(weights_only=True)`. Their parameter
names are TinyAutoencoder's under `encoder.` / `decoder.`, so the conversion copies every tensor exactly
(float16 values are held exactly in float32) and refuses files whose names or shapes differ.
"""

import shutil
import tempfile
from pathlib import Path

import torch

from ..errors import ModelError
from ..hub_models.tiny_autoencoder import TinyAutoencoder

MAX_LISTED_KEYS = 10


def _load_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} weights not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError / RuntimeError: not a plain tensor file
        raise ModelError(f"{path} is not a plain PyTorch state dict: {error}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not a state dict of tensors")
    return state


def _describe_mismatch(expected: dict, found: dict) -> str:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(found) if expected[k].shape != found[k].shape)
    parts = [f"{label}: {', '.join(keys[:MAX_LISTED_KEYS])}{' ...' if len(keys) > MAX_LISTED_KEYS else ''}"
             for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", wrong_shape)) if keys]
    return "; ".join(parts)


def tiny_autoencoder_from_files(encoder_path: str | Path, decoder_path: str | Path,
                                licence: str | None = None) -> TinyAutoencoder:
    """A TinyAutoencoder (float32) holding the published encoder and decoder weights and their licence text."""
    encoder = _load_state_dict(encoder_path, "encoder")
    decoder = _load_state_dict(decoder_path, "decoder")
    final_conv = max((k for k in encoder if k.endswith(".weight") and encoder[k].ndim == 4),
                     key=lambda k: int(k.split(".")[0]))
    latent_channels, channels = encoder[final_conv].shape[:2]
    norm_bottleneck = any(".pool." in k for k in encoder)
    model = TinyAutoencoder(latent_channels=int(latent_channels), channels=int(channels),
                            norm_bottleneck=norm_bottleneck, licence=licence)
    state = {f"encoder.{k}": v for k, v in encoder.items()} | {f"decoder.{k}": v for k, v in decoder.items()}
    mismatch = _describe_mismatch(model.state_dict(), state)
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
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        model.save_pretrained(staging)
        shutil.rmtree(output_dir, ignore_errors=True)
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir
