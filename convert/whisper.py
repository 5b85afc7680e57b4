"""Whisper weights a user already has (an OpenAI `.pt` checkpoint, a transformers Whisper folder or Hub repo, or an
encoder folder) to an encoder folder: transformers' `WhisperEncoder` in safetensors with its licence, what
`train --features whisper --speech-model` takes and a pipeline carries as its `speech_model`."""

from pathlib import Path

import torch

from ..errors import ModelError
from ..media.whisper import load_whisper_encoder
from .checkpoints import save_atomically


def convert_whisper_encoder(source: str | Path, output_dir: str | Path, licence: str | Path | None = None,
                            half: bool = False, **download_kwargs) -> Path:
    """Write Whisper's audio encoder from `source` (config.json, model.safetensors, LICENSE) to `output_dir`, replacing
    it whole; the decoder and tokenizer are left behind.

    LICENSE holds the text of the `licence` file when given, else the licence found beside the weights (OpenAI's MIT
    notice for a `.pt` checkpoint). `half` stores float16 weights (half the size; they load as float32).
    """
    if licence is not None and not Path(licence).is_file():
        raise ModelError(f"licence file not found: {licence}")
    encoder = load_whisper_encoder(source, torch.float16 if half else torch.float32, **download_kwargs)
    if licence is not None:
        encoder.config.licence = Path(licence).read_text()
    return save_atomically(encoder, output_dir, licence=getattr(encoder.config, "licence", None))

