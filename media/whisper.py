"""Whisper's audio encoder (Radford et al., 2022; OpenAI, MIT) as transformers' `WhisperEncoder`, from whatever
layout a user has it in.

- an encoder folder: `config.json` (a `WhisperConfig`) and safetensors in `WhisperEncoder`'s own names (what
  `talking-head convert-whisper` writes, and what a pipeline folder's `speech_model` holds);
- a transformers Whisper folder or Hub repo (`openai/whisper-base`): `WhisperModel` / `WhisperForConditionalGeneration`
  safetensors, of which only the encoder is kept;
- an OpenAI checkpoint (`base.pt`, `tiny.en.pt`): its `dims` and `model_state_dict`, read with
  `torch.load(weights_only=True)` and renamed.

The weights' licence travels in the encoder's config as `licence` (the text of a LICENSE file beside them; OpenAI's
MIT notice for an OpenAI checkpoint), and pipelines write it beside the weights they save and into their card.
"""

import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from ..convert.checkpoints import describe_mismatch, load_checkpoint
from ..errors import ModelError

# Whisper hears windows of 80 (128 for large-v3) log-mel bins every 10 ms (30 s: its config's max_source_positions
# over this rate) and gives 50 vectors a second.
OUTPUT_RATE = 50

# OpenAI's names of the encoder's parameters -> transformers' WhisperEncoder names.
_OPENAI_NAMES = [
    (r"^encoder\.positional_embedding$", "embed_positions.weight"),
    (r"^encoder\.conv([12])\.", r"conv\1."),
    (r"^encoder\.ln_post\.", "layer_norm."),
    (r"^encoder\.blocks\.(\d+)\.attn\.query\.", r"layers.\1.self_attn.q_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn\.key\.", r"layers.\1.self_attn.k_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn\.value\.", r"layers.\1.self_attn.v_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn\.out\.", r"layers.\1.self_attn.out_proj."),
    (r"^encoder\.blocks\.(\d+)\.attn_ln\.", r"layers.\1.self_attn_layer_norm."),
    (r"^encoder\.blocks\.(\d+)\.mlp\.0\.", r"layers.\1.fc1."),
    (r"^encoder\.blocks\.(\d+)\.mlp\.2\.", r"layers.\1.fc2."),
    (r"^encoder\.blocks\.(\d+)\.mlp_ln\.", r"layers.\1.final_layer_norm."),
]
OPENAI_NOTICE = """MIT License

Copyright (c) 2022 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
# Where the encoder sits in transformers' full Whisper checkpoints.
_TRANSFORMERS_PREFIXES = ("model.encoder.", "encoder.")


def load_whisper_encoder(source: str | os.PathLike, dtype: torch.dtype = torch.float32,
                         **download_kwargs) -> WhisperEncoder:
    """Whisper's audio encoder from an encoder folder, a transformers Whisper folder or Hub repo id, or an OpenAI
    `.pt` checkpoint, as a `WhisperEncoder` in eval mode. Raises ModelError, naming the source, when it cannot."""
    path = Path(source)
    if path.is_file():
        config, state = _openai_checkpoint(path)
        config.licence = OPENAI_NOTICE
    elif path.is_dir():
        config, state = _transformers_folder(path)
    elif str(source).startswith((".", "/", "~")) or str(source).count("/") != 1:
        raise ModelError(f"Whisper weights not found: {source} (give an encoder folder, a transformers Whisper "
                         "folder or Hub repo id, or an OpenAI .pt checkpoint)")
    else:
        config, state = _transformers_folder(_download(str(source), **download_kwargs))
    encoder = WhisperEncoder(config)
    mismatch = describe_mismatch(encoder.state_dict(), state)
    if mismatch:
        raise ModelError(f"{source} does not hold a Whisper encoder that fits its own config ({mismatch})")
    encoder.load_state_dict(state)
    return encoder.to(dtype).eval()


def _download(repo_id: str, **download_kwargs) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        patterns = ["config.json", "*.safetensors", "*.safetensors.index.json"]
        return Path(snapshot_download(repo_id, allow_patterns=patterns, **download_kwargs))
    except LocalEntryNotFoundError:
        raise ModelError(f"the Whisper model {repo_id} is not in the local Hugging Face cache and the Hub cannot be "
                         f"reached (offline): download it once with network access, or give a local folder") from None
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise ModelError(f"cannot download the Whisper model {repo_id} from the Hub: {error}") from None


def _transformers_folder(folder: Path) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """The config and encoder weights of an encoder-only or full transformers Whisper folder (safetensors only)."""
    config_path = folder / "config.json"
    files = sorted(folder.glob("*.safetensors"))
    if not config_path.is_file() or not files:
        raise ModelError(f"{folder} is not a Whisper folder: it needs config.json and safetensors weights")
    try:
        config = WhisperConfig.from_json_file(str(config_path))
    except (OSError, ValueError) as error:
        raise ModelError(f"{config_path} is not a Whisper config: {error}") from None
    if config.model_type != "whisper":
        raise ModelError(f"{folder} holds a {config.model_type!r} model, not Whisper")
    if (folder / "LICENSE").is_file():
        config.licence = (folder / "LICENSE").read_text()
    state = {}
    for file in files:
        state.update(load_file(file))
    for prefix in _TRANSFORMERS_PREFIXES:
        if any(name.startswith(prefix) for name in state):
            state = {name[len(prefix):]: tensor for name, tensor in state.items() if name.startswith(prefix)}
            break
    return config, state


def _openai_checkpoint(path: Path) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """The config and renamed encoder weights of an OpenAI Whisper checkpoint (`dims` + `model_state_dict`)."""
    checkpoint = load_checkpoint(path, "Whisper")
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= checkpoint.keys():
        raise ModelError(f"{path} is not an OpenAI Whisper checkpoint (it needs 'dims' and 'model_state_dict')")
    dims = checkpoint["dims"]
    config = WhisperConfig(
        num_mel_bins=dims["n_mels"], max_source_positions=dims["n_audio_ctx"], d_model=dims["n_audio_state"],
        encoder_attention_heads=dims["n_audio_head"], encoder_layers=dims["n_audio_layer"],
        encoder_ffn_dim=4 * dims["n_audio_state"], vocab_size=dims["n_vocab"],
        max_target_positions=dims["n_text_ctx"], decoder_attention_heads=dims["n_text_head"],
        decoder_layers=dims["n_text_layer"], decoder_ffn_dim=4 * dims["n_text_state"])
    state = {}
    for name, tensor in checkpoint["model_state_dict"].items():
        for pattern, replacement in _OPENAI_NAMES:
            renamed, found = re.subn(pattern, replacement, name)
            if found:
                state[renamed] = tensor
                break
    return config, state


