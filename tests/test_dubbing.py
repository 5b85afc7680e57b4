"""Dubbing a video: the face followed through it, only the lips and chin moved to the new speech at the video's own
size and frame rate, the video played forward and back for longer speech, frames without a face passed through,
and bad input refused with one line (tiny untrained models; the public-domain address in assets/)."""

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from audio_files import write_wav
from talking_head import jobs
from talking_head.cli import main
from talking_head.errors import FaceError, TalkingHeadError
from talking_head.faces.tracking import ping_pong
from talking_head.media.audio import load_audio
from talking_head.media.video import frames_in_order, probe_video, read_metadata, read_video_frames
from talking_head.pipelines.settings import SamplingSettings
from tiny_models import tiny_landmark_pipeline

ASSETS = Path(__file__).resolve().parents[1] / "assets"
ADDRESS = ASSETS / "obama_head_motion.mp4"  # 4.08 s, 256x256, 25 fps, no sound
SETTINGS = SamplingSettings(1, batch_size=8)


def ffmpeg(*args) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("dlib", reason="dlib is not installed (pip install 'talking-head-diffusion[face]')")
    return tiny_landmark_pipeline()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("dubbing")
    speech = load_audio(ASSETS / "jfk.flac")
    ffmpeg("-i", ADDRESS, "-t", "1.2", "-r", "30", "-c:v", "libx264", folder / "address_30fps.mp4")
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:size=256x256:rate=25:duration=0.4", "-i", ADDRESS,
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]", "-t", "1.6", "-c:v", "libx264",
           folder / "late_face.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=256x256:rate=25:duration=1", "-c:v", "libx264", folder / "no_face.mp4")
    ffmpeg("-i", ADDRESS, "-i", ADDRESS, "-filter_complex", "[0:v]scale=256:256[a];[1:v]scale=160:160,pad=256:256:48:48[b];"
           "[a][b]hstack[v]", "-map", "[v]", "-t", "1", "-c:v", "libx264", folder / "two_faces.mp4")
    return {"folder": folder, "one_second": write_wav(folder / "one.wav", speech[:16000]),
            "six_seconds": write_wav(folder / "six.wav", speech[:96000]),
            "corrupt": _corrupt(folder / "broken.mp4")}


def _corrupt(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    return path


def test_a_dubbed_video_keeps_the_videos_size_and_frame_rate_lasts_as_the_speech_and_carries_it(tiny, media, tmp_path):
    output = tmp_path / "dubbed.mp4"
    jobs.run(jobs.dub_video(tiny, media["one_second"], media["folder"] / "address_30fps.mp4", output,
                            settings=SETTINGS))
    facts = probe_video(output)
    assert (facts["width"], facts["height"], facts["fps"], facts["num_frames"]) == (256, 256, 30.0, 30)
    assert facts["has_audio"] and "synthetic=true" in read_metadata(output)["comment"]
    assert abs(len(load_audio(output)) - 16000) < 16000 / 30 * 2


def test_only_the_lower_face_changes_and_the_rest_of_every_frame_is_the_videos_own(tiny):
    frames = next(read_video_frames(ADDRESS, batch=12))
    track = tiny.track_face([frames], 25.0)
    features, speaker = tiny.encode_audio(ASSETS / "librivox_0880.wav")
    targets = tiny.dubbed_landmarks(track, np.arange(12), features, speaker, 25.0, motion_scale=4.0)
    dubbed = tiny.dub_frames(frames, track.landmarks, targets, track.boxes, track.reference_face(tiny.image_size),
                             tiny.initial_noise(0), 1)
    change = np.abs(dubbed.astype(int) - frames).max(axis=(0, 3))
    rows, _ = np.nonzero(change > 2)
    assert rows.min() > track.landmarks[:, 36:48, 1].max()  # nothing at or above the eyes changes
    mouth = track.landmarks[:, 48:68].reshape(-1, 2).astype(int)
    (x0, y0), (x1, y1) = mouth.min(0), mouth.max(0)
    jaw = track.landmarks[:, 0:17].reshape(-1, 2)
    beside = np.concatenate([change[:, :int(jaw[:, 0].min()) - 10], change[:, int(jaw[:, 0].max()) + 10:]], axis=1)
    assert change[y0:y1, x0:x1].mean() > 10 > 10 * beside.mean()  # the mouth moves; beside the face, barely a level
    eyes, brows = list(range(36, 48)), list(range(17, 27))
    np.testing.assert_array_equal(targets[:, eyes + brows], track.landmarks[:, eyes + brows])  # the video's own


def test_longer_speech_plays_the_video_forward_then_backward(tiny, media, tmp_path):
    short = media["folder"] / "address_30fps.mp4"  # 36 frames
    output = tmp_path / "long.mp4"
    jobs.run(jobs.dub_video(tiny, media["six_seconds"], short, output, settings=SETTINGS))
    dubbed = np.concatenate(list(read_video_frames(output)))
    original = np.concatenate(list(read_video_frames(short)))
    assert len(dubbed) == 180
    corner = (slice(0, 40), slice(0, 40))  # the background, which dubbing leaves as it is
    for index, source in zip(range(180), ping_pong(36, 180)):
        if index % 17 == 0:
            assert np.abs(dubbed[index][corner].astype(int) - original[source][corner]).mean() < 4


def test_frames_in_order_serves_any_order_a_batch_at_a_time():
    original = np.concatenate(list(read_video_frames(ADDRESS)))
    for order in (np.arange(5, 40, 3), ping_pong(20, 70)):
        served = list(frames_in_order(ADDRESS, order, batch=8))
        assert max(len(indices) for indices, _ in served) == 8
        np.testing.assert_array_equal(np.concatenate([indices for indices, _ in served]), order)
        np.testing.assert_array_equal(np.concatenate([frames for _, frames in served]), original[order])


def test_frames_without_the_face_pass_through_unchanged(tiny, media, tmp_path, caplog):
    output = tmp_path / "late.mp4"
    jobs.run(jobs.dub_video(tiny, media["one_second"], media["folder"] / "late_face.mp4", output, settings=SETTINGS))
    assert "no face in 10 of the 40 frames" in caplog.text
    first = next(read_video_frames(output, batch=10))
    assert np.abs(first.astype(int) - 128).max() < 6  # the grey opening, as it was


def test_with_several_faces_the_chosen_one_is_dubbed(tiny, media):
    frames = next(read_video_frames(media["folder"] / "two_faces.mp4", batch=8))
    largest, other = (tiny.track_face([frames], 25.0, face=index) for index in (0, 1))
    assert largest.face_count == 2
    assert largest.landmarks[:, :, 0].mean() < 256 < other.landmarks[:, :, 0].mean()  # left face larger
    with pytest.raises(FaceError, match="2 face\\(s\\) .* so face 2 does not exist"):
        tiny.track_face([frames], 25.0, face=2)


@pytest.mark.parametrize("case, message", [
    ("no_face", "no face found in any frame of no_face.mp4"),
    ("corrupt", "broken.mp4 could not be read"),
    ("still", "is a still image: dub a video, or animate a photo"),
])
def test_a_video_that_cannot_be_dubbed_gets_one_line_and_no_file(tiny, media, tmp_path, case, message):
    video = {"no_face": media["folder"] / "no_face.mp4", "corrupt": media["corrupt"],
             "still": ASSETS / "astronaut.jpg"}[case]
    with pytest.raises(TalkingHeadError, match=message):
        jobs.run(jobs.dub_video(tiny, media["one_second"], video, tmp_path / "out.mp4", settings=SETTINGS))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("arguments, message", [
    (["--image", str(ASSETS / "astronaut.jpg"), "--pipeline", "landmark"], "either --image .* or --video"),
    ([], "--video is for the landmark pipeline"),
    (["--pipeline", "landmark", "--pose-from", str(ADDRESS)], "--pose-from is for animating a portrait"),
])
def test_the_command_line_refuses_what_dubbing_cannot_take(media, tmp_path, capsys, arguments, message):
    command = ["generate", "--audio", str(media["one_second"]), "--video", str(ADDRESS), "-o", str(tmp_path / "o.mp4")]
    assert main(command + arguments) == 2
    assert re.search(message, capsys.readouterr().err)
