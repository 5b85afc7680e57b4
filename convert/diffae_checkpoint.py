"""Convert official Diff-AE (phizaz/diffae) Lightning checkpoints to DAEUNet + SemanticEncoder folders.

An official ``last.ckpt`` holds ``state_dict`` with ``model.*`` (trained weights),
``ema_model.*`` (their EMA, used for sampling) and the ``x_T`` buffer; latent
checkpoints add ``*.latent_net.*``, ``conds_mean`` and ``conds_std``. Inside a
model prefix, ``encoder.*`` is the semantic encoder and the rest is the UNet
decoder, named exactly as :class:`DAEUNet` names its parameters.
"""

from pathlib import Path
from typing import Dict, Tuple, Union

import torch

from ..errors import ModelError
from ..hub_models.dae_unet import DAEUNet
from ..hub_models.presets import DAE_UNET_PRESETS, SEMANTIC_ENCODER_PRESETS
from ..hub_models.semantic_encoder import SemanticEncoder

EXTRA_KEYS = ("x_T", "conds_mean", "conds_std")
ENCODER_PREFIX = "encoder."
LATENT_NET_PREFIX = "latent_net."
MAX_LISTED_KEYS = 20

StateDict = Dict[str, torch.Tensor]


def _load_checkpoint_state_dict(checkpoint_path: Union[str, Path]) -> StateDict:
    path = Path(checkpoint_path)
    if not path.is_file():
        raise ModelError(f"Diff-AE checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError / RuntimeError for objects outside the safe allow-list
        raise ModelError(
            f"{path} cannot be loaded safely with torch.load(weights_only=True): {error}. "
            "It stores Python objects besides tensors. If you trust the file, re-save just its weights "
            "with torch.save({'state_dict': torch.load(path, weights_only=False)['state_dict']}, new_path) "
            "and convert new_path."
        ) from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ModelError(f"{path} is not a Lightning checkpoint: it has no 'state_dict' dictionary")
    return checkpoint["state_dict"]


def _expected_shapes(model_class, config: dict) -> Dict[str, Tuple[int, ...]]:
    """Parameter names and shapes of ``model_class(**config)``, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = model_class(**config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def _listed(keys) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    return shown + (f" ... and {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else "")


def _mismatch_report(state_dict: StateDict, expected: Dict[str, Tuple[int, ...]], key_prefix: str) -> list:
    """Problems of ``state_dict`` against ``expected``, naming keys as they appear in the checkpoint."""
    problems = []
    missing = [key_prefix + name for name in expected if name not in state_dict]
    unexpected = [key_prefix + name for name in state_dict if name not in expected]
    wrong_shape = [
        f"{key_prefix}{name} {tuple(tensor.shape)} != {expected[name]}"
        for name, tensor in state_dict.items()
        if name in expected and tuple(tensor.shape) != expected[name]
    ]
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listed(unexpected)}")
    if wrong_shape:
        problems.append(f"wrong shapes ({len(wrong_shape)}): {_listed(wrong_shape)}")
    return problems


def convert_diffae_checkpoint(
    checkpoint_path: Union[str, Path],
    use_ema: bool = True,
    preset: str = "ffhq256",
) -> Tuple[StateDict, StateDict, dict]:
    """Split an official Diff-AE checkpoint into DAEUNet and SemanticEncoder state dicts.

    Args:
        checkpoint_path: the official Lightning ``.ckpt`` (loaded with ``weights_only=True``).
        use_ema: take the ``ema_model.*`` weights (the ones the authors sample with), else ``model.*``.
        preset: key of ``DAE_UNET_PRESETS`` / ``SEMANTIC_ENCODER_PRESETS`` the weights must fit.

    Returns:
        ``(unet_state_dict, encoder_state_dict, extras)``; ``extras`` holds whichever of
        ``x_T``, ``conds_mean``, ``conds_std`` exist and, for latent checkpoints,
        ``latent_net`` (the latent DDIM's state dict).

    Raises:
        ModelError: the file is unsafe or not a checkpoint, or keys are unmapped, missing
            or of the wrong shape for the preset (all of them listed by checkpoint name).
    """
    shared_presets = sorted(set(DAE_UNET_PRESETS) & set(SEMANTIC_ENCODER_PRESETS))
    if preset not in shared_presets:
        raise ModelError(f"unknown preset {preset!r}; choose one of {shared_presets}")
    state_dict = _load_checkpoint_state_dict(checkpoint_path)
    model_prefix, other_prefix = ("ema_model.", "model.") if use_ema else ("model.", "ema_model.")
    if not any(key.startswith(model_prefix) for key in state_dict):
        raise ModelError(f"{checkpoint_path} has no '{model_prefix}*' weights (use_ema={use_ema})")

    unet_state_dict, encoder_state_dict, latent_net_state_dict, extras = {}, {}, {}, {}
    unmapped = []
    for key, tensor in state_dict.items():
        if key in EXTRA_KEYS:
            extras[key] = tensor
        elif key.startswith(other_prefix):
            continue  # the copy not asked for
        elif key.startswith(model_prefix + ENCODER_PREFIX):
            encoder_state_dict[key[len(model_prefix + ENCODER_PREFIX):]] = tensor
        elif key.startswith(model_prefix + LATENT_NET_PREFIX):
            latent_net_state_dict[key[len(model_prefix + LATENT_NET_PREFIX):]] = tensor
        elif key.startswith(model_prefix):
            unet_state_dict[key[len(model_prefix):]] = tensor
        else:
            unmapped.append(key)
    if latent_net_state_dict:
        extras["latent_net"] = latent_net_state_dict

    problems = [f"unmapped keys ({len(unmapped)}): {_listed(unmapped)}"] if unmapped else []
    problems += _mismatch_report(
        unet_state_dict, _expected_shapes(DAEUNet, DAE_UNET_PRESETS[preset]), model_prefix
    )
    problems += _mismatch_report(
        encoder_state_dict,
        _expected_shapes(SemanticEncoder, SEMANTIC_ENCODER_PRESETS[preset]),
        model_prefix + ENCODER_PREFIX,
    )
    if problems:
        raise ModelError(
            f"{checkpoint_path} does not fit the {preset!r} DAEUNet + SemanticEncoder:\n" + "\n".join(problems)
        )
    return unet_state_dict, encoder_state_dict, extras


def convert_to_pretrained(
    checkpoint_path: Union[str, Path],
    output_dir: Union[str, Path],
    preset: str = "ffhq256",
    use_ema: bool = True,
) -> Path:
    """Convert an official Diff-AE checkpoint to ``output_dir/unet`` and ``output_dir/semantic_encoder``.

    Both folders are diffusers ``save_pretrained`` outputs (config.json + safetensors),
    loadable with ``DAEUNet.from_pretrained`` / ``SemanticEncoder.from_pretrained``.
    Returns ``output_dir``.
    """
    unet_state_dict, encoder_state_dict, _ = convert_diffae_checkpoint(checkpoint_path, use_ema, preset)
    output_dir = Path(output_dir)
    unet = DAEUNet(**DAE_UNET_PRESETS[preset])
    unet.load_state_dict(unet_state_dict, strict=True)
    unet.save_pretrained(output_dir / "unet", safe_serialization=True)
    encoder = SemanticEncoder(**SEMANTIC_ENCODER_PRESETS[preset])
    encoder.load_state_dict(encoder_state_dict, strict=True)
    encoder.save_pretrained(output_dir / "semantic_encoder", safe_serialization=True)
    return output_dir
