"""The Gradio demo served on loopback and driven with gradio_client, with tiny saved models: both pipelines end to
end to mp4s with audio, readable errors for bad input, the visitor limits, cancel, and the page in headless Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the demo needs gradio (the dev extra installs it)")
from gradio_client import Client, handle_file  # noqa: E402

from talking_head.bundled import PRETRAINED  # noqa: E402
from talking_head.gradio_app import runner  # noqa: E402
from talking_head.gradio_app.ui import HEAD_MOTION_EXAMPLES, build_app  # noqa: E402
from talking_head.media.audio import load_audio  # noqa: E402
from talking_head.media.video import probe_video  # noqa: E402
from audio_files import write_wav  # noqa: E402
from tiny_models import tiny_dae_pipeline, tiny_landmark_pipeline  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "assets"
MAX_AUDIO_SECONDS = 3.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Tiny saved models and the visitor's files: 2 s of speech, 4 s of speech (over the limit), silence, a picture
    without a face."""
    folder = tmp_path_factory.mktemp("app")
    tiny_dae_pipeline().save_pretrained(folder / "tiny-dae")
    tiny_landmark_pipeline().save_pretrained(folder / "tiny-landmark")
    speech = load_audio(ASSETS / "jfk.flac")
    Image.fromarray(np.tile(np.linspace(0, 255, 256).astype(np.uint8)[None, :, None], (256, 1, 3))).save(folder / "wall.png")
    return {
        "dae": str(folder / "tiny-dae"), "landmark": str(folder / "tiny-landmark"),
        "speech": str(write_wav(folder / "speech.wav", speech[:32000])),
        "long": str(write_wav(folder / "long.wav", speech[:64000])),
        "silence": str(write_wav(folder / "silence.wav", np.zeros(16000))),
        "wall": str(folder / "wall.png"),
    }


@pytest.fixture(scope="module")
def server():
    limits = runner.Limits(max_audio_seconds=MAX_AUDIO_SECONDS, max_upload_mb=5, queue_size=4)
    app = build_app(limits).queue(default_concurrency_limit=1, max_size=limits.queue_size)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, show_error=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@pytest.fixture(scope="module")
def client(server) -> Client:
    # No HTTP timeout: the server shares this process with the runs it serves, and on a busy machine it may answer
    # a request (the cancel's, say) after httpx's default 5 s; the test waits for the answer itself.
    return Client(server, verbose=False, httpx_kwargs={"timeout": httpx.Timeout(None)})


def landmark_request(files, portrait=None, audio=None, steps=2, model=None):
    portrait = handle_file(portrait or str(ASSETS / "astronaut.jpg"))
    audio = handle_file(audio or files["speech"])
    return dict(portrait=portrait, audio=audio, pose_video=None, steps=steps, seed=0, longest_side=512,
                model=model or files["landmark"], sampler="ddim", face_index=0, batch_size=16, motion_scale=1.0,
                lower_face="warped")


def test_the_landmark_tab_turns_a_portrait_and_speech_into_a_video_with_its_landmarks(client, files):
    video, preview, status = client.predict(*landmark_request(files).values(), api_name="/landmark")
    facts = probe_video(video)
    assert (facts["width"], facts["height"], facts["num_frames"]) == (512, 512, 50) and facts["has_audio"]
    assert probe_video(preview)["num_frames"] == 50
    assert "2.0 s of speech → 50 frames, 512x512" in status
    assert "no training record" in status  # the tiny model says it is untrained


def test_the_dae_talker_tab_turns_speech_into_a_video(client, files):
    video, status = client.predict(files["dae"], handle_file(files["speech"]), None, 2, 0, 32, "dpm++", 16,
                                   api_name="/dae_talker")
    facts = probe_video(video)
    assert (facts["width"], facts["num_frames"], facts["fps"]) == (32, 50, 25) and facts["has_audio"]
    assert "no training record" in status


def test_the_dub_tab_makes_the_video_speak_the_speech_at_its_own_size(client, files):
    video, status = client.predict(handle_file(str(ASSETS / "obama_head_motion.mp4")), handle_file(files["speech"]),
                                   2, 0, files["landmark"], "ddim", 0, 16, 1.0, api_name="/dub")
    facts = probe_video(video)
    assert (facts["width"], facts["height"], facts["num_frames"], facts["fps"]) == (256, 256, 50, 25.0)
    assert facts["has_audio"] and "2.0 s of speech → 50 frames, 256x256" in status


@pytest.mark.parametrize("video, message", [
    (str(ASSETS / "astronaut.jpg"), "That is a still image: upload a video here"),
    (None, "Upload the video to dub first"),
])
def test_the_dub_tab_asks_for_a_video(client, files, video, message):
    with pytest.raises(Exception, match=message):
        client.predict(None if video is None else handle_file(video), handle_file(files["speech"]), 2, 0,
                       files["landmark"], "ddim", 0, 16, 1.0, api_name="/dub")


def test_the_portrait_example_with_a_head_motion_video_runs_with_the_bundled_model(client):
    portrait, speech, head_motion = HEAD_MOTION_EXAMPLES[0]
    video, _, status = client.predict(handle_file(portrait), handle_file(speech), handle_file(head_motion), 10, 0, 256,
                                      "", "ddim", 0, 16, 1.0, api_name="/landmark")  # "": the bundled model
    facts = probe_video(video)
    assert facts["has_audio"] and facts["num_frames"] == 75 and max(facts["width"], facts["height"]) == 256
    assert "Model `landmark-diffusion` (trained" in status


@pytest.mark.parametrize("change, message", [
    ({"portrait": "speech"}, "The portrait (speech.wav) is not an image this demo can read"),
    ({"audio": str(ASSETS / "astronaut.jpg")}, "astronaut.jpg is an image (mjpeg), not an audio file"),
    ({"portrait": "wall"}, "no face found in the portrait"),
    ({"audio": "silence"}, "silence.wav is silent"),
    ({"audio": "long"}, f"The audio is 4.0 s long; this demo takes at most {MAX_AUDIO_SECONDS:g} s"),
    ({"model": "dae"}, "holds a DAETalkerPipeline, not a LandmarkDiffusionPipeline"),
])
def test_bad_input_gets_a_message_that_names_the_problem(client, files, change, message):
    request = landmark_request(files, **{key: files.get(value, value) for key, value in change.items()})
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        client.predict(*request.values(), api_name="/landmark")
    assert str(Path(tempfile.gettempdir()) / "gradio") not in str(raised.value)  # names, not the server's upload paths


def test_a_missing_upload_is_asked_for(client, files):
    with pytest.raises(Exception, match="Upload or record some speech first"):
        client.predict(files["dae"], None, None, 2, 0, 32, "ddim", 16, api_name="/dae_talker")


def test_a_cancelled_run_stops_and_leaves_no_video_and_the_next_run_works(client, files):
    results = Path(runner.output_path()).parent
    before = set(results.glob("*"))
    request = {**landmark_request(files, steps=200), "batch_size": 1}  # 50 batches of 200 steps: many seconds

    def drawing():  # each status line the run has sent so far (the progress bar's own messages can be overtaken)
        return any(str(status).startswith("Drawing frames") for *_, status in job.outputs())

    job = client.submit(*request.values(), api_name="/landmark")
    while not drawing() and not job.done():  # the event itself, however slow the machine
        time.sleep(0.2)
    assert drawing(), "the run never reached the frames"
    job.cancel()
    while not job.done() or set(results.glob("*")) != before:  # the run ends and cleans up after itself
        time.sleep(0.2)
    assert set(results.glob("*")) == before  # neither a video nor a half-written temporary file
    video, _, _ = client.predict(*landmark_request(files).values(), api_name="/landmark")
    assert probe_video(video)["has_audio"]


def test_the_gpu_function_is_marked_for_zerogpu_when_spaces_is_present(monkeypatch):
    marked = []
    fake_spaces = types.SimpleNamespace(GPU=lambda duration: lambda function: marked.append(duration) or function)
    monkeypatch.setitem(sys.modules, "spaces", fake_spaces)
    function = runner._gpu(lambda: "ran")
    assert marked == [180] and function() == "ran"
    monkeypatch.setitem(sys.modules, "spaces", None)  # absent: the function is used as it is
    plain = lambda: "plain"  # noqa: E731
    assert runner._gpu(plain) is plain


def test_the_page_renders_its_main_controls_in_headless_chromium(server, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt install chromium); scripts/check_app_in_browser.py by hand")
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1800",
               "--virtual-time-budget=15000"]
    dom = subprocess.run([*command, "--dump-dom", server], capture_output=True, text=True, timeout=120).stdout
    for label in ("Portrait", "Speech", "Generate", "Stop", "Denoising steps", "Seed", "More settings", "DAE-Talker",
                  "Head motion from a video", "Examples", "Make your avatar", "Dub a video"):
        assert label in dom, f"{label!r} is not on the page"
    subprocess.run([*command, f"--screenshot={tmp_path / 'page.png'}", server], capture_output=True, timeout=120)
    assert Image.open(tmp_path / "page.png").size == (1280, 1800)


def test_in_public_mode_the_model_box_takes_bundled_names_and_hub_repo_ids_only(tmp_path):
    public, local = runner.Limits(public=True), runner.Limits(public=False)
    bundled = runner.model_source("dae-talker-grid-s1", runner.BUNDLED_DAE, public)
    assert Path(bundled) == PRETRAINED / "dae-talker-grid-s1"
    assert runner.model_source("", runner.BUNDLED_LANDMARK, public) == str(PRETRAINED / "landmark-diffusion")
    assert runner.model_source(" org/talker-v2 ", runner.BUNDLED_DAE, public) == "org/talker-v2"
    for server_path in ("/etc", "~/models", "../pretrained/x", "org/../../etc", str(tmp_path), "a/b/c"):
        with pytest.raises(runner.TalkingHeadError, match="does not open folders on its server"):
            runner.model_source(server_path, runner.BUNDLED_DAE, public)
    assert runner.model_source(str(tmp_path), runner.BUNDLED_DAE, local) == str(tmp_path)  # a local demo may


def test_the_api_shows_no_server_path_and_the_head_motion_video_is_optional():
    info = build_app(runner.Limits(public=True)).get_api_info()
    assert str(PRETRAINED) not in str(info) and str(Path.home()) not in str(info)
    for endpoint in ("/landmark", "/dae_talker"):
        parameters = {p["parameter_name"]: p for p in info["named_endpoints"][endpoint]["parameters"]}
        assert parameters["pose_video"]["parameter_has_default"] and parameters["pose_video"]["parameter_default"] is None
        assert not parameters["audio"]["parameter_has_default"]


def test_the_avatar_tab_trains_in_a_thread_that_stop_ends_at_a_checkpoint(monkeypatch, tmp_path):
    from talking_head.training import avatar

    seen = {}

    def fake_train_avatar(videos, output, *, minutes, resume, name, progress):
        seen.update(videos=videos, output=output, minutes=minutes, resume=resume)
        try:
            for step in range(1000):
                progress(avatar.AvatarProgress("dae", step / 1000, 600 - step))
                time.sleep(0.01)
        except runner._StopTraining:
            seen["stopped"] = True  # the trainer writes its checkpoint here
            raise

    monkeypatch.setattr(avatar, "train_avatar", fake_train_avatar)
    steps = runner.run_avatar(videos=["me.mp4"], name="me", minutes=30, folder=tmp_path, report_every=0.0)
    first = [next(steps) for _ in range(3)]
    steps.close()  # what gradio does when the visitor presses Stop

    assert first[0].description == "Training the diffusion autoencoder (10 min left)" and first[0].total == 1000
    assert seen == {"videos": ["me.mp4"], "output": tmp_path / "me", "minutes": 30.0, "resume": True, "stopped": True}


def test_the_avatar_tab_shows_the_reason_a_run_fails_and_refuses_a_bad_name(monkeypatch, tmp_path):
    from talking_head.errors import TalkingHeadError
    from talking_head.training import avatar

    def no_face(*args, **kwargs):
        raise TalkingHeadError("a face was found in only 0 of 60 seconds sampled")

    monkeypatch.setattr(avatar, "train_avatar", no_face)
    with pytest.raises(TalkingHeadError, match="a face was found in only 0"):
        list(runner.run_avatar(videos=["me.mp4"], name="me", minutes=30, folder=tmp_path))
    with pytest.raises(TalkingHeadError, match="plain folder name"):
        list(runner.run_avatar(videos=["me.mp4"], name="../me", minutes=30, folder=tmp_path))


def test_in_public_mode_the_avatar_tab_says_why_it_cannot_train():
    import gradio as gr

    from talking_head.gradio_app.ui import AVATAR_PUBLIC, avatar_handler

    with pytest.raises(gr.Error, match="run the demo on your own computer"):
        next(avatar_handler(runner.Limits(public=True))(["me.mp4"]))
    config = build_app(runner.Limits(public=True)).get_config_file()
    markdown = [c["props"].get("value") for c in config["components"] if c["type"] == "markdown"]
    assert AVATAR_PUBLIC in markdown
    buttons = {c["props"].get("value"): c["props"].get("interactive") for c in config["components"] if c["type"] == "button"}
    assert buttons["Make the avatar"] is False


def test_the_app_command_serves_on_gradios_own_port_variable_when_no_flag_is_given(tmp_path):
    port = _free_port()
    environment = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
                   "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "talking_head", "app"], cwd=tmp_path, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in server.stdout:  # wait for the server to say where it listens (or for it to end)
            lines.append(line)
            if "Running on local URL" in line:
                break
        assert f"http://127.0.0.1:{port}" in "".join(lines), "".join(lines)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=None).status_code == 200
    finally:
        server.terminate()
        server.wait()
