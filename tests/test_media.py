"""Behaviour of talking_head.media: decoding audio, per-frame audio features, writing and reading videos."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from talking_head.errors import AudioError, TalkingHeadError, VideoError
from talking_head.media import features
from talking_head.media.audio import (
    MIN_SPEECH_SECONDS,
    SAMPLE_RATE,
    load_audio,
    num_video_frames,
    prepare_waveform,
    sound_seconds,
)
from talking_head.media.features import AudioFeatureExtractor
from talking_head.media.video import VideoWriter, probe_video, read_metadata, read_video_frames
from audio_files import write_wav
from tiny_models import save_tiny_wav2vec2

SHARED_MEDIA = Path(__file__).resolve().parents[2] / "shared/media"
EXAMPLES = Path(__file__).resolve().parents[1] / "assets"


def shared_file(relative_path: str) -> Path:
    path = SHARED_MEDIA / relative_path
    if not path.is_file():
        pytest.skip(f"real media {path} is absent (the ../shared/media folder is not checked out here)")
    return path


def run_ffmpeg(*args) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True)


def tone(seconds: float, frequency: float = 440.0, amplitude: float = 0.5, sample_rate: int = SAMPLE_RATE):
    times = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * frequency * times)).astype(np.float32)


def dominant_frequency(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(waveform))
    return float(np.fft.rfftfreq(waveform.size, 1 / sample_rate)[spectrum.argmax()])


# ----- audio decoding


def test_stereo_44k_flac_is_downmixed_and_resampled_to_16k_mono(tmp_path):
    flac_path = tmp_path / "stereo.flac"
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1", "-ac", "2", flac_path)

    waveform = load_audio(flac_path)

    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert abs(waveform.size - SAMPLE_RATE) <= 16
    assert dominant_frequency(waveform) == pytest.approx(440, abs=2)
    assert np.abs(waveform).max() == pytest.approx(0.125, rel=0.1)  # lavfi's sine peaks at 1/8 on both channels


def test_m4a_aac_audio_is_decoded_to_16k(tmp_path):
    m4a_path = tmp_path / "speech.m4a"
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000:duration=1.5", "-c:a", "aac", m4a_path)

    waveform = load_audio(m4a_path)

    assert abs(waveform.size - 1.5 * SAMPLE_RATE) <= 0.02 * SAMPLE_RATE
    assert dominant_frequency(waveform) == pytest.approx(300, abs=2)


def test_audio_track_of_an_mp4_is_decoded(tmp_path):
    video_path = tmp_path / "clip.mp4"
    run_ffmpeg(
        "-f", "lavfi", "-i", "color=c=blue:s=64x64:r=25:d=2",
        "-f", "lavfi", "-i", "sine=frequency=500:sample_rate=22050:duration=2",
        "-c:v", "libx264", "-c:a", "aac", "-shortest", video_path,
    )

    waveform = load_audio(video_path)

    assert abs(waveform.size - 2 * SAMPLE_RATE) <= 0.05 * SAMPLE_RATE
    assert dominant_frequency(waveform) == pytest.approx(500, abs=2)


def test_real_speech_flac_loads_as_16k_mono_within_full_scale():
    waveform = load_audio(shared_file("audio/whisper_jfk.flac"))

    assert waveform.size == pytest.approx(11.0 * SAMPLE_RATE, abs=SAMPLE_RATE * 0.01)
    assert np.abs(waveform).max() <= 1.0


def test_real_talking_head_video_soundtrack_loads():
    waveform = load_audio(shared_file("video/edtalk_mouth_source_av.mp4"))

    assert waveform.size / SAMPLE_RATE == pytest.approx(10.0, abs=0.1)


def test_missing_audio_file_is_reported(tmp_path):
    with pytest.raises(AudioError, match="not found.*nothing.wav"):
        load_audio(tmp_path / "nothing.wav")


def test_empty_audio_file_is_reported(tmp_path):
    (tmp_path / "empty.wav").touch()
    with pytest.raises(AudioError, match="empty.*empty.wav"):
        load_audio(tmp_path / "empty.wav")


def test_zero_length_audio_is_reported(tmp_path):
    path = write_wav(tmp_path / "zero.wav", np.zeros(0))
    with pytest.raises(AudioError, match="zero length.*zero.wav"):
        load_audio(path)


def test_digital_silence_is_reported_as_silent(tmp_path):
    path = write_wav(tmp_path / "quiet.wav", np.zeros(SAMPLE_RATE))
    with pytest.raises(AudioError, match="quiet.wav is silent"):
        load_audio(path)


@pytest.mark.parametrize("sound_seconds", [0.001, 0.062, 0.12, 0.4])
@pytest.mark.parametrize("silence_after", [0.0, 2.0])
def test_less_sound_than_the_minimum_is_refused_by_both_loaders_with_one_line(tmp_path, sound_seconds, silence_after):
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, round(sound_seconds * SAMPLE_RATE))
    waveform = np.concatenate([noise, np.zeros(round(silence_after * SAMPLE_RATE))])
    path = write_wav(tmp_path / "blip.wav", waveform)
    message = rf"blip.wav holds only 0\.\d\d s of sound .*give at least {MIN_SPEECH_SECONDS} s"
    with pytest.raises(AudioError, match=message):
        load_audio(path)
    with pytest.raises(AudioError, match=rf"the audio input holds only .*give at least {MIN_SPEECH_SECONDS} s"):
        prepare_waveform(waveform, SAMPLE_RATE, what="the audio input")


def test_the_minimum_of_sound_is_enough_wherever_it_lies_in_the_file(tmp_path):
    sound = np.random.default_rng(0).uniform(-0.5, 0.5, round((MIN_SPEECH_SECONDS + 0.05) * SAMPLE_RATE))
    waveform = np.concatenate([np.zeros(SAMPLE_RATE), sound, np.zeros(SAMPLE_RATE)])
    assert load_audio(write_wav(tmp_path / "short.wav", waveform)).size == waveform.size
    assert sound_seconds(waveform, SAMPLE_RATE) == pytest.approx(MIN_SPEECH_SECONDS + 0.05, abs=0.03)


def test_silence_is_returned_when_allowed(tmp_path):
    path = write_wav(tmp_path / "quiet.wav", np.zeros(SAMPLE_RATE))
    assert np.all(load_audio(path, allow_silence=True) == 0)


def test_corrupt_bytes_are_reported_as_undecodable(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="broken.wav could not be decoded: it is corrupt"):
        load_audio(path)


def test_text_file_is_not_an_audio_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are words, not sounds\n")
    with pytest.raises(AudioError, match="notes.txt.*not an audio file ffmpeg can read"):
        load_audio(path)


def test_png_is_reported_as_an_image_not_audio(tmp_path):
    path = tmp_path / "face.png"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=red:s=16x16", "-frames:v", "1", path)
    with pytest.raises(AudioError, match=r"face.png is an image \(png\), not an audio file ffmpeg can read"):
        load_audio(path)


def test_video_without_sound_is_reported_as_having_no_audio_stream(tmp_path):
    path = tmp_path / "mute.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=red:s=32x32:d=0.5", "-c:v", "libx264", path)
    with pytest.raises(AudioError, match=r"mute.mp4 has no audio stream \(ffmpeg found only: video \(h264\)\)"):
        load_audio(path)


def test_video_frame_count_rounds_audio_duration_and_is_never_zero():
    assert num_video_frames(SAMPLE_RATE * 2, SAMPLE_RATE, 25) == 50
    assert num_video_frames(int(SAMPLE_RATE * 1.01), SAMPLE_RATE, 30) == 30
    assert num_video_frames(10, SAMPLE_RATE, 25) == 1


# ----- audio features


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_logmel_gives_one_fixed_size_vector_per_video_frame(fps):
    waveform = load_audio(shared_file("audio/whisper_jfk.flac"))
    extractor = AudioFeatureExtractor("logmel", fps=fps)

    frames = extractor(waveform)

    assert frames.dtype == torch.float32
    assert frames.shape == (num_video_frames(waveform.size, SAMPLE_RATE, fps), 320)
    assert extractor.feature_dim == 320
    assert torch.isfinite(frames).all()


def test_logmel_frames_line_up_with_the_video_timeline():
    waveform = np.zeros(3 * SAMPLE_RATE, dtype=np.float32)
    noise = np.random.default_rng(0).uniform(-0.3, 0.3, SAMPLE_RATE // 2)
    waveform[SAMPLE_RATE : SAMPLE_RATE * 3 // 2] = noise  # sound from 1.0 s to 1.5 s = frames 25..37

    frame_energy = AudioFeatureExtractor("logmel", fps=25)(waveform).mean(dim=1)

    loud_frames = torch.nonzero(frame_energy > 0).flatten().tolist()
    assert loud_frames[0] in (24, 25) and loud_frames[-1] in (37, 38)
    assert len(loud_frames) >= 12


def test_logmel_ignores_loudness():
    waveform = tone(1.0, 440) + 0.05 * np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
    extractor = AudioFeatureExtractor("logmel")

    assert torch.allclose(extractor(waveform), extractor(0.1 * waveform), atol=1e-3)


def test_logmel_accepts_other_sample_rates():
    waveform = tone(2.0, 440, sample_rate=44100)
    assert AudioFeatureExtractor("logmel")(waveform, sample_rate=44100).shape == (50, 320)


def test_feature_config_round_trips_through_json(tmp_path):
    extractor = AudioFeatureExtractor("wav2vec2", fps=30, model_name=str(tmp_path / "model"), layers="all")

    rebuilt = AudioFeatureExtractor.from_config(json.loads(json.dumps(extractor.to_config())))

    assert rebuilt.to_config() == {"kind": "wav2vec2", "fps": 30.0, "model_name": str(tmp_path / "model"),
                                   "layers": "all"}


def test_wav2vec2_features_come_at_the_video_frame_rate(tmp_path):
    model_folder = save_tiny_wav2vec2(tmp_path / "tiny_wav2vec2")
    extractor = AudioFeatureExtractor("wav2vec2", fps=25, model_name=str(model_folder))

    frames = extractor(tone(2.3, 200))

    assert extractor.feature_dim == 32
    assert frames.shape == (num_video_frames(round(2.3 * SAMPLE_RATE), SAMPLE_RATE, 25), 32)
    assert torch.isfinite(frames).all()


def test_long_audio_is_fed_to_the_speech_model_in_windows_that_stitch_seamlessly(tmp_path, monkeypatch):
    from transformers import Wav2Vec2Model

    # Layer norms and no attention layers make every output frame depend on nearby audio only,
    # so stitched windows must match one pass over the whole recording.
    model_folder = save_tiny_wav2vec2(tmp_path / "local_wav2vec2", num_hidden_layers=0, feat_extract_norm="layer")
    waveform = np.random.default_rng(1).uniform(-0.5, 0.5, 45 * SAMPLE_RATE).astype(np.float32)
    input_lengths = []
    original_forward = Wav2Vec2Model.forward

    def recording_forward(self, input_values, *args, **kwargs):
        input_lengths.append(input_values.shape[-1])
        return original_forward(self, input_values, *args, **kwargs)

    monkeypatch.setattr(Wav2Vec2Model, "forward", recording_forward)
    windowed = AudioFeatureExtractor("wav2vec2", model_name=str(model_folder))(waveform)
    assert len(input_lengths) == 3 and max(input_lengths) <= 20 * SAMPLE_RATE

    monkeypatch.setattr(features, "_WINDOW_SECONDS", 1000.0)
    single_pass = AudioFeatureExtractor("wav2vec2", model_name=str(model_folder))(waveform)

    assert windowed.shape == single_pass.shape == (45 * 25, 32)
    assert torch.allclose(windowed, single_pass, atol=1e-4)


def test_unavailable_speech_model_suggests_logmel(tmp_path):
    extractor = AudioFeatureExtractor("hubert", model_name=str(tmp_path / "no_such_model"))

    with pytest.raises(TalkingHeadError, match=r"Could not load the hubert audio model.*kind=\"logmel\""):
        extractor(tone(1.0))


# ----- writing and reading video


def solid_frames(count: int, height: int = 64, width: int = 48) -> np.ndarray:
    frames = np.zeros((count, height, width, 3), dtype=np.uint8)
    frames[..., 0] = 200  # red
    frames[..., 2] = np.linspace(0, 250, count, dtype=np.uint8)[:, None, None]
    return frames


def test_mp4_duration_matches_audio_within_one_frame(tmp_path):
    fps = 25.0
    waveform = tone(2.37, 220)
    num_frames = num_video_frames(waveform.size, SAMPLE_RATE, fps)
    output_path = tmp_path / "talk.mp4"

    with VideoWriter(output_path, fps=fps, waveform=waveform) as writer:
        for start in range(0, num_frames, 10):
            writer.write(solid_frames(min(10, num_frames - start)))

    info = probe_video(output_path)
    audio_seconds = waveform.size / SAMPLE_RATE
    assert info["has_audio"] and info["fps"] == fps and info["num_frames"] == num_frames
    assert (info["width"], info["height"]) == (48, 64)
    assert abs(info["duration"] - audio_seconds) <= 1 / fps
    assert abs(load_audio(output_path).size / SAMPLE_RATE - num_frames / fps) <= 1 / fps


def test_audio_file_longer_than_the_frames_is_cut_to_the_video_length(tmp_path):
    audio_path = write_wav(tmp_path / "voice.wav", tone(3.0, 330))
    output_path = tmp_path / "short.mp4"

    with VideoWriter(output_path, fps=30, audio_path=audio_path) as writer:
        writer.write(solid_frames(30))

    info = probe_video(output_path)
    assert info["fps"] == 30 and info["num_frames"] == 30
    assert info["duration"] == pytest.approx(1.0, abs=1 / 30)
    assert load_audio(output_path).size / SAMPLE_RATE == pytest.approx(1.0, abs=1 / 30)


def test_written_video_is_tagged_as_synthetic_with_the_model_name(tmp_path):
    output_path = tmp_path / "tagged.mp4"

    with VideoWriter(output_path, waveform=tone(0.4), metadata={"model": "someone/dae-talker"}) as writer:
        writer.write(solid_frames(10))

    tags = read_metadata(output_path)
    assert "synthetic=true" in tags["comment"] and "model=someone/dae-talker" in tags["comment"]
    assert "synthetic" in tags["description"].lower() and "someone/dae-talker" in tags["description"]


def test_exception_inside_the_writer_leaves_no_output_and_no_temp_files(tmp_path):
    output_folder = tmp_path / "out"
    output_folder.mkdir()

    with pytest.raises(KeyError):
        with VideoWriter(output_folder / "talk.mp4", waveform=tone(1.0)) as writer:
            writer.write(solid_frames(20))
            raise KeyError("generation failed half way")

    assert list(output_folder.iterdir()) == []


def test_closing_without_frames_fails_and_leaves_nothing(tmp_path):
    writer = VideoWriter(tmp_path / "nothing.mp4")

    with pytest.raises(VideoError, match="No frames were written"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


def test_odd_frame_sizes_are_padded_to_even(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4") as writer:
        writer.write(solid_frames(5, height=33, width=47))

    info = probe_video(tmp_path / "odd.mp4")
    assert (info["width"], info["height"]) == (48, 34) and not info["has_audio"]


def test_frames_read_back_in_batches_with_their_colours(tmp_path):
    written = solid_frames(40)
    with VideoWriter(tmp_path / "colours.mp4") as writer:
        writer.write(written)

    batches = list(read_video_frames(tmp_path / "colours.mp4", batch=16))

    assert [batch.shape for batch in batches] == [(16, 64, 48, 3), (16, 64, 48, 3), (8, 64, 48, 3)]
    read = np.concatenate(batches).astype(int)
    assert np.abs(read.mean(axis=(1, 2)) - written.mean(axis=(1, 2))).max() < 6


def test_frames_can_be_resized_and_resampled_while_reading(tmp_path):
    with VideoWriter(tmp_path / "clip.mp4", fps=25) as writer:
        writer.write(solid_frames(50))

    batches = list(read_video_frames(tmp_path / "clip.mp4", size=(24, 32), fps=10))

    frames = np.concatenate(batches)
    assert frames.shape == (20, 32, 24, 3) and frames.dtype == np.uint8


def test_real_video_is_probed():
    info = probe_video(shared_file("video/edtalk_mouth_source_av.mp4"))

    assert info["fps"] == 25 and (info["width"], info["height"]) == (256, 256) and info["has_audio"]
    assert info["num_frames"] / info["fps"] == pytest.approx(info["duration"], abs=0.1)


def test_missing_video_is_reported(tmp_path):
    with pytest.raises(VideoError, match="not found.*gone.mp4"):
        probe_video(tmp_path / "gone.mp4")
    with pytest.raises(VideoError, match="not found.*gone.mp4"):
        read_video_frames(tmp_path / "gone.mp4")


def test_corrupt_video_is_reported(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(2).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="broken.mp4 could not be read"):
        probe_video(path)


def test_audio_file_is_not_a_video(tmp_path):
    path = write_wav(tmp_path / "voice.wav", tone(0.5))
    with pytest.raises(VideoError, match="voice.wav has no video stream"):
        read_metadata(path)


def test_a_trained_model_records_its_front_end_by_public_name_and_its_pipeline_carries_the_speech_model(tmp_path):
    from transformers import Wav2Vec2Model

    from talking_head.training.front_end import front_end_config, speech_model_component

    assert speech_model_component(AudioFeatureExtractor("logmel")) is None
    front_end = AudioFeatureExtractor("wav2vec2", model_name=str(save_tiny_wav2vec2(tmp_path / "wav2vec2")),
                                      layers="mean")
    model = speech_model_component(front_end)
    assert isinstance(model, Wav2Vec2Model) and not model.training
    assert front_end_config(front_end) == {"feature_dim": 32, "feature_kind": "wav2vec2",
                                           "feature_model_name": "wav2vec2", "feature_layers": "mean", "fps": 25.0}
    with pytest.raises(ValueError, match="wav2vec2 features need a Wav2Vec2Model"):
        AudioFeatureExtractor("wav2vec2", model=torch.nn.Linear(2, 2))


def test_the_speech_model_moves_with_the_extractor_and_with_its_pipeline(tmp_path):
    from tiny_models import tiny_dae_pipeline

    extractor = AudioFeatureExtractor("wav2vec2", fps=25, model_name=str(save_tiny_wav2vec2(tmp_path / "model")))
    extractor(tone(0.5, 220), SAMPLE_RATE)  # loads the network
    extractor.to("meta")
    assert extractor.device.type == "meta" and next(extractor.speech_model.parameters()).device.type == "meta"
    pipeline = tiny_dae_pipeline()
    assert pipeline.feature_extractor.device == pipeline.device
    pipeline.to("meta")
    assert pipeline.feature_extractor.device.type == "meta" and pipeline.unet.device.type == "meta"


def test_pixels_convert_to_the_models_range_and_back_from_read_only_arrays_without_a_warning():
    import warnings

    from talking_head.media.images import to_model_range, to_uint8

    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    frames.flags.writeable = False  # as np.asarray of a PIL image is under Pillow 13
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images = to_model_range(frames)
    assert images.shape == (2, 3, 8, 8) and images.min() >= -1 and images.max() <= 1
    np.testing.assert_array_equal(to_uint8(images), frames)


def test_stereo_audio_in_memory_is_heard_exactly_as_its_file_is():
    # ComfyUI hands over audio at the file's own rate and channels; the command line reads the file itself. Both must
    # give the models the same samples (they once mixed stereo differently, and the videos differed by up to 25 dB).
    from talking_head.media._ffmpeg import run_ffmpeg

    decoded = run_ffmpeg(["-i", str(EXAMPLES / "jfk.flac"), "-f", "f32le", "-"]).stdout  # 44.1 kHz stereo
    stereo = np.frombuffer(decoded, "<f4").reshape(-1, 2).T
    assert np.abs(stereo[0] - stereo[1]).max() > 0.05  # the channels differ
    np.testing.assert_array_equal(prepare_waveform(stereo[None], 44100), load_audio(EXAMPLES / "jfk.flac"))
