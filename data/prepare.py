"""`talking-head prepare`: turn a person's footage into a training dataset (see `dataset.py` for the layout).

For each video: frames at the dataset frame rate, 68 landmarks per frame, one stable face crop (a fixed
box for the whole clip, or a smoothed track), the crops at the training resolution, the speech at
16 kHz with its per-frame features, the head pose per frame, optionally the speaker's voice embedding
(for the landmark pipeline's A2L), and a split by time into train and validation.
Everything is written into a staging folder that replaces the output only when complete.
"""

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from ..errors import TalkingHeadError
from ..faces.align import box_to_affine, apply_affine, crop_and_resize, crop_box_from_landmarks, smooth_track
from ..faces.landmarks import get_landmarker
from ..faces.pose import estimate_head_pose
from ..faces.tracking import track_landmarks
from ..media.audio import SAMPLE_RATE, load_audio, num_video_frames
from ..media.features import AudioFeatureExtractor
from ..media.speaker import speaker_embedding
from ..media.video import probe_video, read_video_frames
from .dataset import DATASET_FILE, DATASET_FORMAT

logger = logging.getLogger(__name__)

def _prepare_clip(video: Path, clip_dir: Path, *, fps, resolution, val_fraction, extractors, landmarker,
                  crop_mode, crop_scale, with_speaker, progress) -> dict:
    """Write one clip's arrays into `clip_dir` and return its index entry."""
    if not video.exists():
        raise TalkingHeadError(f"video not found: {video}")
    info = probe_video(video)
    if not info["has_audio"]:
        raise TalkingHeadError(f"{video} has no audio track; training needs the speech that goes with the frames")
    audio = load_audio(video)
    landmarks, image_size = track_landmarks(video, fps, landmarker, progress)
    num_frames = min(len(landmarks), num_video_frames(len(audio), SAMPLE_RATE, fps))
    landmarks = landmarks[:num_frames]
    boxes = np.array([crop_box_from_landmarks(points, crop_scale) for points in landmarks], np.float32)
    boxes = smooth_track(boxes, mode=crop_mode, fps=fps)

    clip_dir.mkdir(parents=True)
    frames_out = np.lib.format.open_memmap(clip_dir / "frames.npy", mode="w+", dtype=np.uint8,
                                           shape=(num_frames, resolution, resolution, 3))
    crop_landmarks = np.zeros_like(landmarks)
    index = 0
    for batch in read_video_frames(video, fps=fps):
        for frame in batch:
            if index == num_frames:
                break
            frames_out[index] = crop_and_resize(frame, boxes[index], resolution)
            crop_landmarks[index] = apply_affine(landmarks[index], box_to_affine(boxes[index], resolution))
            index += 1
    frames_out.flush()
    del frames_out

    np.save(clip_dir / "audio.npy", audio.astype(np.float32))
    np.save(clip_dir / "landmarks.npy", crop_landmarks)
    np.save(clip_dir / "pose.npy", estimate_head_pose(landmarks, image_size).astype(np.float32))
    for extractor in extractors:
        features = extractor(audio, SAMPLE_RATE).numpy()
        np.save(clip_dir / f"features-{extractor.cache_name}.npy", features[:num_frames].astype(np.float32))
    num_train = int(round(num_frames * (1 - val_fraction)))
    if with_speaker:
        train_audio = audio[: round(num_train / fps * SAMPLE_RATE)] if num_train else audio
        np.save(clip_dir / "speaker.npy", speaker_embedding(train_audio))
    return {"name": clip_dir.name, "source": video.name, "num_frames": num_frames,
            "train_frames": [0, num_train], "val_frames": [num_train, num_frames]}


def prepare_dataset(videos: list[str | Path], output_dir: str | Path, *, fps: float = 25.0, resolution: int = 256,
                    val_fraction: float = 0.2, feature_kinds: tuple[str, ...] = ("logmel",),
                    landmark_backend: str = "dlib", crop_mode: str = "fixed", crop_scale: float = 2.4,
                    speaker_embeddings: bool = False, skip_unusable: bool = False, overwrite: bool = False,
                    progress: bool = True) -> Path:
    """Prepare `videos` (one speaker each) into a dataset folder at `output_dir`; return its path.

    `crop_scale` sizes the face crop (see `crop_box_from_landmarks`); `speaker_embeddings` also stores
    each clip's GE2E voice embedding, computed from its training part, as `speaker.npy`. With `skip_unusable`,
    a video that cannot be used (no face in too many frames, no speech, unreadable) is left out with a warning
    and listed under "skipped" in dataset.json, instead of stopping the whole run.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise TalkingHeadError(f"{output_dir} already exists; pass overwrite=True (--overwrite) to replace it")
    if not videos:
        raise TalkingHeadError("no videos given to prepare")
    staging = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        extractors = [AudioFeatureExtractor(kind=kind, fps=fps) for kind in feature_kinds]
        landmarker = get_landmarker(landmark_backend)
        clips, names, skipped = [], set(), []
        for video in map(Path, videos):
            name = video.stem
            while name in names:
                name += "_"
            names.add(name)
            try:
                clips.append(_prepare_clip(video, staging / "clips" / name, fps=fps, resolution=resolution,
                                           val_fraction=val_fraction, extractors=extractors, landmarker=landmarker,
                                           crop_mode=crop_mode, crop_scale=crop_scale,
                                           with_speaker=speaker_embeddings, progress=progress))
            except TalkingHeadError as error:
                if not skip_unusable:
                    raise
                logger.warning("skipped %s: %s", video.name, error)
                shutil.rmtree(staging / "clips" / name, ignore_errors=True)
                skipped.append({"name": video.name, "reason": str(error)})
        if not clips:
            raise TalkingHeadError(f"none of the {len(skipped)} videos could be used: {skipped[0]['reason']}")
        index = {
            "format": DATASET_FORMAT, "fps": fps, "resolution": resolution, "sample_rate": SAMPLE_RATE,
            "landmark_backend": landmark_backend, "crop_mode": crop_mode, "crop_scale": crop_scale,
            "features": {e.cache_name: {**e.to_config(), "dim": e.feature_dim} for e in extractors},
            "clips": clips,
            **({"skipped": skipped} if skipped else {}),
        }
        (staging / DATASET_FILE).write_text(json.dumps(index, indent=2))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(output_dir, ignore_errors=True)
    staging.rename(output_dir)
    return output_dir
