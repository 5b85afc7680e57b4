"""The ComfyUI node pack: both pipelines' stages as nodes, written against ComfyUI's classic node interface.

Node ids carry the prefix "TalkingHead" and never change once released; display names may.
"""

from .dubbing_nodes import DubFrames, TrackFace
from .dae_nodes import AudioEncoder, DAEDecode, EditPose, PoseFromFrames, PosePredictor, Speech2Latent
from .landmark_nodes import A2L, FindFace, HeadMotionFromFrames, L2VDenoise, LandmarkRender, PasteBack
from .loaders import LoadDAETalker, LoadLandmarkDiffusion
from .save import SaveVideo
from .services import readable_errors
from .training_nodes import TrainDAEAvatar

NODE_ID_PREFIX = "TalkingHead"

_NODES = {
    # shared
    "AudioEncoder": (AudioEncoder, "Talking Head: AudioEncoder"),
    "SaveVideo": (SaveVideo, "Talking Head: Save Video (marked synthetic)"),
    # DAE-Talker
    "LoadDAETalker": (LoadDAETalker, "Talking Head: Load DAE-Talker"),
    "PosePredictor": (PosePredictor, "Talking Head: PosePredictor"),
    "EditPose": (EditPose, "Talking Head: Edit Pose"),
    "PoseFromFrames": (PoseFromFrames, "Talking Head: Pose from Frames"),
    "Speech2Latent": (Speech2Latent, "Talking Head: Speech2Latent"),
    "DAEDecode": (DAEDecode, "Talking Head: DAEDecode"),
    "TrainDAEAvatar": (TrainDAEAvatar, "Talking Head: Train DAE-Talker avatar"),
    # landmark-guided
    "LoadLandmarkDiffusion": (LoadLandmarkDiffusion, "Talking Head: Load Landmark Diffusion"),
    "FindFace": (FindFace, "Talking Head: Find Face"),
    "HeadMotionFromFrames": (HeadMotionFromFrames, "Talking Head: Head Motion from Frames"),
    "A2L": (A2L, "Talking Head: A2L"),
    "LandmarkRender": (LandmarkRender, "Talking Head: LandmarkRender"),
    "L2VDenoise": (L2VDenoise, "Talking Head: L2VDenoise"),
    "PasteBack": (PasteBack, "Talking Head: Paste Back"),
    # dubbing a video
    "TrackFace": (TrackFace, "Talking Head: Track Face in Frames"),
    "DubFrames": (DubFrames, "Talking Head: Dub Frames"),
}

NODE_CLASS_MAPPINGS = {NODE_ID_PREFIX + name: readable_errors(node) for name, (node, _) in _NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {NODE_ID_PREFIX + name: title for name, (_, title) in _NODES.items()}
