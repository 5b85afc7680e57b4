"""The command line as a user runs it, and the promise that importing the package is cheap."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from audio_files import write_wav
from talking_head.cli import main
from talking_head.media.audio import load_audio
from talking_head.media.video import probe_video
from tiny_models import tiny_dae_pipeline, tiny_landmark_pipeline

EXAMPLE_SPEECH = Path(__file__).resolve().parents[1] / "assets" / "jfk.flac"
PORTRAIT = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    tiny_dae_pipeline().save_pretrained(folder)
    return folder


def test_importing_the_package_loads_no_model_code():
    code = "import sys, talking_head; print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_generate_writes_the_video_and_prints_its_path(tiny_model, tmp_path, capsys):
    output = tmp_path / "talk.mp4"
    status = main(["generate", "--audio", str(EXAMPLE_SPEECH), "--model", str(tiny_model), "--steps", "2",
                   "--sampler", "dpm++", "--size", "48", "-o", str(output)])
    assert status == 0
    assert str(output) in capsys.readouterr().out
    info = probe_video(output)
    assert info["has_audio"] and abs(info["duration"] - 11.0) < 0.1
    assert (info["width"], info["height"]) == (48, 48)


def test_bad_input_ends_with_one_error_line_and_status_2(tiny_model, tmp_path, capsys):
    status = main(["generate", "--audio", str(tmp_path / "missing.wav"), "--model", str(tiny_model),
                   "-o", str(tmp_path / "out.mp4")])
    error_lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert status == 2
    assert len(error_lines) == 1 and "missing.wav" in error_lines[0]
    assert not (tmp_path / "out.mp4").exists()


def test_a_model_folder_that_does_not_fit_is_named(tmp_path, capsys):
    assert main(["generate", "--audio", str(EXAMPLE_SPEECH), "--model", str(tmp_path), "-o", str(tmp_path / "o.mp4")]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path) in error and "Traceback" not in error


@pytest.fixture(scope="module")
def tiny_landmark_model(tmp_path_factory) -> Path:
    pytest.importorskip("dlib", reason="dlib is not installed (pip install 'talking-head-diffusion[face]')")
    folder = tmp_path_factory.mktemp("landmark_model")
    tiny_landmark_pipeline().save_pretrained(folder)
    return folder


def test_generate_with_the_landmark_pipeline_animates_the_portrait(tiny_landmark_model, tmp_path, capsys):
    speech = write_wav(tmp_path / "speech.wav", load_audio(EXAMPLE_SPEECH)[:16000])
    output, preview = tmp_path / "talk.mp4", tmp_path / "landmarks.mp4"
    status = main(["generate", "--pipeline", "landmark", "--audio", str(speech), "--image", str(PORTRAIT),
                   "--model", str(tiny_landmark_model), "--steps", "1", "--preview", str(preview), "-o", str(output)])
    assert status == 0 and capsys.readouterr().out.strip().endswith("talk.mp4")
    info = probe_video(output)
    assert (info["width"], info["height"], info["num_frames"], info["has_audio"]) == (512, 512, 25, True)
    assert probe_video(preview)["num_frames"] == 25


@pytest.mark.parametrize("extra, message", [
    ([], "needs a portrait to animate (--image PHOTO) or a video to dub (--video VIDEO)"),
    (["--image", "missing.jpg"], "portrait not found"),
    (["--image", str(PORTRAIT), "--face", "3"], "face 3 does not exist; choose a face index from 0 (the largest) to 0"),
    (["--image", str(PORTRAIT.parent)], "is a folder, not a file"),
    (["--image", str(PORTRAIT), "--size", "128"], "keeps the portrait's or video's size"),
    (["--image", str(PORTRAIT), "--motion-scale", "5"], "motion scale must be a number from 0 to 4, not 5.0"),
])
def test_landmark_pipeline_input_problems_end_with_one_error_line(tiny_landmark_model, tmp_path, capsys, extra, message):
    output = tmp_path / "talk.mp4"
    status = main(["generate", "--pipeline", "landmark", "--audio", str(EXAMPLE_SPEECH), "--model",
                   str(tiny_landmark_model), "--steps", "1", "-o", str(output), *extra])
    error = capsys.readouterr().err
    assert status == 2 and message in error and "Traceback" not in error
    assert not output.exists()


@pytest.mark.parametrize("extra", [["--image", str(PORTRAIT)], ["--motion-scale", "2"], ["--lower-face", "drawn"]])
def test_dae_talker_refuses_the_landmark_pipelines_options(tiny_model, tmp_path, capsys, extra):
    assert main(["generate", "--audio", str(EXAMPLE_SPEECH), "--model", str(tiny_model), "-o", str(tmp_path / "o.mp4"),
                 *extra]) == 2
    assert "--pipeline landmark" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_the_module_runs_as_a_program():
    result = subprocess.run([sys.executable, "-m", "talking_head", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "generate" in result.stdout


def test_pose_from_a_reference_video_drives_the_head(tiny_model, tmp_path):
    import imageio_ffmpeg

    from talking_head.faces.tracking import pose_from_video

    source = Path(__file__).resolve().parents[2] / "shared" / "media" / "video" / "edtalk_uncrop_Obama.mp4"
    if not source.exists():
        pytest.skip(f"real footage {source} is absent (the ../shared/media folder is not checked out here)")
    reference = tmp_path / "reference.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(source), "-t", "1", str(reference)], check=True)
    pose = pose_from_video(reference)
    assert pose.shape == (25, 6) and abs(pose[:, 0]).max() < 30  # a frontal speaker: yaw within 30 degrees
    output = tmp_path / "talk.mp4"
    assert main(["generate", "--audio", str(EXAMPLE_SPEECH), "--model", str(tiny_model), "--steps", "1",
                 "--pose-from", str(reference), "-o", str(output)]) == 0
    assert probe_video(output)["has_audio"]


@pytest.mark.parametrize("option, value, message", [
    ("--steps", "0", "0 is out of range: use 1 to 1000"),
    ("--steps", "-5", "-5 is out of range: use 1 to 1000"),
    ("--steps", "100000", "100000 is out of range: use 1 to 1000"),
    ("--batch-size", "0", "0 is out of range: use 1 to 1024"),
    ("--size", "7", "7 is out of range: use 32 to 4096"),
    ("--lower-face", "painted", "--lower-face: invalid choice: 'painted' (choose from 'warped', 'drawn')"),
])
def test_settings_out_of_range_are_usage_errors_before_any_model_loads(tmp_path, capsys, option, value, message):
    with pytest.raises(SystemExit) as stopped:
        main(["generate", "--audio", str(EXAMPLE_SPEECH), "--model", str(tmp_path / "no-model"), option, value,
              "-o", str(tmp_path / "out.mp4")])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name, message", [("folder", "is a folder"), ("out.avi", "name it .mp4")])
def test_an_output_that_cannot_be_the_mp4_is_refused_before_any_work(tmp_path, capsys, name, message):
    (tmp_path / "folder").mkdir()
    with pytest.raises(SystemExit) as stopped:
        main(["generate", "--audio", str(EXAMPLE_SPEECH), "-o", str(tmp_path / name)])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder"]


def test_a_missing_portrait_is_named_before_any_model_loads(tmp_path, capsys):
    status = main(["generate", "--pipeline", "landmark", "--audio", str(EXAMPLE_SPEECH), "--model",
                   str(tmp_path / "no-model"), "--image", str(tmp_path / "me.jpg"), "-o", str(tmp_path / "out.mp4")])
    assert status == 2 and "portrait not found" in capsys.readouterr().err


def test_a_generate_stopped_with_sigterm_leaves_nothing_behind_and_says_so(tiny_model, tmp_path):
    """The run is stopped once its partial video exists (the event itself, not a clock)."""
    import signal

    speech = tmp_path / "speech.wav"
    write_wav(speech, np.tile(load_audio(EXAMPLE_SPEECH), 6))  # about a minute
    output = tmp_path / "out" / "talk.mp4"
    output.parent.mkdir()
    run = subprocess.Popen([sys.executable, "-m", "talking_head", "generate", "--audio", str(speech), "--model",
                            str(tiny_model), "--steps", "50", "--batch-size", "1", "-o", str(output)],
                           stderr=subprocess.PIPE, text=True)
    while not list(output.parent.glob(".talk.mp4.partial-*")) and run.poll() is None:
        time.sleep(0.05)
    assert run.poll() is None, run.stderr.read()
    run.send_signal(signal.SIGTERM)
    assert run.wait() == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in run.stderr.read()
    assert not list(output.parent.iterdir())


def test_the_video_carries_the_speech_as_it_was_given_not_the_models_16_khz_mono(tiny_model, tmp_path):
    """assets/jfk.flac is 44.1 kHz stereo; the models hear 16 kHz mono, the video keeps the original."""
    import imageio_ffmpeg

    output = tmp_path / "talk.mp4"
    assert main(["generate", "--audio", str(EXAMPLE_SPEECH), "--model", str(tiny_model), "--steps", "1",
                 "-o", str(output)]) == 0
    probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(output)],
                           capture_output=True, text=True).stderr
    audio_line = next(line for line in probe.splitlines() if "Audio:" in line)
    assert "44100 Hz" in audio_line and "stereo" in audio_line
    assert abs(probe_video(output)["duration"] - 11.0) < 0.1


@pytest.mark.parametrize("chosen, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_idle_openmp_threads_sleep_unless_the_user_chose_otherwise(monkeypatch, tmp_path, chosen, expected):
    if chosen is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", chosen)
    main(["generate", "--audio", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "talk.mp4")])
    assert os.environ["OMP_WAIT_POLICY"] == expected
