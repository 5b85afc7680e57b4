"""Generated videos against the real videos for the same audio: the metrics of the papers and offline ones.

Each pair is read side by side, a batch at a time: the real video is resampled to the generated one's frame rate,
and both are compared up to the shorter. Landmarks are found in each video at its own resolution (small frames are
enlarged for the detector). When the two framings differ (a face crop against the full frame), the real video is
aligned to the generated one by the similarity transform that maps its face onto the generated face (nose and eye
corners, over the first second): image metrics compare the generated frames with the real frames warped into that
framing, and the real landmarks are carried into it by the same transform. Figures per video:
- image quality: PSNR of the whole frame and, when landmarks are found, of the face alone (the real landmarks' box),
  SSIM (offline), LPIPS (network weights);
- temporal coherence: Pixel-MSE, the mean squared difference of consecutive frames (pixels in 0..1; the real
  video's as a reference), and tLP (TecoGAN): the mean |LPIPS(g_t, g_t-1) - LPIPS(r_t, r_t-1)|;
- landmarks (dlib, offline): distance of the mouth and of the whole face to the real video's landmarks as a
  fraction of the outer-eye-corner distance, and the correlation of the mouth openings;
- sharpness (offline): how much of the real face's fine detail the generated lower face keeps, as a fraction of what
  the eyes keep (see `sharpness.py`); the real side may be a still photo (the portrait the video was made from);
- speech-to-mouth synchronisation (offline): the lag (frames, positive when the mouth follows the sound late)
  that best aligns the mouth opening with the loudness of the speech, and that correlation; the same for the real
  video as a reference;
- lip sync with SyncNet: LSE-C, LSE-D and SyncNet's offset (network weights);
- a second judge of the mouth, MediaPipe's Face Landmarker (the `mediapipe` extra and its model file): how its mouth
  opening and `jawOpen` in the generated video follow the real video's.
FID is computed once over all frames of all pairs. Metrics whose weights cannot be had are reported unavailable,
with the reason, and the others are still computed.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import MetricWeightsError, TalkingHeadError
from ..faces.align import STABLE_POINTS, apply_affine, crop_box_from_landmarks, crop_and_resize, fit_similarity
from ..faces.landmarks import get_landmarker, landmarks_per_frame, mouth_opening
from ..media.audio import SAMPLE_RATE, load_audio
from ..media.video import probe_video, read_video_frames
from . import ALL_METRICS
from .metrics import best_lag, filled, landmark_errors, loudness_per_frame, psnr, ssim
from .sharpness import frame_details, sharpness_figures

logger = logging.getLogger(__name__)

MAX_SYNC_OFFSET = 15  # frames either way, as SyncNet's evaluation
SYNCNET_FPS = 25.0
LSE_CROP_SIZE = 224
LSE_CROP_SCALE = 1.6  # face crop around the landmarks for SyncNet: the face, not the shoulders
ALIGNMENT_FRAMES = 25  # frames at the start of a pair of differently framed videos that align them
LANDMARK_METRICS = {"landmarks", "sync", "lse", "sharpness"}  # the metrics that find the faces' landmarks


@dataclass
class MetricWeights:
    """Where the network metrics' weights come from: files the user gives, or downloads (None)."""

    lpips: str | None = None
    lpips_backbone: str | None = None
    syncnet: str | None = None
    mediapipe: str | None = None


class _Networks:
    """The metric networks, loaded on first use; a network that cannot be loaded is remembered with its reason."""

    def __init__(self, weights: MetricWeights, device: torch.device):
        self.weights, self.device = weights, device
        self.unavailable: dict[str, str] = {}
        self._loaded: dict = {}

    def get(self, name: str):
        if name in self.unavailable:
            return None
        if name not in self._loaded:
            try:
                self._loaded[name] = self._load(name)
            except MetricWeightsError as error:
                self.unavailable[name] = str(error)
                logger.info("%s is unavailable: %s", name, error)
                return None
        return self._loaded[name]

    def _load(self, name: str):
        if name == "lpips":
            from .lpips import LPIPS

            return LPIPS.load(self.weights.lpips_backbone, self.weights.lpips).to(self.device)
        if name == "fid":
            from .fid import InceptionFeatures

            return InceptionFeatures(self.device)
        if name == "mediapipe":
            from .mediapipe_mouth import MediaPipeMouth

            return MediaPipeMouth(self.weights.mediapipe)
        from .syncnet import load_syncnet

        return load_syncnet(self.weights.syncnet).to(self.device)


def _as_images(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 255


def framing_alignment(generated_path: Path, real_path: Path, fps: float, landmarker) -> np.ndarray:
    """The 2x3 similarity that maps the real video's pixels onto the generated video's framing, fitted on the nose
    and eye corners of the faces in both over their first ALIGNMENT_FRAMES frames."""
    generated = next(read_video_frames(generated_path, batch=ALIGNMENT_FRAMES))
    real = next(read_video_frames(real_path, fps=fps, batch=ALIGNMENT_FRAMES))
    count = min(len(generated), len(real))
    generated_points, real_points = landmarks_per_frame(generated[:count], landmarker), landmarks_per_frame(real[:count], landmarker)
    both = ~(np.isnan(generated_points).any(axis=(1, 2)) | np.isnan(real_points).any(axis=(1, 2)))
    if not both.any():
        raise TalkingHeadError(f"{generated_path.name} and {real_path.name} are framed differently, and no face was "
                               f"found in both of their first {count} frames to align them")
    stable = list(STABLE_POINTS)
    return fit_similarity(real_points[both][:, stable].reshape(-1, 2), generated_points[both][:, stable].reshape(-1, 2))


PIXELS_PER_BATCH = 2_000_000  # frames measured together: 30 frames at 256x256, one at 1920x1080


def _frames_per_batch(generated_facts: dict, real_facts: dict) -> int:
    """How many frames of a pair to measure at once, so that memory stays within bounds at any frame size."""
    largest = max(facts["width"] * facts["height"] for facts in (generated_facts, real_facts))
    return max(1, min(32, PIXELS_PER_BATCH // largest))


class _PairMeasure:
    """Running sums over one pair of videos, fed a batch of aligned frames at a time."""

    def __init__(self, metrics: set[str], networks: _Networks, landmarker, alignment: np.ndarray | None = None):
        self.metrics, self.networks, self.landmarker = metrics, networks, landmarker
        self.alignment = alignment  # real pixels -> generated framing, when the framings differ
        self.count = 0
        self.sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0, "pixel_mse": 0.0, "pixel_mse_real": 0.0, "tlp": 0.0}
        self.previous: tuple[torch.Tensor, torch.Tensor] | None = None
        self.previous_lpips: tuple[torch.Tensor, torch.Tensor] | None = None
        self.landmarks: list[np.ndarray] = []
        self.real_landmarks: list[np.ndarray] = []
        self.face_crops: list[np.ndarray] = []
        self.features: dict[str, list[np.ndarray]] = {"generated": [], "real": []}
        self.judged: list[tuple[np.ndarray, np.ndarray]] = []  # frames for the second mouth judge, by batch
        self.details: list[tuple[dict, dict]] = []  # the regions' detail in generated and real frames, by batch
        self.face_box: np.ndarray | None = None  # the last face crop box, kept through frames without a face

    def add(self, generated: np.ndarray, real: np.ndarray) -> None:
        """Measure a batch of generated frames against the real frames at the same times (at the real size)."""
        device = self.networks.device
        real_landmarks = None
        if self.metrics & LANDMARK_METRICS:
            real_landmarks = landmarks_per_frame(real, self.landmarker)
        if self.alignment is not None:
            real = self._aligned(real, generated.shape[1:3])
            if real_landmarks is not None:
                real_landmarks = apply_affine(real_landmarks, self.alignment).astype(np.float32)
        images, references = _as_images(generated, device), _as_images(real, device)
        count = len(images)
        self.sums["psnr"] += psnr(images, references) * count
        if "psnr" in self.metrics and real_landmarks is not None:
            self._face_errors(images, references, real_landmarks)
        if "ssim" in self.metrics:
            self.sums["ssim"] += ssim(images, references) * count
        if self.previous is not None:  # consecutive pairs across the batch boundary too
            images_chain, references_chain = torch.cat([self.previous[0], images]), torch.cat([self.previous[1], references])
        else:
            images_chain, references_chain = images, references
        self.sums["pixel_mse"] += float((images_chain[1:] - images_chain[:-1]).pow(2).flatten(1).mean(1).sum())
        self.sums["pixel_mse_real"] += float((references_chain[1:] - references_chain[:-1]).pow(2).flatten(1).mean(1).sum())
        self.previous = images[-1:], references[-1:]
        self._perceptual(images, references, images_chain, references_chain)
        if self.metrics & LANDMARK_METRICS:
            self.landmarks.append(landmarks_per_frame(generated, self.landmarker))
            self.real_landmarks.append(real_landmarks)
        if "sharpness" in self.metrics:
            self.details.append((frame_details(generated, self.landmarks[-1]), frame_details(real, real_landmarks)))
        if "lse" in self.metrics and self.networks.get("lse") is not None:
            self.face_crops.append(self._face_crops(generated, self.landmarks[-1]))
        if "mediapipe" in self.metrics and (judge := self.networks.get("mediapipe")) is not None:
            self.judged.append((judge.measure(generated), judge.measure(real)))
        if "fid" in self.metrics and (inception := self.networks.get("fid")) is not None:
            self.features["generated"].append(inception(generated))
            self.features["real"].append(inception(real))
        self.count += count

    def _face_errors(self, images: torch.Tensor, references: torch.Tensor, real_landmarks: np.ndarray) -> None:
        """Add each frame's mean squared error inside the real face (its landmarks' box) to the face PSNR's sums."""
        for image, reference, points in zip(images, references, real_landmarks):
            if np.isnan(points).any():
                continue
            x0, y0 = np.floor(points.min(0)).astype(int).clip(0)
            x1, y1 = np.ceil(points.max(0)).astype(int) + 1
            self.sums["face_squared_error"] = self.sums.get("face_squared_error", 0.0) + float(
                (image[:, y0:y1, x0:x1] - reference[:, y0:y1, x0:x1]).pow(2).mean())
            self.sums["face_frames"] = self.sums.get("face_frames", 0) + 1

    def _aligned(self, frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Real frames warped into the generated framing (height, width)."""
        import cv2

        height, width = size
        return np.stack([cv2.warpAffine(frame, self.alignment, (width, height), flags=cv2.INTER_AREA,
                                        borderMode=cv2.BORDER_REPLICATE) for frame in frames])

    def _perceptual(self, images, references, images_chain, references_chain) -> None:
        if not self.metrics & {"lpips", "tlp"} or (lpips := self.networks.get("lpips")) is None:
            return
        with torch.no_grad():
            self.sums["lpips"] += float(lpips(images, references).sum())
            if len(images_chain) > 1:
                generated_change = lpips(images_chain[1:], images_chain[:-1])
                real_change = lpips(references_chain[1:], references_chain[:-1])
                self.sums["tlp"] += float((generated_change - real_change).abs().sum())

    def _face_crops(self, frames: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        crops = np.zeros((len(frames), LSE_CROP_SIZE, LSE_CROP_SIZE, 3), np.uint8)
        for index, (frame, points) in enumerate(zip(frames, landmarks)):
            if not np.isnan(points).any():
                self.face_box = crop_box_from_landmarks(points, LSE_CROP_SCALE)
            if self.face_box is not None:
                crops[index] = crop_and_resize(frame, self.face_box, LSE_CROP_SIZE)
        return crops

    def figures(self, waveform: np.ndarray, real_waveform: np.ndarray, fps: float) -> dict:
        """Per-video figures; `waveform` is the generated video's sound (or the real one's), `real_waveform` the real's."""
        count = self.count
        figures = {"frames": count}
        if "psnr" in self.metrics:
            figures["psnr"] = self.sums["psnr"] / count
        if self.sums.get("face_frames"):  # the face alone: its landmarks' box in the real frames
            mean_error = self.sums["face_squared_error"] / self.sums["face_frames"]
            figures["face_psnr"] = float(10 * np.log10(1 / max(mean_error, 1e-10)))
        if "ssim" in self.metrics:
            figures["ssim"] = self.sums["ssim"] / count
        if "pixel_mse" in self.metrics and count > 1:
            figures["pixel_mse"] = self.sums["pixel_mse"] / (count - 1)
            figures["pixel_mse_real"] = self.sums["pixel_mse_real"] / (count - 1)
        if self.metrics & {"lpips", "tlp"} and self.networks.get("lpips") is not None:
            if "lpips" in self.metrics:
                figures["lpips"] = self.sums["lpips"] / count
            if "tlp" in self.metrics and count > 1:
                figures["tlp"] = self.sums["tlp"] / (count - 1)
        if self.landmarks:
            figures.update(self._landmark_figures(waveform, real_waveform, fps))
        if self.details:
            figures.update(sharpness_figures(*({name: np.concatenate([pair[side][name] for pair in self.details])
                                                for name in self.details[0][side]} for side in (0, 1))))
        if self.judged:
            from .mediapipe_mouth import mouth_figures

            figures.update(mouth_figures(*({key: np.concatenate([pair[side][key] for pair in self.judged])
                                            for key in self.judged[0][side]} for side in (0, 1))))
        if self.face_crops:
            from .syncnet import sync_scores

            scores = sync_scores(np.concatenate(self.face_crops), waveform, self.networks.get("lse"))
            figures.update({"lse_c": scores["lse_c"], "lse_d": scores["lse_d"], "lse_offset_frames": scores["offset_frames"]})
        return figures

    def _landmark_figures(self, waveform: np.ndarray, real_waveform: np.ndarray, fps: float) -> dict:
        generated, real = np.concatenate(self.landmarks), np.concatenate(self.real_landmarks)
        found = ~np.isnan(generated).any(axis=(1, 2))
        figures = {"face_found": float(found.mean())}
        if "landmarks" in self.metrics:
            errors = landmark_errors(generated, real)
            figures.update({"landmark_distance_face": errors["nme"], "landmark_distance_mouth": errors["mouth_nme"],
                            "mouth_opening_correlation": errors["mouth_opening_correlation"]})
        if "sync" in self.metrics:
            for prefix, landmarks, sound in (("", generated, waveform), ("real_", real, real_waveform)):
                loudness = loudness_per_frame(sound, SAMPLE_RATE, fps, len(landmarks))
                lag, correlation = best_lag(filled(mouth_opening(landmarks)), loudness, MAX_SYNC_OFFSET)
                figures.update({f"{prefix}sync_offset_frames": lag, f"{prefix}sync_correlation": correlation})
        return figures


def _check_pairs(generated: list[Path], real: list[Path], metrics: set[str]) -> dict:
    """Every video's facts by pair, read before any measuring, so that a missing, unreadable or silent-less video is
    reported at once."""
    facts = {}
    for generated_path, real_path in zip(generated, real):
        facts[generated_path, real_path] = probe_video(generated_path), probe_video(real_path)
        if facts[generated_path, real_path][1]["num_frames"] <= 1 and metrics - {"sharpness"}:
            raise TalkingHeadError(f"{real_path.name} is a still image: only the sharpness metric compares a video "
                                   "with a photo; add --metrics sharpness")
        if metrics & {"sync", "lse"} and not facts[generated_path, real_path][1]["has_audio"]:
            raise TalkingHeadError(f"the real video {real_path} has no audio track, which the sync and lse metrics "
                                   "measure against; give the real video with its sound, or leave those metrics out")
    return facts


def evaluate_videos(generated: list[str | Path], real: list[str | Path], metrics=ALL_METRICS,
                    weights: MetricWeights | None = None, landmark_backend: str = "dlib",
                    device: str | torch.device = "cpu") -> dict:
    """Measure each generated video against the real video for the same audio; returns the report
    {"settings", "videos": [per-video figures], "mean": {...}, "unavailable": {metric: reason}}."""
    if len(generated) != len(real) or not generated:
        raise TalkingHeadError(f"give one real video for each generated one ({len(generated)} generated, {len(real)} real)")
    unknown = set(metrics) - set(ALL_METRICS)
    if unknown:
        raise TalkingHeadError(f"unknown metrics {sorted(unknown)}; choose from {', '.join(ALL_METRICS)}")
    metrics, device = set(metrics), torch.device(device)
    facts = _check_pairs(list(map(Path, generated)), list(map(Path, real)), metrics)
    networks = _Networks(weights or MetricWeights(), device)
    landmarker = get_landmarker(landmark_backend) if metrics & LANDMARK_METRICS else None
    videos, all_features = [], {"generated": [], "real": []}
    for (generated_path, real_path), (generated_facts, real_facts) in facts.items():
        fps = generated_facts["fps"]
        alignment = None
        if (real_facts["width"], real_facts["height"]) != (generated_facts["width"], generated_facts["height"]):
            alignment = framing_alignment(generated_path, real_path, fps, landmarker or get_landmarker(landmark_backend))
        measure = _PairMeasure(metrics, networks, landmarker, alignment)
        batch = _frames_per_batch(generated_facts, real_facts)
        if real_facts["num_frames"] > 1:
            real_batches = read_video_frames(real_path, fps=fps, batch=batch)
        else:  # a still photo: the portrait the video was made from, compared with every frame
            photo = next(read_video_frames(real_path))[:1]
            real_batches = (np.repeat(photo, len(frames), axis=0)
                            for frames in read_video_frames(generated_path, batch=batch))
        for generated_batch, real_batch in zip(read_video_frames(generated_path, batch=batch), real_batches):
            count = min(len(generated_batch), len(real_batch))
            measure.add(generated_batch[:count], real_batch[:count])
        real_waveform = waveform = None
        if metrics & {"sync", "lse"}:
            real_waveform = load_audio(real_path, allow_silence=True)
            waveform = load_audio(generated_path, allow_silence=True) if generated_facts["has_audio"] else real_waveform
        videos.append({"generated": str(generated_path), "real": str(real_path), "aligned": alignment is not None,
                       **measure.figures(waveform, real_waveform, fps)})
        for side in all_features:
            all_features[side] += measure.features[side]
    mean = {key: float(np.nanmean([video[key] for video in videos if key in video]))
            for key in videos[0] if key not in ("generated", "real", "aligned")}
    if all_features["generated"]:
        from .fid import feature_statistics, frechet_distance

        mean["fid"] = frechet_distance(*feature_statistics(np.concatenate(all_features["generated"])),
                                       *feature_statistics(np.concatenate(all_features["real"])))
    return {"settings": {"metrics": sorted(metrics), "landmark_backend": landmark_backend, "device": str(device),
                         "max_sync_offset_frames": MAX_SYNC_OFFSET},
            "videos": videos, "mean": mean, "unavailable": dict(networks.unavailable)}


def format_table(report: dict) -> str:
    """The report as a text table: one row per video and the mean, then the unavailable metrics and why."""
    columns = list(report["mean"])
    rows = [[Path(video["generated"]).name] + [video.get(key) for key in columns] for video in report["videos"]]
    rows.append(["mean"] + [report["mean"][key] for key in columns])
    cells = [["video", *columns]] + [[row[0]] + [_cell(value) for value in row[1:]] for row in rows]
    widths = [max(len(row[index]) for row in cells) for index in range(len(cells[0]))]
    lines = ["  ".join(cell.rjust(width) if index else cell.ljust(width) for index, (cell, width) in
                       enumerate(zip(row, widths))) for row in cells]
    lines += [f"{name}: unavailable — {reason}" for name, reason in report["unavailable"].items()]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def write_csv(report: dict, path: str | Path) -> None:
    """The report as CSV: one row per video, then the mean (and FID) in a row named `mean`."""
    import csv

    columns = ["generated", "real", *report["mean"]]
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for video in report["videos"]:
            writer.writerow({key: video.get(key, "") for key in columns})
        writer.writerow({"generated": "mean", "real": "", **report["mean"]})

