"""Finding a pipeline folder from a Hub repo id or a local path, and checking it fits."""

import json
import os
from pathlib import Path

from diffusers.utils import is_accelerate_available

from ..errors import ModelError
from ..hub_models.autoencoders import autoencoder_class

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
        except LocalEntryNotFoundError as error:
            raise ModelError(f"cannot download {name_or_path}: offline and not in the local cache ({error})") from None
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


def load_component(model_class, folder: Path, component: str, required: bool = True, **load_kwargs):
    """Load one subfolder of a pipeline folder with `model_class`, or None when optional and absent."""
    subfolder = folder / component
    if not subfolder.is_dir():
        if required:
            raise ModelError(f"{folder} has no '{component}' folder, which this pipeline needs")
        return None
    try:
        # Without accelerate, diffusers would warn on every component that it falls back to this.
        return model_class.from_pretrained(subfolder, low_cpu_mem_usage=is_accelerate_available(), **load_kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise ModelError(f"the '{component}' folder of {folder} does not fit {model_class.__name__}: {error}") from None


def load_autoencoder_component(folder: Path, required: bool = True, **load_kwargs):
    """Load a pipeline folder's `vae` with the frame autoencoder class its config names, or None when optional and absent."""
    model_class = autoencoder_class(folder / "vae") if (folder / "vae").is_dir() else None
    return load_component(model_class, folder, "vae", required=required, **load_kwargs)


def declared_components(folder: Path) -> set[str]:
    """The components a pipeline folder's model_index.json says it holds (entries that are not [null, null])."""
    index = json.loads((folder / MODEL_INDEX).read_text())
    return {name for name, entry in index.items()
            if not name.startswith("_") and isinstance(entry, list) and entry and entry[0] is not None}
