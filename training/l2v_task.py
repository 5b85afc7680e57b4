"""Training L2V, the landmark pipeline's latent diffusion model (`talking-head train l2v`).

Each training example is one frame of a prepared clip: the target is its latent; the conditions are its
rendered landmarks, the frame itself with the lower face blanked (the pose reference), another frame of
the same clip (the identity reference, so the mouth must come from the landmarks) and the landmark
coordinates. The frozen autoencoder's latents of all of them are computed once per dataset and kept in
its clip folders (see `latent_cache`); every `frame_stride`-th frame is used. A TinyAutoencoder without
latent statistics gets them measured on the training frames first, so that L2V sees unit-variance latents.
With `init`, training continues from a landmark pipeline folder's L2V (its UNet, landmark encoder and
autoencoder), for example to fine-tune the bundled model on more footage or on one's own, or at a larger size (the
record it continued, kept in the new one, holds the size it was trained at).
"""

from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel

from ..errors import TalkingHeadError
from ..faces.align import to_unit_coordinates
from ..faces.render import lower_face_mask, render_landmarks
from ..hub_models.autoencoders import (
    TinyAutoencoder,
    downsampling_factor,
    load_autoencoder,
    measure_latent_statistics,
    scale_raw,
)
from ..hub_models.landmark_encoder import LandmarkEncoder
from ..hub_models.presets import (
    L2V_SCHEDULER_CONFIG,
    L2V_UNET_PRESETS,
    LANDMARK_ENCODER_PRESETS,
)
from ..media.images import to_uint8
from ..pipelines.base import TRAINING_RECORD, default_device, read_json_record
from ..pipelines.landmark import LandmarkDiffusionPipeline, masked_images
from ..data.dataset import Clip, TalkingHeadDataset, resize_images
from .images import psnr, save_image_grid
from .latent_cache import cached_raw_latents, module_fingerprint
from .loop import module_device

NUM_SAMPLE_FRAMES = 8
SAMPLE_STEPS = 25
CONDITION_BATCH = 256


def check_crop_scale(trained_crop_scale: float, dataset: TalkingHeadDataset, folder: str | Path) -> None:
    """Refuses footage prepared at another crop scale than the L2V in `folder` was trained on."""
    crop_scale = float(dataset.index.get("crop_scale", 2.4))
    if abs(trained_crop_scale - crop_scale) > 1e-6:
        raise TalkingHeadError(f"the L2V in {folder} was trained on crops of {trained_crop_scale} times the face "
                               f"measure and {dataset.root} holds crops of {crop_scale}: prepare the footage with "
                               f"--crop-scale {trained_crop_scale}")


class L2VTask:
    """Denoising loss of the UNet given the three condition latents and the landmark tokens."""

    def __init__(self, dataset: TalkingHeadDataset, autoencoder: str | Path | None = None, *, image_size: int = 96,
                 preset: str = "small", frame_stride: int = 1, init: str | Path | None = None):
        if frame_stride < 1:
            raise TalkingHeadError(f"the frame stride must be 1 or more, not {frame_stride}")
        self.dataset = dataset
        self.image_size = image_size
        self.frame_stride = frame_stride
        self.crop_scale = float(dataset.index.get("crop_scale", 2.4))
        self.init_record = None
        if init is not None:
            autoencoder = self._continue_from(Path(init), autoencoder)
        elif autoencoder is None:
            raise TalkingHeadError("L2V needs a frame autoencoder folder, or a landmark pipeline to continue from")
        self.vae = load_autoencoder(autoencoder).to(default_device())  # encodes the cache on the GPU, if any
        self.autoencoder_fingerprint = module_fingerprint(self.vae)
        self.autoencoder_record = read_json_record(Path(autoencoder) / TRAINING_RECORD)
        factor = downsampling_factor(self.vae)
        if image_size % factor:
            raise TalkingHeadError(f"the resolution {image_size} is not a multiple of the autoencoder's {factor}")
        if init is None:
            self.unet = UNet2DConditionModel(**{**L2V_UNET_PRESETS[preset], "sample_size": image_size // factor,
                                                "in_channels": 4 * self.vae.config.latent_channels,
                                                "out_channels": self.vae.config.latent_channels})
            self.landmark_encoder = LandmarkEncoder(**LANDMARK_ENCODER_PRESETS[preset])
        elif self.unet.config.sample_size * factor != image_size:  # a convolutional UNet: it goes on at a new size
            self.unet.register_to_config(sample_size=image_size // factor)
        self.noise_schedule = DDPMScheduler(**L2V_SCHEDULER_CONFIG)
        clips = [self._clip_latents(clip) for clip in dataset.clips]
        if not any(clip["train"].any() for clip in clips):
            raise TalkingHeadError(f"{dataset.root} has no training frames")
        if isinstance(self.vae, TinyAutoencoder) and self.vae.config.latents_mean is None:
            measure_latent_statistics(self.vae, torch.cat([c["targets"][c["train"]] for c in clips]))
        self.train = self._examples(clips, "train")
        self.val = self._examples(clips, "val")

    def _continue_from(self, folder: Path, autoencoder: str | Path | None) -> Path:
        """Loads the UNet and landmark encoder of a landmark pipeline folder; returns the autoencoder to train in."""
        if not all((folder / part / "config.json").exists() for part in ("unet", "landmark_encoder", "vae")):
            raise TalkingHeadError(f"{folder} is not a landmark pipeline folder to continue from: it needs unet/, "
                                   "landmark_encoder/ and vae/")
        if autoencoder is not None and Path(autoencoder).resolve() != (folder / "vae").resolve():
            raise TalkingHeadError(f"the L2V in {folder} works in its own autoencoder's latent ({folder / 'vae'}); "
                                   f"leave out --autoencoder")
        pipeline_config = read_json_record(folder / "model_index.json") or {}
        check_crop_scale(float(pipeline_config.get("crop_scale", self.crop_scale)), self.dataset, folder)
        self.unet = UNet2DConditionModel.from_pretrained(folder / "unet")
        self.landmark_encoder = LandmarkEncoder.from_pretrained(folder / "landmark_encoder")
        self.init_record = (read_json_record(folder / TRAINING_RECORD) or {}).get("l2v")
        return folder / "vae"

    def _clip_landmarks(self, clip: Clip) -> np.ndarray:
        """Landmarks [N,68,2] of every `frame_stride`-th frame of a clip, in pixels of the training crops."""
        landmarks = np.asarray(clip.array("landmarks")[::self.frame_stride], np.float32)
        return (landmarks + 0.5) * self.image_size / self.dataset.resolution - 0.5

    def _clip_frames(self, clip: Clip):
        return self.dataset.iter_clip_frames(clip, "all", self.image_size, CONDITION_BATCH, self.frame_stride)

    def _clip_latents(self, clip: Clip) -> dict:
        """Raw latents of a clip's frames, landmark drawings and pose references, and its split masks."""
        landmarks = self._clip_landmarks(clip)

        def cached(what, images):
            return cached_raw_latents(clip, what, self.image_size, self.frame_stride, self.vae,
                                      self.autoencoder_fingerprint, images)

        def renders():
            for start in range(0, len(landmarks), CONDITION_BATCH):
                yield masked_images(render_landmarks(landmarks[start:start + CONDITION_BATCH], self.image_size), None)

        def poses():
            start = 0
            for images in self._clip_frames(clip):
                batch_landmarks = landmarks[start:start + len(images)]
                keep = 1 - lower_face_mask(batch_landmarks, self.image_size)[..., None]
                yield masked_images(to_uint8(images), keep)
                start += len(images)

        frames = np.arange(0, clip.num_frames, self.frame_stride)
        return {"clip": clip, "frames": frames, "landmarks": landmarks,
                "train": torch.from_numpy((frames >= clip.train_range[0]) & (frames < clip.train_range[1])),
                "val": torch.from_numpy((frames >= clip.val_range[0]) & (frames < clip.val_range[1])),
                "targets": cached("frames", lambda: self._clip_frames(clip)),
                "renders": cached("landmark-drawings", renders), "poses": cached("pose-references", poses)}

    def _examples(self, clips: list[dict], split: str) -> dict:
        """Scaled latents and landmarks of every used frame of a split, and for each frame the span of its clip."""
        parts = {"targets": [], "renders": [], "poses": [], "landmarks": [], "clip_start": [], "clip_stop": [],
                 "source": []}
        offset = 0
        for clip in clips:
            chosen = clip[split]
            count = int(chosen.sum())
            if not count:
                continue
            for name in ("targets", "renders", "poses"):
                parts[name].append(scale_raw(self.vae, clip[name][chosen]))
            landmarks = clip["landmarks"][chosen.numpy()]
            parts["landmarks"].append(torch.from_numpy(to_unit_coordinates(landmarks, self.image_size)).float())
            parts["clip_start"].append(torch.full((count,), offset))
            parts["clip_stop"].append(torch.full((count,), offset + count))
            parts["source"] += [(clip["clip"], int(frame)) for frame in clip["frames"][chosen.numpy()]]
            offset += count
        if not parts["targets"]:
            return {"targets": torch.zeros(0)}
        return {name: values if name == "source" else torch.cat(values) for name, values in parts.items()}

    def _frame_images(self, sources: list[tuple[Clip, int]]) -> torch.Tensor:
        """Frames [N,3,S,S] in [-1,1] read from the dataset by (clip, frame index)."""
        frames = np.stack([np.asarray(clip.array("frames")[frame]) for clip, frame in sources])
        return resize_images(masked_images(frames, None), self.image_size)

    def modules(self):
        return {"unet": self.unet, "landmark_encoder": self.landmark_encoder}

    def _identity_indices(self, examples: dict, index: torch.Tensor, generator) -> torch.Tensor:
        """For each frame, a random other frame of the same clip."""
        start, stop = examples["clip_start"][index], examples["clip_stop"][index]
        return start + (torch.rand(len(index), generator=generator) * (stop - start)).long()

    def _batch(self, examples: dict, index: torch.Tensor, generator) -> dict:
        identity = self._identity_indices(examples, index, generator)
        return {"targets": examples["targets"][index], "renders": examples["renders"][index],
                "poses": examples["poses"][index], "identities": examples["targets"][identity],
                "landmarks": examples["landmarks"][index]}

    def batches(self, batch_size, generator):
        while True:
            index = torch.randint(len(self.train["targets"]), (batch_size,), generator=generator)
            yield self._batch(self.train, index, generator)

    def _denoising_loss(self, modules, batch, generator=None):
        device = module_device(modules["unet"])
        batch = {name: value.to(device) for name, value in batch.items()}
        targets = batch["targets"]
        noise = torch.randn(targets.shape, generator=generator).to(targets)
        timesteps = torch.randint(0, self.noise_schedule.config.num_train_timesteps, (len(targets),),
                                  generator=generator).to(device)
        noisy = self.noise_schedule.add_noise(targets, noise, timesteps)
        goal = self.noise_schedule.get_velocity(targets, noise, timesteps)
        model_input = torch.cat([noisy, batch["renders"], batch["poses"], batch["identities"]], dim=1)
        tokens = modules["landmark_encoder"](batch["landmarks"])
        return (modules["unet"](model_input, timesteps, encoder_hidden_states=tokens).sample - goal).pow(2).mean()

    def loss(self, modules, batch):
        return self._denoising_loss(modules, batch)

    def validate(self, modules):
        if not len(self.val["targets"]):
            return {}
        generator = torch.Generator().manual_seed(0)  # the same noise, timesteps and references every time
        losses = []
        for index in torch.arange(len(self.val["targets"])).split(64):
            losses.append(self._denoising_loss(modules, self._batch(self.val, index, generator), generator).item())
        return {"val_loss": sum(losses) / len(losses)}

    def pipeline(self, modules) -> LandmarkDiffusionPipeline:
        """A pipeline around the modules being trained (no A2L)."""
        vae = self.vae.to(module_device(modules["unet"]))
        return LandmarkDiffusionPipeline(vae=vae, unet=modules["unet"], landmark_encoder=modules["landmark_encoder"],
                                         scheduler=DDIMScheduler.from_config(self.noise_schedule.config),
                                         crop_scale=self.crop_scale).eval_mode()

    def save_samples(self, modules, path):
        """Validation frames redrawn from their landmarks, pose reference and the clip's first frame, from one noise."""
        examples = self.val if len(self.val["targets"]) else self.train
        pipeline = self.pipeline(modules)
        count = len(examples["targets"])
        index = torch.arange(0, count, max(1, count // NUM_SAMPLE_FRAMES))[:NUM_SAMPLE_FRAMES]
        images = self._frame_images([examples["source"][i] for i in index])
        identities = self._frame_images([examples["source"][examples["clip_start"][i]] for i in index])
        landmarks = (examples["landmarks"][index].numpy() + 1) / 2 * self.image_size - 0.5
        keep = 1 - lower_face_mask(landmarks, self.image_size)[..., None]
        poses = masked_images(to_uint8(images), keep)
        generated = torch.cat([pipeline.denoise_frames(landmarks[i:i + 1], poses[i:i + 1], identities[i:i + 1],
                                                       pipeline.initial_noise(0), SAMPLE_STEPS).cpu()
                               for i in range(len(index))])
        renders = masked_images(pipeline.render(landmarks), None)
        save_image_grid([images, renders, poses, generated], path)
        return {"sample_psnr": psnr(generated, images)}

    def export(self, modules, output_dir: Path, training_summary: dict):
        pipeline = self.pipeline(modules)
        pipeline.training_record = {"l2v": {**training_summary, "image_size": self.image_size,
                                            "crop_scale": self.crop_scale, "frame_stride": self.frame_stride,
                                            "dataset": self.dataset.name,
                                            "clips": [clip.name for clip in self.dataset.clips]}}
        if self.init_record is not None:
            pipeline.training_record["l2v"]["continued_from"] = self.init_record
        if self.autoencoder_record is not None:
            pipeline.training_record["autoencoder"] = self.autoencoder_record
        pipeline.save_pretrained(output_dir)
