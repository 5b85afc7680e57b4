"""`prepare --speaker-embeddings` on two speakers' real footage, then `train l2v` and `train a2l` with tiny models,
joined into a landmark pipeline that generates."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from talking_head.cli import main
from talking_head import jobs
from talking_head.pipelines.settings import SamplingSettings
from talking_head.errors import TalkingHeadError
from talking_head.hub_models.a2l import AudioToLandmarks
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline
from talking_head.training.a2l_task import A2LTask
from talking_head.training.autoencoder_task import AutoencoderTask
from talking_head.data.dataset import TalkingHeadDataset
from talking_head.training.l2v_task import L2VTask
from talking_head.training.mouth_refiner_task import MouthRefinerTask
from talking_head.training.loop import LOG_FILE, TrainConfig, Trainer
from talking_head.data.prepare import prepare_dataset
from test_training import ffmpeg

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
SPEAKERS = {"obama": "video/edtalk_uncrop_Obama.mp4", "aoc": "video/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4"}
PORTRAIT = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> list[Path]:
    """3 s of each of two speakers."""
    folder = tmp_path_factory.mktemp("footage")
    clips = []
    for name, relative in SPEAKERS.items():
        source = SHARED_MEDIA / relative
        if not source.exists():
            pytest.skip(f"real footage {source} is absent (the ../shared/media folder is not checked out here)")
        clips.append(folder / f"{name}.mp4")
        ffmpeg("-i", source, "-t", 3, "-c:v", "libx264", "-c:a", "aac", clips[-1])
    return clips


@pytest.fixture(scope="module")
def dataset(footage) -> TalkingHeadDataset:
    folder = footage[0].parent / "dataset"
    return TalkingHeadDataset(prepare_dataset(footage, folder, resolution=32, crop_mode="smooth", crop_scale=2.0,
                                              speaker_embeddings=True, progress=False))


def train(task, output_dir: Path, max_steps: int) -> dict:
    config = TrainConfig(output_dir=str(output_dir), batch_size=4, learning_rate=1e-3, log_every=10,
                         validate_every=10, sample_every=max_steps, max_steps=max_steps)
    return Trainer(task, config).train()


def logged(output_dir: Path, key: str) -> list[float]:
    records = [json.loads(line) for line in (output_dir / LOG_FILE).read_text().splitlines()]
    return [record[key] for record in records if key in record]


def test_prepare_stores_each_speakers_voice_and_the_crop_scale(dataset):
    assert dataset.index["crop_scale"] == 2.0
    voices = [np.load(clip.folder / "speaker.npy") for clip in dataset.clips]
    assert all(voice.shape == (256,) and abs(np.linalg.norm(voice) - 1) < 1e-4 for voice in voices)
    assert float(voices[0] @ voices[1]) < 0.9  # two different people


@pytest.fixture(scope="module")
def l2v_run(dataset, tmp_path_factory) -> Path:
    autoencoder_run, l2v_run = tmp_path_factory.mktemp("ae"), tmp_path_factory.mktemp("l2v")
    train(AutoencoderTask(dataset, image_size=32, preset="tiny"), autoencoder_run, max_steps=5)
    train(L2VTask(dataset, autoencoder_run / "model", image_size=32, preset="tiny"), l2v_run, max_steps=30)
    return l2v_run


def test_l2v_training_validates_samples_and_exports_an_l2v_pipeline(l2v_run):
    assert logged(l2v_run, "val_loss") and logged(l2v_run, "sample_psnr")
    assert list((l2v_run / "samples").glob("step-*.png"))
    losses = logged(l2v_run, "train_loss")
    assert losses[-1] < losses[0]
    pipeline = LandmarkDiffusionPipeline.from_pretrained(l2v_run / "model")
    assert pipeline.a2l is None and pipeline.image_size == 32 and pipeline.config.crop_scale == 2.0
    assert {"l2v", "autoencoder"} <= set(pipeline.training_record)


def test_a2l_training_lowers_the_loss_and_completes_a_pipeline_that_generates(dataset, l2v_run, tmp_path):
    task = A2LTask(dataset, preset="tiny", window_frames=30, l2v=l2v_run / "model")
    train(task, tmp_path, max_steps=60)
    losses = logged(tmp_path, "train_loss")
    assert losses[-1] < losses[0]
    assert logged(tmp_path, "val_mouth_nme") and logged(tmp_path, "val_still_mouth_nme")
    pipeline = LandmarkDiffusionPipeline.from_pretrained(tmp_path / "model")
    assert set(pipeline.training_record) == {"autoencoder", "l2v", "a2l"}
    output = tmp_path / "talk.mp4"
    jobs.run(jobs.landmark_video(pipeline, dataset.root.parent / "obama.mp4", PORTRAIT, output,
                                 settings=SamplingSettings(1)))
    assert output.exists()
    report = tmp_path / "evaluation.json"
    main(["evaluate", "--pipeline", "landmark", "--data", str(dataset.root), "--model", str(tmp_path / "model"),
          "--steps", "1", "-o", str(report)])
    mean = json.loads(report.read_text())["mean"]
    for name in ("l2v_real_landmarks", "speech"):
        # Pasting keeps the real pixels outside the lower face, so it can only bring the crop closer.
        assert mean[f"{name}_pasted_psnr"] >= mean[f"{name}_psnr"] - 0.05
        assert mean[f"{name}_pasted_ssim"] >= mean[f"{name}_ssim"] - 0.01
        assert 0 < mean[f"{name}_lower_face_psnr"] < 60


def test_a2l_without_l2v_exports_the_a2l_model_alone(dataset, tmp_path):
    train(A2LTask(dataset, preset="tiny", window_frames=30), tmp_path, max_steps=2)
    assert (tmp_path / "model" / "config.json").exists() and (tmp_path / "model" / "training.json").exists()


def test_the_exported_a2l_carries_the_motion_gain_measured_on_the_validation_frames(dataset, tmp_path):
    task = A2LTask(dataset, preset="tiny", window_frames=30)
    with torch.no_grad():
        pairs = list(task._validation_pairs(task.model.eval()))
    # A model that predicts the real motion at 40 % of its size needs a gain of 2.5.
    task._validation_pairs = lambda model: [(real[:1] + 0.4 * (real - real[:1]), real) for _, real in pairs]
    assert task.motion_gain(task.model) == pytest.approx(2.5, rel=1e-5)
    task._validation_pairs = lambda model: [(np.repeat(real[:1], len(real), axis=0), real) for _, real in pairs]
    assert task.motion_gain(task.model) == 1.0  # no predicted motion: nothing to measure

    train(A2LTask(dataset, preset="tiny", window_frames=30), tmp_path, max_steps=2)
    exported = AudioToLandmarks.from_pretrained(tmp_path / "model")
    record = json.loads((tmp_path / "model" / "training.json").read_text())["a2l"]
    assert exported.config.motion_gain == record["motion_gain"] > 0
    assert exported.config.motion_gain == pytest.approx(A2LTask(dataset, preset="tiny").motion_gain(exported.eval()))


def test_the_mouth_opening_loss_adds_the_error_of_the_inner_lips_gap(dataset, tmp_path):
    task = A2LTask(dataset, preset="tiny", window_frames=30, mouth_opening_weight=2.0)
    batch = next(task.batches(2, torch.Generator().manual_seed(0)))
    shift = 0.01
    lowered = batch["landmarks"].clone()
    lowered[..., [65, 66, 67], 1] += shift  # the lower inner lip: the mouth opens by `shift`
    task._predict = lambda model, features, speaker, reference: lowered
    landmark_error = 3 * shift ** 2 / (68 * 2)
    expected = (landmark_error + 2.0 * shift ** 2) / task.loss_scale
    assert task.loss(task.modules(), batch).item() == pytest.approx(expected, rel=1e-4)

    assert main(["train", "a2l", "--data", str(dataset.root), "--out", str(tmp_path), "--preset", "tiny",
                 "--window", "30", "--max-steps", "2", "--mouth-opening-weight", "2"]) == 0
    record = json.loads((tmp_path / "model" / "training.json").read_text())["a2l"]
    assert record["mouth_opening_weight"] == 2.0


def test_a2l_needs_the_voice_embeddings(footage, tmp_path):
    dataset = TalkingHeadDataset(prepare_dataset(footage[:1], tmp_path / "dataset", resolution=32, progress=False))
    with pytest.raises(TalkingHeadError, match="--speaker-embeddings"):
        A2LTask(dataset, preset="tiny")


def test_the_cli_trains_l2v_only_with_an_autoencoder(dataset, tmp_path, capsys):
    assert main(["train", "l2v", "--data", str(dataset.root), "--out", str(tmp_path)]) == 2
    assert "--autoencoder" in capsys.readouterr().err


def test_l2v_in_a_tiny_autoencoder_latent_measures_its_scaling_and_encodes_each_clip_once(dataset, tmp_path):
    from tiny_models import tiny_taesd

    tiny_taesd().save_pretrained(tmp_path / "taesd")
    task = L2VTask(dataset, tmp_path / "taesd", image_size=32, preset="tiny", frame_stride=2)
    assert task.unet.config.sample_size == 4 and task.unet.config.in_channels == 12
    std = task.train["targets"].transpose(0, 1).reshape(3, -1).std(1)
    assert torch.allclose(std, torch.ones(3), atol=0.05)  # measured on these very frames
    caches = sorted(path.name for clip in dataset.clips for path in clip.folder.glob("latents-*-32px-every2-*.npy"))
    assert len(caches) == 3 * len(dataset.clips)
    stamps = {path: path.stat().st_mtime_ns for clip in dataset.clips for path in clip.folder.glob("latents-*every2-*")}
    again = L2VTask(dataset, tmp_path / "taesd", image_size=32, preset="tiny", frame_stride=2)
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps
    assert torch.equal(again.train["targets"], task.train["targets"])
    train(task, tmp_path / "run", max_steps=2)
    exported = LandmarkDiffusionPipeline.from_pretrained(tmp_path / "run" / "model")
    assert exported.vae.config.latents_std == task.vae.config.latents_std
    assert exported.training_record["l2v"]["frame_stride"] == 2


def test_l2v_continues_from_a_landmark_pipeline_in_its_own_latent(dataset, footage, l2v_run, tmp_path, capsys):
    trained = l2v_run / "model"
    task = L2VTask(dataset, init=trained, image_size=32)
    before = LandmarkDiffusionPipeline.from_pretrained(trained)
    for module, loaded in ((task.unet, before.unet), (task.landmark_encoder, before.landmark_encoder),
                           (task.vae, before.vae)):
        assert all(torch.equal(module.state_dict()[name], value) for name, value in loaded.state_dict().items())
    assert main(["train", "l2v", "--data", str(dataset.root), "--out", str(tmp_path / "run"), "--init", str(trained),
                 "--resolution", "32", "--max-steps", "3", "--batch-size", "2", "--validate-every", "3"]) == 0
    continued = LandmarkDiffusionPipeline.from_pretrained(tmp_path / "run" / "model")
    assert continued.training_record["l2v"]["continued_from"]["steps"] == 30
    assert continued.training_record["l2v"]["steps"] == 3
    assert all(torch.equal(continued.vae.state_dict()[name], value)  # the same latent space
               for name, value in before.vae.state_dict().items())
    assert any(not torch.equal(continued.unet.state_dict()[name], value)
               for name, value in before.unet.state_dict().items())

    assert main(["train", "l2v", "--data", str(dataset.root), "--out", str(tmp_path / "again"), "--init", str(trained),
                 "--resolution", "32", "--preset", "tiny"]) == 2
    assert "keeps its own" in capsys.readouterr().err
    with pytest.raises(TalkingHeadError, match="leave out --autoencoder"):
        L2VTask(dataset, l2v_run.parent / "elsewhere", init=trained, image_size=32)
    with pytest.raises(TalkingHeadError, match="not a landmark pipeline folder"):
        L2VTask(dataset, init=l2v_run, image_size=32)
    wider = TalkingHeadDataset(prepare_dataset(footage[:1], tmp_path / "wider", resolution=32, crop_scale=2.6,
                                               progress=False))
    with pytest.raises(TalkingHeadError, match="--crop-scale 2.0"):
        L2VTask(wider, init=trained, image_size=32)


def test_l2v_continues_at_a_larger_size_and_its_record_keeps_the_size_it_started_from(dataset, l2v_run, tmp_path):
    assert main(["train", "l2v", "--data", str(dataset.root), "--out", str(tmp_path / "run"),
                 "--init", str(l2v_run / "model"), "--resolution", "64", "--max-steps", "2", "--batch-size", "2"]) == 0
    larger = LandmarkDiffusionPipeline.from_pretrained(tmp_path / "run" / "model")
    assert larger.image_size == 64 and larger.training_record["l2v"]["image_size"] == 64
    assert larger.training_record["l2v"]["continued_from"]["image_size"] == 32
    landmarks = np.random.default_rng(0).uniform(20, 44, (2, 68, 2))
    frames = larger.denoise_frames(landmarks, torch.zeros(2, 3, 64, 64), torch.zeros(1, 3, 64, 64),
                                   larger.initial_noise(0), 2)
    assert frames.shape == (2, 3, 64, 64)  # drawn at the new size from the start


def test_datasets_train_together_when_they_match(dataset, footage, tmp_path):
    other = TalkingHeadDataset(prepare_dataset(footage[:1], tmp_path / "other", resolution=32, progress=False))
    both = TalkingHeadDataset([dataset.root, other.root])
    assert [clip.name for clip in both.clips] == [clip.name for clip in dataset.clips + other.clips]
    assert len(both.frames("train", 16)) == len(dataset.frames("train", 16)) + len(other.frames("train", 16))
    larger = prepare_dataset(footage[:1], tmp_path / "larger", resolution=48, progress=False)
    with pytest.raises(TalkingHeadError, match="resolution 48"):
        TalkingHeadDataset([dataset.root, larger])


def test_prepare_can_leave_out_an_unusable_video_and_says_so(footage, tmp_path):
    still = tmp_path / "no_face.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=128x128:d=1", "-i", footage[0], "-map", "0:v", "-map", "1:a", "-t", 1,
           "-c:v", "libx264", "-c:a", "aac", "-shortest", still)
    with pytest.raises(TalkingHeadError, match="no face"):
        prepare_dataset([footage[0], still], tmp_path / "strict", resolution=32, progress=False)
    assert not (tmp_path / "strict").exists()
    folder = prepare_dataset([footage[0], still], tmp_path / "lenient", resolution=32, skip_unusable=True,
                             progress=False)
    index = json.loads((folder / "dataset.json").read_text())
    assert [clip["name"] for clip in index["clips"]] == [footage[0].stem]
    assert index["skipped"][0]["name"] == "no_face.mp4" and "no face" in index["skipped"][0]["reason"]
    assert index["clips"][0]["source"] == footage[0].name


def test_a2l_trained_from_the_command_line_on_whisper_features_carries_its_encoder_and_loads_offline(
        dataset, l2v_run, tmp_path, monkeypatch):
    import shutil

    from tiny_models import save_tiny_whisper

    assert main(["convert-whisper", str(save_tiny_whisper(tmp_path / "tiny.pt", "openai")), "--half",
                 "--out", str(tmp_path / "whisper")]) == 0
    assert main(["train", "a2l", "--data", str(dataset.root), "--out", str(tmp_path / "run"), "--preset", "tiny",
                 "--features", "whisper", "--speech-model", str(tmp_path / "whisper"), "--feature-layers", "mean",
                 "--max-steps", "3", "--window", "20", "--l2v", str(l2v_run / "model")]) == 0
    shutil.rmtree(tmp_path / "whisper")  # the encoder it learnt from is gone: the pipeline must bring its own
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipeline = LandmarkDiffusionPipeline.from_pretrained(tmp_path / "run" / "model")

    config = pipeline.a2l.config
    assert (config.feature_kind, config.feature_model_name, config.feature_layers) == ("whisper", "whisper", "mean")
    assert config.feature_dim == 32 and (tmp_path / "run" / "model" / "speech_model" / "LICENSE").exists()
    assert pipeline.training_record["a2l"]["features"]["feature_kind"] == "whisper"
    assert any(clip.folder.glob("features-whisper-mean-*.npy") for clip in dataset.clips)  # kept for the next run
    output = tmp_path / "talk.mp4"
    jobs.run(jobs.landmark_video(pipeline, dataset.root.parent / "obama.mp4", PORTRAIT, output,
                                 settings=SamplingSettings(1)))
    assert output.exists()


def test_training_on_a_front_end_that_cannot_be_had_stops_before_any_work(dataset, tmp_path, capsys):
    assert main(["train", "a2l", "--data", str(dataset.root), "--out", str(tmp_path / "run"), "--features", "whisper",
                 "--speech-model", str(tmp_path / "missing")]) == 2
    assert "Whisper weights not found" in capsys.readouterr().err and not (tmp_path / "run").exists()
    assert main(["train", "a2l", "--data", str(dataset.root), "--out", str(tmp_path / "run"),
                 "--speech-model", str(tmp_path / "missing")]) == 2
    assert "--speech-model and --feature-layers are for the speech model features" in capsys.readouterr().err


def test_the_mouth_refiner_learns_from_l2v_drawings_made_once_and_joins_the_l2v_pipeline(dataset, l2v_run, tmp_path):
    def task():
        return MouthRefinerTask(dataset, l2v_run / "model", frames_per_clip=12, window_size=16, num_inference_steps=2)

    train(task(), tmp_path / "run", max_steps=40)
    losses = logged(tmp_path / "run", "train_loss")
    assert losses[-1] < losses[0]
    assert logged(tmp_path / "run", "val_pasted_psnr") and logged(tmp_path / "run", "val_pasted_psnr_composed")
    pipeline = LandmarkDiffusionPipeline.from_pretrained(tmp_path / "run" / "model")
    assert pipeline.mouth_refiner.window_size == 16 and pipeline.image_size == 32
    assert {"l2v", "mouth_refiner"} <= set(pipeline.training_record)
    assert pipeline.training_record["mouth_refiner"]["l2v_drawing"]["steps"] == 2
    drawings = [next(clip.folder.glob("mouth-refiner-crops-*.npy")) for clip in dataset.clips]
    assert all(len(np.load(path)) >= 11 for path in drawings)
    made = [path.stat().st_mtime_ns for path in drawings]
    task()  # a second run reads L2V's drawings back
    assert [path.stat().st_mtime_ns for path in drawings] == made


def test_the_mouth_refiner_needs_an_l2v_pipeline(dataset, tmp_path, capsys):
    assert main(["train", "mouth-refiner", "--data", str(dataset.root), "--out", str(tmp_path)]) == 2
    assert "train mouth-refiner needs --l2v" in capsys.readouterr().err
