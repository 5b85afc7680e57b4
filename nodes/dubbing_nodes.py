"""Dubbing in ComfyUI: a video's frames (an IMAGE batch with its frame rate) speaking new speech."""

import numpy as np

from ..errors import TalkingHeadError
from ..faces.tracking import ping_pong
from ..media.audio import SAMPLE_RATE, num_video_frames
from ..pipelines.landmark import LandmarkDiffusionPipeline
from ..pipelines.settings import (
    DEFAULT_LOWER_FACE,
    DEFAULT_MOTION_SCALE,
    LOWER_FACES,
    MAX_MOTION_SCALE,
    check_lower_face,
)
from . import services
from .dae_nodes import check_speech_fits
from .landmark_nodes import LANDMARK, MODEL_TOOLTIP
from .values import FACE_TRACK, LANDMARK_MODEL, SPEECH, FaceTrackValue, ImageBatch, Speech, image_batches
from .widgets import BATCH_SIZE, FRAME_RATE, LANDMARK_BACKEND, LANDMARK_CATEGORY, SAMPLER, SEED, steps

FRAMES_TOOLTIP = "The video's frames, e.g. GetVideoComponents' images or VideoHelperSuite's Load Video."


class TrackFace:
    """The face to dub, followed through a video's frames."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (LANDMARK_MODEL, {"tooltip": MODEL_TOOLTIP + " Its crop size and framing are used."}),
            "images": ("IMAGE", {"tooltip": FRAMES_TOOLTIP}),
            "frame_rate": FRAME_RATE,
            "face_index": ("INT", {"default": 0, "min": 0, "max": 63,
                                   "tooltip": "Which face when there are several: 0 is the largest where one first "
                                              "appears, 1 the next, ..."}),
            "landmark_backend": LANDMARK_BACKEND,
        }}

    RETURN_TYPES = (FACE_TRACK,)
    RETURN_NAMES = ("face_track",)
    FUNCTION = "track"
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = "Follows one face through the frames (landmarks smoothed, a steady crop); frames without it are kept."

    def track(self, model: LandmarkDiffusionPipeline, images, frame_rate=25.0, face_index=0, landmark_backend="dlib"):
        track = model.track_face(image_batches(images, "the frames"), frame_rate, face_index, landmark_backend,
                                 what="the frames")
        return (FaceTrackValue(track, frame_rate, model.image_size),)


class DubFrames:
    """The video's frames speaking the speech: only the lips and chin move, at the frames' own size."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (LANDMARK_MODEL, {"tooltip": MODEL_TOOLTIP}),
            "speech": (SPEECH, {"tooltip": "The new speech from AudioEncoder (with this model)."}),
            "face_track": (FACE_TRACK, {"tooltip": "The face followed through the frames (Track Face in Frames)."}),
            "images": ("IMAGE", {"tooltip": FRAMES_TOOLTIP + " The same frames the face was tracked in."}),
            "steps": steps("landmark"),
            "sampler": SAMPLER,
            "seed": SEED,
            "batch_size": BATCH_SIZE,
        }, "optional": {
            "motion_scale": ("FLOAT", {"default": DEFAULT_MOTION_SCALE, "min": 0.0, "max": MAX_MOTION_SCALE,
                                       "step": 0.05, "tooltip": "How far the mouth and jaw move, times what A2L "
                                                                "measured when it was trained."}),
            "lower_face": (list(LOWER_FACES), {"default": DEFAULT_LOWER_FACE, "tooltip": (
                "warped: each frame's own lower face moved onto the new mouth, L2V drawing inside it; drawn: L2V "
                "draws the whole lower face.")}),
        }}

    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("images", "fps")
    FUNCTION = "dub"
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = ("Dubbing: as many frames as the speech lasts, at the frames' rate (shorter speech takes the first "
                   "frames, longer plays them forward and backward); link the speech's AUDIO to the video you save.")

    def dub(self, model: LandmarkDiffusionPipeline, speech: Speech, face_track: FaceTrackValue, images,
            steps=LANDMARK.num_inference_steps, sampler=LANDMARK.sampler, seed=LANDMARK.seed,
            batch_size=LANDMARK.batch_size, motion_scale: float | None = None, lower_face: str | None = None):
        lower_face = lower_face or DEFAULT_LOWER_FACE
        check_lower_face(lower_face)
        check_speech_fits(speech, model)
        track, fps = face_track.track, face_track.fps
        if face_track.crop_size != model.image_size or len(track) != len(images):
            raise TalkingHeadError(f"the face track is of {len(track)} frames for another model or other frames; "
                                   f"track these {len(images)} frames with this model")
        seconds = speech.seconds if speech.seconds is not None else speech.num_frames / speech.fps
        count = num_video_frames(round(seconds * SAMPLE_RATE), SAMPLE_RATE, fps)
        order = np.arange(count) if count <= len(track) else ping_pong(len(track), count)
        with services.on_device(model.require_a2l()):
            targets = model.dubbed_landmarks(track, order, speech.features, speech.voice, fps,
                                             DEFAULT_MOTION_SCALE if motion_scale is None else motion_scale)
        reference, noise = track.reference_face(model.image_size), model.initial_noise(seed)
        frames, progress = ImageBatch(count), services.Progress(count, "DubFrames")
        with services.on_device(model.vae, model.unet, model.landmark_encoder):
            for start, batch in zip(range(0, count, batch_size),
                                    image_batches(images, "the frames", order, batch_size=batch_size)):
                indices = order[start:start + batch_size]
                frames.add(model.dub_frames(batch, track.landmarks[indices], targets[start:start + len(indices)],
                                            track.boxes[indices], reference, noise, steps, sampler, lower_face))
                progress.update(start + len(indices))
        return (frames.image, fps)
