"""The bundled landmark pipeline: it loads offline, says how it was trained, and on a portrait it never saw A2L's
lips follow the speech and rest in silence, and the drawn mouth follows A2L's lips."""

from pathlib import Path

import numpy as np
import pytest

from talking_head.cli import DEFAULT_LANDMARK_MODEL
from talking_head.evaluation.holdout import mouth_openings
from talking_head.evaluation.metrics import pearson
from talking_head.faces.landmarks import get_landmarker, mouth_opening
from talking_head.hub_models.tiny_autoencoder import TinyAutoencoder
from talking_head.media.audio import SAMPLE_RATE, load_audio
from talking_head.media.video import read_video_frames
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

from bundled_folders import assert_carries_whisper_within_the_size_limits

EXAMPLES = Path(__file__).resolve().parents[1] / "assets"
STEPS = 20


@pytest.fixture(scope="module")
def bundled():
    pytest.importorskip("dlib", reason="dlib is not installed (pip install 'talking-head-diffusion[face]')")
    return LandmarkDiffusionPipeline.from_pretrained(DEFAULT_LANDMARK_MODEL)


@pytest.fixture(scope="module")
def speech_then_silence() -> np.ndarray:
    """4 s of JFK ("And so my fellow Americans", a pause), then 2 s of silence."""
    return np.concatenate([load_audio(EXAMPLES / "jfk.flac")[: 4 * SAMPLE_RATE], np.zeros(2 * SAMPLE_RATE, np.float32)])


def test_the_bundled_model_is_trained_and_its_card_reports_measured_quality_and_the_autoencoders_licence(bundled):
    assert {"l2v", "a2l", "evaluation", "previous"} <= set(bundled.training_record)
    mean = bundled.training_record["evaluation"]["mean"]
    assert mean["a2l_mouth_nme"] < 0.2 and mean["speech_psnr"] > 15
    assert isinstance(bundled.vae, TinyAutoencoder) and bundled.image_size == 128
    # A2L's calibrated motion: its least-squares fit moved the lips and chin less than the real ones did.
    assert bundled.a2l.config.motion_gain == bundled.training_record["a2l"]["motion_gain"] > 1
    card = (DEFAULT_LANDMARK_MODEL / "README.md").read_text()
    assert "Measured quality" in card and "Against the previous version" in card
    assert "Copyright (c) 2023 Ollin Boer Bohan" in card and (DEFAULT_LANDMARK_MODEL / "vae" / "LICENSE").is_file()


def test_the_bundled_model_hears_whisper_from_its_own_folder_and_fits_the_hubs_limits(bundled):
    assert_carries_whisper_within_the_size_limits(DEFAULT_LANDMARK_MODEL, bundled)


def test_a2l_moves_the_mouth_for_speech_and_rests_it_in_silence(bundled, speech_then_silence):
    face = bundled.find_face(EXAMPLES / "astronaut.jpg")
    features, speaker = bundled.encode_audio(speech_then_silence)
    opening = mouth_opening(bundled.audio_to_landmarks(features, speaker, face.crop_landmarks))
    speech, silence = opening[:100], opening[110:]
    assert np.std(speech) > 2 * np.std(silence)


def test_from_the_speech_of_a_person_it_never_saw_a2l_follows_their_real_mouth(bundled, shared_media):
    """A held-out woman (`styletalk_feifeili_clip3`, 7 s), her first frame as the portrait: A2L's mouth opening from
    her own speech against the one dlib finds in her video (measured 0.66; the log-mel A2L it replaced: 0.36)."""
    clip = shared_media("video/styletalk_feifeili_clip3_av.mp4")
    frames = np.concatenate(list(read_video_frames(clip, fps=bundled.fps)))
    real = mouth_openings(frames, get_landmarker("dlib"))
    features, speaker = bundled.encode_audio(load_audio(clip))
    made = mouth_opening(bundled.audio_to_landmarks(features, speaker, bundled.find_face(frames[0]).crop_landmarks))
    length = min(len(made), len(real))
    assert np.isfinite(real[:length]).all() and pearson(made[:length], real[:length]) > 0.5


def test_on_a_portrait_it_never_saw_the_lips_follow_the_speech(bundled, speech_then_silence, tmp_path):
    face = bundled.find_face(EXAMPLES / "astronaut.jpg")
    features, speaker = bundled.encode_audio(speech_then_silence)
    landmarks = bundled.audio_to_landmarks(features, speaker, face.crop_landmarks)
    frames = np.concatenate(list(bundled.generate_frames(face, landmarks, bundled.still_head(len(landmarks)),
                                                         bundled.initial_noise(0), STEPS, "dpm++", batch_size=25)))
    cx, cy, side = face.box
    crops = frames[:, int(cy - side / 2):int(cy + side / 2), int(cx - side / 2):int(cx + side / 2)]
    openings = mouth_openings(crops, get_landmarker("dlib"))
    assert np.isfinite(openings).mean() > 0.9  # the face stays a face
    filled = np.where(np.isfinite(openings), openings, np.nanmean(openings))
    assert np.nanstd(openings[:100]) > np.nanstd(openings[110:])  # more motion in speech than in silence
    # the drawn mouth follows A2L's landmarks (measured: 0.28; on real video with real landmarks: 0.79)
    assert pearson(filled, mouth_opening(landmarks)) > 0.15
