"""Training the landmark pipeline's mouth refiner (`talking-head train mouth-refiner`).

Each example is one frame of a prepared clip made as a video makes it from a portrait, with another frame of the
same clip as the portrait: L2V (of the landmark pipeline `l2v`) draws the frame's face crop at its own size from the
frame's landmarks, its pose reference (the frame, lower face blanked) and the portrait's crop; the portrait's own
lower face, at the dataset's resolution, is moved onto the landmarks with L2V's mouth set in (`compose_lower_face`).
The refiner learns to turn that composition's mouth window into the real frame's: an L1 loss weighted to where the
window is pasted. L2V's drawings are made once per dataset and L2V, and kept in the clip folders (the slow part:
about a third of a second a frame on two CPU cores).
"""

import zlib
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import Clip, TalkingHeadDataset, save_array_atomically
from ..errors import TalkingHeadError
from ..faces.align import rescaled_landmarks, rescaling_affine
from ..faces.mouth_window import MouthWindows
from ..faces.render import lower_face_mask
from ..faces.warp import compose_lower_face
from ..hub_models.mouth_refiner import MouthRefiner
from ..media.video import resize_frames
from ..pipelines.base import default_device
from ..pipelines.landmark import LandmarkDiffusionPipeline, masked_images
from .l2v_task import check_crop_scale
from .latent_cache import module_fingerprint
from .loop import module_device

NUM_SAMPLE_WINDOWS = 8
DRAWING_BATCH = 16
# What the refiner learns from outside the pasted region, relative to inside it.
_OUTSIDE_WEIGHT = 0.05


def _weighted_psnr(made: torch.Tensor, real: torch.Tensor, weights: torch.Tensor) -> float:
    """PSNR in dB of images in [-1,1], the squared error weighted by `weights` [N,1,H,W]."""
    error = (((made - real) / 2).pow(2) * weights).sum() / (weights.sum() * made.shape[1])
    return float(-10 * torch.log10(error.clamp_min(1e-10)))


class MouthRefinerTask:
    """The refiner's loss on mouth windows of L2V compositions against the real frames'."""

    def __init__(self, dataset: TalkingHeadDataset, l2v: str | Path, *, frames_per_clip: int = 64,
                 window_size: int = 128, num_inference_steps: int = 25, sampler: str = "ddim"):
        if frames_per_clip < 2:
            raise TalkingHeadError(f"the mouth refiner needs 2 or more frames a clip, not {frames_per_clip}")
        self.dataset = dataset
        self.l2v = Path(l2v)
        self.pipeline = LandmarkDiffusionPipeline.from_pretrained(self.l2v)
        check_crop_scale(self.pipeline.config.crop_scale, dataset, l2v)
        self.pipeline.to(default_device())
        self.frames_per_clip = frames_per_clip
        self.drawing = {"steps": num_inference_steps, "sampler": sampler,
                        "l2v": module_fingerprint(self.pipeline.unet)}
        self.refiner = MouthRefiner(window_size=window_size)
        parts = [self._clip_windows(clip) for clip in dataset.clips]
        self.train = self._split(parts, "train")
        self.val = self._split(parts, "val")
        if not len(self.train["real"]):
            raise TalkingHeadError(f"{dataset.root} has no training frames")

    def _chosen_frames(self, clip: Clip) -> tuple[np.ndarray, int]:
        """The frames a clip lends (spread over all of it) and the one that plays the portrait (in its training
        part, chosen the same way every run)."""
        start, stop = clip.train_range
        chooser = np.random.default_rng(zlib.crc32(clip.name.encode()))
        portrait = int(chooser.integers(start, stop)) if stop > start else 0
        frames = np.unique(np.linspace(0, clip.num_frames - 1, self.frames_per_clip).round().astype(int))
        return frames[frames != portrait], portrait

    def _crops(self, clip: Clip, frames: np.ndarray, portrait: int) -> np.ndarray:
        """The crops (uint8 [N,s,s,3]) that the video hands the paste for `frames` with the `portrait` frame as
        identity: L2V's drawings with the portrait's lower face warped around their mouths (`draw_crops` "warped");
        read from the clip's cache or drawn and cached."""
        drawing = self.drawing
        path = clip.folder / (f"mouth-refiner-crops-{drawing['l2v']}-{drawing['sampler']}{drawing['steps']}-"
                              f"{self.frames_per_clip}.npy")
        if path.exists():
            cached = np.load(path)
            if len(cached) == len(frames):
                return cached
        size, resolution = self.pipeline.image_size, self.dataset.resolution
        images = resize_frames(np.asarray(clip.array("frames")[np.append(frames, portrait)]), size)
        landmarks = rescaled_landmarks(clip.array("landmarks")[np.append(frames, portrait)], resolution, size)
        noise = self.pipeline.initial_noise(0)
        drawn = []
        for start in range(0, len(frames), DRAWING_BATCH):
            batch = landmarks[start:min(start + DRAWING_BATCH, len(frames))]
            keep = 1 - lower_face_mask(batch, size)[..., None]
            pose = masked_images(images[start:start + len(batch)], keep)
            drawn.append(self.pipeline.draw_crops(batch, pose, images[-1], landmarks[-1], noise, drawing["steps"],
                                                  drawing["sampler"], "warped"))
        drawn = np.concatenate(drawn)
        save_array_atomically(path, drawn)
        return drawn

    def _clip_windows(self, clip: Clip) -> dict:
        """Mouth windows of a clip's chosen frames: the composition as the pipeline pastes it, L2V's crops, the mask
        channels, the paste masks and the real frame's; and the frames' split."""
        frames, portrait = self._chosen_frames(clip)
        crops = self._crops(clip, frames, portrait)
        all_landmarks = np.asarray(clip.array("landmarks"), np.float64)
        targets = all_landmarks[frames]
        crop_to_frame = rescaling_affine(self.pipeline.image_size, self.dataset.resolution)
        composed = compose_lower_face(np.asarray(clip.array("frames")[portrait]), all_landmarks[portrait], targets,
                                      crops, crop_to_frame)
        windows = MouthWindows.around(targets, self.refiner.window_size)
        return {"composed": windows.sample(composed), "drawn": windows.sample(crops, crop_to_frame),
                "masks": windows.masks().astype(np.float16), "paste": windows.paste_masks().astype(np.float16),
                "real": windows.sample(np.asarray(clip.array("frames")[frames])),
                "train": (frames >= clip.train_range[0]) & (frames < clip.train_range[1]),
                "val": (frames >= clip.val_range[0]) & (frames < clip.val_range[1])}

    @staticmethod
    def _split(parts: list[dict], split: str) -> dict:
        names = ("composed", "drawn", "masks", "paste", "real")
        return {name: np.concatenate([part[name][part[split]] for part in parts]) for name in names}

    def _batch(self, examples: dict, index: np.ndarray, flip: bool = False) -> dict:
        def tensor(array):
            array = array[index][:, :, ::-1] if flip else array[index]
            return torch.from_numpy(np.ascontiguousarray(array, np.float32)).permute(0, 3, 1, 2)

        images = [tensor(examples[name]) / 127.5 - 1 for name in ("composed", "drawn", "real")]
        return {"inputs": torch.cat([images[0], images[1], tensor(examples["masks"])], dim=1), "real": images[2],
                "weights": tensor(examples["paste"][..., None]) + _OUTSIDE_WEIGHT}

    def modules(self):
        return {"mouth_refiner": self.refiner}

    def batches(self, batch_size, generator):
        count = len(self.train["real"])
        while True:
            index = torch.randint(count, (batch_size,), generator=generator).numpy()
            yield self._batch(self.train, index, flip=bool(torch.rand((), generator=generator) < 0.5))

    @staticmethod
    def _weighted_l1(made, batch):
        return ((made - batch["real"]).abs() * batch["weights"]).sum() / (batch["weights"].sum() * 3)

    def loss(self, modules, batch):
        device = module_device(modules["mouth_refiner"])
        batch = {name: value.to(device) for name, value in batch.items()}
        return self._weighted_l1(modules["mouth_refiner"](batch["inputs"]), batch)

    @torch.no_grad()
    def _refined(self, modules, examples: dict, index: np.ndarray) -> tuple[dict, torch.Tensor]:
        batch = self._batch(examples, index)
        device = module_device(modules["mouth_refiner"])
        made = torch.cat([modules["mouth_refiner"](part.to(device)).float().cpu()
                          for part in batch["inputs"].split(32)])
        return batch, made

    def validate(self, modules):
        """The weighted L1 loss and the PSNR where the windows are pasted, refined and as composed."""
        if not len(self.val["real"]):
            return {}
        batch, made = self._refined(modules, self.val, np.arange(len(self.val["real"])))
        paste = batch["weights"] - _OUTSIDE_WEIGHT
        return {"val_loss": float(self._weighted_l1(made, batch)),
                "val_pasted_psnr": _weighted_psnr(made, batch["real"], paste),
                "val_pasted_psnr_composed": _weighted_psnr(batch["inputs"][:, :3], batch["real"], paste)}

    def save_samples(self, modules, path):
        """Validation windows: as composed, refined, and real."""
        from .images import save_image_grid

        examples = self.val if len(self.val["real"]) else self.train
        count = len(examples["real"])
        index = np.arange(0, count, max(1, count // NUM_SAMPLE_WINDOWS))[:NUM_SAMPLE_WINDOWS]
        batch, made = self._refined(modules, examples, index)
        save_image_grid([batch["inputs"][:, :3], made, batch["real"]], path)
        return {"sample_pasted_psnr": _weighted_psnr(made, batch["real"], batch["weights"] - _OUTSIDE_WEIGHT)}

    def export(self, modules, output_dir: Path, training_summary: dict):
        """The landmark pipeline of `l2v` with the trained refiner joined to it."""
        pipeline = self.pipeline
        pipeline.register_modules(mouth_refiner=modules["mouth_refiner"])
        record = {**training_summary, "window_size": self.refiner.window_size,
                  "frames_per_clip": self.frames_per_clip, "l2v_drawing": self.drawing,
                  "dataset": self.dataset.name, "clips": [clip.name for clip in self.dataset.clips]}
        pipeline.training_record = {**(pipeline.training_record or {}), "mouth_refiner": record}
        pipeline.save_pretrained(output_dir)
