"""Frame latents computed once per dataset clip and kept beside its frames.

Training tasks that diffuse in a frozen autoencoder's latent (L2V, a latent-space DAE) encode every clip
they read. The first run writes the autoencoder's raw latents into the clip folder as
`latents-<what>-<size>px-every<stride>-<fingerprint>.npy`; later runs, resumed or with other settings, read
them back. The fingerprint covers the autoencoder's class and weights, so another autoencoder never
reads a stale cache. Files are written whole or not at all.
"""

import hashlib
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ..hub_models.autoencoders import FrameAutoencoder, encode_raw
from ..data.dataset import Clip, save_array_atomically

ENCODE_BATCH = 64


def autoencoder_fingerprint(vae: FrameAutoencoder) -> str:
    """A short hash of the autoencoder's class and weights."""
    digest = hashlib.sha1(type(vae).__name__.encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float32).cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


def cached_raw_latents(clip: Clip, what: str, image_size: int, frame_stride: int, vae: FrameAutoencoder,
                       fingerprint: str, images: Callable[[], Iterator[torch.Tensor]]) -> torch.Tensor:
    """Raw latents [N,C,h,w] of clip frames 0, stride, 2*stride, ... as `images()` yields them ([-1,1] batches),
    read from the clip's cache file when it exists, encoded and cached otherwise."""
    path = clip.folder / f"latents-{what}-{image_size}px-every{frame_stride}-{fingerprint}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path))
    with torch.no_grad():
        latents = torch.cat([encode_raw(vae, chunk).float().cpu()
                             for batch in images() for chunk in batch.split(ENCODE_BATCH)])
    save_array_atomically(path, latents.numpy())
    return latents
