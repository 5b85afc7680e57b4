"""Training Speech2Latent against a trained diffusion autoencoder (`talking-head train speech2latent`).

Targets are the semantic latents the DAE's encoder gives each training frame; the pose adaptor learns the
head pose with its own loss, and the pose projector is fed the real pose while training.
"""

from pathlib import Path

import torch

from ..hub_models.presets import SPEECH2LATENT_PRESETS
from ..hub_models.speech2latent import Speech2Latent
from ..media.features import AudioFeatureExtractor
from .front_end import front_end_config, speech_model_component
from ..media.images import to_model_range
from ..pipelines.base import default_device
from ..pipelines.dae_talker import DAETalkerPipeline
from ..data.dataset import TalkingHeadDataset
from .images import psnr, save_image_grid
from .latent_cache import cached_semantic_codes, module_fingerprint
from .loop import module_device

POSE_LOSS_WEIGHT = 0.1
NUM_SAMPLE_FRAMES = 8
SAMPLE_STEPS = 20


class Speech2LatentTask:
    """Latent regression (MSE on normalised z_sem) plus the pose predictor's loss, on windows of frames."""

    def __init__(self, dataset: TalkingHeadDataset, dae: str | Path, *, front_end: AudioFeatureExtractor | None = None,
                 preset: str = "base", window_frames: int = 100):
        """`front_end` makes the speech features (log-mel at the dataset's frame rate by default); they are
        computed once per clip and kept in the dataset."""
        self.front_end = front_end or AudioFeatureExtractor("logmel", fps=dataset.fps)
        self.dataset = dataset
        self.window_frames = window_frames
        self.pipeline = DAETalkerPipeline.from_pretrained(dae).to(default_device())  # encodes the targets on the GPU, if any
        self.sequences = {"train": [], "val": []}
        size, fingerprint = self.pipeline.image_size, module_fingerprint(self.pipeline.semantic_encoder)
        for clip in dataset.clips:
            codes = cached_semantic_codes(clip, self.pipeline, fingerprint,
                                          lambda clip=clip: dataset.iter_clip_frames(clip, "all", size))
            for split in self.sequences:
                start, stop = clip.frame_range(split)
                if stop - start < 2:
                    continue
                self.sequences[split].append({
                    "features": dataset.clip_features(clip, self.front_end, split),
                    "pose": dataset.clip_array(clip, "pose", split),
                    "latents": codes[start:stop],
                    "images": dataset.clip_frames(clip, split, size) if split == "val" else None,
                })
        self.model = Speech2Latent(**SPEECH2LATENT_PRESETS[preset], **front_end_config(self.front_end),
                                   semantic_dim=self.pipeline.unet.config.semantic_dim)
        train = self.sequences["train"]
        self.model.set_statistics(torch.cat([s["latents"] for s in train]), torch.cat([s["pose"] for s in train]))

    def modules(self):
        return {"speech2latent": self.model}

    def batches(self, batch_size, generator):
        train = self.sequences["train"]
        lengths = torch.tensor([len(s["features"]) for s in train], dtype=torch.float)
        while True:
            windows = {"features": [], "pose": [], "latents": []}
            for clip_index in torch.multinomial(lengths, batch_size, replacement=True, generator=generator).tolist():
                sequence = train[clip_index]
                window = min(self.window_frames, len(sequence["features"]))
                start = int(torch.randint(len(sequence["features"]) - window + 1, (1,), generator=generator))
                for name in windows:
                    windows[name].append(sequence[name][start:start + window])
            shortest = min(len(w) for w in windows["features"])
            yield {name: torch.stack([w[:shortest] for w in values]) for name, values in windows.items()}

    def _losses(self, model, features, pose, latents, use_real_pose=True):
        device = module_device(model)
        features, pose, latents = features.to(device), pose.to(device), latents.to(device)
        output = model(features, pose if use_real_pose else None)
        latent_loss = (output["normalised_latents"] - (latents - model.latent_mean) / model.latent_std).pow(2).mean()
        pose_loss = (output["normalised_pose_prediction"] - (pose - model.pose_mean) / model.pose_std).pow(2).mean()
        return latent_loss, pose_loss

    def loss(self, modules, batch):
        latent_loss, pose_loss = self._losses(modules["speech2latent"], batch["features"], batch["pose"], batch["latents"])
        return latent_loss + POSE_LOSS_WEIGHT * pose_loss

    def validate(self, modules):
        model = modules["speech2latent"]
        figures = {"val_latent_loss": 0.0, "val_latent_loss_predicted_pose": 0.0, "val_pose_loss": 0.0}
        for sequence in self.sequences["val"]:
            inputs = (sequence["features"][None], sequence["pose"][None], sequence["latents"][None])
            latent_loss, pose_loss = self._losses(model, *inputs)
            figures["val_latent_loss"] += latent_loss.item()
            figures["val_pose_loss"] += pose_loss.item()
            figures["val_latent_loss_predicted_pose"] += self._losses(model, *inputs, use_real_pose=False)[0].item()
        return {name: value / len(self.sequences["val"]) for name, value in figures.items()}

    def save_samples(self, modules, path):
        """Rows: real validation frames, decoded from their own z_sem, decoded from z_sem predicted from speech."""
        sequence = self.sequences["val"][0]
        model = modules["speech2latent"]
        picks = torch.linspace(0, len(sequence["images"]) - 1, NUM_SAMPLE_FRAMES).long()
        device = module_device(model)
        predicted = model(sequence["features"][None].to(device), sequence["pose"][None].to(device))["latents"][0][picks].cpu()
        noise = self.pipeline.initial_noise(0)
        rows = [sequence["images"][picks]]
        for latents in (sequence["latents"][picks], predicted):
            frames = next(self.pipeline.decode_latents(latents, noise, SAMPLE_STEPS, batch_size=NUM_SAMPLE_FRAMES))
            rows.append(to_model_range(frames))
        save_image_grid(rows, path)
        return {"sample_psnr_dae": psnr(rows[1], rows[0]), "sample_psnr_speech": psnr(rows[2], rows[0])}

    def export(self, modules, output_dir: Path, training_summary: dict):
        self.pipeline.register_modules(speech2latent=modules["speech2latent"].eval(),
                                       speech_model=speech_model_component(self.front_end))
        record = dict(self.pipeline.training_record or {})
        record["speech2latent"] = {**training_summary, "features": front_end_config(self.front_end),
                                   "dataset": self.dataset.name}
        self.pipeline.training_record = record
        self.pipeline.save_pretrained(output_dir)
