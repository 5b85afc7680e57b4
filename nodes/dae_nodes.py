"""DAE-Talker's stages as nodes: AudioEncoder, PosePredictor, pose editing and pose from frames, Speech2Latent, DAEDecode.

AudioEncoder serves both pipelines: it makes the features (and, for a landmark model, the voice embedding)
of the model it is given.
"""

import numpy as np
import torch

from ..errors import TalkingHeadError
from ..faces.landmarks import get_landmarker
from ..faces.pose import estimate_head_pose
from ..faces.tracking import landmarks_through_frames, ping_pong
from ..media.audio import SAMPLE_RATE
from ..media.video import resize_frames
from ..media.images import to_model_range
from ..pipelines.dae_talker import DAETalkerPipeline
from ..pipelines.landmark import LandmarkDiffusionPipeline
from ..pipelines.settings import DEFAULT_SETTINGS
from . import services
from .values import (
    DAE_MODEL,
    LANDMARK_MODEL,
    LATENTS,
    POSE,
    SPEECH,
    ImageBatch,
    Latents,
    Pose,
    Speech,
    audio_waveform,
    image_batches,
    image_frames,
    resample_frames,
)
from .widgets import BATCH_SIZE, CATEGORY, DAE_CATEGORY, FRAME_RATE, LANDMARK_BACKEND, SAMPLER, SEED, steps

MODEL_TOOLTIP = "The DAE-Talker model from its loader."
DAE = DEFAULT_SETTINGS["dae"]


def check_speech_fits(speech: Speech, pipeline: DAETalkerPipeline | LandmarkDiffusionPipeline) -> None:
    """Raise when `speech` was encoded for another audio front end than `pipeline`'s."""
    expected = pipeline.feature_extractor.to_config()
    if speech.front_end != expected:
        raise TalkingHeadError(f"the speech was encoded for {speech.front_end} but this model takes {expected}; "
                               "feed the AudioEncoder the same model")


def track_reference_frames(images, frame_rate: float, fps: float, landmark_backend: str):
    """Landmarks [N,68,2] of the face through reference frames (IMAGE at `frame_rate`) resampled to `fps`, and the frame size."""
    keep = resample_frames(len(images), frame_rate, fps)
    return landmarks_through_frames(image_batches(images, "the reference frames", keep),
                                    get_landmarker(landmark_backend), "the reference frames")


def fit_length(sequence: torch.Tensor, num_frames: int) -> torch.Tensor:
    """`sequence` [N,...] played forward and backward as often as needed to last `num_frames`."""
    return sequence if len(sequence) == num_frames else sequence[torch.from_numpy(ping_pong(len(sequence), num_frames))]


class AudioEncoder:
    """Speech (ComfyUI AUDIO) to the features a model was trained on."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (f"{DAE_MODEL},{LANDMARK_MODEL}", {"tooltip": "The model whose audio front end to use (either pipeline)."}),
            "audio": ("AUDIO", {"tooltip": "Speech, e.g. from LoadAudio; any sample rate and channels (downmixed, resampled to 16 kHz)."}),
        }}

    RETURN_TYPES = (SPEECH,)
    RETURN_NAMES = ("speech",)
    FUNCTION = "encode"
    CATEGORY = CATEGORY
    DESCRIPTION = "Speech features per video frame (and the voice embedding for a landmark model)."

    def encode(self, model, audio):
        waveform = audio_waveform(audio)
        voice = None
        if isinstance(model, LandmarkDiffusionPipeline):
            features, voice = model.encode_audio(waveform)
        else:
            features = model.encode_audio(waveform)
        return (Speech(features, model.fps, model.feature_extractor.to_config(), voice, len(waveform) / SAMPLE_RATE),)


class PosePredictor:
    """The head pose speech2latent's pose predictor expects for the speech."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (DAE_MODEL, {"tooltip": MODEL_TOOLTIP}),
            "speech": (SPEECH, {"tooltip": "Speech features from AudioEncoder (with this model)."}),
        }}

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "predict"
    CATEGORY = DAE_CATEGORY
    DESCRIPTION = "Head pose per frame (yaw, pitch, roll in degrees, tx, ty, scale) predicted from speech."

    def predict(self, model: DAETalkerPipeline, speech: Speech):
        check_speech_fits(speech, model)
        with services.on_device(model.require_speech2latent()):
            return (Pose(model.predict_pose(speech.features), model.fps),)


class EditPose:
    """The paper's pose control: scale and offset the head angles, scale the head's movement."""

    @classmethod
    def INPUT_TYPES(cls):
        def scale(what):
            return ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.05,
                              "tooltip": f"Multiplies the {what} (1 keeps it, 0 removes it, -1 mirrors it)."})

        def offset(what):
            return ("FLOAT", {"default": 0.0, "min": -90.0, "max": 90.0, "step": 0.5,
                              "tooltip": f"Degrees added to the {what} in every frame."})

        return {"required": {
            "pose": (POSE, {"tooltip": "A pose from PosePredictor or PoseFromFrames."}),
            "yaw_scale": scale("head's turn left and right (yaw)"), "pitch_scale": scale("nodding (pitch)"),
            "roll_scale": scale("tilt (roll)"),
            "yaw_offset": offset("yaw"), "pitch_offset": offset("pitch"), "roll_offset": offset("roll"),
            "movement_scale": scale("head's movement around its mean position and size (tx, ty, scale)"),
        }}

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "edit"
    CATEGORY = DAE_CATEGORY
    DESCRIPTION = "Scales and offsets the head pose between PosePredictor and Speech2Latent."

    def edit(self, pose: Pose, yaw_scale=1.0, pitch_scale=1.0, roll_scale=1.0, yaw_offset=0.0, pitch_offset=0.0,
             roll_offset=0.0, movement_scale=1.0):
        values = pose.values.clone().float()
        values[:, :3] = values[:, :3] * torch.tensor([yaw_scale, pitch_scale, roll_scale]) + \
            torch.tensor([yaw_offset, pitch_offset, roll_offset])
        mean = values[:, 3:].mean(0)
        values[:, 3:] = mean + (values[:, 3:] - mean) * movement_scale
        return (Pose(values, pose.fps),)


class PoseFromFrames:
    """The head pose of a reference video's frames, re-centred on the model's footage."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (DAE_MODEL, {"tooltip": MODEL_TOOLTIP + " Its footage's mean position and size re-centre the pose."}),
            "images": ("IMAGE", {"tooltip": "Frames of a video showing a face (e.g. GetVideoComponents' images)."}),
            "frame_rate": FRAME_RATE,
            "landmark_backend": LANDMARK_BACKEND,
        }}

    RETURN_TYPES = (POSE,)
    RETURN_NAMES = ("pose",)
    FUNCTION = "estimate"
    CATEGORY = DAE_CATEGORY
    DESCRIPTION = "Head pose per frame of a reference video, to replace the predicted pose (Speech2Latent's pose input)."

    def estimate(self, model: DAETalkerPipeline, images, frame_rate=25.0, landmark_backend="dlib"):
        landmarks, image_size = track_reference_frames(images, frame_rate, model.fps, landmark_backend)
        pose = torch.from_numpy(estimate_head_pose(landmarks, image_size).astype(np.float32))
        return (Pose(model.retarget_pose(pose), model.fps),)


class Speech2Latent:
    """Speech features (and a head pose) to the diffusion autoencoder's semantic latents."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (DAE_MODEL, {"tooltip": MODEL_TOOLTIP}),
                "speech": (SPEECH, {"tooltip": "Speech features from AudioEncoder (with this model)."}),
            },
            "optional": {
                "pose": (POSE, {"tooltip": "Head pose per frame; predicted from the speech when unconnected. A pose "
                                           "of another length plays forward and backward to fit the speech."}),
            },
        }

    RETURN_TYPES = (LATENTS,)
    RETURN_NAMES = ("latents",)
    FUNCTION = "run"
    CATEGORY = DAE_CATEGORY
    DESCRIPTION = "Conformer speech2latent with its pose adaptor: one semantic latent per video frame."

    def run(self, model: DAETalkerPipeline, speech: Speech, pose: Pose | None = None):
        check_speech_fits(speech, model)
        pose_values = None
        if pose is not None:
            values = pose.values[torch.from_numpy(resample_frames(len(pose.values), pose.fps, model.fps))]
            pose_values = fit_length(values, speech.num_frames)
        with services.on_device(model.require_speech2latent()):
            return (Latents(model.speech_to_latents(speech.features, pose_values), model.fps),)


class DAEDecode:
    """Semantic latents to frames with the diffusion autoencoder's decoder, every frame from one noise image."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (DAE_MODEL, {"tooltip": MODEL_TOOLTIP}),
                "latents": (LATENTS, {"tooltip": "Semantic latents from Speech2Latent."}),
                "steps": steps("dae"),
                "sampler": SAMPLER,
                "seed": SEED,
                "batch_size": BATCH_SIZE,
                "output_size": ("INT", {"default": 0, "min": 0, "max": 2048, "step": 8,
                                        "tooltip": "Side of the output frames in pixels; 0 keeps the model's size."}),
            },
            "optional": {
                "reference_image": ("IMAGE", {"tooltip": "A frame of the model's person: its DDIM inversion replaces "
                                                         "the seeded noise (first image of the batch, resized)."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("images", "fps")
    FUNCTION = "decode"
    CATEGORY = DAE_CATEGORY
    DESCRIPTION = "DDIM decoding of the semantic latents to video frames (IMAGE) and their frame rate."

    def decode(self, model: DAETalkerPipeline, latents: Latents, steps=DAE.num_inference_steps, sampler=DAE.sampler,
               seed=DAE.seed, batch_size=DAE.batch_size, output_size=0, reference_image=None):
        semantic_dim = model.unet.config.semantic_dim
        if latents.values.shape[-1] != semantic_dim:
            raise TalkingHeadError(f"the latents are {latents.values.shape[-1]}-d but this model's decoder takes "
                                   f"{semantic_dim}-d ones; make them with Speech2Latent of the same model")
        size = output_size or model.image_size
        num_frames = len(latents.values)
        frames = ImageBatch(num_frames)
        progress = services.Progress(num_frames, "DAEDecode")
        components = [module for module in (model.unet, model.semantic_encoder, model.vae) if module is not None]
        with services.on_device(*components):
            if reference_image is not None:
                reference = resize_frames(image_frames(reference_image[:1], "the reference image"), model.image_size)
                initial_noise = model.invert(to_model_range(reference), steps)
            else:
                initial_noise = model.initial_noise(seed)
            for batch in model.decode_latents(latents.values, initial_noise, num_inference_steps=steps, sampler=sampler,
                                              batch_size=batch_size, callback=lambda done, total: progress.update(done)):
                frames.add(batch if size == model.image_size else resize_frames(batch, size))
        return (frames.image, latents.fps)
