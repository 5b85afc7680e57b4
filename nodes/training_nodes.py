"""Training in ComfyUI: a DAE-Talker avatar of the person in a video, within a time budget."""

import re

import torch

from ..bundled import BUNDLED_MODELS, DAE_TALKER
from ..errors import TalkingHeadError
from ..media.audio import SAMPLE_RATE
from ..media.video import VideoWriter
from ..pipelines.dae_talker import DAETalkerPipeline
from ..training import avatar
from . import services
from .values import DAE_MODEL, audio_waveform, image_batches
from .widgets import DAE_CATEGORY, FRAME_RATE

NO_VIDEO = "(none: use images and audio)"
AVATAR_BASE = BUNDLED_MODELS[DAE_TALKER]  # the DAE an avatar starts from
FOOTAGE_FILE = "footage.mp4"  # images and audio given to the node are written here, in the run's work folder
PROGRESS_STEPS = 1000


class TrainDAEAvatar:
    """A DAE-Talker avatar of the person in a video, trained within a time budget into models/talking_head/NAME."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "name": ("STRING", {"default": "my-avatar",
                                    "tooltip": "The model's folder under models/talking_head; a stopped run of the "
                                               "same name and footage resumes from its last checkpoint."}),
                "minutes": ("FLOAT", {"default": avatar.DEFAULT_MINUTES, "min": 1.0, "max": 10000.0, "step": 1.0,
                                      "tooltip": "The whole budget, preparing and measuring included. Minutes of "
                                                 "footage want an hour or more on a CPU."}),
                "video": ([NO_VIDEO, *services.input_videos()],
                          {"tooltip": "Footage of one person speaking (minutes of it) from ComfyUI's input folder; "
                                      "or connect images and audio instead."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "The footage's frames, e.g. GetVideoComponents' images."}),
                "audio": ("AUDIO", {"tooltip": "The footage's own sound, with the frames."}),
                "frame_rate": FRAME_RATE,
            },
        }

    RETURN_TYPES = (DAE_MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "train"
    CATEGORY = DAE_CATEGORY
    DESCRIPTION = ("Trains a DAE-Talker of the person in the footage: checks it, prepares it, trains the diffusion "
                   "autoencoder and speech2latent, measures the result on a held-back part and writes the model with "
                   "its card. Cancel stops at a checkpoint; running again resumes.")

    def train(self, name: str, minutes: float, video: str = NO_VIDEO, images=None, audio=None, frame_rate=None):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) or name.endswith(".work"):
            raise TalkingHeadError(f"the avatar's name {name!r} must be a plain folder name (letters, digits, . _ -)")
        output = services.model_folders()[0] / name
        work = output.with_name(name + ".work")
        if video != NO_VIDEO:
            if images is not None or audio is not None:
                raise TalkingHeadError("give the footage either as a video file or as images and audio, not both")
            footage = services.input_folder() / video
        elif images is not None and audio is not None:
            footage = work / FOOTAGE_FILE
            if not (work / avatar.STATE_FILE).exists():  # a new run; a resumed one keeps the footage it began with
                _write_footage(footage, images, audio, frame_rate or FRAME_RATE[1]["default"])
        else:
            raise TalkingHeadError("connect the footage: a video from the input folder, or images with their audio")
        bar = services.Progress(PROGRESS_STEPS, "avatar", unit="‰")
        with torch.inference_mode(False), torch.enable_grad():  # ComfyUI runs nodes without gradients
            avatar.train_avatar([footage], output, minutes=minutes, resume=True, name=name, work_dir=work,
                                progress=lambda report: bar.update(round(_overall(report) * PROGRESS_STEPS)),
                                recipe=avatar.AVATAR_RECIPE, base_model=AVATAR_BASE)
        return (DAETalkerPipeline.from_pretrained(output),)


_STAGE_SHARES = {"check": (0.0, 0.01), "prepare": (0.01, 0.05), "dae": (0.05, 0.8), "speech2latent": (0.8, 0.95),
                 "evaluate": (0.95, 1.0), "done": (1.0, 1.0)}


def _overall(report: "avatar.AvatarProgress") -> float:
    """How far the whole run is, from its stage and the fraction of that stage done."""
    start, end = _STAGE_SHARES[report.stage]
    return start + (end - start) * report.fraction


def _write_footage(path, images, audio, frame_rate: float) -> None:
    """IMAGE frames and their AUDIO as an mp4 the avatar's preparation reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps=frame_rate, waveform=audio_waveform(audio), sample_rate=SAMPLE_RATE,
                     metadata={"footage": "given to Train DAE-Talker avatar"}) as writer:
        for batch in image_batches(images, "the footage"):
            writer.write(batch)
