"""Behaviour of DAETalkerPipeline with tiny untrained models: noise sharing, determinism, saving, video output, errors."""

import json
import logging
import shutil
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from talking_head import jobs
from talking_head.pipelines.settings import SamplingSettings
from talking_head.errors import AudioError, ModelError, TalkingHeadError
from talking_head.media.audio import SAMPLE_RATE
from talking_head.media.video import probe_video, read_metadata, read_video_frames
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from audio_files import write_wav
from tiny_models import LOGMEL_DIM, save_tiny_wav2vec2, tiny_dae_pipeline

EXAMPLE_SPEECH = Path(__file__).resolve().parents[1] / "assets" / "jfk.flac"


@pytest.fixture(scope="module")
def speech_clip(tmp_path_factory) -> Path:
    """2.2 s of real speech (JFK, public domain) as a 16 kHz wav."""
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(EXAMPLE_SPEECH), "-ss", "0.3",
                    "-t", "2.2", "-ac", "1", "-ar", "16000", str(path)], check=True)
    return path


def decode(pipeline, latents, seed=0, batch_size=4, steps=5, sampler="ddim"):
    noise = pipeline.initial_noise(seed)
    return np.concatenate(list(pipeline.decode_latents(latents, noise, steps, sampler, batch_size)))


@pytest.mark.parametrize("latent_space", [False, True])
def test_frames_have_the_model_image_size(latent_space):
    pipeline = tiny_dae_pipeline(latent_space)
    frames = decode(pipeline, torch.randn(5, 16))
    size = pipeline.image_size
    assert frames.shape == (5, size, size, 3) and frames.dtype == np.uint8


def test_every_frame_starts_from_the_same_initial_noise():
    pipeline = tiny_dae_pipeline()
    first_inputs = []
    original_forward = pipeline.unet.forward

    def recording_forward(sample, timestep, z_sem):
        if int(timestep) == int(pipeline.scheduler.timesteps[0]):
            first_inputs.append(sample.clone())
        return original_forward(sample, timestep, z_sem)

    pipeline.unet.forward = recording_forward
    decode(pipeline, torch.randn(7, 16), batch_size=3)
    starts = torch.cat(first_inputs)
    assert len(starts) == 7
    assert torch.equal(starts, starts[:1].expand_as(starts))


def test_frames_with_equal_latents_are_equal_across_batches_and_differ_otherwise():
    pipeline = tiny_dae_pipeline()
    z_a, z_b = torch.randn(2, 16)
    frames = decode(pipeline, torch.stack([z_a, z_a, z_a, z_b, z_a]), batch_size=2)
    assert np.array_equal(frames[0], frames[2]) and np.array_equal(frames[0], frames[4])
    assert not np.array_equal(frames[0], frames[3])


def test_the_same_seed_gives_the_same_frames_and_another_seed_other_frames():
    pipeline = tiny_dae_pipeline()
    latents = torch.randn(3, 16)
    assert np.array_equal(decode(pipeline, latents, seed=1), decode(pipeline, latents, seed=1))
    assert not np.array_equal(decode(pipeline, latents, seed=1), decode(pipeline, latents, seed=2))


@pytest.mark.parametrize("sampler", ["dpm++", "unipc", "euler"])
def test_other_deterministic_samplers_run_and_repeat(sampler):
    pipeline = tiny_dae_pipeline()
    latents = torch.randn(2, 16)
    assert np.array_equal(decode(pipeline, latents, sampler=sampler), decode(pipeline, latents, sampler=sampler))


def test_an_unknown_sampler_is_named_in_the_error():
    with pytest.raises(TalkingHeadError, match="warp-drive"):
        decode(tiny_dae_pipeline(), torch.randn(1, 16), sampler="warp-drive")


def test_ddim_inversion_gives_a_deterministic_initial_noise_of_the_decoder_shape():
    pipeline = tiny_dae_pipeline(latent_space=True)
    reference = torch.rand(1, 3, 64, 64) * 2 - 1
    x_t = pipeline.invert(reference, num_inference_steps=5)
    assert x_t.shape == pipeline.initial_noise(0).shape
    assert torch.equal(x_t, pipeline.invert(reference, num_inference_steps=5))


def test_a_given_pose_replaces_the_predicted_one():
    pipeline = tiny_dae_pipeline()
    features = torch.randn(30, LOGMEL_DIM)
    predicted_pose = pipeline.predict_pose(features)
    assert predicted_pose.shape == (30, 6)
    assert torch.allclose(pipeline.speech_to_latents(features), pipeline.speech_to_latents(features, predicted_pose), atol=1e-5)
    turned = predicted_pose.clone()
    turned[:, 0] += 20.0  # yaw
    assert not torch.allclose(pipeline.speech_to_latents(features, turned), pipeline.speech_to_latents(features))


def test_long_audio_latents_are_computed_in_windows_that_join_smoothly():
    pipeline = tiny_dae_pipeline()
    features = torch.randn(700, LOGMEL_DIM)
    latents = pipeline.speech_to_latents(features)
    assert latents.shape == (700, 16) and torch.isfinite(latents).all()
    # inside the first window, away from its end, the windowed result equals one pass over that window
    single_pass = pipeline.speech2latent(features[None, :250])["latents"][0]
    assert torch.allclose(latents[:150], single_pass[:150], atol=1e-4)


def test_save_pretrained_and_from_pretrained_round_trip(tmp_path):
    pipeline = tiny_dae_pipeline(latent_space=True)
    pipeline.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "unet" / "diffusion_pytorch_model.safetensors").exists()
    loaded = DAETalkerPipeline.from_pretrained(tmp_path / "model")
    latents = torch.randn(3, 16)
    # the same weights in another model instance: equal up to float rounding
    assert np.abs(decode(pipeline, latents).astype(int) - decode(loaded, latents)).max() <= 1
    features = torch.randn(20, LOGMEL_DIM)
    torch.testing.assert_close(pipeline.speech_to_latents(features), loaded.speech_to_latents(features), rtol=0, atol=1e-5)


def test_generate_writes_an_mp4_with_the_audio_and_its_duration(tmp_path, speech_clip):
    output = tmp_path / "out.mp4"
    jobs.run(jobs.dae_talker_video(tiny_dae_pipeline(), speech_clip, output, settings=SamplingSettings(3)))
    info = probe_video(output)
    assert info["has_audio"] and info["fps"] == pytest.approx(25.0)
    assert abs(info["duration"] - 2.2) <= 1 / 25 + 1e-3
    assert sum(len(batch) for batch in read_video_frames(output)) == round(2.2 * 25)
    tags = read_metadata(output)
    assert "synthetic=true" in tags["comment"]


def test_an_untrained_model_says_so_in_the_log_and_the_file(tmp_path, speech_clip, caplog):
    with caplog.at_level(logging.WARNING):
        output = tmp_path / "out.mp4"
        jobs.run(jobs.dae_talker_video(tiny_dae_pipeline(), speech_clip, output, settings=SamplingSettings(2)))
    assert "no training record" in caplog.text
    assert "trained=false" in read_metadata(output)["comment"]


@pytest.mark.parametrize("problem", ["missing", "empty", "silent", "corrupt", "image"])
def test_bad_audio_gives_one_clear_error_and_leaves_no_output(tmp_path, problem):
    audio = tmp_path / "speech.wav"
    if problem == "empty":
        audio.write_bytes(b"")
    elif problem == "silent":
        write_wav(audio, np.zeros(SAMPLE_RATE))
    elif problem == "corrupt":
        audio.write_bytes(b"RIFF\x00\x00garbage" * 50)
    elif problem == "image":
        audio = tmp_path / "face.png"
        from PIL import Image

        Image.new("RGB", (8, 8)).save(audio)
    with pytest.raises(AudioError, match=audio.name):
        jobs.run(jobs.dae_talker_video(tiny_dae_pipeline(), audio, tmp_path / "out.mp4", settings=SamplingSettings(2)))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [audio] if p.exists())


def test_a_failure_while_decoding_leaves_nothing_at_the_output_path(tmp_path, speech_clip):
    pipeline = tiny_dae_pipeline()
    calls = []

    def failing_forward(sample, timestep, z_sem):
        calls.append(1)
        if len(calls) > 4:
            raise RuntimeError("out of memory")
        return torch.zeros_like(sample)

    pipeline.unet.forward = failing_forward
    with pytest.raises(RuntimeError):
        jobs.run(jobs.dae_talker_video(pipeline, speech_clip, tmp_path / "out.mp4",
                                       settings=SamplingSettings(2, batch_size=8)))
    assert list(tmp_path.iterdir()) == []


def test_a_video_job_reports_its_stages_and_stopping_it_early_leaves_nothing(tmp_path, speech_clip):
    steps = jobs.dae_talker_video(tiny_dae_pipeline(), speech_clip, tmp_path / "out.mp4",
                                  settings=SamplingSettings(2, batch_size=16))
    assert [next(steps).stage, next(steps).stage] == ["speech", "latents"]
    assert next(steps) == jobs.Progress("frames", 16, 55)  # 16 frames went to the encoder
    steps.close()  # the caller stops: e.g. a cancelled request in the demo
    assert list(tmp_path.iterdir()) == []


def test_a_pipeline_without_speech2latent_says_how_to_train_it(tmp_path, speech_clip):
    pipeline = tiny_dae_pipeline()
    pipeline.register_modules(speech2latent=None)
    with pytest.raises(ModelError, match="train speech2latent"):
        jobs.run(jobs.dae_talker_video(pipeline, speech_clip, tmp_path / "out.mp4"))


def test_a_folder_that_is_not_a_pipeline_is_refused(tmp_path):
    with pytest.raises(ModelError, match="model_index.json"):
        DAETalkerPipeline.from_pretrained(tmp_path)
    with pytest.raises(ModelError, match="not found"):
        DAETalkerPipeline.from_pretrained(tmp_path / "nowhere")


def test_a_pipeline_of_another_kind_is_refused(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ModelError, match="StableDiffusionPipeline"):
        DAETalkerPipeline.from_pretrained(tmp_path)


@pytest.mark.parametrize("component", ["semantic_encoder", "vae", "speech2latent"])
def test_a_folder_missing_a_component_it_declares_names_it(tmp_path, component):
    tiny_dae_pipeline(latent_space=True).save_pretrained(tmp_path)
    shutil.rmtree(tmp_path / component)
    with pytest.raises(ModelError, match=component):
        DAETalkerPipeline.from_pretrained(tmp_path)


def test_components_that_do_not_fit_together_are_refused(tmp_path):
    latent = tiny_dae_pipeline(latent_space=True)
    latent.save_pretrained(tmp_path)
    # an autoencoder with a 4-channel latent cannot feed a decoder trained on 3 channels
    from diffusers import AutoencoderKL

    AutoencoderKL(latent_channels=4, block_out_channels=(8,), norm_num_groups=4).save_pretrained(tmp_path / "vae")
    with pytest.raises(ModelError, match="channels"):
        DAETalkerPipeline.from_pretrained(tmp_path)


def test_corrupt_weights_or_a_config_that_does_not_fit_them_name_the_component(tmp_path):
    tiny_dae_pipeline().save_pretrained(tmp_path / "corrupt")
    (tmp_path / "corrupt" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="the 'unet' folder of .*corrupt does not fit DAEUNet"):
        DAETalkerPipeline.from_pretrained(tmp_path / "corrupt")
    tiny_dae_pipeline().save_pretrained(tmp_path / "resized")
    config_path = tmp_path / "resized" / "semantic_encoder" / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "out_dim": 7}))
    with pytest.raises(ModelError, match="the 'semantic_encoder' folder of .*resized does not fit SemanticEncoder: .*shape"):
        DAETalkerPipeline.from_pretrained(tmp_path / "resized")


def test_a_folder_declaring_a_class_the_pipeline_does_not_take_is_refused_before_anything_is_imported(tmp_path):
    tiny_dae_pipeline().save_pretrained(tmp_path)
    index_path = tmp_path / "model_index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "unet": ["os", "system"]}))
    with pytest.raises(ModelError, match="declares its unet as os.system; this pipeline takes DAEUNet"):
        DAETalkerPipeline.from_pretrained(tmp_path)
    index_path.write_text(json.dumps({**index, "extra": ["diffusers", "UNet2DModel"]}))
    with pytest.raises(ModelError, match="components this pipeline does not have: extra"):
        DAETalkerPipeline.from_pretrained(tmp_path)


def test_a_saved_pipeline_carries_a_model_card_that_says_when_it_is_untrained(tmp_path):
    tiny_dae_pipeline().save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "may be untrained" in card and "Responsible use" in card


def test_a_model_card_puts_the_replaced_versions_figures_beside_its_own(tmp_path):
    pipeline = tiny_dae_pipeline()
    pipeline.training_record = {
        "dae": {"steps": 20},
        "evaluation": {"settings": {"steps": 100}, "mean": {"psnr": 26.5, "mouth_correlation": 0.61, "new_figure": 1.0}},
        "previous": {"title": "Version one", "evaluation": {"settings": {"steps": 100},
                                                            "mean": {"psnr": 24.4, "mouth_correlation": 0.25}}},
    }
    pipeline.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "Version one, measured on the same held-back footage" in card
    assert "| psnr | 24.400 | 26.500 |" in card and "| mouth_correlation | 0.250 | 0.610 |" in card
    assert "| new_figure" not in card  # only the figures both versions report
    assert "## Training: previous" not in card

    pipeline.training_record["previous"]["footage"] = "another person's held-back footage"
    pipeline.save_pretrained(tmp_path)
    assert "Version one, measured on another person's held-back footage" in (tmp_path / "README.md").read_text()


def wav2vec2_dae_pipeline(model_folder: Path) -> DAETalkerPipeline:
    """A tiny DAE-Talker whose speech2latent hears a tiny wav2vec 2.0, carried as its `speech_model` component."""
    from talking_head.hub_models.presets import SPEECH2LATENT_PRESETS
    from talking_head.hub_models.speech2latent import Speech2Latent
    from talking_head.media.features import load_speech_model

    pipeline = tiny_dae_pipeline()
    speech2latent = Speech2Latent(**SPEECH2LATENT_PRESETS["tiny"], feature_dim=32, semantic_dim=16,
                                  feature_kind="wav2vec2", feature_model_name=str(model_folder))
    pipeline.register_modules(speech2latent=speech2latent.eval(),
                              speech_model=load_speech_model("wav2vec2", save_tiny_wav2vec2(model_folder)))
    return pipeline


def test_the_speech_model_is_a_component_saved_in_the_folder_and_loaded_from_it(tmp_path, monkeypatch):
    pipeline = wav2vec2_dae_pipeline(tmp_path / "wav2vec2")
    speech = np.sin(np.linspace(0, 400 * np.pi, SAMPLE_RATE)).astype(np.float32) * 0.3
    features = pipeline.encode_audio(speech)
    pipeline.save_pretrained(tmp_path / "saved")
    shutil.rmtree(tmp_path / "wav2vec2")  # the model it was trained with is gone: the folder must bring its own
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    loaded = DAETalkerPipeline.from_pretrained(tmp_path / "saved")

    index = json.loads((tmp_path / "saved" / "model_index.json").read_text())
    assert index["speech_model"] == ["transformers", "Wav2Vec2Model"]
    assert (tmp_path / "saved" / "speech_model" / "model.safetensors").is_file()
    assert loaded.feature_extractor.speech_model is loaded.speech_model
    torch.testing.assert_close(loaded.encode_audio(speech), features)
    loaded.to(torch.float64)  # .to() moves it with the other components
    assert loaded.speech_model.dtype == torch.float64 and loaded.unet.dtype == torch.float64


def test_a_speech_model_that_does_not_fit_the_features_is_refused(tmp_path):
    pipeline = wav2vec2_dae_pipeline(tmp_path / "wav2vec2")
    pipeline.save_pretrained(tmp_path / "saved")
    index_path = tmp_path / "saved" / "model_index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "speech_model": ["transformers", "HubertModel"]}))
    with pytest.raises(ModelError, match="wav2vec2 features, which come from a Wav2Vec2Model, not the pipeline's HubertModel"):
        DAETalkerPipeline.from_pretrained(tmp_path / "saved")
    index_path.write_text(json.dumps({**index, "speech_model": ["transformers", "BertModel"]}))
    with pytest.raises(ModelError, match="declares its speech_model as transformers.BertModel; this pipeline takes Wav2Vec2Model or HubertModel"):
        DAETalkerPipeline.from_pretrained(tmp_path / "saved")
    logmel = tiny_dae_pipeline()
    logmel.register_modules(speech_model=pipeline.speech_model)
    logmel.save_pretrained(tmp_path / "logmel")
    with pytest.raises(ModelError, match="hears logmel features, which need none"):
        DAETalkerPipeline.from_pretrained(tmp_path / "logmel")


def test_half_precision_weights_load_as_float32_for_cpus(tmp_path):
    pipeline = tiny_dae_pipeline(latent_space=True)
    pipeline.to(torch.float16).save_pretrained(tmp_path)
    loaded = DAETalkerPipeline.from_pretrained(tmp_path)
    assert loaded.unet.dtype == torch.float32 and loaded.vae.dtype == torch.float32
    assert decode(loaded, torch.randn(2, 16)).shape == (2, 64, 64, 3)


def test_saved_folders_and_video_tags_name_the_model_without_a_local_path(tmp_path):
    tiny_dae_pipeline(latent_space=True).save_pretrained(tmp_path / "first")
    loaded = DAETalkerPipeline.from_pretrained(tmp_path / "first")
    assert loaded.video_metadata()["model"] == "first"
    loaded.save_pretrained(tmp_path / "second")
    files = [path for path in (tmp_path / "second").rglob("*") if path.is_file()]
    assert files and not [path for path in files if str(tmp_path).encode() in path.read_bytes()]
    assert DAETalkerPipeline.from_pretrained(tmp_path / "second").config["_name_or_path"] == "second"


def test_without_accelerate_loading_a_pipeline_warns_of_nothing(tmp_path, monkeypatch, caplog):
    """diffusers warns per component that it falls back from low_cpu_mem_usage when accelerate is absent (ComfyUI
    users saw it 4 times per load); the pipelines ask for the fallback themselves."""
    import diffusers.models.modeling_utils as modeling_utils
    from talking_head.pipelines import hub

    tiny_dae_pipeline(latent_space=True).save_pretrained(tmp_path / "model")
    monkeypatch.setattr(modeling_utils, "is_accelerate_available", lambda: False)
    monkeypatch.setattr(hub, "is_accelerate_available", lambda: False)
    with caplog.at_level(logging.WARNING):
        DAETalkerPipeline.from_pretrained(tmp_path / "model")
    assert "accelerate" not in caplog.text


def test_calling_the_pipeline_returns_frames_pose_and_latents_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pipeline = tiny_dae_pipeline()
    stereo = np.random.default_rng(0).uniform(-0.3, 0.3, (2, 44100))  # 1 s of noise at 44.1 kHz, two channels
    progress = []
    output = pipeline(stereo, 44100, num_inference_steps=2, batch_size=10, callback=lambda *step: progress.append(step))
    assert output.frames.shape == (25, 16, 16, 3) and output.frames.dtype == np.uint8
    assert output.pose.shape == (25, 6) and output.latents.shape[0] == 25
    assert progress[-1] == (25, 25) and list(tmp_path.iterdir()) == []
    stages = pipeline.decode_latents(output.latents, pipeline.initial_noise(0), 2, batch_size=10)
    np.testing.assert_array_equal(np.concatenate(list(stages)), output.frames)  # the stages, one after the other
    as_tensors = pipeline(torch.from_numpy(stereo), 44100, num_inference_steps=2, output_type="pt").frames
    torch.testing.assert_close(as_tensors, torch.from_numpy(output.frames).permute(0, 3, 1, 2).float() / 255)
    with pytest.raises(TalkingHeadError, match="steps must be a whole number from 1 to 1000, not 0"):
        pipeline(stereo, 44100, num_inference_steps=0)
