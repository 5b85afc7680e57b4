"""Frame latents computed once per dataset clip and kept beside its frames.

Training tasks that diffuse in a frozen autoencoder's latent (L2V, a latent-space DAE) encode every clip
they read, and speech2latent reads the frozen DAE's semantic codes of every frame. The first run writes them into the
clip folder (`latents-<what>-<size>px-every<stride>-<fingerprint>.npy`, `semantic-<size>px-<fingerprint>.npy`); later
runs, resumed or with other settings, read them back. The fingerprint covers the encoder's class and weights, so
another encoder never reads a stale cache. Files are written whole or not at all.
"""

import hashlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..hub_models.autoencoders import FrameAutoencoder, encode_raw
from ..data.dataset import Clip, save_array_atomically

ENCODE_BATCH = 64


def module_fingerprint(module: torch.nn.Module) -> str:
    """A short hash of a module's class and weights (an autoencoder's, a semantic encoder's)."""
    digest = hashlib.sha1(type(module).__name__.encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def cached_raw_latents(clip: Clip, what: str, image_size: int, frame_stride: int, vae: FrameAutoencoder,
                       fingerprint: str, images: Callable[[], Iterator[torch.Tensor]]) -> torch.Tensor:
    """Raw latents [N,C,h,w] of clip frames 0, stride, 2*stride, ... as `images()` yields them ([-1,1] batches),
    read from the clip's cache file when it exists, encoded and cached otherwise."""
    path = clip.folder / f"latents-{what}-{image_size}px-every{frame_stride}-{fingerprint}.npy"
    return _cached(path, lambda: torch.cat([encode_raw(vae, chunk).float().cpu()
                                            for batch in images() for chunk in batch.split(ENCODE_BATCH)]))


def cached_semantic_codes(clip: Clip, pipeline, fingerprint: str,
                          images: Callable[[], Iterator[torch.Tensor]]) -> torch.Tensor:
    """The DAE's semantic codes [N,D] of every frame of a clip as `images()` yields them ([-1,1] batches at the DAE's
    image size), read from the clip's cache file when it exists, encoded and cached otherwise."""
    path = clip.folder / f"semantic-{pipeline.image_size}px-{fingerprint}.npy"
    return _cached(path, lambda: torch.cat([pipeline.encode_frames(chunk).cpu()
                                            for batch in images() for chunk in batch.split(ENCODE_BATCH)]))


def _cached(path, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    if path.exists():
        return torch.from_numpy(np.load(path))
    with torch.no_grad():
        values = compute()
    save_array_atomically(path, values.numpy())
    return values
