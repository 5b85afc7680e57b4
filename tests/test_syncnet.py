"""SyncNet lip-sync scores: weights files, MFCC features and LSE-C / LSE-D on small synthetic clips.

The official weights cannot be downloaded in tests, so the network runs with random weights; the checks are
about loading, shapes, the score arithmetic and errors, not about the scores' meaning.
"""

import math
import urllib.error

import numpy as np
import pytest
import torch

from talking_head.errors import MetricWeightsError, TalkingHeadError
from talking_head.evaluation.syncnet import SYNCNET_URL, SyncNet, load_syncnet, mfcc, sync_scores


@pytest.fixture
def hub_dir(tmp_path):
    """torch.hub's cache in a temporary folder for the test, restored afterwards."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "torch_hub"))
    yield tmp_path / "torch_hub"
    torch.hub.set_dir(previous)


@pytest.fixture(scope="module")
def random_syncnet():
    """SyncNet with random weights and batch-norm statistics, in eval mode."""
    torch.manual_seed(0)
    model = SyncNet()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def synthetic_clip():
    """40 random 64x64 RGB frames (1.6 s at 25 fps) and 1.6 s of noise at 16 kHz."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    waveform = (0.1 * rng.standard_normal(int(1.6 * 16000))).astype(np.float32)
    return frames, waveform


@pytest.mark.parametrize("legacy_format", [False, True], ids=["zip", "legacy-without-bn-counters"])
def test_weights_round_trip_through_a_model_file(random_syncnet, tmp_path, legacy_format):
    state = random_syncnet.state_dict()
    if legacy_format:  # as old torch wrote it: pre-zip serialization, no num_batches_tracked buffers
        state = {name: tensor for name, tensor in state.items() if not name.endswith("num_batches_tracked")}
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy_format)

    loaded = load_syncnet(path)

    assert not loaded.training
    loaded_state = loaded.state_dict()
    assert set(loaded_state) >= set(state)
    for name, tensor in state.items():
        assert torch.equal(loaded_state[name], tensor), name


def test_embeddings_are_1024_dimensional(random_syncnet):
    with torch.no_grad():
        audio = random_syncnet.embed_audio(torch.randn(2, 1, 13, 20))
        lips = random_syncnet.embed_lips(torch.rand(2, 3, 5, 224, 224) * 255)
    assert audio.shape == lips.shape == (2, 1024)


def test_sync_scores_on_a_synthetic_clip(random_syncnet, synthetic_clip):
    frames, waveform = synthetic_clip

    scores = sync_scores(frames, waveform, random_syncnet)

    assert set(scores) == {"lse_c", "lse_d", "offset_frames"}
    assert math.isfinite(scores["lse_c"]) and math.isfinite(scores["lse_d"])
    assert scores["lse_c"] >= 0
    assert scores["lse_d"] > 0
    assert isinstance(scores["offset_frames"], int) and -15 <= scores["offset_frames"] <= 15


def test_sync_scores_do_not_depend_on_the_batch_size(random_syncnet, synthetic_clip):
    frames, waveform = synthetic_clip

    one_batch = sync_scores(frames, waveform, random_syncnet, batch_size=64)
    small_batches = sync_scores(frames, waveform, random_syncnet, batch_size=4)

    assert small_batches["offset_frames"] == one_batch["offset_frames"]
    assert small_batches["lse_d"] == pytest.approx(one_batch["lse_d"], rel=1e-5)
    assert small_batches["lse_c"] == pytest.approx(one_batch["lse_c"], rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("num_frames, seconds", [(5, 1.0), (40, 0.2)], ids=["few-frames", "short-audio"])
def test_too_short_input_is_refused(random_syncnet, num_frames, seconds):
    frames = np.zeros((num_frames, 32, 32, 3), dtype=np.uint8)
    waveform = np.zeros(int(seconds * 16000), dtype=np.float32)

    with pytest.raises(TalkingHeadError, match="too short for SyncNet"):
        sync_scores(frames, waveform, random_syncnet)


def test_mfcc_has_13_rows_and_100_steps_per_second():
    waveform = np.random.default_rng(0).standard_normal(2 * 16000)

    coefficients = mfcc(waveform)

    # 25 ms windows every 10 ms, the last one zero-padded
    assert coefficients.shape == (13, 1 + math.ceil((2 * 16000 - 400) / 160))
    assert np.isfinite(coefficients).all()


def test_mfcc_louder_tone_raises_only_the_energy_coefficient():
    time = np.arange(16000) / 16000
    tone = 1000 * np.sin(2 * np.pi * 440 * time)

    quiet, loud = mfcc(tone), mfcc(4 * tone)

    # energy and every mel band scale by 16: the log energy rises by log 16, the cepstra above it stay
    np.testing.assert_allclose(loud[0] - quiet[0], np.log(16), rtol=1e-9)
    np.testing.assert_allclose(loud[1:], quiet[1:], atol=1e-8)


def test_mfcc_of_silence_is_finite():
    coefficients = mfcc(np.zeros(1600))

    assert np.isfinite(coefficients).all()
    np.testing.assert_allclose(coefficients[0], np.log(np.finfo(float).eps))


def test_missing_weights_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "syncnet_v2.model"

    with pytest.raises(MetricWeightsError, match="SyncNet weights not found") as error:
        load_syncnet(missing)
    assert str(missing) in str(error.value)


def test_failed_download_names_the_url_and_the_option(hub_dir, monkeypatch):
    def unreachable(url, destination, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)

    with pytest.raises(MetricWeightsError) as error:
        load_syncnet()
    assert SYNCNET_URL in str(error.value)
    assert "--syncnet-weights" in str(error.value)
    assert not (hub_dir / "checkpoints" / "syncnet_v2.model").exists()


def _write_not_a_syncnet(path, kind):
    if kind == "text":
        path.write_text("not a model")
    elif kind == "list":
        torch.save([torch.zeros(3)], path)
    elif kind == "other-network":
        torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    elif kind == "wrong-shape":
        state = SyncNet().state_dict()
        state["netfcaud.3.weight"] = torch.zeros(10, 512)
        torch.save(state, path)


@pytest.mark.parametrize("kind", ["text", "list", "other-network", "wrong-shape"])
def test_file_that_is_not_syncnet_weights_is_refused(tmp_path, kind):
    path = tmp_path / "syncnet_v2.model"
    _write_not_a_syncnet(path, kind)

    with pytest.raises(MetricWeightsError, match="not a SyncNet weights file") as error:
        load_syncnet(path)
    assert str(path) in str(error.value)
