"""What the demo runs: loading models, checking the visitor's input against the limits, and generating a video
stage by stage (so the page can follow the progress and cancel between batches)."""

import functools
import os
import queue
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import jobs
from ..bundled import BUNDLED_MODELS, DAE_TALKER, LANDMARK_DIFFUSION
from ..errors import TalkingHeadError
from ..faces.portrait import load_portrait
from ..media.audio import SAMPLE_RATE, load_audio
from ..media.video import probe_video
from ..pipelines.base import default_device
from ..pipelines.dae_talker import DAETalkerPipeline
from ..pipelines.landmark import LandmarkDiffusionPipeline
from ..pipelines.settings import SamplingSettings, check_lower_face, check_motion_scale

# The bundled models by the names the page shows and takes; their folders never reach the page.
BUNDLED_DAE, BUNDLED_LANDMARK = DAE_TALKER, LANDMARK_DIFFUSION
HUB_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# Results older than this are removed from the output folder when a new run starts.
KEEP_RESULTS_SECONDS = 3600

STAGES = {"face": "Finding the face", "speech": "Reading the speech", "latents": "Speech to latents",
          "landmarks": "Speech to landmarks", "frames": "Drawing frames"}
AVATAR_STAGES = {"check": "Checking the footage", "prepare": "Preparing the footage",
                 "dae": "Training the diffusion autoencoder", "speech2latent": "Training speech2latent",
                 "evaluate": "Measuring it on the held-back part", "done": "Done"}
# Where the demo keeps avatars made on this machine (the ComfyUI pack's standalone models folder).
AVATAR_FOLDER = Path(os.environ.get("TALKING_HEAD_MODELS", "~/.cache/talking_head/models")).expanduser()
AVATAR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Limits:
    """What a visitor may send; a Space owner sets them with environment variables."""

    max_audio_seconds: float = float(os.environ.get("TALKING_HEAD_MAX_AUDIO_SECONDS", 60))
    max_upload_mb: float = float(os.environ.get("TALKING_HEAD_MAX_UPLOAD_MB", 50))
    max_portrait_side: int = int(os.environ.get("TALKING_HEAD_MAX_PORTRAIT_SIDE", 1024))
    max_video_side: int = int(os.environ.get("TALKING_HEAD_MAX_VIDEO_SIDE", 1280))
    max_video_seconds: float = float(os.environ.get("TALKING_HEAD_MAX_VIDEO_SECONDS", 60))
    queue_size: int = int(os.environ.get("TALKING_HEAD_QUEUE_SIZE", 16))
    # Serving the public (on a Hugging Face Space, or TALKING_HEAD_PUBLIC=1; TALKING_HEAD_PUBLIC=0 turns it off):
    # the model box takes a bundled name or a Hub repo id, never a path on the server.
    public: bool = os.environ.get("TALKING_HEAD_PUBLIC", "1" if os.environ.get("SPACE_ID") else "0") == "1"


@dataclass
class PageProgress:
    """One step of a run: the stage's description and how far it is (done of total)."""

    description: str
    done: int
    total: int


def _gpu(function):
    """Mark the GPU-heavy function for ZeroGPU where the `spaces` package is present; plain elsewhere."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(duration=180)(function)


@functools.lru_cache(maxsize=2)
def load_pipeline(pipeline_class: type, name_or_path: str):
    """A pipeline by Hub repo id or folder, loaded once (the two most recent stay in memory)."""
    return pipeline_class.from_pretrained(name_or_path.strip())


def model_source(choice: str | None, default: str, limits: Limits) -> str:
    """What to load for the visitor's model box: a bundled model's folder by its name, otherwise the text as typed (a
    Hub repo id, or locally a folder too). In public mode anything but a bundled name or a Hub repo id is refused."""
    name = (choice or "").strip() or default
    if name in BUNDLED_MODELS:
        return str(BUNDLED_MODELS[name])
    if not limits.public and name in local_avatars():
        return str(AVATAR_FOLDER / name)
    if limits.public and (not HUB_REPO_ID.fullmatch(name) or ".." in name or Path(name).exists()):
        raise TalkingHeadError(f"This demo loads one of its bundled models ({', '.join(BUNDLED_MODELS)}) or a "
                               "Hugging Face Hub repo id (org/name); it does not open folders on its server.")
    return name


def local_avatars() -> list[str]:
    """The names of the avatars made on this machine (folders of a DAE-Talker in AVATAR_FOLDER)."""
    if not AVATAR_FOLDER.is_dir():
        return []
    return sorted(folder.name for folder in AVATAR_FOLDER.iterdir() if (folder / "model_index.json").is_file()
                  and "DAETalkerPipeline" in (folder / "model_index.json").read_text())


def describe_model(pipeline) -> str:
    """One line for the page: which model, and whether it was trained."""
    name = pipeline.config.get("_name_or_path", "?")
    shown = Path(name).name if Path(name).is_dir() else name
    if not pipeline.is_trained:
        return f"Model `{shown}` has **no training record: it is untrained or of unknown provenance**, so expect noise."
    return f"Model `{shown}` (trained; see its model card for what it can and cannot do)."


def check_audio(path: str | None, limits: Limits) -> float:
    """The length in seconds of the visitor's audio; TalkingHeadError when it is missing, unreadable, silent or too long."""
    if not path:
        raise TalkingHeadError("Upload or record some speech first.")
    seconds = len(load_audio(path)) / SAMPLE_RATE
    if seconds > limits.max_audio_seconds:
        raise TalkingHeadError(f"The audio is {seconds:.1f} s long; this demo takes at most "
                               f"{limits.max_audio_seconds:g} s. Trim it and try again.")
    return seconds


def fit_portrait(path: str | None, longest_side: int, limits: Limits) -> np.ndarray:
    """The visitor's portrait as RGB, scaled down so its longest side is at most `longest_side` (and the limit)."""
    if not path:
        raise TalkingHeadError("Upload a portrait photo first.")
    portrait = load_portrait(path)
    side = min(longest_side or limits.max_portrait_side, limits.max_portrait_side)
    height, width = portrait.shape[:2]
    if max(height, width) <= side:
        return portrait
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(portrait).resize(size, Image.LANCZOS))


def check_video(path: str | None, limits: Limits) -> dict:
    """The facts of the visitor's video to dub; TalkingHeadError when it is missing, unreadable, a still image, too
    large or too long."""
    if not path:
        raise TalkingHeadError("Upload the video to dub first.")
    facts = probe_video(path)
    if facts["num_frames"] < 2:
        raise TalkingHeadError("That is a still image: upload a video here, or animate a photo in the Any portrait "
                               "tab.")
    if max(facts["width"], facts["height"]) > limits.max_video_side:
        raise TalkingHeadError(f"The video is {facts['width']}x{facts['height']}; this demo takes at most "
                               f"{limits.max_video_side} pixels a side. Scale it down and try again.")
    if facts["duration"] > limits.max_video_seconds:
        raise TalkingHeadError(f"The video is {facts['duration']:.1f} s long; this demo takes at most "
                               f"{limits.max_video_seconds:g} s. Trim it and try again.")
    return facts


def output_path(suffix: str = ".mp4") -> Path:
    """A fresh file name in the demo's output folder (old results are removed)."""
    folder = Path(tempfile.gettempdir()) / "talking_head_app"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.mp4"):
        if time.time() - old.stat().st_mtime > KEEP_RESULTS_SECONDS:
            old.unlink(missing_ok=True)
    return folder / f"{uuid.uuid4().hex}{suffix}"


def _on_the_page(job: Iterator[jobs.Progress]) -> Iterator[PageProgress]:
    for step in job:
        yield PageProgress(STAGES[step.stage], step.done, step.total)


@_gpu
def run_dae_talker(*, model: str, audio: str, pose_video: str | None, steps: int, sampler: str, seed: int,
                   output_size: int, batch_size: int, output: Path) -> Iterator[PageProgress]:
    """DAE-Talker: speech to `output` (mp4), stage by stage."""
    settings = SamplingSettings(int(steps), sampler, int(seed), int(batch_size))  # checked before the model loads
    pipeline = load_pipeline(DAETalkerPipeline, model).to(default_device())
    yield from _on_the_page(jobs.dae_talker_video(pipeline, audio, output, settings=settings,
                                                  pose_from=pose_video or None, output_size=int(output_size) or None))


@_gpu
def run_landmark(*, model: str, audio: str, portrait: np.ndarray, pose_video: str | None, steps: int, sampler: str,
                 seed: int, face_index: int, batch_size: int, motion_scale: float, lower_face: str, output: Path,
                 preview: Path) -> Iterator[PageProgress]:
    """Landmark-guided: speech plus portrait to `output` (mp4) and the landmark drawings to `preview`, stage by stage."""
    settings = SamplingSettings(int(steps), sampler, int(seed), int(batch_size))  # checked before the model loads
    check_motion_scale(float(motion_scale))
    check_lower_face(lower_face)
    pipeline = load_pipeline(LandmarkDiffusionPipeline, model).to(default_device())
    yield from _on_the_page(jobs.landmark_video(pipeline, audio, portrait, output, settings=settings,
                                                pose_from=pose_video or None, face=int(face_index),
                                                motion_scale=float(motion_scale), lower_face=lower_face,
                                                landmark_preview_path=preview))


@_gpu
def run_dub(*, model: str, audio: str, video: str, steps: int, sampler: str, seed: int, face_index: int,
            batch_size: int, motion_scale: float, output: Path) -> Iterator[PageProgress]:
    """Dubbing: the video speaking the speech, written to `output` (mp4), stage by stage."""
    settings = SamplingSettings(int(steps), sampler, int(seed), int(batch_size))  # checked before the model loads
    check_motion_scale(float(motion_scale))
    pipeline = load_pipeline(LandmarkDiffusionPipeline, model).to(default_device())
    yield from _on_the_page(jobs.dub_video(pipeline, audio, video, output, settings=settings, face=int(face_index),
                                           motion_scale=float(motion_scale)))


class _StopTraining(Exception):
    """The visitor pressed Stop: the training run keeps a checkpoint and ends."""


def run_avatar(*, videos: list[str], name: str, minutes: float, folder: Path = AVATAR_FOLDER,
               report_every: float = 1.0) -> Iterator[PageProgress]:
    """Train a DAE-Talker avatar from `videos` into `folder/name`, stage by stage. The training runs in a thread; when
    the page stops following (Stop), it is told to stop, keeps a checkpoint, and a later run of the same name and
    footage resumes from there."""
    from ..training.avatar import train_avatar

    if not AVATAR_NAME.fullmatch(name or "") or name.endswith(".work"):
        raise TalkingHeadError(f"Name the avatar with a plain folder name (letters, digits, . _ -), not {name!r}.")
    if not videos:
        raise TalkingHeadError("Upload footage of the person speaking first: minutes of it, one person, one camera.")
    reports: queue.Queue = queue.Queue()
    stop, outcome, last = threading.Event(), {}, [0.0]

    def progress(report) -> None:
        if stop.is_set():
            raise _StopTraining
        if report.stage in ("done", "check", "prepare", "evaluate") or time.monotonic() - last[0] >= report_every:
            last[0] = time.monotonic()
            reports.put(report)

    def train() -> None:
        try:
            outcome["model"] = train_avatar(videos, folder / name, minutes=float(minutes), resume=True, name=name,
                                            progress=progress)
        except BaseException as error:  # handed to the page below
            outcome["error"] = error
        finally:
            reports.put(None)

    folder.mkdir(parents=True, exist_ok=True)
    thread = threading.Thread(target=train, name="avatar-training", daemon=True)
    thread.start()
    try:
        while (report := reports.get()) is not None:
            left = "" if report.seconds_left is None else f" ({report.seconds_left / 60:.0f} min left)"
            yield PageProgress(AVATAR_STAGES[report.stage] + left, round(report.fraction * 1000), 1000)
    finally:
        stop.set()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
