"""Video jobs: speech (and a portrait, or a video to dub) to an mp4, the one layer the command line and the Gradio demo
run.

A job loads the audio once, runs the pipeline's stages, pastes the faces back, and streams the frames into an mp4
that appears complete (H.264 + AAC with the speech as given, tagged synthetic=true with the model and settings) or
not at all. It reports typed `Progress` events as it goes; stopping it early leaves no file. Memory does not grow
with the length of the audio: frames are made and written a batch at a time.
"""

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import TalkingHeadError
from .faces.tracking import ping_pong, pose_from_video
from .media.audio import SAMPLE_RATE, load_audio, num_video_frames
from .media.video import VideoWriter, frames_in_order, probe_video, read_video_frames, resize_frames, soundtrack
from .pipelines.dae_talker import DAETalkerPipeline
from .pipelines.landmark import LandmarkDiffusionPipeline
from .pipelines.settings import (
    DEFAULT_LOWER_FACE,
    DEFAULT_MOTION_SCALE,
    DEFAULT_SETTINGS,
    SamplingSettings,
    check_lower_face,
    check_motion_scale,
)

PREVIEW_SIZE = 256  # the landmark drawings' video
PREVIEW_CHUNK = 256  # landmark drawings rendered at a time


@dataclass(frozen=True)
class Progress:
    """How far a job is: its stage ("face", "speech", "latents", "landmarks", "frames") and `done` of `total`."""

    stage: str
    done: int
    total: int


def dae_talker_video(pipeline: DAETalkerPipeline, audio: str | os.PathLike, output_path: str | os.PathLike, *,
                     settings: SamplingSettings | None = None, pose: torch.Tensor | None = None,
                     pose_from: str | os.PathLike | None = None, reference_frame: torch.Tensor | None = None,
                     output_size: int | None = None) -> Iterator[Progress]:
    """DAE-Talker: a speech file to an mp4 at `output_path`, step by step.

    `pose` [T,6] replaces the predicted head pose (see `retarget_pose` for poses of other footage); `pose_from`
    takes it from a video instead; `reference_frame` [1,3,S,S] gives x_T by DDIM inversion instead of the seed;
    `output_size` resizes the frames (the model's own size by default).
    """
    settings = settings or DEFAULT_SETTINGS["dae"]
    pipeline.warn_if_untrained()
    yield Progress("speech", 0, 1)
    waveform = load_audio(audio)
    features = pipeline.encode_audio(waveform)
    if pose_from is not None:
        pose = pipeline.follow_pose(torch.from_numpy(pose_from_video(pose_from, pipeline.fps)), len(features))
    yield Progress("latents", 0, 1)
    latents = pipeline.speech_to_latents(features, pose)
    if reference_frame is not None:
        initial_noise = pipeline.invert(reference_frame, settings.num_inference_steps)
    else:
        initial_noise = pipeline.initial_noise(settings.seed)
    frames = pipeline.decode_latents(latents, initial_noise, num_inference_steps=settings.num_inference_steps,
                                     sampler=settings.sampler, batch_size=settings.batch_size)
    with _video(pipeline, output_path, audio, waveform, settings) as writer:
        done = 0
        for batch in frames:
            writer.write(batch if output_size is None else resize_frames(batch, output_size))
            done += len(batch)
            yield Progress("frames", done, len(latents))


def landmark_video(pipeline: LandmarkDiffusionPipeline, audio: str | os.PathLike, image,
                   output_path: str | os.PathLike, *, settings: SamplingSettings | None = None,
                   pose_from: str | os.PathLike | None = None, face: int | str = "largest",
                   motion_scale: float = DEFAULT_MOTION_SCALE, lower_face: str = DEFAULT_LOWER_FACE,
                   landmark_preview_path: str | os.PathLike | None = None) -> Iterator[Progress]:
    """Landmark-guided: a speech file plus a portrait (path, PIL image or uint8 array) to an mp4 at `output_path`,
    at the portrait's size, step by step.

    `pose_from` is a video whose head motion the portrait follows (still otherwise); `face` picks a face when the
    portrait shows several (largest first); `motion_scale` scales the mouth and jaw motion (1: as A2L measured it);
    `lower_face` says how the lower face is made (see `LandmarkDiffusionPipeline.draw_crops`);
    `landmark_preview_path` also writes the landmark drawings as a video.
    """
    settings = settings or DEFAULT_SETTINGS["landmark"]
    check_motion_scale(motion_scale)
    check_lower_face(lower_face)
    pipeline.warn_if_untrained()
    yield Progress("face", 0, 1)
    found = pipeline.find_face(image, face)
    yield Progress("speech", 0, 1)
    waveform = load_audio(audio)
    features, speaker = pipeline.encode_audio(waveform)
    yield Progress("landmarks", 0, 1)
    landmarks = pipeline.audio_to_landmarks(features, speaker, found.crop_landmarks, motion_scale)
    if pose_from is not None:
        transforms = pipeline.head_motion_from_video(pose_from, len(landmarks))
    else:
        transforms = pipeline.still_head(len(landmarks))
    landmarks = pipeline.move_head(landmarks, transforms)
    frames = pipeline.generate_frames(found, landmarks, transforms, pipeline.initial_noise(settings.seed),
                                      num_inference_steps=settings.num_inference_steps, sampler=settings.sampler,
                                      batch_size=settings.batch_size, lower_face=lower_face)
    with contextlib.ExitStack() as files:
        if landmark_preview_path is not None:
            preview = files.enter_context(_video(pipeline, landmark_preview_path, audio, waveform, settings))
            for start in range(0, len(landmarks), PREVIEW_CHUNK):
                preview.write(pipeline.render(landmarks[start:start + PREVIEW_CHUNK], size=PREVIEW_SIZE))
        writer = files.enter_context(_video(pipeline, output_path, audio, waveform, settings))
        done = 0
        for batch in frames:
            writer.write(batch)
            done += len(batch)
            yield Progress("frames", done, len(landmarks))


def dub_video(pipeline: LandmarkDiffusionPipeline, audio: str | os.PathLike, video: str | os.PathLike,
              output_path: str | os.PathLike, *, settings: SamplingSettings | None = None, face: int | str = "largest",
              motion_scale: float = DEFAULT_MOTION_SCALE, lower_face: str = DEFAULT_LOWER_FACE) -> Iterator[Progress]:
    """Dubbing: a video of a person (any file ffmpeg reads) speaking the speech in `audio`, as an mp4 at
    `output_path` at the video's own size and frame rate, as long as the speech, with the speech as its sound.

    The face is followed through the video (`face` picks one when it shows several; frames without it pass through
    unchanged); only the lips and chin follow the new speech, each frame's own lower face moved at its own resolution
    (L2V drawing inside the mouth), while the head, eyes and brows stay the video's. Shorter speech uses the start of
    the video; longer speech plays it forward, then backward, and so on. Frames are read, dubbed and written a batch
    at a time.
    """
    settings = settings or DEFAULT_SETTINGS["landmark"]
    check_motion_scale(motion_scale)
    check_lower_face(lower_face)
    facts = probe_video(video)
    if facts["num_frames"] < 2:
        raise TalkingHeadError(f"{Path(video).name} is a still image: dub a video, or animate a photo (--image)")
    pipeline.warn_if_untrained()
    yield Progress("speech", 0, 1)
    waveform = load_audio(audio)
    features, speaker = pipeline.encode_audio(waveform)
    yield Progress("face", 0, 1)
    track = pipeline.track_face(read_video_frames(video), facts["fps"], face, what=Path(video).name)
    num_frames = num_video_frames(len(waveform), SAMPLE_RATE, facts["fps"])
    order = np.arange(num_frames) if num_frames <= len(track) else ping_pong(len(track), num_frames)
    yield Progress("landmarks", 0, 1)
    targets = pipeline.dubbed_landmarks(track, order, features, speaker, facts["fps"], motion_scale)
    reference, noise = track.reference_face(pipeline.image_size), pipeline.initial_noise(settings.seed)
    with _video(pipeline, output_path, audio, waveform, settings, fps=facts["fps"]) as writer:
        done = 0
        for indices, frames in frames_in_order(video, order, settings.batch_size):
            batch = slice(done, done + len(indices))
            writer.write(pipeline.dub_frames(frames, track.landmarks[indices], targets[batch], track.boxes[indices],
                                             reference, noise, settings.num_inference_steps, settings.sampler,
                                             lower_face))
            done += len(indices)
            yield Progress("frames", done, num_frames)


def run(job: Iterator[Progress], callback: Callable[[int, int], None] | None = None) -> None:
    """Run a job to its end, passing its frame progress to `callback(done, total)`."""
    for step in job:
        if callback is not None and step.stage == "frames":
            callback(step.done, step.total)


def _video(pipeline, path: str | os.PathLike, audio, waveform: np.ndarray, settings: SamplingSettings,
           fps: float | None = None) -> VideoWriter:
    """The mp4 writer of a job: the pipeline's frame rate (or `fps`), the speech as the user gave it, the provenance
    tags."""
    metadata = pipeline.video_metadata(sampler=settings.sampler, steps=settings.num_inference_steps,
                                       seed=settings.seed)
    return VideoWriter(Path(path), fps=fps or pipeline.fps, metadata=metadata,
                       **soundtrack(audio, waveform, SAMPLE_RATE))
