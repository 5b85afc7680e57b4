"""What the converters share: reading published checkpoints safely, naming how they differ from a model, and
writing the converted folder in one step."""

import shutil
import tempfile
from pathlib import Path

import torch

from ..errors import ModelError

MAX_LISTED_KEYS = 10


def load_checkpoint(path: str | Path, what: str):
    """The contents of a published PyTorch file, read with `torch.load(weights_only=True)` (nothing is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} weights not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError / RuntimeError: not a plain tensor file
        raise ModelError(f"{path} is not a plain PyTorch checkpoint: {error}") from None


def tensors_only(state, path: str | Path, what: str = "") -> dict[str, torch.Tensor]:
    """`state` when it is a dict of tensors, else a ModelError naming the file (and the part of it, `what`)."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{what + ' of ' if what else ''}{path} is not a state dict of tensors")
    return state


def describe_mismatch(expected: dict, found: dict) -> str:
    """The missing, unexpected and differently shaped keys of `found` against `expected` ("" when they fit)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(found) if expected[k].shape != found[k].shape)
    parts = [f"{label}: {', '.join(keys[:MAX_LISTED_KEYS])}{' ...' if len(keys) > MAX_LISTED_KEYS else ''}"
             for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", wrong_shape)) if keys]
    return "; ".join(parts)


def save_atomically(model, output_dir: str | Path, licence: str | None = None) -> Path:
    """`model.save_pretrained` (and `licence` as LICENSE, when given) into a staging folder beside `output_dir`, which
    then replaces `output_dir` whole."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's folder is the owner's alone
        model.save_pretrained(staging)
        if licence:
            (staging / "LICENSE").write_text(licence)
        for path in staging.iterdir():
            path.chmod(0o644)
        shutil.rmtree(output_dir, ignore_errors=True)
        staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir
