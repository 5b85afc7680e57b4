"""The shipped workflows: in sync with their build script, the UI format consistent with the API format, and both
API-format workflows executed end to end (tiny models) by a small topological executor to an mp4 with audio."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from talking_head import NODE_CLASS_MAPPINGS
from talking_head.nodes import services
from talking_head.nodes.values import comfy_image
from talking_head.media.audio import load_audio
from talking_head.media.video import probe_video, read_metadata, read_video_frames
from tiny_models import tiny_dae_pipeline, tiny_landmark_pipeline

REPOSITORY = Path(__file__).resolve().parents[1]
WORKFLOWS = REPOSITORY / "workflows"
ASSETS = REPOSITORY / "assets"
PIPELINES = ("dae_talker", "landmark_diffusion", "dubbing", "avatar")


def _load_build_script():
    spec = importlib.util.spec_from_file_location("build_workflows", REPOSITORY / "scripts" / "build_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_workflows = _load_build_script()


def api_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def ui_workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def test_the_workflow_files_match_the_node_definitions():
    for path, text in build_workflows.render_workflows().items():
        assert path.read_text() == text, f"{path} is stale: run python scripts/build_workflows.py"


@pytest.mark.parametrize("name", PIPELINES)
def test_the_ui_workflow_is_the_api_workflow_on_a_canvas(name):
    ui = ui_workflow(name)
    nodes = {node["id"]: node for node in ui["nodes"]}
    links = {link[0]: link for link in ui["links"]}
    assert ui["version"] == 0.4 and ui["last_link_id"] == max(links) and ui["last_node_id"] == max(nodes)
    converted = {}
    for node in ui["nodes"]:
        spec = build_workflows.node_spec(node["type"])
        inputs = {}
        for slot, entry in enumerate(node["inputs"]):
            if entry["link"] is None:
                continue
            link_id, source, source_slot, target, target_slot, kind = links[entry["link"]]
            assert (target, target_slot) == (node["id"], slot)
            source_node = nodes[source]
            assert source_node["outputs"][source_slot]["type"] == kind
            assert entry["link"] in source_node["outputs"][source_slot]["links"]
            assert set(entry["type"].split(",")) & set(kind.split(","))
            inputs[entry["name"]] = [str(source), source_slot]
        values = list(node["widgets_values"])
        for widget, _, _, seed_control in spec["widgets"]:
            value = values.pop(0)
            if seed_control:
                assert values.pop(0) in ("fixed", "increment", "decrement", "randomize")
            if widget not in inputs:
                inputs[widget] = value
        assert values == spec["ui_extra"]
        converted[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    expected = {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]}
                for node_id, node in api_workflow(name).items()}
    assert converted == expected


@pytest.mark.parametrize("name, expected_nodes", [
    ("dae_talker", {"LoadAudio", "TalkingHeadLoadDAETalker", "TalkingHeadAudioEncoder", "TalkingHeadPosePredictor",
                    "TalkingHeadEditPose", "TalkingHeadSpeech2Latent", "TalkingHeadDAEDecode", "TalkingHeadSaveVideo"}),
    ("landmark_diffusion", {"LoadImage", "LoadAudio", "TalkingHeadLoadLandmarkDiffusion", "TalkingHeadAudioEncoder",
                            "TalkingHeadFindFace", "TalkingHeadA2L", "TalkingHeadLandmarkRender",
                            "TalkingHeadL2VDenoise", "TalkingHeadPasteBack", "TalkingHeadSaveVideo"}),
    ("dubbing", {"LoadVideo", "GetVideoComponents", "LoadAudio", "TalkingHeadLoadLandmarkDiffusion",
                 "TalkingHeadAudioEncoder", "TalkingHeadTrackFace", "TalkingHeadDubFrames", "TalkingHeadSaveVideo"}),
    ("avatar", {"TalkingHeadTrainDAEAvatar", "LoadAudio", "TalkingHeadAudioEncoder", "TalkingHeadPosePredictor",
                "TalkingHeadSpeech2Latent", "TalkingHeadDAEDecode", "TalkingHeadSaveVideo"}),
])
def test_each_workflow_wires_its_pipeline_from_load_audio_to_save_video(name, expected_nodes):
    workflow = api_workflow(name)
    assert {node["class_type"] for node in workflow.values()} == expected_nodes
    for save in (node for node in workflow.values() if node["class_type"] == "TalkingHeadSaveVideo"):
        assert workflow[save["inputs"]["audio"][0]]["class_type"] == "LoadAudio"
        assert workflow[save["inputs"]["fps"][0]]["class_type"].startswith("TalkingHead")


# -- executing the API format ------------------------------------------------------------------------------------------
class CoreNodes:
    """Stand-ins for the ComfyUI core nodes the workflows use, with ComfyUI's value layouts; files come from
    `inputs` and videos go to `outputs`."""

    def __init__(self, inputs: Path, outputs: Path):
        self.inputs, self.outputs = inputs, outputs

    def LoadAudio(self, audio):
        stereo = np.stack([load_audio(self.inputs / audio, sample_rate=44100)] * 2)
        return ({"waveform": torch.from_numpy(stereo)[None], "sample_rate": 44100},)

    def LoadImage(self, image):
        picture = comfy_image(np.asarray(Image.open(self.inputs / image).convert("RGB"))[None])
        return picture, torch.zeros(picture.shape[:3])

    def LoadVideo(self, file):
        return (self.inputs / file,)

    def GetVideoComponents(self, video):
        frames = np.concatenate(list(read_video_frames(video)))
        return comfy_image(frames), None, probe_video(video)["fps"]


def execute(workflow: dict, core: CoreNodes) -> dict:
    """Run an API-format workflow: each node once its linked inputs are ready, as ComfyUI does; returns the outputs."""
    outputs, pending = {}, dict(workflow)
    while pending:
        ready = [node_id for node_id, node in pending.items()
                 if all(value[0] in outputs for value in node["inputs"].values() if isinstance(value, list))]
        assert ready, f"a cycle or a missing node among {sorted(pending)}"
        for node_id in ready:
            node = pending.pop(node_id)
            inputs = {name: outputs[value[0]][value[1]] if isinstance(value, list) else value
                      for name, value in node["inputs"].items()}
            if node["class_type"] in NODE_CLASS_MAPPINGS:
                node_class = NODE_CLASS_MAPPINGS[node["class_type"]]
                outputs[node_id] = getattr(node_class(), node_class.FUNCTION)(**inputs)
            else:
                outputs[node_id] = getattr(core, node["class_type"])(**inputs)
    return outputs


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "talking_head"
    tiny_dae_pipeline().save_pretrained(folder / "tiny-dae")
    tiny_landmark_pipeline().save_pretrained(folder / "tiny-landmark")
    return folder


@pytest.fixture
def comfy_inputs(tmp_path):
    """ComfyUI's input folder with the workflows' files: two seconds of the speech and the portrait."""
    folder = tmp_path / "input"
    folder.mkdir()
    from audio_files import write_wav
    write_wav(folder / "speech.wav", load_audio(ASSETS / "jfk.flac")[:32000])
    (folder / "astronaut.jpg").write_bytes((ASSETS / "astronaut.jpg").read_bytes())
    (folder / "obama_head_motion.mp4").write_bytes((ASSETS / "obama_head_motion.mp4").read_bytes())
    return folder


@pytest.mark.parametrize("name, model, size", [
    ("dae_talker", "tiny-dae", (256, 256)),  # the workflow resizes the 16-pixel frames to 256
    ("landmark_diffusion", "tiny-landmark", None),  # the portrait's size
    ("dubbing", "tiny-landmark", (256, 256)),  # the video's size
])
def test_the_api_workflow_runs_end_to_end_to_an_mp4_with_audio(name, model, size, models_dir, comfy_inputs, tmp_path,
                                                               monkeypatch):
    monkeypatch.setattr(services, "STANDALONE_MODELS", models_dir)
    monkeypatch.setattr(services, "STANDALONE_OUTPUT", tmp_path / "output")
    workflow = api_workflow(name)
    for node in workflow.values():
        if node["class_type"].startswith("TalkingHeadLoad"):
            node["inputs"]["model"] = model  # the tiny stand-in for the bundled model
        if "steps" in node["inputs"]:
            node["inputs"]["steps"] = 2
        if node["class_type"] == "LoadAudio":
            node["inputs"]["audio"] = "speech.wav"
    execute(workflow, CoreNodes(comfy_inputs, tmp_path / "output"))
    videos = sorted((tmp_path / "output").rglob("*.mp4"))
    prefixes = [node["inputs"]["filename_prefix"] for node in workflow.values()
                if node["class_type"] == "TalkingHeadSaveVideo"]
    assert [video.relative_to(tmp_path / "output").as_posix() for video in videos] == \
        sorted(f"{prefix}_00001_.mp4" for prefix in prefixes)
    facts = probe_video(videos[0])
    portrait_size = Image.open(ASSETS / "astronaut.jpg").size
    assert (facts["width"], facts["height"]) == (size or portrait_size)  # 2 s of speech: 50 frames of each
    assert facts["has_audio"] and facts["num_frames"] == 50 and facts["fps"] == 25
    for video in videos:  # the pack's save node marks every video, and keeps the speech as ComfyUI gave it
        assert read_metadata(video)["comment"].startswith("synthetic=true")
        assert audio_stream(video) == {"sample_rate": 44100, "channels": 2}


def audio_stream(video: Path) -> dict:
    from talking_head.media._ffmpeg import run_ffmpeg

    audio_line = next(line for line in run_ffmpeg(["-i", str(video)]).stderr.splitlines() if "Audio:" in line)
    return {"sample_rate": 44100 if "44100 Hz" in audio_line else audio_line, "channels": 2 if "stereo" in audio_line else 1}
