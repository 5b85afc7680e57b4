"""The project's own GE2E speaker encoder: it trims silence and embeds voices exactly as Resemblyzer does, its
converter reads Resemblyzer's checkpoint layout and refuses others, and too little speech is refused."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from talking_head.cli import main
from talking_head.convert.speaker_encoder import RESEMBLYZER_NOTICE, convert_speaker_encoder
from talking_head.errors import AudioError, ModelError
from talking_head.hub_models.speaker_encoder import SpeakerEncoder
from talking_head.media.audio import MIN_SPEECH_SECONDS, SAMPLE_RATE, load_audio
from talking_head.media.speaker import BUNDLED_SPEAKER_ENCODER, bundled_speaker_encoder, speaker_embedding
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline
from tiny_models import tiny_landmark_pipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    return load_audio(EXAMPLES / "jfk.flac")


@pytest.fixture(scope="module")
def speech_with_a_long_pause(jfk) -> np.ndarray:
    """3 s of speech, 2 s of digital silence, 3 s of speech."""
    second = SAMPLE_RATE
    return np.concatenate([jfk[:3 * second], np.zeros(2 * second, np.float32), jfk[5 * second:8 * second]])


@pytest.fixture(scope="module")
def resemblyzer():
    """Resemblyzer's own preprocessing and encoder (the `dev` extra installs it), to compare against."""
    module = pytest.importorskip("resemblyzer", reason="Resemblyzer is not installed (pip install resemblyzer): "
                                                       "nothing to compare the speaker encoder against")
    return module


def tiny_checkpoint(hidden: int = 8, layers: int = 3, seed: int = 0) -> dict:
    """A random GE2E checkpoint in the layout of Resemblyzer's pretrained.pt, with a tiny LSTM."""
    torch.manual_seed(seed)
    lstm, linear = nn.LSTM(40, hidden, layers, batch_first=True), nn.Linear(hidden, hidden)
    model_state = {"similarity_weight": torch.tensor([10.0]), "similarity_bias": torch.tensor([-5.0]),
                   **{f"lstm.{k}": v for k, v in lstm.state_dict().items()},
                   **{f"linear.{k}": v for k, v in linear.state_dict().items()}}
    optimizer_state = {"state": {0: {"exp_avg": torch.zeros(1), "step": 3}},
                       "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0, 1]}]}
    return {"step": 3, "model_state": model_state, "optimizer_state": optimizer_state}


# -- (a) exactness against Resemblyzer -------------------------------------------------------------------
@pytest.mark.parametrize("clip", ["jfk", "speech_with_a_long_pause"])
def test_trimming_and_embeddings_match_resemblyzer(resemblyzer, clip, request, tmp_path):
    waveform = request.getfixturevalue(clip)
    original = resemblyzer.VoiceEncoder(device="cpu", verbose=False)
    expected_speech = resemblyzer.preprocess_wav(waveform, source_sr=SAMPLE_RATE)
    expected = original.embed_utterance(expected_speech)

    bundled = bundled_speaker_encoder()  # float16 weights, loaded as float32
    speech = bundled.trim_silences(waveform)
    assert speech.dtype == expected_speech.dtype and np.array_equal(speech, expected_speech)
    if clip == "speech_with_a_long_pause":
        assert len(speech) < len(waveform) - SAMPLE_RATE  # most of the pause is gone
    mel = bundled.mel_spectrogram(speech)
    expected_mel = resemblyzer.audio.wav_to_mel_spectrogram(expected_speech)
    assert mel.shape == expected_mel.shape and np.abs(mel - expected_mel).max() <= 1e-5 * np.abs(expected_mel).max()
    embedding = speaker_embedding(waveform)
    assert embedding.dtype == np.float32 and embedding.shape == (256,)
    assert float(embedding @ expected) >= 0.9999 and np.abs(embedding - expected).max() < 2e-3

    # Converted from the wheel's own file in float32, the encoder gives Resemblyzer's numbers.
    weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
    full = SpeakerEncoder.from_pretrained(convert_speaker_encoder(weights, tmp_path / "ge2e"))
    assert np.abs(full.embed(waveform) - expected).max() < 1e-5


def test_the_bundled_encoder_is_resemblyzers_in_half_precision_with_its_licence():
    config = json.loads((BUNDLED_SPEAKER_ENCODER / "config.json").read_text())
    assert config["_class_name"] == "SpeakerEncoder" and config["embedding_size"] == 256
    licence = (BUNDLED_SPEAKER_ENCODER / "LICENSE").read_text()
    assert "Apache License" in licence and "Copyright 2019 Resemble.AI" in licence
    assert bundled_speaker_encoder().dtype == torch.float32


# -- (b) the converter ------------------------------------------------------------------------------------------
def test_a_checkpoint_in_resemblyzers_layout_converts_exactly_and_loads(tmp_path, jfk):
    checkpoint = tiny_checkpoint()
    torch.save(checkpoint, tmp_path / "pretrained.pt")
    assert main(["convert-ge2e", "--weights", str(tmp_path / "pretrained.pt"), "--out", str(tmp_path / "ge2e")]) == 0
    assert (tmp_path / "ge2e" / "LICENSE").read_text() == RESEMBLYZER_NOTICE
    model = SpeakerEncoder.from_pretrained(tmp_path / "ge2e")
    assert (model.config.mel_channels, model.config.hidden_size, model.config.num_layers) == (40, 8, 3)
    state = model.state_dict()
    for key, value in checkpoint["model_state"].items():
        if not key.startswith("similarity_"):
            assert torch.equal(state[key], value), key
    embedding = model.embed(jfk[:2 * SAMPLE_RATE])
    assert embedding.shape == (8,) and abs(np.linalg.norm(embedding) - 1) < 1e-5

    licence = tmp_path / "LICENSE"
    licence.write_text("the licence")
    convert_speaker_encoder(tmp_path / "pretrained.pt", tmp_path / "half", licence=licence, half=True)
    half = SpeakerEncoder.from_pretrained(tmp_path / "half", torch_dtype=torch.float32)
    assert (tmp_path / "half" / "LICENSE").read_text() == "the licence"
    assert torch.allclose(half.state_dict()["linear.weight"], state["linear.weight"], atol=1e-3)


def test_checkpoints_of_another_layout_are_refused_naming_the_key(tmp_path):
    checkpoint = tiny_checkpoint()
    torch.save(checkpoint["model_state"], tmp_path / "bare.pt")  # a bare state dict: no "model_state"
    with pytest.raises(ModelError, match="model_state"):
        convert_speaker_encoder(tmp_path / "bare.pt", tmp_path / "out")

    state = dict(checkpoint["model_state"])
    del state["linear.bias"]
    state["projection.weight"] = torch.zeros(8, 8)
    torch.save({**checkpoint, "model_state": state}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match=r"missing: linear\.bias; unexpected: projection\.weight"):
        convert_speaker_encoder(tmp_path / "other.pt", tmp_path / "out")

    torch.save({"model_state": {"lstm.weight_ih_l0": torch.zeros(32, 40)}}, tmp_path / "no_hh.pt")
    with pytest.raises(ModelError, match="lstm.weight_hh_l0"):
        convert_speaker_encoder(tmp_path / "no_hh.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_that_would_unpickle_objects_is_refused(tmp_path):
    torch.save({"model_state": {}, "hparams": ModelError("not a tensor")}, tmp_path / "objects.pt")
    with pytest.raises(ModelError, match="not a plain PyTorch checkpoint"):
        convert_speaker_encoder(tmp_path / "objects.pt", tmp_path / "out")
    assert main(["convert-ge2e", "--weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "out")]) == 2


# -- (c) too little speech ----------------------------------------------------------------------------------------
def test_too_little_speech_or_another_sample_rate_is_refused(jfk):
    with pytest.raises(AudioError, match=r"0\.0 s of speech after trimming silence"):
        speaker_embedding(np.zeros(SAMPLE_RATE, np.float32))
    with pytest.raises(AudioError, match=f"needs at least {MIN_SPEECH_SECONDS} s of speech"):  # as the audio check
        speaker_embedding(jfk[:4000])  # a quarter of a second
    with pytest.raises(AudioError, match="expects 16000 Hz audio, got 8000 Hz"):
        speaker_embedding(jfk, 8000)


# -- the pipeline component -----------------------------------------------------------------------------------
def test_the_landmark_pipeline_saves_loads_and_uses_its_own_speaker_encoder(tmp_path, jfk):
    pipeline = tiny_landmark_pipeline()
    assert pipeline.speaker_encoder is None
    torch.manual_seed(0)
    encoder = SpeakerEncoder(hidden_size=8).eval()
    pipeline.register_modules(speaker_encoder=encoder)
    pipeline.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "speaker_encoder" / "config.json").is_file()
    loaded = LandmarkDiffusionPipeline.from_pretrained(tmp_path / "model")
    assert loaded.speaker_encoder.config.hidden_size == 8
    _, speaker = loaded.encode_audio(jfk[:2 * SAMPLE_RATE])
    assert np.allclose(speaker.numpy(), speaker_embedding(jfk[:2 * SAMPLE_RATE], encoder=encoder), atol=1e-6)

    with pytest.raises(ModelError, match="speaker encoder gives 8-d voice embeddings"):
        tiny = tiny_landmark_pipeline()
        LandmarkDiffusionPipeline(vae=tiny.vae, unet=tiny.unet, landmark_encoder=tiny.landmark_encoder,
                                  scheduler=tiny.scheduler, a2l=tiny.a2l,
                                  speaker_encoder=SpeakerEncoder(hidden_size=8, embedding_size=8))
