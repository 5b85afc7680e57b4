"""The bundled DAE-Talker: it loads offline, says how it was trained, draws a face and moves its mouth with speech."""

from pathlib import Path

import numpy as np
import pytest

from talking_head.cli import DEFAULT_DAE_MODEL
from talking_head.evaluation.holdout import mouth_openings
from talking_head.faces.landmarks import get_landmarker
from talking_head.media.audio import load_audio
from talking_head.pipelines.dae_talker import DAETalkerPipeline

from bundled_folders import assert_carries_whisper_within_the_size_limits

STEPS = 20
EXAMPLE_SPEECH = Path(__file__).resolve().parents[1] / "assets" / "jfk.flac"


@pytest.fixture(scope="module")
def bundled():
    return DAETalkerPipeline.from_pretrained(DEFAULT_DAE_MODEL)


def test_the_bundled_model_is_trained_and_its_card_reports_measured_quality(bundled):
    record = bundled.training_record
    assert {"dae", "speech2latent", "evaluation"} <= set(record)
    assert record["evaluation"]["mean"]["psnr"] > 15
    card = (DEFAULT_DAE_MODEL / "README.md").read_text()
    assert "Measured quality" in card and "GRID audio-visual sentence corpus (Cooke et al., 2006)" in card
    assert "CC BY 4.0" in card and "Licence of the weights of `vae`" in card  # the attribution, and TAEF2's notice


def test_the_bundled_model_hears_whisper_from_its_own_folder_and_fits_the_hubs_limits(bundled):
    assert_carries_whisper_within_the_size_limits(DEFAULT_DAE_MODEL, bundled)


def test_the_bundled_model_draws_a_face_whose_mouth_follows_the_speech(bundled):
    speech = load_audio(EXAMPLE_SPEECH)[: 16000 * 4]  # "And so my fellow Americans", then a pause
    features = bundled.encode_audio(speech)
    latents = bundled.speech_to_latents(features)
    frames = np.concatenate(list(bundled.decode_latents(latents, bundled.initial_noise(0), STEPS, "dpm++", batch_size=25)))
    openings = mouth_openings(frames, get_landmarker("dlib"))
    assert np.isfinite(openings).mean() > 0.9  # a face is found in the frames
    # the mouth opens and closes: its opening varies over the clip and follows the loudness of the speech
    loudness = np.array([np.sqrt(np.mean(speech[i * 640:(i + 1) * 640] ** 2)) for i in range(len(frames))])
    found = np.isfinite(openings)
    assert np.nanstd(openings) > 0.01
    assert np.corrcoef(openings[found], loudness[found])[0, 1] > 0.2
