"""Whisper's audio encoder as the speech front end: the converter from every layout users have, the features at the
video frame rate (long audio in windows), a pipeline carrying the encoder, and features cached once per dataset."""

import json

import numpy as np
import pytest
import torch

from talking_head.convert.whisper import convert_whisper_encoder
from talking_head.errors import ModelError
from talking_head.media.audio import SAMPLE_RATE, num_video_frames
from talking_head.media.features import AudioFeatureExtractor
from talking_head.media.whisper import OPENAI_NOTICE, load_whisper_encoder
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from tiny_models import save_tiny_whisper, tiny_dae_pipeline, tiny_whisper_encoder, tiny_whisper_reference

MEL_WINDOW = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts with pauses: sound that changes over time, so features differ from frame to frame."""
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-0.4, 0.4, round(seconds * SAMPLE_RATE)).astype(np.float32)
    envelope = np.repeat(rng.uniform(0, 1, len(samples) // 1600 + 1) > 0.3, 1600)[:len(samples)]
    return samples * envelope


def encoder_output(encoder) -> torch.Tensor:
    with torch.no_grad():
        return encoder(MEL_WINDOW).last_hidden_state


@pytest.mark.parametrize("layout", ["encoder", "transformers", "openai"])
def test_every_layout_converts_to_the_same_encoder(tmp_path, layout):
    source = save_tiny_whisper(tmp_path / ("whisper.pt" if layout == "openai" else "source"), layout)

    folder = convert_whisper_encoder(source, tmp_path / "converted")
    converted = load_whisper_encoder(folder)

    assert sorted(path.name for path in folder.iterdir()) == (["LICENSE"] if layout == "openai" else []) + [
        "config.json", "model.safetensors"]
    assert torch.allclose(encoder_output(converted), encoder_output(tiny_whisper_reference(layout)), atol=1e-5)


def test_an_openai_checkpoint_brings_openais_licence_and_a_given_file_replaces_it(tmp_path):
    source = save_tiny_whisper(tmp_path / "whisper.pt", "openai")
    assert (convert_whisper_encoder(source, tmp_path / "a") / "LICENSE").read_text() == OPENAI_NOTICE
    (tmp_path / "MY_LICENSE").write_text("the licence the user has")

    folder = convert_whisper_encoder(source, tmp_path / "b", licence=tmp_path / "MY_LICENSE", half=True)

    assert (folder / "LICENSE").read_text() == "the licence the user has"
    assert json.loads((folder / "config.json").read_text())["licence"] == "the licence the user has"
    assert load_whisper_encoder(folder, torch.float16).conv1.weight.dtype == torch.float16


def test_a_hub_repo_of_a_whole_whisper_downloads_and_keeps_only_the_encoder(tmp_path, local_hub):
    local_hub.add_repo("openai/whisper-tiny-test", save_tiny_whisper(tmp_path / "repo", "transformers"))

    folder = convert_whisper_encoder("openai/whisper-tiny-test", tmp_path / "converted")

    assert any(path.endswith("model.safetensors") for _, path in local_hub.requests)
    assert torch.allclose(encoder_output(load_whisper_encoder(folder)),
                          encoder_output(tiny_whisper_reference("transformers")), atol=1e-5)


@pytest.mark.parametrize("make_source, message", [
    (lambda path: path, "Whisper weights not found"),
    (lambda path: (path.write_bytes(b"not a checkpoint"), path)[1], "not a plain PyTorch checkpoint"),
    (lambda path: (torch.save({"weights": torch.zeros(2)}, path), path)[1], "not an OpenAI Whisper checkpoint"),
    (lambda path: (path.mkdir(), path)[1], "not a Whisper folder"),
])
def test_sources_that_are_not_whisper_get_one_clear_error(tmp_path, make_source, message):
    with pytest.raises(ModelError, match=message):
        convert_whisper_encoder(make_source(tmp_path / "source"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_that_does_not_fit_its_dims_is_refused_with_what_differs(tmp_path):
    source = save_tiny_whisper(tmp_path / "whisper.pt", "openai")
    checkpoint = torch.load(source, weights_only=True)
    checkpoint["dims"]["n_audio_layer"] = 3
    torch.save(checkpoint, source)
    with pytest.raises(ModelError, match="does not hold a Whisper encoder that fits.*missing: layers.2"):
        load_whisper_encoder(source)


@pytest.mark.parametrize("fps", [25.0, 30.0])
@pytest.mark.parametrize("layers, width", [("last", 16), ("mean", 16), ("all", 32)])
def test_whisper_features_come_at_the_video_frame_rate(fps, layers, width):
    extractor = AudioFeatureExtractor("whisper", fps=fps, model=tiny_whisper_encoder(), layers=layers)

    features = extractor(speech_like(2.3))

    assert features.shape == (num_video_frames(round(2.3 * SAMPLE_RATE), SAMPLE_RATE, fps), 2 * width)
    assert extractor.feature_dim == 2 * width and torch.isfinite(features).all()


def test_whisper_features_line_up_with_the_video_timeline():
    # No attention layers and no positional embeddings: each output vector hears only the audio around its time.
    encoder = tiny_whisper_encoder(encoder_layers=0)
    with torch.no_grad():
        encoder.embed_positions.weight.zero_()
    waveform = np.zeros(4 * SAMPLE_RATE, np.float32)
    waveform[2 * SAMPLE_RATE:] = np.random.default_rng(0).uniform(-0.4, 0.4, 2 * SAMPLE_RATE)  # from video frame 50

    features = AudioFeatureExtractor("whisper", model=encoder)(waveform)

    silence = features[25]  # the first frame also hears the convolutions' padding
    changed = torch.nonzero((features[1:] - silence).abs().amax(dim=1) > 1e-3).flatten() + 1
    assert changed[0] in (49, 50) and len(changed) >= 99 - changed[0]


def test_audio_longer_than_a_window_is_encoded_in_windows_that_join_without_a_seam(monkeypatch):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    # No attention layers and no positional embeddings: each output vector hears only the audio around its time, so
    # the long file's features in 30 s windows must be the features of one pass over all of it, joins included.
    windowed_encoder = tiny_whisper_encoder(encoder_layers=0)
    one_pass_encoder = tiny_whisper_encoder(encoder_layers=0, max_source_positions=50 * 80)  # an 80 s window
    with torch.no_grad():
        windowed_encoder.embed_positions.weight.zero_()
    one_pass_encoder.load_state_dict({**windowed_encoder.state_dict(),
                                      "embed_positions.weight": torch.zeros(50 * 80, 16)})
    waveform = np.random.default_rng(0).uniform(-0.4, 0.4, 70 * SAMPLE_RATE).astype(np.float32)
    window_inputs = []
    forward = WhisperEncoder.forward

    def recording_forward(self, input_features, *args, **kwargs):
        window_inputs.append(tuple(input_features.shape))
        return forward(self, input_features, *args, **kwargs)

    monkeypatch.setattr(WhisperEncoder, "forward", recording_forward)
    windowed = AudioFeatureExtractor("whisper", model=windowed_encoder)(waveform)
    assert window_inputs == [(1, 80, 3000)] * 3  # 30 s windows, each the same size: memory stays flat
    one_pass = AudioFeatureExtractor("whisper", model=one_pass_encoder)(waveform)

    assert windowed.shape == one_pass.shape == (70 * 25, 32)
    assert torch.allclose(windowed[1:-1], one_pass[1:-1], atol=1e-4)  # the ends hear the convolutions' padding


def test_a_pipeline_carries_its_whisper_encoder_with_its_licence_and_names_it_in_its_card(tmp_path):
    from talking_head.hub_models.presets import SPEECH2LATENT_PRESETS
    from talking_head.hub_models.speech2latent import Speech2Latent

    encoder = load_whisper_encoder(convert_whisper_encoder(save_tiny_whisper(tmp_path / "w.pt", "openai"),
                                                           tmp_path / "whisper"))
    pipeline = tiny_dae_pipeline()
    torch.manual_seed(0)
    speech2latent = Speech2Latent(**SPEECH2LATENT_PRESETS["tiny"], feature_dim=32, semantic_dim=16,
                                  feature_kind="whisper", feature_model_name="whisper", feature_layers="mean")
    pipeline.register_modules(speech2latent=speech2latent, speech_model=encoder)
    pipeline.save_pretrained(tmp_path / "pipeline")

    loaded = DAETalkerPipeline.from_pretrained(tmp_path / "pipeline")

    assert (tmp_path / "pipeline" / "speech_model" / "LICENSE").read_text() == OPENAI_NOTICE
    card = (tmp_path / "pipeline" / "README.md").read_text()
    assert "audio encoder of OpenAI's Whisper" in card and "Copyright (c) 2022 OpenAI" in card
    waveform = speech_like(1.5)
    assert torch.allclose(loaded.encode_audio(waveform), pipeline.encode_audio(waveform), atol=1e-5)
    assert loaded.feature_extractor.layers == "mean"
    loaded.to("meta")
    assert next(loaded.speech_model.parameters()).device.type == "meta"


def test_a_dataset_computes_a_front_ends_features_once_and_keeps_them(tmp_path, monkeypatch):
    from talking_head.data.dataset import TalkingHeadDataset
    from audio_files import write_prepared_dataset

    dataset = TalkingHeadDataset(write_prepared_dataset(tmp_path / "data", speech_like(3.0)))
    clip = dataset.clips[0]
    extractor = AudioFeatureExtractor("whisper", model=tiny_whisper_encoder())
    calls = []
    original = AudioFeatureExtractor.__call__
    monkeypatch.setattr(AudioFeatureExtractor, "__call__", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))

    first = dataset.clip_features(clip, extractor, "all")
    again = TalkingHeadDataset(tmp_path / "data").clip_features(clip, extractor, "val")

    assert len(calls) == 1 and (clip.folder / f"features-{extractor.cache_name}.npy").exists()
    assert first.shape == (clip.num_frames, 32)
    assert torch.equal(again, first[clip.val_range[0]:clip.val_range[1]])
    other = AudioFeatureExtractor("whisper", model=tiny_whisper_encoder(), layers="all")
    assert other.cache_name != extractor.cache_name
