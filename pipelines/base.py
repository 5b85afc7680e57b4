"""What both talking-head pipelines share: the training record, saving with a model card, the Hub, eval mode."""

import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

from .model_card import write_model_card

logger = logging.getLogger(__name__)

TRAINING_RECORD = "training.json"


class TalkingHeadPipeline(DiffusionPipeline):
    """A diffusers pipeline that carries how it was trained (`training.json`) and says when it was not."""

    training_record: dict | None = None

    def _read_training_record(self, folder: Path) -> None:
        record = folder / TRAINING_RECORD
        self.training_record = json.loads(record.read_text()) if record.exists() else None

    @property
    def is_trained(self) -> bool:
        return self.training_record is not None

    def eval_mode(self):
        """Put every model component in eval mode without gradients; returns the pipeline."""
        for component in self.components.values():
            if isinstance(component, torch.nn.Module):
                component.eval().requires_grad_(False)
        return self

    def warn_if_untrained(self) -> None:
        if not self.is_trained:
            logger.warning("model %s has no training record: it is untrained or its provenance is unknown",
                           self.config.get("_name_or_path"))

    @staticmethod
    def _run_to_end(steps, callback) -> None:
        """Run a `generate_video` iteration to its end, passing the frame progress to `callback(done, total)`."""
        for stage, done, total in steps:
            if callback is not None and stage == "frames":
                callback(done, total)

    def video_metadata(self, **settings) -> dict:
        """Tags for the output file: synthetic, which model, whether it was trained, and the settings."""
        return {"model": str(self.config.get("_name_or_path", "unknown")), "pipeline": type(self).__name__,
                **{key: str(value) for key, value in settings.items()}, "trained": str(self.is_trained).lower()}

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        """Save every component (safetensors) plus the training record and a model card (README.md)."""
        super().save_pretrained(save_directory, **kwargs)
        if self.training_record is not None:
            (Path(save_directory) / TRAINING_RECORD).write_text(json.dumps(self.training_record, indent=2))
        write_model_card(Path(save_directory), type(self).__name__, self.training_record)

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
