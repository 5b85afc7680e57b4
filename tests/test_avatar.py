"""`train avatar`: footage that cannot make an avatar is refused in seconds, and a run makes a pipeline folder with its
held-back figures, stopping at a checkpoint and resuming from it (tiny models, real footage)."""

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from talking_head.cli import main
from talking_head.errors import TalkingHeadError, VideoError
from talking_head.media.audio import load_audio, num_video_frames
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from talking_head.training import avatar
from talking_head.training.avatar import AvatarRecipe, check_footage, train_avatar
from tiny_models import tiny_dae_pipeline

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
GRID_FOOTAGE = Path(__file__).resolve().parents[1] / "assets" / "grid_s1_footage.mp4"  # CC BY 4.0, shipped
ANCHOR = SHARED_MEDIA / "long" / "dfrf_cnn2_25fps.mp4"  # 71 s of one news anchor, one shot
FACES = [SHARED_MEDIA / "multi" / "pcavs_00015.mp4", SHARED_MEDIA / "multi" / "pcavs_681100216.mp4"]


def ffmpeg(*args) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Path:
    """Footage an avatar cannot be made from, 60 s each with the anchor's speech (20 s for `short`)."""
    for path in (ANCHOR, *FACES):
        if not path.exists():
            pytest.skip(f"real footage {path} is absent (the ../shared/media folder is not checked out here)")
    folder = tmp_path_factory.mktemp("footage")
    faces = ["-stream_loop", "5", "-i", FACES[0], "-stream_loop", "5", "-i", FACES[1], "-i", ANCHOR]
    encode = ["-map", "[v]", "-map", "2:a", "-t", "60", "-c:v", "libx264", "-c:a", "aac"]
    ffmpeg(*faces, "-filter_complex", "[0:v]scale=224:224,fps=25[a];[1:v]scale=224:224,fps=25[b];[a][b]hstack[v]",
           *encode, folder / "two_people.mp4")
    ffmpeg(*faces, "-filter_complex", "[0:v]scale=224:224,fps=25[a];[1:v]scale=224:224,fps=25[b];"
           "[a][b]blend=all_expr='if(lt(mod(T,6),3),A,B)'[v]", *encode, folder / "cut_every_3_seconds.mp4")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-i", ANCHOR, "-map", "0:v", "-map", "1:a", "-t", "60",
           "-c:v", "libx264", "-c:a", "aac", folder / "no_face.mp4")
    ffmpeg("-i", ANCHOR, "-t", "20", "-c:v", "libx264", "-c:a", "aac", folder / "short.mp4")
    ffmpeg("-i", ANCHOR, "-t", "12", "-an", "-c:v", "libx264", folder / "silent.mp4")
    ffmpeg("-i", ANCHOR, "-frames:v", "1", folder / "still.png")
    return folder


@pytest.mark.parametrize("name, message", [
    ("no_face.mp4", r"a face was found in only 0 of 60 seconds sampled"),
    ("two_people.mp4", r"seconds sampled show two or more people; an avatar is one person"),
    ("short.mp4", r"the footage holds 20 s of speech; an avatar needs at least 40 s"),
    ("cut_every_3_seconds.mp4", r"cut \d+ times in 60 s \(a shot every 3\.\d s on average\)"),
])
def test_footage_that_cannot_make_an_avatar_is_refused_saying_what_is_needed(footage, tmp_path, name, message):
    with pytest.raises(TalkingHeadError, match=message):
        train_avatar([footage / name], tmp_path / "avatar", minutes=1)
    assert not (tmp_path / "avatar").exists() and not (tmp_path / "avatar.work").exists()


@pytest.mark.parametrize("name, message", [("silent.mp4", "has no sound"), ("still.png", "is a still image")])
def test_a_file_that_is_not_footage_with_sound_is_refused(footage, name, message):
    with pytest.raises(VideoError, match=message):
        check_footage([footage / name])


def test_one_continuous_shot_of_one_speaker_passes_the_check():
    if not ANCHOR.exists():
        pytest.skip(f"real footage {ANCHOR} is absent")
    report = check_footage([ANCHOR])
    assert report.with_face == report.sampled >= 70 and report.with_several_faces == 0 and report.cuts == 0
    assert report.speech_seconds > 60


def test_the_command_line_refuses_bad_footage_with_one_line(footage, tmp_path, capsys):
    assert main(["train", "avatar", "--video", str(footage / "two_people.mp4"), "--out", str(tmp_path / "me")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: 59 of 59 seconds sampled show two or more people")
    assert main(["train", "avatar", "--data", str(tmp_path), "--out", str(tmp_path / "me")]) == 2
    assert main(["train", "dae", "--video", str(footage / "short.mp4"), "--out", str(tmp_path / "me")]) == 2


@pytest.fixture
def tiny_base(tmp_path) -> Path:
    """A tiny DAE-Talker (64x64 frames in a tiny autoencoder's latent) saved as the avatar's starting point."""
    tiny_dae_pipeline(latent_space=True).save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def test_an_avatar_stopped_in_the_middle_resumes_and_gives_a_model_with_its_held_back_figures(tmp_path, tiny_base,
                                                                                           monkeypatch):
    ffmpeg("-i", GRID_FOOTAGE, "-t", "12", "-c:v", "libx264", "-c:a", "aac", tmp_path / "me.mp4")
    monkeypatch.setattr(avatar, "MIN_SPEECH_SECONDS", 5.0)
    recipe = AvatarRecipe(resolution=64, speech2latent_preset="tiny", checkpoint_minutes=10.0)
    stages, latents_when_training_starts = [], []

    def stop_half_way_through_the_dae(progress):
        stages.append(progress.stage)
        if progress.stage == "dae" and not latents_when_training_starts:
            latents_when_training_starts.append(list((tmp_path / "me.work" / "footage").rglob("latents-frames-*.npy")))
        if progress.stage == "dae" and progress.fraction > 0.5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_avatar([tmp_path / "me.mp4"], tmp_path / "me", minutes=0.6, recipe=recipe, base_model=tiny_base,
                     progress=stop_half_way_through_the_dae)
    work = tmp_path / "me.work"
    stopped_at = json.loads((work / "dae" / "checkpoint" / "state.json").read_text())["step"]
    assert stopped_at > 0 and not (tmp_path / "me").exists()
    # the footage was encoded into the latent while preparing, so that time came off the budget before it was split
    assert latents_when_training_starts[0]
    with pytest.raises(TalkingHeadError, match="already holds an avatar run; pass --resume"):
        train_avatar([tmp_path / "me.mp4"], tmp_path / "me", minutes=0.6, recipe=recipe, base_model=tiny_base)

    seen = []
    train_avatar([tmp_path / "me.mp4"], tmp_path / "me", minutes=0.6, recipe=recipe, base_model=tiny_base,
                 resume=True, progress=lambda progress: seen.append(progress))

    assert [stage for stage in dict.fromkeys(report.stage for report in seen)] == ["dae", "speech2latent", "evaluate",
                                                                                   "done"]
    assert "check" in stages and "prepare" in stages  # done before the stop, not again
    logged_steps = [json.loads(line)["step"] for line in (work / "dae" / "log.jsonl").read_text().splitlines()]
    assert max(logged_steps) > stopped_at
    assert all(later <= earlier for earlier, later in zip([r.seconds_left for r in seen if r.seconds_left is not None],
                                                          [r.seconds_left for r in seen if r.seconds_left is not None][1:]))
    model = DAETalkerPipeline.from_pretrained(tmp_path / "me")
    figures = model.training_record["evaluation"]["mean"]
    assert {"psnr", "mouth_correlation", "semantic_mouth_readout_correlation"} <= set(figures)
    card = (tmp_path / "me" / "README.md").read_text()
    assert "DAE-Talker avatar: me" in card and "`me.mp4`" in card and "talking-head evaluate --data" in card
    speech = load_audio(tmp_path / "me.mp4")
    frames = model(speech, num_inference_steps=1).frames
    assert frames.shape == (num_video_frames(len(speech), 16000, 25.0), 64, 64, 3)  # 12 s at 25 fps
