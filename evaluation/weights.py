"""Network weights of the evaluation metrics (LPIPS, FID, SyncNet): a file the user gives, or a download from the
metric's usual source on first use, kept in torch's hub cache. Loaded without pickles (`weights_only=True`)."""

import os
from pathlib import Path

import torch

from ..errors import MetricWeightsError


def fetch_weights(url: str, user_path: str | os.PathLike | None, what: str, option: str) -> Path:
    """The weights file for `what`: `user_path` when given, else `url` downloaded once into torch's hub cache.

    `option` names the command-line option that gives a path, for the message when the download fails.
    """
    if user_path is not None:
        path = Path(user_path)
        if not path.is_file():
            raise MetricWeightsError(f"{what} weights not found: {path}")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=False)
    except Exception as error:  # urllib raises many kinds; all mean the same to the user
        path.unlink(missing_ok=True)
        raise MetricWeightsError(f"{what} needs network weights and they could not be downloaded from {url} "
                                 f"({error}); download the file yourself and give it with {option} PATH") from None
    return path


def load_state_dict(path: Path, what: str) -> dict:
    """A state dict of tensors from a .pth file, without unpickling code; MetricWeightsError when it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise MetricWeightsError(f"{path} is not a {what} weights file ({error})") from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise MetricWeightsError(f"{path} is not a {what} weights file (expected a state dict of tensors)")
    return state
