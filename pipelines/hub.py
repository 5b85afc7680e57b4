"""Finding a pipeline folder from a Hub repo id or a local path, and checking it fits."""

import json
import os
from pathlib import Path

import torch
from diffusers.utils import is_accelerate_available
from transformers import PreTrainedModel

from ..errors import ModelError
from ..media.features import SPEECH_MODEL_KINDS, speech_model_class

MODEL_INDEX = "model_index.json"


def resolve_pipeline_folder(name_or_path: str | os.PathLike, expected_class: str, **download_kwargs) -> Path:
    """A local folder holding the pipeline: `name_or_path` itself, or a download of that Hub repo.

    Raises ModelError when the folder or repo cannot be had, or holds another kind of pipeline.
    """
    path = Path(name_or_path)
    if path.is_dir():
        folder = path
    elif path.exists() or str(name_or_path).startswith((".", "/", "~")) or str(name_or_path).count("/") != 1:
        raise ModelError(f"model folder not found: {name_or_path}")
    else:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        try:
            folder = Path(snapshot_download(str(name_or_path), **download_kwargs))
        except LocalEntryNotFoundError:
            raise ModelError(offline_message(str(name_or_path))) from None
        except (HfHubHTTPError, OSError, ValueError) as error:
            raise ModelError(f"cannot download {name_or_path} from the Hub: {error}") from None
    index_path = folder / MODEL_INDEX
    if not index_path.exists():
        raise ModelError(f"{name_or_path} is not a pipeline folder: it has no {MODEL_INDEX}")
    try:
        class_name = json.loads(index_path.read_text()).get("_class_name")
    except json.JSONDecodeError as error:
        raise ModelError(f"{index_path} is not valid JSON: {error}") from None
    if class_name != expected_class:
        raise ModelError(f"{name_or_path} holds a {class_name}, not a {expected_class}")
    return folder


def offline_message(repo_id: str) -> str:
    """One line for a Hub repo that is not in the local cache while the Hub cannot be reached."""
    return (f"the model {repo_id} is not in the local Hugging Face cache and the Hub cannot be reached (offline): "
            f"download it once with network access (`hf download {repo_id}`), or give a local folder")


def _is_class_named(taken: type, library: str, class_name: str) -> bool:
    """Whether a model_index.json entry [library, class_name] names `taken`. The project's own classes are matched
    by their module's last two names, since ComfyUI imports the pack under its folder's path, not `talking_head`."""
    module = taken.__module__
    return class_name == taken.__name__ and (library == module.split(".")[0]
                                             or library.split(".")[-2:] == module.split(".")[-2:])


def declared_component_classes(folder: Path, index: dict, component_classes: dict[str, tuple[type, ...]],
                               optional: list[str]) -> dict[str, type | None]:
    """The class to load each component of a pipeline folder with (None for an optional one it does not hold), from
    its model_index.json (`index`) and only among the classes this pipeline takes (`component_classes`): nothing
    else is imported. Raises ModelError for a component missing, unknown, of another class, or without its folder."""
    declared = {name for name, entry in index.items()
                if not name.startswith("_") and isinstance(entry, list) and entry and entry[0] is not None}
    unknown = declared - set(component_classes)
    if unknown:
        raise ModelError(f"{folder} declares components this pipeline does not have: {', '.join(sorted(unknown))}")
    chosen = {}
    for name, classes in component_classes.items():
        if name not in declared:
            if name not in optional:
                raise ModelError(f"{folder} has no '{name}' component, which this pipeline needs")
            chosen[name] = None
            continue
        library, class_name = index[name][:2]
        chosen[name] = next((taken for taken in classes if _is_class_named(taken, library, class_name)), None)
        if chosen[name] is None:
            raise ModelError(f"{folder} declares its {name} as {library}.{class_name}; this pipeline takes "
                             f"{' or '.join(taken.__name__ for taken in classes)}")
        if not (folder / name).is_dir():
            raise ModelError(f"{folder} has no '{name}' folder, which this pipeline needs")
    return chosen


def load_component(model_class: type, folder: Path, name: str, dtype: torch.dtype):
    """Load the `name` subfolder of a pipeline folder with `model_class` (weights cast to `dtype`, safetensors only)."""
    subfolder = folder / name
    try:
        if issubclass(model_class, PreTrainedModel):
            return model_class.from_pretrained(subfolder, use_safetensors=True, dtype=dtype)
        if issubclass(model_class, torch.nn.Module):
            # Without accelerate, diffusers would warn on every component that it falls back to this.
            return model_class.from_pretrained(subfolder, low_cpu_mem_usage=is_accelerate_available(),
                                               use_safetensors=True, torch_dtype=dtype)
        return model_class.from_pretrained(subfolder)  # a scheduler: a config only
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise ModelError(f"the '{name}' folder of {folder} does not fit {model_class.__name__}: {error}") from None


def check_speech_model_fits(speech_model, feature_kind: str, stage: str) -> None:
    """Raise ModelError unless `speech_model` (or its absence) fits the features `stage` was trained on."""
    if speech_model is None:
        return
    if feature_kind not in SPEECH_MODEL_KINDS:
        raise ModelError(f"the pipeline holds a {type(speech_model).__name__} speech model but its {stage} hears "
                         f"{feature_kind} features, which need none")
    if not isinstance(speech_model, speech_model_class(feature_kind)):
        raise ModelError(f"{stage} hears {feature_kind} features, which come from a "
                         f"{speech_model_class(feature_kind).__name__}, not the pipeline's {type(speech_model).__name__}")
