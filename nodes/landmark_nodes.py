"""The landmark-guided pipeline's stages as nodes: face finding, head motion from frames, A2L, LandmarkRender,
L2VDenoise and paste-back."""

from ..errors import TalkingHeadError
from ..faces.portrait import PortraitFace
from ..faces.paste import paste_back
from ..faces.render import render_landmarks
from ..media.video import resize_frames
from ..pipelines.landmark import LandmarkDiffusionPipeline
from ..pipelines.settings import (
    DEFAULT_LOWER_FACE,
    DEFAULT_MOTION_SCALE,
    DEFAULT_SETTINGS,
    LOWER_FACES,
    MAX_MOTION_SCALE,
    check_lower_face,
)
from . import services
from .dae_nodes import check_speech_fits, track_reference_frames
from .values import (
    FACE,
    HEAD_MOTION,
    LANDMARK_MODEL,
    LANDMARKS,
    SPEECH,
    HeadMotion,
    ImageBatch,
    Landmarks,
    Speech,
    comfy_image,
    image_batches,
    image_frames,
)
from .widgets import BATCH_SIZE, FRAME_RATE, LANDMARK_BACKEND, LANDMARK_CATEGORY, SAMPLER, SEED, steps

MODEL_TOOLTIP = "The landmark-guided model from its loader."
LANDMARK = DEFAULT_SETTINGS["landmark"]
# LandmarkRender draws this many frames at a time.
RENDER_CHUNK = 64


def _check_face_fits(face: PortraitFace, model: LandmarkDiffusionPipeline) -> None:
    if len(face.crop) != model.image_size:
        raise TalkingHeadError(f"the face was cropped at {len(face.crop)} pixels for another model; this one works at "
                               f"{model.image_size}: feed FindFace the same model")


class FindFace:
    """The face to animate in an IMAGE, with its landmarks and the crop the model sees."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (LANDMARK_MODEL, {"tooltip": MODEL_TOOLTIP + " Its crop size and framing are used."}),
            "image": ("IMAGE", {"tooltip": "A portrait (the first image of the batch is used)."}),
            "face_index": ("INT", {"default": 0, "min": 0, "max": 63,
                                   "tooltip": "Which face when there are several: 0 is the largest, 1 the next, ..."}),
            "landmark_backend": LANDMARK_BACKEND,
        }}

    RETURN_TYPES = (FACE, "IMAGE")
    RETURN_NAMES = ("face", "crop")
    FUNCTION = "find"
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = "Detects the face and its 68 landmarks and crops it for the model."

    def find(self, model: LandmarkDiffusionPipeline, image, face_index=0, landmark_backend="dlib"):
        portrait = image_frames(image[:1], "the image")[0]
        face = model.find_face(portrait, face_index, landmark_backend, what="the image")
        return (face, comfy_image(face.crop[None]))


class HeadMotionFromFrames:
    """The head motion of a reference video's frames, for the portrait to follow."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (LANDMARK_MODEL, {"tooltip": MODEL_TOOLTIP + " Its frame rate is used."}),
            "images": ("IMAGE", {"tooltip": "Frames of a video showing a face (e.g. GetVideoComponents' images)."}),
            "frame_rate": FRAME_RATE,
            "landmark_backend": LANDMARK_BACKEND,
        }}

    RETURN_TYPES = (HEAD_MOTION,)
    RETURN_NAMES = ("head_motion",)
    FUNCTION = "track"
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = "Tracks the face through the frames; A2L moves the portrait's head the same way."

    def track(self, model: LandmarkDiffusionPipeline, images, frame_rate=25.0, landmark_backend="dlib"):
        landmarks, _ = track_reference_frames(images, frame_rate, model.fps, landmark_backend)
        return (HeadMotion(landmarks, model.fps),)


class A2L:
    """Speech and the face's landmarks to a landmark sequence, one per video frame."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (LANDMARK_MODEL, {"tooltip": MODEL_TOOLTIP}),
                "speech": (SPEECH, {"tooltip": "Speech features and voice embedding from AudioEncoder (with this model)."}),
                "face": (FACE, {"tooltip": "The face from FindFace."}),
            },
            "optional": {
                "head_motion": (HEAD_MOTION, {"tooltip": "Head motion to follow (HeadMotionFromFrames); the head stays "
                                                         "still when unconnected. Shorter motion plays forward and backward."}),
                "motion_scale": ("FLOAT", {"default": DEFAULT_MOTION_SCALE, "min": 0.0, "max": MAX_MOTION_SCALE,
                                           "step": 0.05, "tooltip": "How far the mouth and jaw move, times what A2L "
                                                                    "measured when it was trained; 0 keeps the face still."}),
            },
        }

    RETURN_TYPES = (LANDMARKS,)
    RETURN_NAMES = ("landmarks",)
    FUNCTION = "run"
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = "A2L: the face's 68 landmarks moving with the speech (and the head motion)."

    def run(self, model: LandmarkDiffusionPipeline, speech: Speech, face: PortraitFace, head_motion: HeadMotion | None = None,
            motion_scale: float | None = None):
        check_speech_fits(speech, model)
        _check_face_fits(face, model)
        if speech.voice is None:
            raise TalkingHeadError("the speech has no voice embedding; encode it with AudioEncoder and a landmark model")
        with services.on_device(model.require_a2l()):
            points = model.audio_to_landmarks(speech.features, speech.voice, face.crop_landmarks,
                                              DEFAULT_MOTION_SCALE if motion_scale is None else motion_scale)
        if head_motion is None:
            transforms = model.still_head(len(points))
        else:
            transforms = model.head_motion_from_landmarks(head_motion.landmarks, len(points))
        return (Landmarks(model.move_head(points, transforms), transforms, model.image_size, model.fps),)


class LandmarkRender:
    """Landmarks drawn as coloured lines: L2V's visual condition, and a preview."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "landmarks": (LANDMARKS, {"tooltip": "Landmarks from A2L."}),
            "size": ("INT", {"default": 256, "min": 32, "max": 2048, "step": 8, "tooltip": "Side of the drawings in pixels."}),
        }}

    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("images", "fps")
    FUNCTION = "render"
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = "Draws each frame's landmarks (jaw, brows, nose, eyes, lips in their own colours)."

    def render(self, landmarks: Landmarks, size=256):
        images = ImageBatch(len(landmarks.points))
        for start in range(0, len(landmarks.points), RENDER_CHUNK):
            images.add(render_landmarks(landmarks.points[start:start + RENDER_CHUNK], size, from_size=landmarks.crop_size))
        return (images.image, landmarks.fps)


class L2VDenoise:
    """Face crops drawn by L2V from the landmarks, the pose reference and the identity reference."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (LANDMARK_MODEL, {"tooltip": MODEL_TOOLTIP}),
            "face": (FACE, {"tooltip": "The face from FindFace: identity and pose references."}),
            "landmarks": (LANDMARKS, {"tooltip": "Landmarks from A2L."}),
            "steps": steps("landmark"),
            "sampler": SAMPLER,
            "seed": SEED,
            "batch_size": BATCH_SIZE,
        }, "optional": {
            "lower_face": (list(LOWER_FACES), {"default": DEFAULT_LOWER_FACE, "tooltip": (
                "warped: the portrait's own lower face moved onto the landmarks, L2V drawing inside the mouth; "
                "drawn: all of it drawn by L2V, as in the paper.")}),
        }}

    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("crops", "fps")
    FUNCTION = "denoise"
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = ("L2V latent diffusion: one face crop per frame, every frame from one noise image; by default the "
                   "portrait's own lower face, warped onto the landmarks, keeps all but L2V's mouth. Paste them back "
                   "with PasteBack.")

    def denoise(self, model: LandmarkDiffusionPipeline, face: PortraitFace, landmarks: Landmarks,
                steps=LANDMARK.num_inference_steps, sampler=LANDMARK.sampler, seed=LANDMARK.seed,
                batch_size=LANDMARK.batch_size, lower_face: str | None = None):
        _check_face_fits(face, model)
        if landmarks.crop_size != model.image_size:
            raise TalkingHeadError(f"the landmarks are for {landmarks.crop_size}-pixel crops; this model works at {model.image_size}")
        num_frames = len(landmarks.points)
        crops = ImageBatch(num_frames)
        progress = services.Progress(num_frames, "L2VDenoise")
        with services.on_device(model.vae, model.unet, model.landmark_encoder):
            for batch in model.generate_crops(face, landmarks.points, landmarks.transforms, model.initial_noise(seed),
                                              num_inference_steps=steps, sampler=sampler, batch_size=batch_size,
                                              callback=lambda done, total: progress.update(done),
                                              lower_face=lower_face or DEFAULT_LOWER_FACE):
                crops.add(batch)
        return (crops.image, landmarks.fps)


class PasteBack:
    """Generated face crops blended back into the full portrait, the head moved with the landmarks."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "face": (FACE, {"tooltip": "The face from FindFace: its portrait receives the crops."}),
            "crops": ("IMAGE", {"tooltip": "One face crop per frame (L2VDenoise's crops, possibly processed; resized to the face's crop size)."}),
            "landmarks": (LANDMARKS, {"tooltip": "The landmarks the crops were made from (A2L)."}),
        }, "optional": {
            "lower_face": (list(LOWER_FACES), {"default": DEFAULT_LOWER_FACE, "tooltip": (
                "warped: the portrait's own lower face moved onto the landmarks at the portrait's resolution, the "
                "crops' mouths set in (as sharp as the photo); drawn: the crops enlarged.")}),
            "model": (LANDMARK_MODEL, {"tooltip": (
                "The model that drew the crops: if it has a mouth refiner, each mouth is redrawn at the portrait's "
                "resolution (warped lower face only).")}),
        }}

    RETURN_TYPES = ("IMAGE", "FLOAT")
    RETURN_NAMES = ("images", "fps")
    FUNCTION = "paste"
    CATEGORY = LANDMARK_CATEGORY
    DESCRIPTION = ("Full-size frames: each generated lower face pasted into the portrait with a soft mask; with the "
                   "model connected, its mouth refiner (if it has one) redraws each mouth at the portrait's "
                   "resolution.")

    def paste(self, face: PortraitFace, crops, landmarks: Landmarks, lower_face: str | None = None,
              model: LandmarkDiffusionPipeline | None = None):
        lower_face = lower_face or DEFAULT_LOWER_FACE
        check_lower_face(lower_face)
        if len(crops) != len(landmarks.points):
            raise TalkingHeadError(f"{len(crops)} crops for {len(landmarks.points)} frames of landmarks")
        frames = ImageBatch(len(crops))
        size = len(face.crop)
        refiner = model.mouth_refiner if model is not None else None
        with services.on_device(*([refiner] if refiner is not None else [])):
            for start, batch in zip(range(0, len(crops), RENDER_CHUNK),
                                    image_batches(crops, "the crops", batch_size=RENDER_CHUNK)):
                stop = start + len(batch)
                frames.add(paste_back(face, resize_frames(batch, size), landmarks.points[start:stop],
                                      landmarks.transforms[start:stop], lower_face, refiner))
        return (frames.image, landmarks.fps)

