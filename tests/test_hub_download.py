"""`DAETalkerPipeline.from_pretrained("org/name")` downloads through huggingface_hub from a Hub.

The Hub here is tests/hub_server.py on 127.0.0.1 (the `local_hub` fixture of conftest.py); every other
test runs offline with an empty temporary cache.
"""

import json
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler

from talking_head.errors import ModelError
from talking_head.hub_models.dae_unet import DAEUNet
from talking_head.hub_models.presets import DAE_UNET_PRESETS, SEMANTIC_ENCODER_PRESETS, SPEECH2LATENT_PRESETS
from talking_head.hub_models.semantic_encoder import SemanticEncoder
from talking_head.hub_models.speech2latent import Speech2Latent
from talking_head.pipelines.dae_talker import DAETalkerPipeline

REPO_ID = "org/tiny-dae-talker"
COMPONENTS = ("unet", "semantic_encoder", "speech2latent")


def tiny_pipeline() -> DAETalkerPipeline:
    torch.manual_seed(0)
    unet = DAEUNet(**DAE_UNET_PRESETS["tiny"])
    encoder = SemanticEncoder(**SEMANTIC_ENCODER_PRESETS["tiny"])
    s2l = Speech2Latent(**SPEECH2LATENT_PRESETS["tiny"], feature_dim=320, semantic_dim=16)
    scheduler = DDIMScheduler(beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    return DAETalkerPipeline(unet=unet, semantic_encoder=encoder, scheduler=scheduler, speech2latent=s2l).eval_mode()


@pytest.fixture(scope="module")
def saved_pipeline(tmp_path_factory):
    """The original tiny pipeline and the folder it was saved to (the repo the Hub serves)."""
    pipeline = tiny_pipeline()
    folder = tmp_path_factory.mktemp("tiny-dae-talker")
    pipeline.save_pretrained(folder)
    return pipeline, folder


def assert_same_weights(loaded: DAETalkerPipeline, original: DAETalkerPipeline) -> None:
    for name in COMPONENTS:
        assert getattr(loaded, name) is not None, f"the loaded pipeline has no {name}"
        expected, actual = getattr(original, name).state_dict(), getattr(loaded, name).state_dict()
        assert actual.keys() == expected.keys(), name
        for key, tensor in expected.items():
            assert torch.equal(actual[key], tensor), f"{name}.{key} differs"


def resolved_files(hub) -> set[str]:
    """The repo files the server sent (GET .../resolve/{revision}/{path})."""
    return {path.split("/resolve/", 1)[1].split("/", 1)[1] for path in hub.requested_paths("GET") if "/resolve/" in path}


def test_from_pretrained_downloads_a_repo_from_the_hub(local_hub, saved_pipeline, offline_hub_with_empty_cache):
    original, folder = saved_pipeline
    local_hub.add_repo(REPO_ID, folder)

    loaded = DAETalkerPipeline.from_pretrained(REPO_ID)

    requests = local_hub.requested_paths()
    assert f"/api/models/{REPO_ID}/revision/main" in requests
    downloaded = resolved_files(local_hub)
    assert {"model_index.json", "unet/diffusion_pytorch_model.safetensors"} <= downloaded
    assert downloaded == {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    # The files come from the (temporary) HF cache, not from the served folder.
    snapshot = offline_hub_with_empty_cache / "models--org--tiny-dae-talker" / "snapshots"
    assert (snapshot / local_hub.commit / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert loaded.config._name_or_path == REPO_ID

    assert_same_weights(loaded, original)
    torch.manual_seed(1)
    sample, z_sem = torch.randn(2, 3, 16, 16), torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded.unet(sample, torch.tensor([10, 500]), z_sem),
                                   original.unet(sample, torch.tensor([10, 500]), z_sem), rtol=0, atol=1e-6)


def test_a_second_load_uses_the_cache_when_offline(local_hub, saved_pipeline, monkeypatch):
    original, folder = saved_pipeline
    local_hub.add_repo(REPO_ID, folder)
    DAETalkerPipeline.from_pretrained(REPO_ID)
    local_hub.stop()
    seen = len(local_hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)

    loaded = DAETalkerPipeline.from_pretrained(REPO_ID)

    assert len(local_hub.requests) == seen
    assert_same_weights(loaded, original)


def test_unknown_repo_gives_a_clear_model_error(local_hub):
    with pytest.raises(ModelError, match="org/no-such-repo") as error:
        DAETalkerPipeline.from_pretrained("org/no-such-repo")
    assert "cannot download" in str(error.value)
    assert "/api/models/org/no-such-repo/revision/main" in local_hub.requested_paths()


def test_offline_without_cache_gives_one_line_naming_the_repo_and_how_to_get_it(capsys):
    from talking_head.cli import main

    with pytest.raises(ModelError) as error:
        DAETalkerPipeline.from_pretrained(REPO_ID)
    assert str(error.value) == (f"the model {REPO_ID} is not in the local Hugging Face cache and the Hub cannot be "
                                f"reached (offline): download it once with network access (`hf download {REPO_ID}`), "
                                "or give a local folder")
    assert main(["generate", "--model", REPO_ID, "--audio", str(Path(__file__).parents[1] / "assets" / "jfk.flac"),
                 "-o", "never.mp4"]) == 2
    assert capsys.readouterr().err.strip() == f"error: {error.value}"


def test_a_repo_of_another_kind_is_refused(local_hub, tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline",
                                                           "_diffusers_version": "0.42.0"}))
    local_hub.add_repo("org/stable-diffusion", tmp_path)

    with pytest.raises(ModelError, match="StableDiffusionPipeline") as error:
        DAETalkerPipeline.from_pretrained("org/stable-diffusion")
    assert "org/stable-diffusion" in str(error.value)
    assert "model_index.json" in resolved_files(local_hub)


def test_the_landmark_pipeline_downloads_from_the_hub_with_all_its_components(local_hub, tmp_path):
    from talking_head.pipelines.landmark import LandmarkDiffusionPipeline
    from tiny_models import tiny_landmark_pipeline

    original = tiny_landmark_pipeline()
    original.save_pretrained(tmp_path)
    local_hub.add_repo("org/tiny-landmark", tmp_path)

    loaded = LandmarkDiffusionPipeline.from_pretrained("org/tiny-landmark")

    downloaded = resolved_files(local_hub)
    for component in ("vae", "unet", "landmark_encoder", "a2l"):
        assert f"{component}/diffusion_pytorch_model.safetensors" in downloaded
        expected, actual = getattr(original, component).state_dict(), getattr(loaded, component).state_dict()
        assert all(torch.equal(expected[key], actual[key]) for key in expected), component
    assert loaded.config.crop_scale == original.config.crop_scale and loaded.config._name_or_path == "org/tiny-landmark"
