"""SaveVideo: frames and the speech to an mp4 in ComfyUI's output folder, tagged as synthetic.

Core SaveVideo writes no mark that the video is synthetic; this node writes the mp4 the way the library does
(H.264 + AAC, the `comment` tag "synthetic=true; ..."), with the speech at its own sample rate and channels.
"""

import tempfile
import wave
from pathlib import Path

import numpy as np
import torch

from ..errors import AudioError
from ..media.video import VideoWriter
from . import services
from .values import image_batches
from .widgets import CATEGORY


def write_wav(audio: dict, path: Path) -> Path:
    """A ComfyUI AUDIO value ([1,C,S] float in -1..1 at its sample rate) as a 16-bit PCM wav, channels kept."""
    waveform = audio["waveform"]
    samples = waveform.detach().float().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    if samples.ndim != 3 or samples.shape[-1] == 0:
        raise AudioError("the audio input is empty or not a ComfyUI AUDIO value [batch, channels, samples]")
    interleaved = (np.clip(samples[0].T, -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(interleaved.shape[1])
        file.setsampwidth(2)
        file.setframerate(int(audio["sample_rate"]))
        file.writeframes(interleaved.tobytes())
    return path


class SaveVideo:
    """IMAGE frames (and optionally the AUDIO) to an mp4 under ComfyUI's output folder, tagged synthetic=true."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The frames, e.g. DAEDecode's or Paste Back's."}),
                "fps": ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.01,
                                  "tooltip": "Frame rate; link the generating node's fps output."}),
                "filename_prefix": ("STRING", {"default": "talking_head/video",
                                               "tooltip": "File name under ComfyUI's output folder (subfolders allowed)."}),
            },
            "optional": {"audio": ("AUDIO", {"tooltip": "The speech, muxed in as given and cut to the video."})},
        }

    RETURN_TYPES = ()
    RETURN_NAMES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = CATEGORY
    DESCRIPTION = ("Writes an mp4 (H.264 + AAC) whose comment tag says synthetic=true, as the library's videos do. "
                   "Keep the mark when you share the video.")

    def save(self, images, fps, filename_prefix, audio=None):
        path, shown = services.output_file(filename_prefix, ".mp4")
        with tempfile.TemporaryDirectory() as folder:
            speech = write_wav(audio, Path(folder) / "speech.wav") if audio is not None else None
            with VideoWriter(path, fps=fps, audio_path=speech, metadata={"made_with": "ComfyUI"}) as writer:
                for frames in image_batches(images, "the images"):
                    writer.write(frames)
        return {"ui": {"images": [shown], "animated": (True,)}}
