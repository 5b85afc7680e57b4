"""Convert Resemblyzer's published voice encoder (`pretrained.pt`, Apache-2.0) to a SpeakerEncoder folder.

The file is a training checkpoint, `{"step", "model_state", "optimizer_state"}`, read with
`torch.load(weights_only=True)`: only tensors and plain Python values, never arbitrary objects. Its
`model_state` names are SpeakerEncoder's (`lstm.*`, `linear.*`) plus the GE2E loss's `similarity_weight` and
`similarity_bias`, which embedding does not use; the sizes are read from the shapes, every tensor is copied
exactly, and files with other names or shapes are refused.
"""

from pathlib import Path

import torch

from ..errors import ModelError
from ..hub_models.speaker_encoder import SpeakerEncoder
from .checkpoints import describe_mismatch, load_checkpoint, save_atomically, tensors_only

# Parameters of the GE2E training loss (a learnt scale and offset of the similarities): not part of the encoder.
TRAINING_ONLY_KEYS = ("similarity_weight", "similarity_bias")
# What a converted folder's LICENSE says when no licence file is given.
RESEMBLYZER_NOTICE = """\
Resemblyzer's voice encoder weights (pretrained.pt): Copyright 2019 Resemble.AI

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
"""


def _load_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    checkpoint = load_checkpoint(path, "voice encoder")
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        found = ", ".join(sorted(map(str, checkpoint))) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ModelError(f"{path} is not a Resemblyzer voice encoder checkpoint: it has no 'model_state' "
                         f"(found: {found or 'nothing'})")
    state = tensors_only(checkpoint["model_state"], path, "the 'model_state'")
    return {k: v for k, v in state.items() if k not in TRAINING_ONLY_KEYS}


def _sizes(state: dict[str, torch.Tensor], path: str | Path) -> dict[str, int]:
    """The network's sizes as the tensors' shapes give them."""
    try:
        return {"mel_channels": int(state["lstm.weight_ih_l0"].shape[1]),
                "hidden_size": int(state["lstm.weight_hh_l0"].shape[1]),
                "embedding_size": int(state["linear.weight"].shape[0]),
                "num_layers": sum(1 for k in state if k.startswith("lstm.weight_ih_l"))}
    except (KeyError, IndexError) as error:
        raise ModelError(f"{path} does not fit a GE2E speaker encoder (missing: {error.args[0]})") from None


def speaker_encoder_from_file(weights_path: str | Path, licence: str | None = None) -> SpeakerEncoder:
    """A SpeakerEncoder (float32) holding the published weights and their licence text."""
    state = _load_model_state(weights_path)
    model = SpeakerEncoder(**_sizes(state, weights_path), licence=licence)
    mismatch = describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise ModelError(f"{weights_path} does not fit a GE2E speaker encoder ({mismatch})")
    model.load_state_dict(state)
    return model.eval()


def convert_speaker_encoder(weights_path: str | Path, output_dir: str | Path, licence: str | Path | None = None,
                            half: bool = False) -> Path:
    """Write the converted encoder (config, safetensors, LICENSE) to `output_dir`, replacing it whole.

    LICENSE holds the text of the `licence` file when given (e.g. Resemblyzer's LICENSE), else Resemblyzer's
    Apache-2.0 notice. `half` stores float16 weights (half the size; they load as float32).
    """
    if licence is not None and not Path(licence).is_file():
        raise ModelError(f"licence file not found: {licence}")
    licence_text = Path(licence).read_text() if licence is not None else RESEMBLYZER_NOTICE
    model = speaker_encoder_from_file(weights_path, licence_text)
    if half:
        model.half()  # .to(dtype) would warn about float32 modules it has not got
    return save_atomically(model, output_dir)
