"""`talking-head evaluate` on videos: generated against real for the same audio. Known inputs: identical videos get
the ideal scores, a blurred video scores worse on every image metric, an audio track shifted by 5 frames moves the
speech-to-mouth offset by 5, and the metrics without weights say so while the rest are computed."""

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from talking_head.cli import main
from talking_head.errors import TalkingHeadError
from talking_head.evaluation.lpips import LPIPS
from talking_head.evaluation.syncnet import SyncNet
from talking_head.evaluation.videos import MetricWeights, evaluate_videos
from talking_head.media._ffmpeg import run_ffmpeg

FIXTURES = Path(__file__).resolve().parent / "fixtures"
ADDRESS = FIXTURES / "obama_address_6s.mp4"  # 6 s of a presidential weekly address (US-government work, public domain)
SHIFT_FRAMES = 5


def _ffmpeg(*arguments) -> None:
    result = run_ffmpeg(["-y", *map(str, arguments)])
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    """The address as it is, blurred, and with its sound 5 frames (200 ms) late."""
    folder = tmp_path_factory.mktemp("videos")
    _ffmpeg("-i", ADDRESS, "-vf", "boxblur=4:1", "-c:v", "libx264", "-crf", "18", "-c:a", "copy", folder / "blurred.mp4")
    _ffmpeg("-i", ADDRESS, "-af", f"adelay={SHIFT_FRAMES * 40}", "-c:v", "copy", "-c:a", "aac", "-t", "6.08",
            folder / "late_sound.mp4")
    return {"real": ADDRESS, "blurred": folder / "blurred.mp4", "late_sound": folder / "late_sound.mp4"}


@pytest.fixture(scope="module")
def network_weights(tmp_path_factory) -> MetricWeights:
    """LPIPS and SyncNet weight files in the real formats (torchvision AlexNet, lpips alex.pth, syncnet_v2.model)
    with random values: the real ones cannot be downloaded here. LPIPS(x, x) = 0 and blur > 0 hold for any
    non-negative linear weights; SyncNet's scores are only checked to be well formed."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = LPIPS()
    torch.save({f"features.{key}": value for key, value in model.features.state_dict().items()}, folder / "alexnet.pth")
    torch.save({f"lin{index}.model.1.weight": layer.weight.detach().abs() for index, layer in enumerate(model.linear_layers)},
               folder / "alex.pth")
    torch.save(SyncNet().state_dict(), folder / "syncnet_v2.model")
    return MetricWeights(lpips=str(folder / "alex.pth"), lpips_backbone=str(folder / "alexnet.pth"),
                         syncnet=str(folder / "syncnet_v2.model"))


@pytest.fixture(scope="module")
def report(videos, network_weights) -> dict:
    generated = [videos["real"], videos["blurred"], videos["late_sound"]]
    return evaluate_videos(generated, [videos["real"]] * 3,
                           metrics=("psnr", "ssim", "pixel_mse", "landmarks", "sync", "sharpness", "lpips", "tlp", "lse",
                                    "fid"),
                           weights=network_weights)


def test_identical_videos_get_the_ideal_scores(report):
    same = report["videos"][0]
    assert same["frames"] == 152 and same["face_found"] == 1
    assert same["psnr"] == pytest.approx(100) and same["ssim"] == pytest.approx(1, abs=1e-6)
    assert same["face_psnr"] == pytest.approx(100) and same["sharpness_ratio"] == pytest.approx(1)
    assert same["lpips"] == 0 and same["tlp"] == 0
    assert same["landmark_distance_face"] == 0 and same["landmark_distance_mouth"] == 0
    assert same["mouth_opening_correlation"] == pytest.approx(1)
    assert same["pixel_mse"] == same["pixel_mse_real"] > 0
    assert same["sync_offset_frames"] == same["real_sync_offset_frames"]


def test_a_blurred_video_scores_worse_on_every_image_metric(report):
    same, blurred = report["videos"][0], report["videos"][1]
    assert blurred["psnr"] < 35 and blurred["ssim"] < 0.95 and blurred["lpips"] > 0
    assert blurred["psnr"] < same["psnr"] and blurred["ssim"] < same["ssim"] and blurred["lpips"] > same["lpips"]
    assert blurred["landmark_distance_face"] > same["landmark_distance_face"]
    assert blurred["face_psnr"] < 35 and blurred["sharpness_lower_face"] < 0.5 and blurred["sharpness_eyes"] < 0.5


def test_a_lower_face_blurred_alone_loses_sharpness_against_the_eyes_measured_against_a_still_photo(tmp_path):
    from talking_head.faces.landmarks import get_landmarker, landmarks_per_frame
    from talking_head.media.video import VideoWriter, read_video_frames

    photo_frame = next(read_video_frames(ADDRESS, batch=1))[0]
    points = landmarks_per_frame(photo_frame[None], get_landmarker("dlib"))[0]
    photo = tmp_path / "photo.png"
    Image.fromarray(photo_frame).save(photo)
    nose_row = int(points[33, 1])
    soft = photo_frame.copy()
    soft[nose_row:] = cv2.GaussianBlur(photo_frame, (0, 0), 2.0)[nose_row:]  # the lower face, blurred
    for name, frame in (("still.mp4", photo_frame), ("soft.mp4", soft)):
        with VideoWriter(tmp_path / name, fps=25.0) as writer:
            writer.write(np.repeat(frame[None], 10, axis=0))

    report = evaluate_videos([tmp_path / "still.mp4", tmp_path / "soft.mp4"], [photo, photo], metrics=("sharpness",))

    still, soft_figures = report["videos"]
    assert still["frames"] == soft_figures["frames"] == 10
    assert 0.6 < still["sharpness_ratio"] < 1.4  # the video's own encoding costs both regions alike
    assert soft_figures["sharpness_ratio"] < 0.5 * still["sharpness_ratio"]
    with pytest.raises(TalkingHeadError, match="photo.png is a still image: only the sharpness metric"):
        evaluate_videos([tmp_path / "still.mp4"], [photo], metrics=("sharpness", "psnr"))


def test_sound_five_frames_late_moves_the_speech_to_mouth_offset_by_five(report):
    same, late = report["videos"][0], report["videos"][2]
    assert late["sync_offset_frames"] == same["sync_offset_frames"] - SHIFT_FRAMES  # the mouth now leads the sound
    assert late["real_sync_offset_frames"] == same["real_sync_offset_frames"]  # the real video keeps its own sound
    assert late["psnr"] == pytest.approx(100)  # the pictures are the same


def test_syncnet_scores_come_from_the_face_crops_of_every_frame(report):
    for video in report["videos"]:
        assert np.isfinite([video["lse_c"], video["lse_d"]]).all() and video["lse_c"] >= 0
        assert abs(video["lse_offset_frames"]) <= 15


def test_a_metric_without_its_network_says_why_and_the_rest_are_computed(report):
    assert "torch-fidelity" in report["unavailable"]["fid"]  # it cannot be imported here
    assert "fid" not in report["mean"] and "psnr" in report["mean"]


def test_the_command_writes_the_table_csv_and_json(videos, network_weights, tmp_path, capsys):
    status = main(["evaluate", "--generated", str(videos["blurred"]), "--real", str(videos["real"]),
                   "--metrics", "psnr", "ssim", "lpips", "--lpips-weights", network_weights.lpips,
                   "--lpips-backbone-weights", network_weights.lpips_backbone,
                   "--csv", str(tmp_path / "table.csv"), "-o", str(tmp_path / "report.json")])
    printed = capsys.readouterr().out
    assert status == 0 and "blurred.mp4" in printed and "mean" in printed and "lpips" in printed
    rows = list(csv.DictReader(open(tmp_path / "table.csv")))
    assert [row["generated"] for row in rows] == [str(videos["blurred"]), "mean"]
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["settings"]["metrics"] == ["lpips", "psnr", "ssim"]
    assert float(rows[0]["psnr"]) == pytest.approx(saved["videos"][0]["psnr"])


def test_without_the_weights_and_offline_lpips_is_reported_unavailable_with_the_option_to_give(videos, monkeypatch,
                                                                                             tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("offline")))
    report = evaluate_videos([videos["blurred"]], [videos["real"]], metrics=("psnr", "lpips"))
    assert "--lpips-backbone-weights" in report["unavailable"]["lpips"] and "offline" in report["unavailable"]["lpips"]
    assert report["mean"]["psnr"] < 35


def test_unpaired_videos_and_unknown_metrics_are_refused(videos):
    with pytest.raises(TalkingHeadError, match="one real video for each generated one"):
        evaluate_videos([videos["real"], videos["blurred"]], [videos["real"]])
    with pytest.raises(TalkingHeadError, match="unknown metrics"):
        evaluate_videos([videos["real"]], [videos["real"]], metrics=("psnr", "beauty"))


def test_a_correlation_of_fewer_than_two_values_is_undefined_and_a_flat_signal_correlates_with_nothing():
    from talking_head.evaluation.metrics import pearson

    assert np.isnan(pearson([], [])) and np.isnan(pearson([1.0], [2.0]))
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.5]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1])


def test_landmark_distances_are_scale_free_fractions_of_the_eye_distance():
    from talking_head.evaluation.metrics import landmark_errors

    real = np.random.default_rng(0).normal(size=(4, 68, 2)) * 10
    real[:, 36], real[:, 45] = (0, 0), (100, 0)  # outer eye corners 100 apart
    moved = real + np.array([5.0, 0.0])  # every point 5 to the right: 5 % of the eye distance
    errors = landmark_errors(moved, real)
    assert errors["nme"] == pytest.approx(0.05) and errors["mouth_nme"] == pytest.approx(0.05)
    errors_with_a_missing_frame = landmark_errors(np.concatenate([moved, np.full((1, 68, 2), np.nan)]),
                                                  np.concatenate([real, real[:1]]))
    assert errors_with_a_missing_frame["nme"] == pytest.approx(0.05)


def test_a_face_crop_is_measured_against_the_full_frame_it_was_cut_from(tmp_path):
    """A 64x64 face crop (as DAE-Talker writes) against the 256x256 real video: the face is found in each at its own
    resolution, the real frames are aligned to the crop, so the crop scores as the same pictures and the same mouth."""
    from talking_head.faces.align import crop_box_from_landmarks
    from talking_head.faces.landmarks import get_landmarker, largest_face_landmarks
    from talking_head.media.video import read_video_frames

    first_frame = next(read_video_frames(ADDRESS, batch=1))[0]
    x, y, side = crop_box_from_landmarks(largest_face_landmarks(get_landmarker("dlib"), first_frame), 1.6)
    left, top, side = round(x - side / 2), round(y - side / 2), round(side)
    crop = tmp_path / "crop.mp4"
    _ffmpeg("-i", ADDRESS, "-vf", f"crop={side}:{side}:{left}:{top},scale=64:64:flags=area", "-c:v", "libx264",
            "-crf", "12", "-c:a", "copy", crop)
    (figures,) = evaluate_videos([crop], [ADDRESS], metrics=("psnr", "ssim", "landmarks", "sync"))["videos"]
    assert figures["aligned"] and figures["face_found"] == 1
    assert figures["psnr"] > 28 and figures["ssim"] > 0.85
    assert figures["mouth_opening_correlation"] > 0.7 and figures["landmark_distance_mouth"] < 0.08
    assert abs(figures["sync_offset_frames"] - figures["real_sync_offset_frames"]) <= 1


def test_differently_framed_videos_without_a_common_face_are_refused(tmp_path):
    blank = tmp_path / "blank.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=gray:size=64x64:rate=25:duration=2", "-c:v", "libx264", blank)
    with pytest.raises(TalkingHeadError, match="framed differently"):
        evaluate_videos([blank], [ADDRESS], metrics=("psnr",))


def test_a_real_video_without_sound_or_a_report_path_in_no_folder_is_refused_before_any_frame_is_read(
        videos, tmp_path, monkeypatch, capsys):
    from talking_head.evaluation import videos as evaluation

    monkeypatch.setattr(evaluation._PairMeasure, "add", lambda *args: pytest.fail("frames were measured"))
    silent = tmp_path / "silent.mp4"
    _ffmpeg("-i", ADDRESS, "-an", "-c:v", "copy", silent)
    with pytest.raises(TalkingHeadError, match="silent.mp4 has no audio track"):
        evaluate_videos([videos["blurred"], videos["real"]], [videos["real"], silent], metrics=("psnr", "sync"))
    for option in ("-o", "--csv"):
        status = main(["evaluate", "--generated", str(videos["real"]), "--real", str(videos["real"]), "--metrics",
                       "psnr", option, str(tmp_path / "missing" / "report")])
        assert status == 2 and "cannot write the report" in capsys.readouterr().err


def test_frames_measured_one_at_a_time_give_the_same_figures_as_a_batch(videos, monkeypatch):
    """Large frames are measured a few at a time so that memory stays bounded (a 1920x1080 pair in batches of 32 took
    20 GB for SSIM alone); the figures must not depend on how many frames go together."""
    import talking_head.evaluation.videos as evaluation_videos

    pair = {"generated": [videos["blurred"]], "real": [videos["real"]], "metrics": ["psnr", "ssim", "pixel_mse"]}
    batched = evaluate_videos(**pair)["mean"]
    monkeypatch.setattr(evaluation_videos, "PIXELS_PER_BATCH", 1)
    one_at_a_time = evaluate_videos(**pair)["mean"]
    for name in ("psnr", "ssim", "pixel_mse", "pixel_mse_real"):
        assert one_at_a_time[name] == pytest.approx(batched[name], rel=1e-5), name
