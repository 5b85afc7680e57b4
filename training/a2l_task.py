"""Training A2L on prepared multi-speaker footage (`talking-head train a2l`).

Targets: each frame's landmarks with the head motion taken out (a similarity fit of the nose and eye corners
onto the clip's first training frame's), as displacements from a reference frame of the same clip drawn at
random (at inference, the portrait). Inputs: speech features, the clip's voice embedding and the
reference landmarks. Loss: the paper's mean squared landmark error, plus, with `mouth_opening_weight`, the squared
error of the vertical gap between the facing inner-lip points (the points of the evaluation's mouth opening, which
takes their distance over the eye distance; here the head motion is already taken out, so the gap is vertical).
Each training window and its reference face get the same random change of shape (rotation, width, height,
position), so that the model must take the face from the reference and cannot recall it from the voice.
At export the model's `motion_gain` is measured on the validation frames (see `motion_gain`).
"""

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import TalkingHeadError
from ..faces.align import (
    STABLE_POINTS,
    apply_affine,
    fit_similarity,
    from_unit_coordinates,
    to_unit_coordinates,
)
from ..faces.landmarks import INNER_LIP_LOWER, INNER_LIP_UPPER
from ..faces.render import render_landmarks
from ..hub_models.a2l import AudioToLandmarks
from ..hub_models.presets import A2L_PRESETS
from ..media.features import AudioFeatureExtractor
from .front_end import front_end_config, speech_model_component
from ..media.images import to_model_range
from ..pipelines.base import TRAINING_RECORD
from ..data.dataset import TalkingHeadDataset
from .images import save_image_grid
from .loop import module_device
from ..evaluation.metrics import landmark_errors

NUM_SAMPLE_FRAMES = 8
SAMPLE_SIZE = 96


def remove_head_motion(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Landmarks [T,68,2] each moved by the similarity that best puts its stable points onto `reference`'s."""
    stable = list(STABLE_POINTS)
    return np.stack([apply_affine(points, fit_similarity(points[stable], reference[stable])) for points in landmarks])


def _mouth_gap(landmarks: torch.Tensor) -> torch.Tensor:
    """Mean vertical gap between the facing inner-lip points of landmarks [...,68,2]: the mouth opening [...]."""
    return (landmarks[..., list(INNER_LIP_LOWER), 1] - landmarks[..., list(INNER_LIP_UPPER), 1]).mean(-1)


def _random_shape_change(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random 2x2 linear map (a few degrees of rotation, +-12 % width, +-8 % height) and a shift of +-4 %."""
    angle, width, height, dx, dy = (torch.rand(5, generator=generator) * 2 - 1).tolist()
    angle = np.radians(5 * angle)
    rotation = torch.tensor([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=torch.float32)
    linear = rotation @ torch.diag(torch.tensor([1 + 0.12 * width, 1 + 0.08 * height]))
    return linear, torch.tensor([0.04 * dx, 0.04 * dy])


class A2LTask:
    """MSE between predicted and real landmark displacements on windows of frames."""

    def __init__(self, dataset: TalkingHeadDataset, *, front_end: AudioFeatureExtractor | None = None,
                 preset: str = "small", window_frames: int = 100, l2v: str | Path | None = None,
                 mouth_opening_weight: float = 0.0):
        """`front_end` makes the speech features (log-mel at the dataset's frame rate by default); they are
        computed once per clip and kept in the dataset."""
        self.front_end = front_end or AudioFeatureExtractor("logmel", fps=dataset.fps)
        self.dataset = dataset
        self.window_frames = window_frames
        self.l2v = l2v
        self.mouth_opening_weight = mouth_opening_weight
        self.sequences = {"train": [], "val": []}
        for clip in dataset.clips:
            if not (clip.folder / "speaker.npy").exists():
                raise TalkingHeadError(f"clip '{clip.name}' has no voice embedding; prepare the footage with "
                                       "`talking-head prepare --speaker-embeddings`")
            speaker = torch.from_numpy(np.load(clip.folder / "speaker.npy")).float()
            landmarks = np.asarray(clip.array("landmarks"), np.float64)
            canonical = landmarks[clip.train_range[0]] if clip.train_range[1] > clip.train_range[0] else landmarks[0]
            still = to_unit_coordinates(remove_head_motion(landmarks, canonical), dataset.resolution)
            for split in self.sequences:
                start, stop = clip.frame_range(split)
                if stop - start < 2:
                    continue
                self.sequences[split].append({
                    "features": dataset.clip_features(clip, self.front_end, split),
                    "landmarks": torch.from_numpy(still[start:stop]).float(), "speaker": speaker})
        if not self.sequences["train"]:
            raise TalkingHeadError(f"{dataset.root} has no training clips of at least 2 frames")
        self.model = AudioToLandmarks(**A2L_PRESETS[preset], **front_end_config(self.front_end))
        motion = torch.cat([s["landmarks"] - s["landmarks"].mean(0) for s in self.sequences["train"]]).reshape(-1, 136)
        self.model.displacement_std.copy_(motion.std(0).clamp_min(1e-4))
        self.loss_scale = float(motion.pow(2).mean())

    def modules(self):
        return {"a2l": self.model}

    def batches(self, batch_size, generator):
        train = self.sequences["train"]
        lengths = torch.tensor([len(s["features"]) for s in train], dtype=torch.float)
        while True:
            windows = {"features": [], "speaker": [], "reference": [], "landmarks": []}
            for clip_index in torch.multinomial(lengths, batch_size, replacement=True, generator=generator).tolist():
                sequence = train[clip_index]
                length = len(sequence["features"])
                window = min(self.window_frames, length)
                start = int(torch.randint(length - window + 1, (1,), generator=generator))
                reference = int(torch.randint(length, (1,), generator=generator))
                # One random face-shape change for the window and its reference, so that a speaker's shape
                # cannot be learned from the voice: the motion must come from the reference face.
                linear, shift = _random_shape_change(generator)
                windows["features"].append(sequence["features"][start:start + window])
                windows["landmarks"].append(sequence["landmarks"][start:start + window] @ linear.T + shift)
                windows["reference"].append(sequence["landmarks"][reference] @ linear.T + shift)
                windows["speaker"].append(sequence["speaker"])
            shortest = min(len(w) for w in windows["features"])
            for name in ("features", "landmarks"):
                windows[name] = [w[:shortest] for w in windows[name]]
            yield {name: torch.stack(values) for name, values in windows.items()}

    def _predict(self, model, features, speaker, reference):
        device = module_device(model)
        output = model(features.to(device), speaker.to(device), reference.to(device))
        return reference.to(device)[:, None] + output["displacements"]

    def loss(self, modules, batch):
        predicted = self._predict(modules["a2l"], batch["features"], batch["speaker"], batch["reference"])
        real = batch["landmarks"].to(predicted.device)
        loss = (predicted - real).pow(2).mean() / self.loss_scale
        if self.mouth_opening_weight:
            opening_error = (_mouth_gap(predicted) - _mouth_gap(real)).pow(2).mean()
            loss = loss + self.mouth_opening_weight * opening_error / self.loss_scale
        return loss

    def _validation_pairs(self, model):
        """(predicted, real) landmark sequences [T,68,2] in unit coordinates, each clip's first frame the reference."""
        for sequence in self.sequences["val"]:
            reference = sequence["landmarks"][:1]
            predicted = self._predict(model, sequence["features"][None], sequence["speaker"][None], reference)[0]
            yield predicted.cpu().numpy(), sequence["landmarks"].numpy()

    def validate(self, modules):
        if not self.sequences["val"]:
            return {}
        pairs = list(self._validation_pairs(modules["a2l"]))
        predicted, real = np.concatenate([p for p, _ in pairs]), np.concatenate([r for _, r in pairs])
        still = np.concatenate([np.repeat(r[:1], len(r), axis=0) for _, r in pairs])
        figures = {"val_loss": float(((predicted - real) ** 2).mean() / self.loss_scale)}
        figures.update({f"val_{name}": value for name, value in landmark_errors(predicted, real).items()})
        figures.update({f"val_still_{name}": value for name, value in landmark_errors(still, real).items()
                        if name != "mouth_opening_correlation"})
        return figures

    def save_samples(self, modules, path):
        """Rows: real landmarks of validation frames, then the predicted ones."""
        if not self.sequences["val"]:
            return {}
        predicted, real = next(self._validation_pairs(modules["a2l"]))
        picks = np.linspace(0, len(real) - 1, NUM_SAMPLE_FRAMES).astype(int)
        rows = [render_landmarks(from_unit_coordinates(x[picks], SAMPLE_SIZE), SAMPLE_SIZE) for x in (real, predicted)]
        save_image_grid([to_model_range(r) for r in rows], path)
        return {}

    @torch.no_grad()
    def motion_gain(self, model) -> float:
        """How much more the real moving points move than the predicted ones on the validation frames: the square
        root of the ratio of their summed squared deviations from each clip's mean position (1 without validation
        frames, or when the predicted motion is under a millionth of the real one)."""
        moving = model.moving.reshape(-1, 2)[:, 0].bool().cpu().numpy()
        real_spread = predicted_spread = 0.0
        for predicted, real in self._validation_pairs(model):
            predicted, real = predicted[:, moving].astype(np.float64), real[:, moving].astype(np.float64)
            real_spread += float(((real - real.mean(0)) ** 2).sum())
            predicted_spread += float(((predicted - predicted.mean(0)) ** 2).sum())
        if not real_spread or predicted_spread < real_spread * 1e-12:
            return 1.0
        return float(np.sqrt(real_spread / predicted_spread))

    def export(self, modules, output_dir: Path, training_summary: dict):
        model = modules["a2l"].eval()
        model.register_to_config(motion_gain=self.motion_gain(model))
        record = {**training_summary, "features": front_end_config(self.front_end), "dataset": self.dataset.name,
                  "mouth_opening_weight": self.mouth_opening_weight, "motion_gain": model.config.motion_gain,
                  "clips": [clip.name for clip in self.dataset.clips]}
        if self.l2v is None:
            model.save_pretrained(output_dir)
            (output_dir / TRAINING_RECORD).write_text(json.dumps({"a2l": record}, indent=2))
            return
        from ..pipelines.landmark import LandmarkDiffusionPipeline

        pipeline = LandmarkDiffusionPipeline.from_pretrained(self.l2v)
        pipeline.register_modules(a2l=model, speech_model=speech_model_component(self.front_end))
        pipeline.training_record = {**(pipeline.training_record or {}), "a2l": record}
        pipeline.save_pretrained(output_dir)
