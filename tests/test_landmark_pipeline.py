"""The landmark-guided pipeline with tiny untrained models: portraits, landmarks, rendering, A2L, L2V, paste-back,
the video it writes, saving and loading, and its errors."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from audio_files import write_wav
from talking_head import jobs
from talking_head.pipelines.settings import SamplingSettings
from talking_head.errors import AudioError, FaceError, ModelError, TalkingHeadError
from talking_head.faces.align import (compose_affine, fit_similarity, from_unit_coordinates, invert_affine,
                                      apply_affine, to_unit_coordinates)
from talking_head.faces.landmarks import FACE_PARTS, LEFT_EYE, OUTER_LIPS, RIGHT_EYE
from talking_head.evaluation.metrics import psnr
from talking_head.faces.paste import lower_face_skin, match_skin_colour, paste_into_crops, paste_masks
from talking_head.faces.render import _PART_STYLE, lower_face_mask, render_landmarks
from talking_head.media.audio import load_audio
from talking_head.media.video import probe_video, read_metadata, read_video_frames
from talking_head.faces.warp import compose_lower_face, mouth_masks
from talking_head.media.images import to_model_range, to_uint8
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline, masked_images
from tiny_models import save_tiny_wav2vec2, tiny_dae_pipeline, tiny_landmark_pipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "assets"
PORTRAIT = EXAMPLES / "astronaut.jpg"  # NASA portrait of Eileen Collins, public domain
SPEECH = EXAMPLES / "jfk.flac"


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("dlib", reason="dlib is not installed (pip install 'talking-head-diffusion[face]')")
    return tiny_landmark_pipeline()


@pytest.fixture(scope="module")
def face(tiny):
    return tiny.find_face(PORTRAIT)


@pytest.fixture(scope="module")
def two_seconds_of_speech(tmp_path_factory) -> Path:
    return write_wav(tmp_path_factory.mktemp("speech") / "speech.wav", load_audio(SPEECH)[:32000])


def _changed(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def test_the_portrait_face_is_cropped_at_the_model_size_with_its_landmarks_inside(tiny, face):
    assert face.crop.shape == (32, 32, 3) and face.face_count == 1
    points = face.crop_landmarks
    assert ((points > 0) & (points < 32)).all()
    eyes_y = points[list(RIGHT_EYE) + list(LEFT_EYE), 1].mean()
    assert eyes_y < points[list(OUTER_LIPS), 1].mean() < points[8, 1]  # eyes above the mouth above the chin
    assert points[list(RIGHT_EYE), 0].mean() < points[list(LEFT_EYE), 0].mean()  # unmirrored photo
    np.testing.assert_allclose(apply_affine(points, face.crop_to_image), face.landmarks, atol=1e-6)


@pytest.mark.parametrize("size", [64, 512])
def test_the_render_draws_every_part_in_its_own_colour_at_any_size(face, size):
    landmarks = (face.crop_landmarks + 0.5) * size / 32 - 0.5
    image = render_landmarks(landmarks, size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    reach = max(2, size // 48)
    for part, _, colour in _PART_STYLE:
        in_colour = []
        for x, y in np.round(landmarks[list(FACE_PARTS[part])]).astype(int):
            patch = image[max(0, y - reach):y + reach + 1, max(0, x - reach):x + reach + 1].reshape(-1, 3).astype(int)
            assert patch.any(), f"nothing is drawn at point ({x}, {y}) of the {part}"
            in_colour.append((np.abs(patch - colour).max(axis=1) < 60).any())
        # where parts cross (the lips' corners at small sizes) the part drawn last shows
        assert np.mean(in_colour) >= 0.75, f"the {part} is not drawn in its colour"
    assert not image[: size // 10, : size // 10].any()  # nothing is drawn away from the face


def test_the_lower_face_mask_covers_the_mouth_and_chin_but_not_the_eyes(face):
    mask = lower_face_mask(face.crop_landmarks, 32)
    at = lambda index: mask[tuple(np.round(face.crop_landmarks[index, ::-1]).astype(int))]  # noqa: E731
    assert all(at(i) == 1 for i in (8, 48, 54, 57, 62, 66))
    assert all(at(i) == 0 for i in (36, 39, 42, 45))
    soft = lower_face_mask(face.crop_landmarks, 32, feather=0.05)
    assert 0 < soft.min() + 1e-6 and ((soft > 0.01) & (soft < 0.99)).any()


def test_pasting_into_crops_changes_only_the_lower_face_and_the_weighted_psnr_sees_only_it(face):
    landmarks = face.crop_landmarks[None]
    real, drawn = np.full((1, 32, 32, 3), 100, np.uint8), np.full((1, 32, 32, 3), 200, np.uint8)
    pasted = paste_into_crops(real, drawn, landmarks)
    mask = paste_masks(landmarks, 32)[0]
    assert (pasted[0][mask == 0] == 100).all() and (pasted[0][mask == 1] == 200).all()
    unit = torch.from_numpy(pasted).permute(0, 3, 1, 2).float() / 255
    outside = torch.from_numpy(mask == 0).float()[None, None]
    reference = torch.full_like(unit, 100 / 255)
    assert psnr(unit, reference, outside) == pytest.approx(100.0)  # only the unchanged pixels count
    assert psnr(unit, reference, 1 - outside) < psnr(unit, reference) < 100


def test_a_drawn_face_in_another_skin_tone_is_recoloured_to_the_portraits(face):
    reference, points = face.crop, face.crop_landmarks
    tinted = np.clip(reference * np.array([0.6, 0.8, 1.1]) + np.array([10, 30, 40]), 0, 255).astype(np.uint8)
    matched = match_skin_colour(tinted[None], points[None], reference, points)[0]
    skin = lower_face_skin(points, len(reference))
    assert skin.sum() > 20 and not skin[tuple(np.round(points[62, ::-1]).astype(int))]  # the inner lips are left out
    error = lambda image: np.abs(image[skin].astype(float) - reference[skin]).mean()  # noqa: E731
    assert error(matched) < error(tinted) / 3
    away = paste_masks(points[None], len(reference))[0] == 0  # what is not pasted keeps the drawn colours
    assert (matched[away] == tinted[away]).all()
    blank = np.zeros_like(points) - 100  # a face outside the crop has no skin to measure: left as it is
    assert (match_skin_colour(tinted[None], blank[None], reference, points) == tinted).all()


def test_transforms_round_trip():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (68, 2))
    angle = 0.3
    known = np.array([[1.2 * np.cos(angle), -1.2 * np.sin(angle), 7.0], [1.2 * np.sin(angle), 1.2 * np.cos(angle), -4.0]])
    np.testing.assert_allclose(fit_similarity(points, apply_affine(points, known)), known, atol=1e-9)
    np.testing.assert_allclose(compose_affine(invert_affine(known), known), np.eye(2, 3), atol=1e-12)
    np.testing.assert_allclose(from_unit_coordinates(to_unit_coordinates(points, 96), 96), points, atol=1e-12)
    assert to_unit_coordinates(np.array([-0.5, 95.5]), 96).tolist() == [-1.0, 1.0]  # the image's edges
    transforms = np.stack([np.eye(2, 3), known])
    moved = LandmarkDiffusionPipeline.move_head(np.stack([points, points]), transforms)
    np.testing.assert_allclose(moved[0], points)
    np.testing.assert_allclose(moved[1], apply_affine(points, known), atol=1e-9)


def test_a2l_gives_one_landmark_frame_per_video_frame_near_the_portrait_face(tiny, face, two_seconds_of_speech):
    features, speaker = tiny.encode_audio(two_seconds_of_speech)
    assert speaker.shape == (256,) and abs(float(speaker.norm()) - 1) < 1e-4
    landmarks = tiny.audio_to_landmarks(features, speaker, face.crop_landmarks)
    assert landmarks.shape == (50, 68, 2)  # 2 s at 25 fps
    assert np.abs(landmarks - face.crop_landmarks).max() < 2  # a ~1% motion of an untrained model


def test_the_motion_scale_and_the_models_motion_gain_scale_a2ls_motion(tiny, face, two_seconds_of_speech):
    features, speaker = tiny.encode_audio(two_seconds_of_speech)
    motion = tiny.audio_to_landmarks(features, speaker, face.crop_landmarks) - face.crop_landmarks
    assert np.abs(motion).max() > 1e-3
    doubled = tiny.audio_to_landmarks(features, speaker, face.crop_landmarks, motion_scale=2.0) - face.crop_landmarks
    np.testing.assert_allclose(doubled, 2 * motion, atol=1e-4)
    still = tiny.audio_to_landmarks(features, speaker, face.crop_landmarks, motion_scale=0.0)
    np.testing.assert_allclose(still, np.broadcast_to(face.crop_landmarks, still.shape), atol=1e-4)
    tiny.a2l.register_to_config(motion_gain=3.0)
    try:
        tripled = tiny.audio_to_landmarks(features, speaker, face.crop_landmarks) - face.crop_landmarks
    finally:
        tiny.a2l.register_to_config(motion_gain=1.0)
    np.testing.assert_allclose(tripled, 3 * motion, atol=1e-4)
    for wrong in (-0.5, 4.5, float("nan")):
        with pytest.raises(TalkingHeadError, match="motion scale must be a number from 0 to 4"):
            tiny.audio_to_landmarks(features, speaker, face.crop_landmarks, motion_scale=wrong)


def test_l2v_conditioning_reaches_the_unet(tiny, face):
    still = tiny.still_head(1)
    landmarks = face.crop_landmarks[None].copy()
    open_mouth = landmarks.copy()
    open_mouth[0, 56:59, 1] += 3  # the lower lip drops
    open_mouth[0, 65:68, 1] += 3
    identity = to_model_range(face.crop[None])
    noise = tiny.initial_noise(0)

    def frames(points, pose=None, identity_image=identity):
        pose = tiny.pose_references(face, points, still) if pose is None else pose
        return tiny.denoise_frames(points, pose, identity_image, noise, num_inference_steps=2)

    reference = frames(landmarks)
    assert reference.shape == (1, 3, 32, 32)
    torch.testing.assert_close(frames(landmarks), reference)  # deterministic
    assert _changed(frames(open_mouth, pose=tiny.pose_references(face, landmarks, still)), reference) > 1e-3
    assert _changed(frames(landmarks, identity_image=-identity), reference) > 1e-3
    assert _changed(frames(landmarks, pose=torch.zeros(1, 3, 32, 32)), reference) > 1e-3
    # the coordinates alone, through cross-attention: the same drawing with other tokens
    conditions = torch.randn(1, 9, 8, 8)
    tokens = tiny.landmark_encoder(torch.from_numpy(to_unit_coordinates(landmarks, 32)).float())
    other_tokens = tiny.landmark_encoder(torch.from_numpy(to_unit_coordinates(open_mouth, 32)).float())
    with torch.no_grad():
        first = tiny.unet(torch.cat([noise, conditions], 1), 500, encoder_hidden_states=tokens).sample
        second = tiny.unet(torch.cat([noise, conditions], 1), 500, encoder_hidden_states=other_tokens).sample
    assert _changed(first, second) > 1e-4


def test_the_warped_lower_face_is_the_portraits_own_but_inside_the_mouth(tiny, face):
    landmarks = np.stack([face.crop_landmarks, face.crop_landmarks])
    landmarks[1, [*range(5, 12), *range(48, 68)]] += (0, 1.5)  # the second frame's mouth and chin drop
    pose = tiny.pose_references(face, landmarks, tiny.still_head(2))
    noise = tiny.initial_noise(0)

    def crops(lower_face):
        return tiny.draw_crops(landmarks, pose, face.crop, face.crop_landmarks, noise, 2, "ddim", lower_face)

    drawn, warped = crops("drawn"), crops("warped")
    identity = masked_images(face.crop[None], None)
    l2v = match_skin_colour(to_uint8(tiny.denoise_frames(landmarks, pose, identity, noise, 2, "ddim")), landmarks,
                            face.crop, face.crop_landmarks)
    np.testing.assert_array_equal(drawn, l2v)  # "drawn": L2V's crops, recoloured, as in the paper
    np.testing.assert_array_equal(warped, compose_lower_face(face.crop, face.crop_landmarks, landmarks, l2v,
                                                             np.eye(2, 3)))
    outside = mouth_masks(landmarks, 32) == 0
    assert outside.mean() > 0.7
    assert np.abs(warped[0].astype(int) - face.crop)[outside[0]].mean() < 1  # landmarks where they were: the portrait
    moved = np.abs(warped[1].astype(int) - face.crop)[outside[1]].mean()
    assert moved < np.abs(warped[1].astype(int) - l2v[1])[outside[1]].mean()  # the portrait's own face, moved
    with pytest.raises(TalkingHeadError, match="lower face must be one of warped, drawn, not 'painted'"):
        crops("painted")


def test_the_video_keeps_the_portrait_size_background_and_the_speech(tiny, two_seconds_of_speech, tmp_path):
    output = tmp_path / "talk.mp4"
    jobs.run(jobs.landmark_video(tiny, two_seconds_of_speech, PORTRAIT, output, settings=SamplingSettings(2),
                                 landmark_preview_path=tmp_path / "landmarks.mp4"))
    info = probe_video(output)
    assert (info["width"], info["height"], info["fps"], info["num_frames"]) == (512, 512, 25.0, 50)
    assert info["has_audio"] and abs(info["duration"] - 2.0) < 0.1
    tags = read_metadata(output)
    assert "synthetic=true" in tags["comment"] and "trained=false" in tags["comment"]
    frame = next(read_video_frames(output))[0].astype(int)
    portrait = np.asarray(Image.open(PORTRAIT).convert("RGB")).astype(int)
    face = tiny.find_face(PORTRAIT)
    cx, cy, side = face.box
    outside = np.ones((512, 512), bool)
    outside[int(cy - side / 2):int(cy + side / 2), int(cx - side / 2):int(cx + side / 2)] = False
    assert np.abs(frame - portrait)[outside].mean() < 3  # only the face region is redrawn (codec noise aside)
    preview = probe_video(tmp_path / "landmarks.mp4")
    assert preview["num_frames"] == 50 and preview["width"] == 256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landmarks.mp4", "talk.mp4"]


def test_head_motion_from_a_reference_video_moves_the_face(tiny, shared_media):
    video = shared_media("video/styletalk_Obama_clip1_av.mp4")
    transforms = tiny.head_motion_from_video(video, 30)
    assert transforms.shape == (30, 2, 3)
    np.testing.assert_allclose(transforms[0], np.eye(2, 3), atol=1e-9)
    assert np.abs(transforms - np.eye(2, 3)).max() > 1e-3


def _grey(path):
    Image.new("RGB", (400, 400), (128, 128, 128)).save(path)


def _tiny_portrait(path):
    Image.open(PORTRAIT).resize((12, 12)).save(path)


def _corrupt(path):
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")


@pytest.mark.parametrize("make, name, message", [
    (_grey, "grey.png", "no face found"),
    (_tiny_portrait, "tiny.png", "needs at least"),
    (_corrupt, "broken.jpg", "could not be read as an image"),
    (None, "missing.jpg", "portrait not found"),
    (lambda path: path.mkdir(), "folder.jpg", "is a folder, not an image file"),
])
def test_a_portrait_problem_gets_one_clear_error_and_leaves_no_output(tiny, two_seconds_of_speech, tmp_path, make,
                                                                       name, message):
    portrait = tmp_path / name
    if make is not None:
        make(portrait)
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    with pytest.raises(FaceError, match=message):
        jobs.run(jobs.landmark_video(tiny, two_seconds_of_speech, portrait, output_dir / "talk.mp4",
                                     settings=SamplingSettings(1)))
    assert list(output_dir.iterdir()) == []


def test_silent_audio_gets_an_audio_error_and_leaves_no_output(tiny, tmp_path):
    silence = write_wav(tmp_path / "silence.wav", np.zeros(32000))
    with pytest.raises(AudioError, match="silent"):
        jobs.run(jobs.landmark_video(tiny, silence, PORTRAIT, tmp_path / "talk.mp4", settings=SamplingSettings(1)))
    assert not (tmp_path / "talk.mp4").exists()


def test_greyscale_and_transparent_portraits_are_used_as_rgb(tiny, face):
    portrait = Image.open(PORTRAIT)
    grey = tiny.find_face(portrait.convert("L"))
    assert grey.crop.shape == (32, 32, 3) and (grey.crop[..., 0] == grey.crop[..., 2]).all()
    rgba = portrait.convert("RGBA")
    rgba.putalpha(200)
    assert tiny.find_face(rgba).crop.shape == (32, 32, 3)
    np.testing.assert_allclose(grey.landmarks, face.landmarks, atol=4)


def test_with_two_faces_the_largest_is_used_and_face_chooses_another(tiny, tmp_path, caplog):
    portrait = Image.open(PORTRAIT).convert("RGB")
    group = Image.new("RGB", (1160, 640), (200, 200, 200))
    group.paste(portrait.resize((640, 640)), (0, 0))
    group.paste(portrait, (648, 64))
    with caplog.at_level(logging.WARNING):
        largest = tiny.find_face(group)
    assert largest.face_count == 2 and largest.face_index == 0 and largest.box[0] < 640
    assert "2 faces found" in caplog.text
    other = tiny.find_face(group, face=1)
    assert other.box[0] > 640 and other.box[2] < largest.box[2]
    with pytest.raises(FaceError, match="2 face"):
        tiny.find_face(group, face=2)


def test_the_pipeline_round_trips_through_save_pretrained(tiny, face, tmp_path):
    tiny.save_pretrained(tmp_path)
    assert (tmp_path / "README.md").exists()
    loaded = LandmarkDiffusionPipeline.from_pretrained(tmp_path)
    assert loaded.config.crop_scale == tiny.config.crop_scale and loaded.image_size == 32
    for name in ("vae", "unet", "landmark_encoder", "a2l"):
        original, reloaded = getattr(tiny, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == reloaded.keys()
        assert all(torch.equal(original[key], reloaded[key]) for key in original), name
    assert not loaded.is_trained


def test_a_folder_of_another_pipeline_is_refused_by_name(tmp_path):
    tiny_dae_pipeline().save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="DAETalkerPipeline"):
        LandmarkDiffusionPipeline.from_pretrained(tmp_path)


def test_an_l2v_only_pipeline_says_a2l_is_missing(tiny, tmp_path, two_seconds_of_speech):
    l2v_only = LandmarkDiffusionPipeline(vae=tiny.vae, unet=tiny.unet, landmark_encoder=tiny.landmark_encoder,
                                         scheduler=tiny.scheduler)
    with pytest.raises(ModelError, match="train a2l"):
        jobs.run(jobs.landmark_video(l2v_only, two_seconds_of_speech, PORTRAIT, tmp_path / "talk.mp4"))
    assert not (tmp_path / "talk.mp4").exists()


def test_a_wav2vec2_a2l_brings_its_speech_model_in_the_folder(tiny, tmp_path, two_seconds_of_speech):
    from talking_head.hub_models.a2l import AudioToLandmarks
    from talking_head.hub_models.presets import A2L_PRESETS
    from talking_head.media.features import load_speech_model

    a2l = AudioToLandmarks(**A2L_PRESETS["tiny"], feature_dim=32, feature_kind="wav2vec2",
                           feature_model_name=str(tmp_path / "wav2vec2"))
    speech_model = load_speech_model("wav2vec2", save_tiny_wav2vec2(tmp_path / "wav2vec2"))
    pipeline = LandmarkDiffusionPipeline(vae=tiny.vae, unet=tiny.unet, landmark_encoder=tiny.landmark_encoder,
                                         scheduler=tiny.scheduler, a2l=a2l.eval(), speech_model=speech_model)
    features, _ = pipeline.encode_audio(two_seconds_of_speech)
    pipeline.save_pretrained(tmp_path / "saved")
    (tmp_path / "wav2vec2" / "model.safetensors").unlink()  # only the pipeline folder's own copy is left

    loaded = LandmarkDiffusionPipeline.from_pretrained(tmp_path / "saved")
    torch.testing.assert_close(loaded.encode_audio(two_seconds_of_speech)[0], features)
    with pytest.raises(ModelError, match="its A2L hears logmel features, which need none"):
        LandmarkDiffusionPipeline(vae=tiny.vae, unet=tiny.unet, landmark_encoder=tiny.landmark_encoder,
                                  scheduler=tiny.scheduler, a2l=tiny.a2l, speech_model=speech_model)


def test_mismatched_components_are_refused(tiny):
    from talking_head.hub_models.landmark_encoder import LandmarkEncoder

    with pytest.raises(ModelError, match="cross-attends"):
        LandmarkDiffusionPipeline(vae=tiny.vae, unet=tiny.unet, scheduler=tiny.scheduler,
                                  landmark_encoder=LandmarkEncoder(hidden_dim=8, output_dim=24, num_layers=1, num_heads=2))


def test_an_f4_vq_autoencoder_can_stand_in_for_the_kl_one(tiny, face, tmp_path):
    """Like the VQ model of CompVis/ldm-celebahq-256: three latent channels, downsampling by four."""
    from diffusers import VQModel

    vq = VQModel(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), layers_per_block=1,
                 latent_channels=3, num_vq_embeddings=64, norm_num_groups=4, sample_size=32)
    pipeline = LandmarkDiffusionPipeline(vae=vq, unet=tiny.unet, landmark_encoder=tiny.landmark_encoder,
                                         scheduler=tiny.scheduler, a2l=tiny.a2l).eval_mode()
    pipeline.save_pretrained(tmp_path)
    loaded = LandmarkDiffusionPipeline.from_pretrained(tmp_path)
    assert isinstance(loaded.vae, VQModel)
    landmarks = face.crop_landmarks[None]
    identity = to_model_range(face.crop[None])
    frames = loaded.denoise_frames(landmarks, loaded.pose_references(face, landmarks, loaded.still_head(1)), identity,
                                   loaded.initial_noise(0), num_inference_steps=2)
    assert frames.shape == (1, 3, 32, 32) and torch.isfinite(frames).all()


def test_a_16_bit_greyscale_portrait_is_found_as_its_8_bit_version(tiny, tmp_path):
    grey = np.asarray(Image.open(PORTRAIT).convert("L"), np.uint16)
    Image.fromarray(grey * 257).save(tmp_path / "grey16.png")  # 16-bit PNG: mode I;16 (or I) when read back
    assert Image.open(tmp_path / "grey16.png").mode in ("I;16", "I")
    deep = tiny.find_face(tmp_path / "grey16.png")
    shallow = tiny.find_face(Image.fromarray(grey.astype(np.uint8), "L"))
    np.testing.assert_array_equal(deep.crop, shallow.crop)


def test_calling_the_pipeline_returns_full_size_frames_and_landmarks_and_writes_no_file(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    speech = load_audio(SPEECH)[:16000]
    output = tiny(speech, PORTRAIT, num_inference_steps=1)
    portrait_width, portrait_height = Image.open(PORTRAIT).size
    assert output.frames.shape == (25, portrait_height, portrait_width, 3)
    assert output.landmarks.shape == (25, 68, 2) and output.head_motion.shape == (25, 2, 3)
    assert list(tmp_path.iterdir()) == []
    pictures = tiny(speech, PORTRAIT, num_inference_steps=1, output_type="pil").frames
    assert len(pictures) == 25 and pictures[0].size == (portrait_width, portrait_height)
    np.testing.assert_array_equal(np.asarray(pictures[3]), output.frames[3])  # the same noise, the same frames
