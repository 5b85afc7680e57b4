"""The ComfyUI node pack without ComfyUI: node declarations, every node's function with tiny models, ComfyUI's
value layouts (IMAGE [B,H,W,C] float in 0..1, AUDIO {"waveform": [B,C,T], "sample_rate"}), ComfyUI's services
through stand-in modules, and bad input."""

import inspect
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from talking_head import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from talking_head.nodes import services
from talking_head.nodes.loaders import model_choices
from talking_head.nodes.values import Landmarks, comfy_image
from talking_head.errors import AudioError, FaceError, ModelError, TalkingHeadError
from talking_head.faces.landmarks import INNER_LIPS
from talking_head.faces.warp import mouth_masks
from talking_head.hub_models.mouth_refiner import MouthRefiner
from talking_head.media.audio import load_audio
from talking_head.media.video import probe_video
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline
from tiny_models import tiny_dae_pipeline, tiny_landmark_pipeline

ASSETS = Path(__file__).resolve().parents[1] / "assets"
REPOSITORY = Path(__file__).resolve().parents[1]
# Released node ids: they must never change (saved workflows refer to them).
RELEASED_NODE_IDS = {
    "TalkingHeadAudioEncoder", "TalkingHeadLoadDAETalker", "TalkingHeadPosePredictor", "TalkingHeadEditPose",
    "TalkingHeadPoseFromFrames", "TalkingHeadSpeech2Latent", "TalkingHeadDAEDecode", "TalkingHeadLoadLandmarkDiffusion",
    "TalkingHeadFindFace", "TalkingHeadHeadMotionFromFrames", "TalkingHeadA2L", "TalkingHeadLandmarkRender",
    "TalkingHeadL2VDenoise", "TalkingHeadPasteBack", "TalkingHeadSaveVideo", "TalkingHeadTrainDAEAvatar",
    "TalkingHeadTrackFace", "TalkingHeadDubFrames",
}
CORE_TYPES = {"IMAGE", "AUDIO", "INT", "FLOAT", "STRING", "BOOLEAN"}


def node(name: str):
    return NODE_CLASS_MAPPINGS["TalkingHead" + name]()


@pytest.fixture(scope="module", autouse=True)
def models_dir(tmp_path_factory) -> Path:
    """The pack's models folder, holding a tiny DAE-Talker and a tiny landmark pipeline (untrained, saved for real)."""
    folder = tmp_path_factory.mktemp("models") / "talking_head"
    tiny_dae_pipeline().save_pretrained(folder / "tiny-dae")
    tiny_landmark_pipeline().save_pretrained(folder / "tiny-landmark")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "STANDALONE_MODELS", folder)
        yield folder


@pytest.fixture(scope="module")
def dae(models_dir) -> DAETalkerPipeline:
    return node("LoadDAETalker").load("tiny-dae")[0]


@pytest.fixture(scope="module")
def landmark(models_dir) -> LandmarkDiffusionPipeline:
    return node("LoadLandmarkDiffusion").load("tiny-landmark")[0]


@pytest.fixture(scope="module")
def stereo_audio() -> dict:
    """Two seconds of speech as LoadAudio gives it: [1, 2, T] float at 44.1 kHz."""
    mono = load_audio(ASSETS / "jfk.flac", sample_rate=44100)[:88200]
    return {"waveform": torch.from_numpy(np.stack([mono, 0.5 * mono]))[None], "sample_rate": 44100}


@pytest.fixture(scope="module")
def portrait() -> torch.Tensor:
    return comfy_image(np.asarray(Image.open(ASSETS / "astronaut.jpg").convert("RGB"))[None])


def assert_comfy_image(image, count: int, height: int, width: int) -> None:
    assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
    assert tuple(image.shape) == (count, height, width, 3)
    assert 0 <= float(image.min()) and float(image.max()) <= 1


# -- declarations -----------------------------------------------------------------------------------------------
def test_node_ids_carry_the_prefix_and_never_change():
    assert set(NODE_CLASS_MAPPINGS) == RELEASED_NODE_IDS
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == RELEASED_NODE_IDS


@pytest.mark.parametrize("node_id", sorted(RELEASED_NODE_IDS))
def test_every_input_has_a_type_a_tooltip_and_a_parameter(node_id):
    node_class = NODE_CLASS_MAPPINGS[node_id]
    declared = node_class.INPUT_TYPES()
    assert set(declared) <= {"required", "optional"}
    function = getattr(node_class, node_class.FUNCTION)
    parameters = inspect.signature(function).parameters
    for section, inputs in declared.items():
        for name, spec in inputs.items():
            kind, options = spec
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
            assert name in parameters, f"{node_id}.{node_class.FUNCTION} does not take {name}"
            if isinstance(kind, list):
                assert kind and options.get("default", kind[0]) in kind
            elif kind in ("INT", "FLOAT"):
                assert options["min"] <= options["default"] <= options["max"]
            else:
                assert all(part in CORE_TYPES or part.startswith("TALKINGHEAD_") for part in kind.split(","))
            if section == "optional":
                assert parameters[name].default is None
    required = {name for name, parameter in parameters.items()
                if name != "self" and parameter.default is inspect.Parameter.empty}
    assert required <= set(declared["required"])
    assert len(node_class.RETURN_NAMES) == len(node_class.RETURN_TYPES)
    assert all(kind in CORE_TYPES or kind.startswith("TALKINGHEAD_") for kind in node_class.RETURN_TYPES)
    assert node_class.CATEGORY.split("/")[0] == "talking_head" and node_class.DESCRIPTION


def test_the_categories_group_the_two_pipelines():
    categories = {node_id: NODE_CLASS_MAPPINGS[node_id].CATEGORY for node_id in RELEASED_NODE_IDS}
    assert categories["TalkingHeadDAEDecode"] == categories["TalkingHeadSpeech2Latent"] == "talking_head/DAE-Talker"
    assert categories["TalkingHeadL2VDenoise"] == categories["TalkingHeadA2L"] == "talking_head/landmark-guided"


def test_importing_the_pack_and_listing_its_inputs_downloads_nothing(tmp_path):
    # The Hub endpoint is a closed port and offline mode is off: any download would fail the import.
    script = ("import talking_head; "
              "print(len([node.INPUT_TYPES() for node in talking_head.NODE_CLASS_MAPPINGS.values()]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9",
                                 "HOME": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(RELEASED_NODE_IDS))


def test_imported_as_comfyui_does_under_its_folder_path_the_loaders_load_both_bundled_models(tmp_path):
    """ComfyUI imports a custom node folder as a module named by its path, and the pack is not installed there:
    nothing may import `talking_head` by name (diffusers' own loader would, for every component)."""
    script = f"""
import importlib.abc, importlib.util, sys

class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "talking_head" or name.startswith("talking_head."):
            raise ImportError("the pack is not installed as talking_head in ComfyUI")

sys.meta_path.insert(0, NotInstalled())
folder = {str(REPOSITORY)!r}
spec = importlib.util.spec_from_file_location(folder, folder + "/__init__.py")
pack = importlib.util.module_from_spec(spec)
sys.modules[folder] = pack
spec.loader.exec_module(pack)
for loader, choice in (("TalkingHeadLoadDAETalker", "bundled/dae-talker-grid-s1"),
                       ("TalkingHeadLoadLandmarkDiffusion", "bundled/landmark-diffusion")):
    pipeline = pack.NODE_CLASS_MAPPINGS[loader]().load(choice)[0]
    print(type(pipeline).__name__, pipeline.image_size, pipeline.is_trained)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path),
                                 "PYTHONPATH": ":".join(sys.path)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["DAETalkerPipeline 128 True", "LandmarkDiffusionPipeline 128 True"]
    assert "accelerate" not in result.stderr


# -- loaders ----------------------------------------------------------------------------------------------------------
def test_loaders_offer_the_bundled_model_first_and_only_folders_of_their_kind(models_dir):
    dae_choices = model_choices(DAETalkerPipeline)
    landmark_choices = model_choices(LandmarkDiffusionPipeline)
    assert dae_choices == ["bundled/dae-talker-grid-s1", "tiny-dae"]
    assert landmark_choices == ["bundled/landmark-diffusion", "tiny-landmark"]
    required = NODE_CLASS_MAPPINGS["TalkingHeadLoadDAETalker"].INPUT_TYPES()["required"]
    assert required["model"][1]["default"] == "bundled/dae-talker-grid-s1"


def test_a_loader_downloads_a_hub_repo_into_the_models_folder_when_it_runs(local_hub, models_dir):
    local_hub.add_repo("someone/tiny-landmark", models_dir / "tiny-landmark")
    loaded = node("LoadLandmarkDiffusion").load("bundled/landmark-diffusion", hub_repo_id="someone/tiny-landmark")[0]
    assert isinstance(loaded, LandmarkDiffusionPipeline) and loaded.image_size == 32
    downloaded = list((models_dir / "hub").rglob("diffusion_pytorch_model.safetensors"))
    assert downloaded and all(models_dir in path.parents for path in downloaded)
    assert any(path.startswith("/someone/tiny-landmark/resolve") for path in local_hub.requested_paths("GET"))


@pytest.mark.parametrize("hub_repo_id, message", [
    ("someone/missing", "the model someone/missing is not in the local Hugging Face cache"),
    ("/no/such/folder", "model folder not found"),
])
def test_a_loader_that_cannot_get_its_model_says_why(hub_repo_id, message):
    with pytest.raises(ModelError, match=message):
        node("LoadDAETalker").load("tiny-dae", hub_repo_id=hub_repo_id)


def test_a_model_of_the_wrong_kind_is_refused_by_the_loader(models_dir):
    with pytest.raises(ModelError, match="holds a DAETalkerPipeline, not a LandmarkDiffusionPipeline"):
        node("LoadLandmarkDiffusion").load("tiny-landmark", hub_repo_id=str(models_dir / "tiny-dae"))


def test_an_untrained_model_says_so_when_loaded(caplog):
    with caplog.at_level("WARNING"):
        node("LoadDAETalker").load("tiny-dae")
    assert "untrained" in caplog.text


# -- training -----------------------------------------------------------------------------------------------------------
def test_train_avatar_turns_images_and_audio_into_a_model_the_loader_lists(models_dir, tmp_path, monkeypatch):
    from talking_head.nodes import training_nodes
    from talking_head.training import avatar
    from talking_head.media.video import read_video_frames

    footage = ASSETS / "grid_s1_footage.mp4"  # one man, 1 minute (GRID s1, CC BY 4.0)
    base = tmp_path / "base"
    tiny_dae_pipeline(latent_space=True).save_pretrained(base)
    monkeypatch.setattr(training_nodes, "AVATAR_BASE", base)
    monkeypatch.setattr(avatar, "AVATAR_RECIPE", avatar.AvatarRecipe(resolution=64, speech2latent_preset="tiny"))
    monkeypatch.setattr(avatar, "MIN_SPEECH_SECONDS", 5.0)
    frames = np.concatenate(list(read_video_frames(footage)))[:250]  # 10 s
    images = comfy_image(frames)
    audio = {"waveform": torch.from_numpy(load_audio(footage, sample_rate=44100)[:441000])[None, None],
             "sample_rate": 44100}
    with pytest.raises(TalkingHeadError, match="must be a plain folder name"):
        node("TrainDAEAvatar").train("../elsewhere", 1.0, images=images, audio=audio)
    with pytest.raises(TalkingHeadError, match="connect the footage"):
        node("TrainDAEAvatar").train("grid", 1.0)

    with torch.inference_mode():  # as ComfyUI runs its nodes
        model = node("TrainDAEAvatar").train("grid", 0.5, images=images, audio=audio, frame_rate=25.0)[0]

    assert isinstance(model, DAETalkerPipeline) and "evaluation" in model.training_record
    assert (models_dir / "grid" / "README.md").exists() and (models_dir / "grid.work" / "footage.mp4").exists()
    assert "grid" in model_choices(DAETalkerPipeline) and "grid.work" not in model_choices(DAETalkerPipeline)
    speech = node("AudioEncoder").encode(model, audio)[0]
    latents = node("Speech2Latent").run(model, speech)[0]
    assert_comfy_image(node("DAEDecode").decode(model, latents, steps=1)[0], 250, 64, 64)


# -- DAE-Talker -------------------------------------------------------------------------------------------------------
def test_the_dae_talker_nodes_turn_comfy_audio_into_image_frames(dae, stereo_audio):
    speech = node("AudioEncoder").encode(dae, stereo_audio)[0]
    assert speech.num_frames == 50 and speech.voice is None  # 2 s at 25 fps
    pose = node("PosePredictor").predict(dae, speech)[0]
    assert tuple(pose.values.shape) == (50, 6)
    latents = node("Speech2Latent").run(dae, speech, pose)[0]
    assert tuple(latents.values.shape) == (50, dae.unet.config.semantic_dim)
    images, fps = node("DAEDecode").decode(dae, latents, steps=2, batch_size=16)
    assert_comfy_image(images, 50, 16, 16)
    assert fps == 25.0
    resized, _ = node("DAEDecode").decode(dae, latents, steps=2, output_size=32)
    assert_comfy_image(resized, 50, 32, 32)


def test_the_node_chain_and_the_video_job_join_speech2latents_windows_the_same_way(dae, tmp_path, monkeypatch):
    from talking_head import jobs
    from talking_head.pipelines.dae_talker import LATENT_WINDOW_FRAMES
    from talking_head.pipelines.settings import SamplingSettings

    audio = {"waveform": torch.from_numpy(load_audio(ASSETS / "jfk.flac"))[None, None], "sample_rate": 16000}
    speech = node("AudioEncoder").encode(dae, audio)[0]
    assert speech.num_frames > LATENT_WINDOW_FRAMES  # 11 s: two overlapping windows
    pose = node("PosePredictor").predict(dae, speech)[0]
    node_latents = node("Speech2Latent").run(dae, speech, pose)[0].values
    job_latents = []
    decode = DAETalkerPipeline.decode_latents
    monkeypatch.setattr(DAETalkerPipeline, "decode_latents",
                        lambda self, latents, *args, **kwargs: job_latents.append(latents) or decode(self, latents, *args, **kwargs))

    jobs.run(jobs.dae_talker_video(dae, ASSETS / "jfk.flac", tmp_path / "job.mp4", settings=SamplingSettings(1)))

    torch.testing.assert_close(job_latents[0], node_latents, rtol=0, atol=1e-5)
    torch.testing.assert_close(dae(load_audio(ASSETS / "jfk.flac"), num_inference_steps=1).latents, node_latents,
                               rtol=0, atol=1e-5)


def test_edit_pose_scales_and_offsets_the_angles_and_scales_the_movement(dae):
    values = torch.tensor([[10.0, 5.0, 1.0, 0.1, 0.2, 1.0], [20.0, -5.0, 3.0, 0.3, 0.4, 1.2]])
    from talking_head.nodes.values import Pose
    edited = node("EditPose").edit(Pose(values, 25.0), yaw_scale=2.0, pitch_scale=0.0, roll_offset=10.0,
                                   movement_scale=0.5)[0].values
    torch.testing.assert_close(edited[:, 0], torch.tensor([20.0, 40.0]))
    torch.testing.assert_close(edited[:, 1], torch.zeros(2))
    torch.testing.assert_close(edited[:, 2], torch.tensor([11.0, 13.0]))
    torch.testing.assert_close(edited[:, 3:], torch.tensor([[0.15, 0.25, 1.05], [0.25, 0.35, 1.15]]))


def test_speech2latent_follows_a_given_pose_of_any_length_and_frame_rate(dae, stereo_audio):
    from talking_head.nodes.values import Pose
    speech = node("AudioEncoder").encode(dae, stereo_audio)[0]
    predicted = node("Speech2Latent").run(dae, speech)[0].values
    turned = node("PosePredictor").predict(dae, speech)[0]
    turned.values[:, 0] += 30
    steered = node("Speech2Latent").run(dae, speech, turned)[0].values
    assert not torch.allclose(predicted, steered)
    short_fast = Pose(torch.randn(20, 6), 50.0)  # 0.4 s at 50 fps: resampled to 10 frames, then played back and forth
    assert len(node("Speech2Latent").run(dae, speech, short_fast)[0].values) == 50


def test_pose_from_frames_reads_the_head_pose_of_a_reference_video(dae, portrait):
    frames = portrait.expand(8, -1, -1, -1)
    pose = node("PoseFromFrames").estimate(dae, frames, frame_rate=50.0)[0]
    assert tuple(pose.values.shape) == (4, 6) and pose.fps == 25.0  # 8 frames at 50 fps = 4 at 25
    assert torch.allclose(pose.values, pose.values[:1].expand(4, -1))  # a still head


def test_decode_stops_within_one_batch_of_a_cancel_and_reports_progress_throttled(dae, stereo_audio, monkeypatch):
    comfy = fake_comfyui(monkeypatch, interrupt_after_updates=1)
    speech = node("AudioEncoder").encode(dae, stereo_audio)[0]
    latents = node("Speech2Latent").run(dae, speech)[0]
    batches = []
    hook = dae.unet.register_forward_hook(lambda module, args, output: batches.append(1))
    try:
        with pytest.raises(comfy.Interrupted):
            node("DAEDecode").decode(dae, latents, steps=2, batch_size=4)
    finally:
        hook.remove()
    assert len(batches) == 2 * 2  # the batch running when the user cancelled, and the next: 2 steps each
    assert comfy.progress == [(4, 50)]


def test_progress_reaches_comfyui_at_most_a_few_times_a_second_and_always_at_the_end(dae, stereo_audio, monkeypatch):
    comfy = fake_comfyui(monkeypatch)
    speech = node("AudioEncoder").encode(dae, stereo_audio)[0]
    latents = node("Speech2Latent").run(dae, speech)[0]
    clock = types.SimpleNamespace(now=0.0)

    def monotonic():  # each reading is 0.1 s after the last, however busy the machine is
        clock.now += 0.1
        return clock.now

    monkeypatch.setattr(services, "time", types.SimpleNamespace(monotonic=monotonic))
    node("DAEDecode").decode(dae, latents, steps=1, batch_size=1)
    assert comfy.progress[-1] == (50, 50)
    assert len(comfy.progress) <= 2 + clock.now / services.PROGRESS_INTERVAL < 50


def test_inside_comfyui_the_models_folder_is_registered_under_models(monkeypatch, tmp_path):
    fake_comfyui(monkeypatch, models_dir=tmp_path)
    assert services.model_folders() == [tmp_path / "talking_head"]
    assert services.hub_cache() == tmp_path / "talking_head" / "hub"


# -- landmark-guided ------------------------------------------------------------------------------------------------
def test_the_landmark_nodes_turn_a_portrait_and_audio_into_full_size_frames(landmark, stereo_audio, portrait):
    speech = node("AudioEncoder").encode(landmark, stereo_audio)[0]
    assert speech.num_frames == 50 and tuple(speech.voice.shape) == (256,)
    face, crop = node("FindFace").find(landmark, portrait)
    assert_comfy_image(crop, 1, 32, 32)
    landmarks = node("A2L").run(landmark, speech, face)[0]
    assert landmarks.points.shape == (50, 68, 2)
    doubled = node("A2L").run(landmark, speech, face, motion_scale=2.0)[0]  # the motion_scale widget
    np.testing.assert_allclose(doubled.points - face.crop_landmarks, 2 * (landmarks.points - face.crop_landmarks),
                               atol=1e-4)
    drawings, fps = node("LandmarkRender").render(landmarks, size=64)
    assert_comfy_image(drawings, 50, 64, 64)
    assert fps == 25.0 and float(drawings.max()) > 0.5
    crops, _ = node("L2VDenoise").denoise(landmark, face, landmarks, steps=2, batch_size=16)
    assert_comfy_image(crops, 50, 32, 32)
    drawn, _ = node("L2VDenoise").denoise(landmark, face, landmarks, steps=2, batch_size=16, lower_face="drawn")
    outside_mouths = torch.from_numpy(mouth_masks(landmarks.points, 32) == 0)
    assert float((drawn - crops).abs()[outside_mouths].mean()) > 2 / 255  # the lower_face widget: L2V draws it all
    frames, fps = node("PasteBack").paste(face, crops, landmarks)
    height, width = portrait.shape[1:3]
    assert_comfy_image(frames, 50, height, width)
    outside = torch.ones(height, width, dtype=torch.bool)
    x, y, side = face.box
    outside[max(0, int(y - side)):int(y + side), max(0, int(x - side)):int(x + side)] = False
    assert torch.allclose(frames[:, outside], portrait[0, outside].expand(50, -1, -1), atol=1 / 255)
    upscaled = torch.nn.functional.interpolate(crops.permute(0, 3, 1, 2), size=64).permute(0, 2, 3, 1)
    assert_comfy_image(node("PasteBack").paste(face, upscaled, landmarks)[0], 50, height, width)


def test_paste_back_with_the_model_connected_redraws_the_mouths_with_its_refiner(landmark, portrait):
    face = node("FindFace").find(landmark, portrait)[0]
    points = np.repeat(face.crop_landmarks[None], 2, axis=0)
    landmarks = Landmarks(points, landmark.still_head(2), len(face.crop), 25.0)
    crops = comfy_image(np.repeat(face.crop[None], 2, axis=0))
    painting = LandmarkDiffusionPipeline(**{**landmark.components, "mouth_refiner": MouthRefiner(window_size=32)},
                                         crop_scale=landmark.config.crop_scale)
    torch.nn.init.constant_(painting.mouth_refiner.conv_out.bias, 4.0)  # paints its windows white
    plain = node("PasteBack").paste(face, crops, landmarks)[0]
    assert torch.equal(node("PasteBack").paste(face, crops, landmarks, model=landmark)[0], plain)  # no refiner
    refined = node("PasteBack").paste(face, crops, landmarks, model=painting)[0]
    mouth = np.round(face.landmarks[list(INNER_LIPS)].mean(0)).astype(int)
    assert float(refined[:, mouth[1], mouth[0]].min()) > 0.92 > 0.8 > float(plain[:, mouth[1], mouth[0]].min())
    assert float((refined != plain).any(-1).float().mean()) < 0.05  # the mouth, not the portrait


def test_head_motion_from_frames_moves_the_landmarks_with_the_head(landmark, stereo_audio, portrait):
    shifted = torch.stack([torch.roll(portrait[0], shifts=4 * step, dims=1) for step in range(5)])  # 4 px right a frame
    motion = node("HeadMotionFromFrames").track(landmark, shifted, frame_rate=25.0)[0]
    speech = node("AudioEncoder").encode(landmark, stereo_audio)[0]
    face, _ = node("FindFace").find(landmark, portrait)
    still = node("A2L").run(landmark, speech, face)[0]
    moving = node("A2L").run(landmark, speech, face, motion)[0]
    crop_pixels_per_image_pixel = 32 / face.box[2]
    shift = (moving.points - still.points)[:, :, 0].mean(axis=1)
    expected = 4 * crop_pixels_per_image_pixel * np.array([0, 1, 2, 3, 4, 3, 2, 1, 0, 1])  # played back and forth
    np.testing.assert_allclose(shift[:10], expected, atol=0.25)


def test_the_dubbing_nodes_give_the_frames_the_video_job_writes(landmark, tmp_path, monkeypatch):
    from audio_files import write_wav
    from talking_head import jobs
    from talking_head.media.video import VideoWriter, read_video_frames
    from talking_head.pipelines.settings import SamplingSettings

    video = ASSETS / "obama_head_motion.mp4"  # 102 frames; the speech lasts 38
    speech_file = write_wav(tmp_path / "speech.wav", load_audio(ASSETS / "jfk.flac")[:24000])
    speech = load_audio(speech_file)  # the 16-bit samples the job hears
    written = []
    write = VideoWriter.write
    monkeypatch.setattr(VideoWriter, "write", lambda self, batch: written.append(batch) or write(self, batch))
    jobs.run(jobs.dub_video(landmark, speech_file, video, tmp_path / "dub.mp4", settings=SamplingSettings(1, batch_size=8)))

    frames = comfy_image(np.concatenate(list(read_video_frames(video))))  # what LoadVideo gives: the same frames
    encoded = node("AudioEncoder").encode(landmark, {"waveform": torch.from_numpy(speech)[None, None],
                                                     "sample_rate": 16000})[0]
    track = node("TrackFace").track(landmark, frames, 25.0)[0]
    images, fps = node("DubFrames").dub(landmark, encoded, track, frames, steps=1, batch_size=8)

    assert_comfy_image(images, 38, 256, 256) and fps == 25.0
    np.testing.assert_array_equal((images.numpy() * 255).round().astype(np.uint8), np.concatenate(written))


def test_save_video_writes_numbered_mp4s_marked_synthetic_and_shows_them(tmp_path, monkeypatch):
    from talking_head.media.video import read_metadata

    monkeypatch.setattr(services, "STANDALONE_OUTPUT", tmp_path)
    frames = torch.rand(10, 32, 48, 3)
    audio = {"waveform": torch.rand(1, 2, 17640) - 0.5, "sample_rate": 44100}  # 0.4 s of stereo at 44.1 kHz
    shown = [node("SaveVideo").save(frames, 25.0, "talks/first", audio)["ui"]["images"][0] for _ in range(2)]
    assert shown == [{"filename": f"first_0000{n}_.mp4", "subfolder": "talks", "type": "output"} for n in (1, 2)]
    video = tmp_path / "talks" / "first_00002_.mp4"
    facts = probe_video(video)
    assert (facts["width"], facts["height"], facts["num_frames"], facts["has_audio"]) == (48, 32, 10, True)
    assert read_metadata(video)["comment"].startswith("synthetic=true")
    silent = node("SaveVideo").save(frames, 25.0, "mute")["ui"]["images"][0]
    assert not probe_video(tmp_path / silent["filename"])["has_audio"]


# -- bad input --------------------------------------------------------------------------------------------------------
def test_an_image_without_a_face_gets_a_face_error_that_comfyui_names_by_its_class(landmark):
    gradient = torch.linspace(0, 1, 256)[None, None, :, None].expand(1, 256, 256, 3)
    with pytest.raises(FaceError, match="no face found in the image") as raised:
        node("FindFace").find(landmark, gradient)
    # ComfyUI shows module + "." + qualname unless the module is builtins; a pack's module is its folder path
    assert raised.type.__module__ == "builtins" and raised.type.__qualname__ == "FaceError"


@pytest.mark.parametrize("waveform, message", [
    (torch.zeros(1, 1, 0), "the audio input is empty"),
    (torch.zeros(1, 2, 16000), "the audio input is silent"),
    (torch.full((1, 1, 100), float("nan")), "NaN"),
])
def test_empty_or_silent_audio_gets_an_audio_error(dae, waveform, message):
    with pytest.raises(AudioError, match=message):
        node("AudioEncoder").encode(dae, {"waveform": waveform, "sample_rate": 16000})


def test_a_value_that_is_not_comfy_audio_is_named(dae):
    with pytest.raises(TalkingHeadError, match="not a ComfyUI AUDIO"):
        node("AudioEncoder").encode(dae, torch.zeros(1, 16000))


def test_speech_encoded_for_another_model_is_refused(dae, landmark, stereo_audio, portrait):
    speech = node("AudioEncoder").encode(dae, stereo_audio)[0]
    speech.front_end = {**speech.front_end, "fps": 30.0}
    with pytest.raises(TalkingHeadError, match="feed the AudioEncoder the same model"):
        node("Speech2Latent").run(dae, speech)
    dae_speech = node("AudioEncoder").encode(dae, stereo_audio)[0]
    face, _ = node("FindFace").find(landmark, portrait)
    with pytest.raises(TalkingHeadError, match="no voice embedding"):
        node("A2L").run(landmark, dae_speech, face)


def test_latents_of_another_size_are_refused_by_the_decoder(dae):
    from talking_head.nodes.values import Latents
    with pytest.raises(TalkingHeadError, match="make them with Speech2Latent of the same model"):
        node("DAEDecode").decode(dae, Latents(torch.zeros(3, 7), 25.0), steps=1)


# -- ComfyUI stand-ins ------------------------------------------------------------------------------------------------
def fake_comfyui(monkeypatch, interrupt_after_updates: int | None = None, models_dir: Path | None = None):
    """Install stand-ins for ComfyUI's folder_paths, comfy.utils and comfy.model_management; returns a recorder."""

    class Interrupted(Exception):
        pass

    recorder = types.SimpleNamespace(progress=[], Interrupted=Interrupted)

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            recorder.progress.append((value, total))

    def throw_exception_if_processing_interrupted():
        if interrupt_after_updates is not None and len(recorder.progress) >= interrupt_after_updates:
            raise Interrupted()

    model_management = types.SimpleNamespace(
        get_torch_device=lambda: torch.device("cpu"), unet_offload_device=lambda: torch.device("cpu"),
        soft_empty_cache=lambda: None, free_memory=lambda *args: None,
        throw_exception_if_processing_interrupted=throw_exception_if_processing_interrupted)
    folders = {}
    root = models_dir or Path("/nonexistent-comfyui/models")
    folder_paths = types.SimpleNamespace(
        models_dir=str(root), folder_names_and_paths=folders,
        add_model_folder_path=lambda name, path: folders.setdefault(name, ([], set()))[0].append(path),
        get_folder_paths=lambda name: folders[name][0])
    comfy = types.ModuleType("comfy")
    comfy.utils = types.SimpleNamespace(ProgressBar=ProgressBar)
    comfy.model_management = model_management
    for name, module in {"folder_paths": folder_paths, "comfy": comfy, "comfy.utils": comfy.utils,
                         "comfy.model_management": model_management}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return recorder
