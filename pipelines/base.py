"""What both talking-head pipelines share: the training record, saving with a model card, the Hub, eval mode."""

import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from PIL import Image

from ..errors import TalkingHeadError
from ..media.audio import load_audio, prepare_waveform
from .hub import MODEL_INDEX, declared_component_classes, load_component, resolve_pipeline_folder
from .model_card import write_model_card

logger = logging.getLogger(__name__)

TRAINING_RECORD = "training.json"
# How a model card names the component whose weights came from elsewhere, by class.
COMPONENT_TITLES = {"WhisperEncoder": "`{name}`: the audio encoder of OpenAI's Whisper (Radford et al., 2022)",
                    "TinyAutoencoder": "`{name}`", "SpeakerEncoder": "`{name}`: a GE2E voice encoder (Resemblyzer's)"}


def default_device() -> torch.device:
    """CUDA when there is a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def public_model_name(name_or_path: str | os.PathLike) -> str:
    """How outputs and saved folders name a model: its Hub repo id, or a local folder's own name, never a path."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_absolute() or path.exists() or text.startswith((".", "~")):
        return path.resolve().name
    return text


def _name_configs_publicly(folder: Path) -> None:
    """Replace the local paths diffusers writes as `_name_or_path` into a saved folder's configs by public names."""
    for path in [folder / "model_index.json", *folder.glob("*/config.json"), *folder.glob("*/scheduler_config.json")]:
        if not path.is_file():
            continue
        config = json.loads(path.read_text())
        if config.get("_name_or_path"):
            config["_name_or_path"] = public_model_name(config["_name_or_path"])
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_json_record(path: Path) -> dict | None:
    """A training record (JSON) when the file exists, else None."""
    return json.loads(path.read_text()) if path.exists() else None


def speech_waveform(speech, sample_rate: int) -> np.ndarray:
    """16 kHz mono float32 from an audio file, or from a waveform [S] / [C,S] (numpy or torch) at `sample_rate`."""
    if isinstance(speech, (str, os.PathLike)):
        return load_audio(speech)
    return prepare_waveform(torch.as_tensor(speech).detach().cpu().numpy(), sample_rate)


class TalkingHeadPipeline(DiffusionPipeline):
    """A diffusers pipeline that carries how it was trained (`training.json`) and says when it was not."""

    training_record: dict | None = None
    _component_classes: dict[str, tuple[type, ...]] = {}  # the classes each component may be, by name
    _float32_components: tuple[str, ...] = ()  # loaded in float32 whatever `torch_dtype` asks

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, torch_dtype: torch.dtype = torch.float32,
                        **download_kwargs):
        """Load from a local pipeline folder or a Hub repo id (downloaded through huggingface_hub).

        Each component loads with the class its model_index.json names, among those this pipeline takes, and the
        pipeline's own settings come from the same file. (diffusers' `DiffusionPipeline.from_pretrained` imports a
        component's module by the name saved there, which fails in ComfyUI: it imports the pack under its folder's
        path.) Weights stored in half precision are cast to `torch_dtype` (float32 by default, for CPUs). Raises
        ModelError, naming the component, for a folder that does not fit.
        """
        folder = resolve_pipeline_folder(name_or_path, cls.__name__, **download_kwargs)
        index = json.loads((folder / MODEL_INDEX).read_text())
        classes = declared_component_classes(folder, index, cls._component_classes, cls._optional_components)
        components = {name: None if model_class is None else load_component(
                          model_class, folder, name, torch.float32 if name in cls._float32_components else torch_dtype)
                      for name, model_class in classes.items()}
        settings = {key: value for key, value in index.items() if not key.startswith("_") and key not in classes}
        pipeline = cls(**components, **settings)
        pipeline.register_to_config(_name_or_path=public_model_name(name_or_path))
        pipeline._read_training_record(folder)
        pipeline._check_components_fit()
        return pipeline.eval_mode()

    def _check_components_fit(self) -> None:
        """Raise ModelError when the loaded components do not work together."""

    def _read_training_record(self, folder: Path) -> None:
        self.training_record = read_json_record(folder / TRAINING_RECORD)

    @property
    def is_trained(self) -> bool:
        return self.training_record is not None

    def eval_mode(self):
        """Put every model component in eval mode without gradients; returns the pipeline."""
        for component in self.components.values():
            if isinstance(component, torch.nn.Module):
                component.eval().requires_grad_(False)
        return self

    def half_precision(self):
        """Every model component in float16, to save at half the size (they load as float32); returns the pipeline."""
        for component in self.components.values():
            if isinstance(component, torch.nn.Module):
                component.half()  # diffusers' .to(dtype) warns about float32 modules these models do not have
        return self

    def to(self, *args, **kwargs):
        """Move the components, and the speech front end's network (wav2vec 2.0 / HuBERT) with them."""
        pipeline = super().to(*args, **kwargs)
        if getattr(self, "_feature_extractor", None) is not None:
            self._feature_extractor.to(self.device)
        return pipeline

    def warn_if_untrained(self) -> None:
        if not self.is_trained:
            logger.warning("model %s has no training record: it is untrained or its provenance is unknown",
                           self.config.get("_name_or_path"))

    @staticmethod
    def frames_as(frames: np.ndarray, output_type: str):
        """uint8 frames [T,H,W,3] as `output_type` asks: "np" (as they are), "pt" (float [T,3,H,W] in 0..1) or "pil"."""
        if output_type == "np":
            return frames
        if output_type == "pt":
            return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        if output_type == "pil":
            return [Image.fromarray(frame) for frame in frames]
        raise TalkingHeadError(f"unknown output_type {output_type!r}; choose np, pt or pil")

    def video_metadata(self, **settings) -> dict:
        """Tags for the output file: synthetic, which model, whether it was trained, and the settings."""
        return {"model": public_model_name(self.config.get("_name_or_path", "unknown")), "pipeline": type(self).__name__,
                **{key: str(value) for key, value in settings.items()}, "trained": str(self.is_trained).lower()}

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Save every component (safetensors) plus the training record and a model card (README.md); the configs
        name the model it came from by its public name, never by a local path."""
        super().save_pretrained(save_directory, **kwargs)
        _name_configs_publicly(Path(save_directory))
        if self.training_record is not None:
            (Path(save_directory) / TRAINING_RECORD).write_text(json.dumps(self.training_record, indent=2))
        licences = {}
        for name, component in self.components.items():
            licence = getattr(getattr(component, "config", None), "licence", None)
            if not licence:
                continue
            licences[COMPONENT_TITLES.get(type(component).__name__, name).format(name=name)] = licence
            if not (Path(save_directory) / name / "LICENSE").exists():  # transformers' models do not write it
                (Path(save_directory) / name / "LICENSE").write_text(licence)
        write_model_card(Path(save_directory), type(self).__name__, self.training_record, licences)

    def push_to_hub(self, repo_id: str, private: bool | None = None, token: str | None = None,
                    commit_message: str | None = None) -> str:
        """Save to a temporary folder (with the model card) and upload it as the Hub repo `repo_id`."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            api.upload_folder(repo_id=repo_id, folder_path=folder,
                              commit_message=commit_message or f"Upload {type(self).__name__}")
        return repo_id
