"""Behaviour of `prepare` and the training tasks on a few seconds of real footage, with tiny models."""

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from talking_head import jobs
from talking_head.pipelines.settings import SamplingSettings
from talking_head.errors import FaceError, TalkingHeadError
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from talking_head.training.autoencoder_task import AutoencoderTask
from talking_head.training.dae_task import DAETask, mouth_shapes, mouth_weights
from talking_head.data.dataset import TalkingHeadDataset
from talking_head.training.loop import LOG_FILE, TrainConfig, Trainer
from talking_head.data.prepare import prepare_dataset
from talking_head.training.speech2latent_task import Speech2LatentTask

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
OBAMA_VIDEO = SHARED_MEDIA / "video" / "edtalk_uncrop_Obama.mp4"
GRID_S1 = SHARED_MEDIA / "long" / "grid_s1"
CLIP_SECONDS = 3.0


def ffmpeg(*args) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> TalkingHeadDataset:
    """A dataset prepared from 3 s of the public-domain Obama address."""
    if not OBAMA_VIDEO.exists():
        pytest.skip(f"real footage {OBAMA_VIDEO} is absent (the ../shared/media folder is not checked out here)")
    folder = tmp_path_factory.mktemp("footage")
    clip = folder / "obama.mp4"
    ffmpeg("-i", OBAMA_VIDEO, "-t", CLIP_SECONDS, "-c:v", "libx264", "-c:a", "aac", clip)
    return TalkingHeadDataset(prepare_dataset([clip], folder / "dataset", resolution=64, progress=False))


def train(task, output_dir: Path, **settings) -> dict:
    config = TrainConfig(output_dir=str(output_dir), batch_size=4, learning_rate=1e-3, log_every=10, validate_every=10,
                         sample_every=10, **settings)
    return Trainer(task, config).train()


def logged(output_dir: Path, key: str) -> list[float]:
    records = [json.loads(line) for line in (output_dir / LOG_FILE).read_text().splitlines()]
    return [record[key] for record in records if key in record]


def test_prepare_writes_aligned_crops_features_pose_and_a_split_by_time(dataset):
    (clip,) = dataset.clips
    num_frames = round(CLIP_SECONDS * 25)
    assert clip.num_frames == num_frames
    assert clip.array("frames").shape == (num_frames, 64, 64, 3)
    assert clip.array("features-logmel").shape == (num_frames, 320)
    assert clip.array("pose").shape == (num_frames, 6) and np.isfinite(clip.array("pose")).all()
    landmarks = clip.array("landmarks")
    assert landmarks.shape == (num_frames, 68, 2)
    assert (landmarks > 0).all() and (landmarks < 64).all()  # the face lies inside the crop
    assert clip.train_range[0] == 0 and clip.train_range[1] == clip.val_range[0] and clip.val_range[1] == num_frames
    assert clip.val_range[1] - clip.val_range[0] == round(0.2 * num_frames)


def test_prepare_refuses_a_video_without_a_face_and_leaves_nothing(tmp_path):
    video = tmp_path / "no_face.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=128x128:rate=25:duration=1", "-f", "lavfi", "-i",
           "sine=frequency=300:duration=1", "-shortest", video)
    with pytest.raises(FaceError, match="no face"):
        prepare_dataset([video], tmp_path / "dataset", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_face.mp4"]


def test_prepare_refuses_a_missing_video(tmp_path):
    with pytest.raises(TalkingHeadError, match="nowhere.mp4"):
        prepare_dataset([tmp_path / "nowhere.mp4"], tmp_path / "dataset", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_autoencoder_training_lowers_the_loss_and_resumes_from_its_checkpoint(dataset, tmp_path):
    task = AutoencoderTask(dataset, image_size=32, preset="tiny")
    train(task, tmp_path, max_steps=100)
    losses = logged(tmp_path, "train_loss")
    assert losses[-1] < 0.7 * losses[0]
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["step"] == 100

    resumed = Trainer(AutoencoderTask(dataset, image_size=32, preset="tiny"),
                      TrainConfig(output_dir=str(tmp_path), batch_size=4, max_steps=110, validate_every=10))
    assert resumed.step == 100
    saved = torch.load(tmp_path / "checkpoint" / "optimizer.pt", weights_only=True)
    assert saved["state"]  # the optimizer moments came back too
    resumed.train()
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["step"] == 110
    assert (tmp_path / "model" / "config.json").exists()


def test_decoder_only_training_keeps_the_encoder_and_its_latent_scale(dataset, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    train(AutoencoderTask(dataset, image_size=32, preset="tiny"), first, max_steps=5)
    train(AutoencoderTask(dataset, image_size=32, preset="tiny", init=first / "model", decoder_only=True), second,
          max_steps=5)
    before, after = AutoencoderKL.from_pretrained(first / "model"), AutoencoderKL.from_pretrained(second / "model")
    assert after.config.scaling_factor == before.config.scaling_factor
    for name, tensor in before.state_dict().items():
        if name.startswith(("encoder.", "quant_conv.")):
            assert torch.equal(after.state_dict()[name], tensor), name
    assert any(not torch.equal(after.state_dict()[n], t) for n, t in before.state_dict().items() if n.startswith("decoder."))
    record = json.loads((second / "model" / "training.json").read_text())
    assert record["decoder_only"] and record["continued_from"]["steps"] == 5
    with pytest.raises(TalkingHeadError, match="--init"):
        AutoencoderTask(dataset, image_size=32, preset="tiny", decoder_only=True)


def test_a_latent_space_dae_carries_its_autoencoder_and_its_training_record(dataset, tmp_path):
    autoencoder_run, dae_run = tmp_path / "ae", tmp_path / "dae"
    train(AutoencoderTask(dataset, image_size=32, preset="tiny"), autoencoder_run, max_steps=5)
    task = DAETask(dataset, image_size=32, autoencoder=autoencoder_run / "model", unet_preset="tiny", encoder_preset="tiny")
    train(task, dae_run, max_steps=5)
    pipeline = DAETalkerPipeline.from_pretrained(dae_run / "model")
    assert pipeline.vae is not None and pipeline.unet.config.sample_size == 8  # 32 px frames, f=4 latent
    assert pipeline.training_record["autoencoder"]["steps"] == 5


def test_mouth_weights_cover_the_lips_and_nothing_far_from_them(dataset):
    landmarks = dataset.clip_array(dataset.clips[0], "landmarks", "train")[:4]
    weights = mouth_weights(landmarks, dataset.resolution, 32, 4.0)
    assert weights.shape == (4, 1, 32, 32) and set(weights.unique().tolist()) == {1.0, 4.0}
    for frame_landmarks, frame_weights in zip(landmarks, weights[:, 0]):
        lips = (frame_landmarks[48:68] * 32 / dataset.resolution).long()
        assert (frame_weights[lips[:, 1], lips[:, 0]] == 4).all()  # every lip point lies in the weighted region
        eyes = (frame_landmarks[36:48] * 32 / dataset.resolution).long()
        assert (frame_weights[eyes[:, 1], eyes[:, 0]] == 1).all()
        assert 0.02 < (frame_weights > 1).float().mean() < 0.25


def test_mouth_weighted_dae_training_records_its_weight_and_refuses_less_than_one(dataset, tmp_path):
    task = DAETask(dataset, image_size=16, unet_preset="tiny", encoder_preset="tiny", mouth_weight=3.0)
    train(task, tmp_path, max_steps=3)
    record = DAETalkerPipeline.from_pretrained(tmp_path / "model").training_record
    assert record["dae"]["mouth_weight"] == 3.0
    with pytest.raises(TalkingHeadError, match="--mouth-weight"):
        DAETask(dataset, image_size=16, unet_preset="tiny", encoder_preset="tiny", mouth_weight=0.5)


def test_mouth_shapes_ignore_the_heads_position_and_size(dataset):
    landmarks = dataset.clip_array(dataset.clips[0], "landmarks", "train")[:4]
    shapes = mouth_shapes(landmarks)
    assert shapes.shape == (4, 40)
    torch.testing.assert_close(mouth_shapes(landmarks * 2.5 + torch.tensor([30.0, -7.0])), shapes)
    opened = landmarks.clone()
    opened[:, 57, 1] += 5  # the lower lip's middle drops
    assert not torch.allclose(mouth_shapes(opened), shapes)


def test_the_mouth_head_reads_the_lips_from_the_code_and_is_not_exported(dataset, tmp_path):
    task = DAETask(dataset, image_size=16, unet_preset="tiny", encoder_preset="tiny", mouth_head_weight=1.0)
    assert task.train_mouths.mean().abs() < 1e-4 and task.train_mouths.std(0).mean() == pytest.approx(1, abs=0.05)
    modules = task.modules()
    batch = next(task.batches(8, torch.Generator().manual_seed(0)))

    def head_error() -> float:
        with torch.no_grad():
            return (task.mouth_head(task.encoder(batch["images"])) - batch["mouths"]).pow(2).mean().item()

    before = head_error()
    optimizer = torch.optim.AdamW([p for module in modules.values() for p in module.parameters()], lr=3e-3)
    for _ in range(60):  # the training loss, on one batch: encoder and head learn to hold these lips
        optimizer.zero_grad()
        task.loss(modules, batch).backward()
        optimizer.step()
    assert head_error() < 0.8 * before

    train(task, tmp_path, max_steps=3)
    assert logged(tmp_path, "val_mouth_head_loss")
    assert not list((tmp_path / "model").glob("mouth_head*"))  # inference needs no landmarks, as in the paper
    record = DAETalkerPipeline.from_pretrained(tmp_path / "model").training_record
    assert record["dae"]["mouth_head_weight"] == 1.0
    with pytest.raises(TalkingHeadError, match="--mouth-head-weight"):
        DAETask(dataset, image_size=16, unet_preset="tiny", encoder_preset="tiny", mouth_head_weight=-1)


@pytest.fixture(scope="module")
def trained_dae(dataset, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("dae")
    task = DAETask(dataset, image_size=16, unet_preset="tiny", encoder_preset="tiny")
    train(task, output, max_steps=20)
    return output


def test_dae_training_saves_a_pipeline_with_samples_and_validation(trained_dae):
    pipeline = DAETalkerPipeline.from_pretrained(trained_dae / "model")
    assert pipeline.vae is None  # trained in pixel space, as in the paper
    assert pipeline.training_record["dae"]["steps"] == 20
    assert logged(trained_dae, "val_loss") and logged(trained_dae, "sample_psnr")
    assert list((trained_dae / "samples").glob("step-*.png"))


def test_a_dae_without_a_speech2latent_is_measured_by_its_semantic_code_alone(dataset, trained_dae, tmp_path):
    from talking_head.cli import main
    from talking_head.errors import ModelError
    from talking_head.evaluation.holdout import evaluate_on_holdout

    pipeline = DAETalkerPipeline.from_pretrained(trained_dae / "model")
    with pytest.raises(ModelError, match="no speech2latent.*--semantic-only"):
        evaluate_on_holdout(pipeline, dataset)
    report_path = tmp_path / "semantic.json"
    assert main(["evaluate", "--data", str(dataset.root), "--model", str(trained_dae / "model"), "--semantic-only",
                 "-o", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["settings"] == {"semantic_only": True}
    # only what the code holds, read out along directions fitted on the clip's training frames; no frame was drawn
    assert set(report["mean"]) == {"semantic_dimensions_99pct_variance", "semantic_mouth_readout_correlation"}
    assert 1 <= report["mean"]["semantic_dimensions_99pct_variance"] <= pipeline.semantic_encoder.config.out_dim
    assert report["mean"] == evaluate_on_holdout(pipeline, dataset, semantic_only=True)["mean"]


def test_speech2latent_training_lowers_the_loss_and_completes_a_pipeline_that_generates(dataset, trained_dae, tmp_path):
    task = Speech2LatentTask(dataset, trained_dae / "model", preset="tiny", window_frames=20)
    train(task, tmp_path, max_steps=60)
    losses = logged(tmp_path, "train_loss")
    assert losses[-1] < losses[0]
    pipeline = DAETalkerPipeline.from_pretrained(tmp_path / "model")
    assert set(pipeline.training_record) == {"dae", "speech2latent"}
    output = tmp_path / "talk.mp4"
    jobs.run(jobs.dae_talker_video(pipeline, dataset.root.parent / "obama.mp4", output, settings=SamplingSettings(2)))
    assert output.exists()


def test_held_back_evaluation_measures_each_stage_of_the_bundled_dae_and_fits_its_read_out_on_other_sentences(tmp_path):
    from talking_head.cli import DEFAULT_DAE_MODEL
    from talking_head.evaluation.holdout import evaluate_on_holdout

    # two of the bundled model's own held-back sentences (GRID s1; the card lists them), 1.5 s of each
    sentences = [GRID_S1 / f"{name}.mp4" for name in ("sgbxzp", "sran8n")]
    if not all(sentence.exists() for sentence in sentences):
        pytest.skip(f"real footage {GRID_S1} is absent (the ../shared/media folder is not checked out here)")
    clips = []
    for sentence in sentences:
        clips.append(tmp_path / sentence.name)
        ffmpeg("-ss", 0.5, "-i", sentence, "-t", 1.5, "-c:v", "libx264", "-c:a", "aac", clips[-1])
    held_out = TalkingHeadDataset(prepare_dataset(clips, tmp_path / "held_out", resolution=128, crop_scale=2.0,
                                                  val_fraction=1.0, progress=False))
    assert all(clip.frame_range("train") == (0, 0) for clip in held_out.clips)  # nothing of them trains
    pipeline = DAETalkerPipeline.from_pretrained(DEFAULT_DAE_MODEL).eval_mode()
    report = evaluate_on_holdout(pipeline, held_out, num_inference_steps=3, with_ceiling=True)
    figures = report["mean"]
    # the real frames at the model's size: the mouth measurement itself finds the real mouth moving
    assert figures["measured_mouth_correlation"] > 0.5
    # the frame autoencoder alone loses less than the diffusion decoder after it
    assert figures["autoencoder_psnr"] > figures["ceiling_psnr"] > 15
    assert [clip["frames"] for clip in report["clips"]] == [38, 38]
    # what the semantic code holds: a count of its directions, and a read-out fitted on the other sentence
    assert 1 <= figures["semantic_dimensions_99pct_variance"] <= pipeline.semantic_encoder.config.out_dim
    for clip in report["clips"]:
        assert -1 <= clip["semantic_mouth_readout_correlation"] <= 1
    # measured alone, the semantic code gives the same figures, and nothing is drawn
    alone = evaluate_on_holdout(pipeline, held_out, semantic_only=True)
    for clip, clip_alone in zip(report["clips"], alone["clips"]):
        assert "psnr" not in clip_alone
        for key in ("semantic_dimensions_99pct_variance", "semantic_mouth_readout_correlation"):
            assert clip_alone[key] == pytest.approx(clip[key], abs=1e-6)


def test_semantic_code_figures_find_how_many_directions_codes_use_and_whether_they_hold_the_mouth():
    from talking_head.evaluation.holdout import semantic_code_figures

    generator = np.random.default_rng(0)
    factors = generator.normal(size=(300, 2))  # two hidden factors: the mouth opening, and something else
    codes = factors @ generator.normal(size=(2, 32)) + 1e-4 * generator.normal(size=(300, 32))
    opening = 0.1 + 0.02 * factors[:, 0]
    holds = semantic_code_figures(codes[:200], opening[:200], codes[200:], opening[200:])
    assert holds["semantic_dimensions_99pct_variance"] == 2
    assert holds["semantic_mouth_readout_correlation"] > 0.99
    unrelated = 0.1 + 0.02 * generator.normal(size=300)  # a mouth the codes know nothing of
    blind = semantic_code_figures(codes[:200], unrelated[:200], codes[200:], unrelated[200:])
    assert abs(blind["semantic_mouth_readout_correlation"]) < 0.3
