"""ComfyUI's services for the nodes: model folders, device and memory, progress and cancel.

Every function falls back to plain behaviour when ComfyUI is absent (tests, scripts), so the nodes can be
defined, imported and run without it.
"""

import contextlib
import functools
import importlib
import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..errors import TalkingHeadError
from ..pipelines.base import default_device

# The folder under ComfyUI's models/ that holds the pack's pipelines; Hub downloads go to its hub/ cache.
MODEL_FOLDER = "talking_head"
HUB_CACHE = "hub"
# Outside ComfyUI, models are looked for here, and saved videos go here.
STANDALONE_MODELS = Path(os.environ.get("TALKING_HEAD_MODELS", "~/.cache/talking_head/models")).expanduser()
STANDALONE_OUTPUT = Path(os.environ.get("TALKING_HEAD_OUTPUT", "output"))
STANDALONE_INPUT = Path(os.environ.get("TALKING_HEAD_INPUT", "input"))
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg")
# Progress reaches the UI at most this often (seconds), and always at the end.
PROGRESS_INTERVAL = 0.25


def _comfy(module: str):
    """A ComfyUI module when running inside ComfyUI, else None."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def model_folders() -> list[Path]:
    """The folders that hold the pack's models: ComfyUI's models/talking_head (registered on first use)."""
    folder_paths = _comfy("folder_paths")
    if folder_paths is None:
        return [STANDALONE_MODELS]
    if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))
    return [Path(folder) for folder in folder_paths.get_folder_paths(MODEL_FOLDER)]


def hub_cache() -> Path:
    """Where Hub downloads go: models/talking_head/hub (the Hugging Face cache layout)."""
    return model_folders()[0] / HUB_CACHE


def output_file(filename_prefix: str, suffix: str) -> tuple[Path, dict]:
    """A new file under ComfyUI's output folder named as its save nodes name theirs (PREFIX_00001_.mp4, counting
    up), and the entry that shows it in the UI ({"filename", "subfolder", "type": "output"})."""
    folder_paths = _comfy("folder_paths")
    if folder_paths is not None:
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, folder_paths.get_output_directory())
    else:
        prefix = STANDALONE_OUTPUT / filename_prefix
        folder, name, subfolder = prefix.parent, prefix.name, str(Path(filename_prefix).parent).strip(".")
        folder.mkdir(parents=True, exist_ok=True)
        counter = 1 + max((int(p.name[len(name) + 1:-len(suffix) - 1]) for p in folder.glob(f"{name}_*_{suffix}")
                           if p.name[len(name) + 1:-len(suffix) - 1].isdigit()), default=0)
    filename = f"{name}_{counter:05}_{suffix}"
    return Path(folder) / filename, {"filename": filename, "subfolder": subfolder, "type": "output"}


def input_folder() -> Path:
    """ComfyUI's input folder (where uploads go), or the standalone one."""
    folder_paths = _comfy("folder_paths")
    return Path(folder_paths.get_input_directory()) if folder_paths is not None else STANDALONE_INPUT


def input_videos() -> list[str]:
    """The video files in the input folder, by name."""
    folder = input_folder()
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if path.suffix.lower() in VIDEO_SUFFIXES)


def device() -> torch.device:
    """The device ComfyUI computes on, or CUDA when present, else the CPU."""
    model_management = _comfy("comfy.model_management")
    if model_management is not None:
        return model_management.get_torch_device()
    return default_device()


def offload_device() -> torch.device:
    """Where models wait between runs: ComfyUI's offload device, or the CPU."""
    model_management = _comfy("comfy.model_management")
    return model_management.unet_offload_device() if model_management is not None else torch.device("cpu")


@contextlib.contextmanager
def on_device(*modules: torch.nn.Module):
    """Move `modules` to the compute device for the block (asking ComfyUI to free room first) and back after."""
    target = device()
    model_management = _comfy("comfy.model_management")
    if target.type != "cpu" and model_management is not None:
        needed = sum(parameter.numel() * parameter.element_size() for module in modules for parameter in module.parameters())
        model_management.free_memory(needed * 2, target)
    for module in modules:
        module.to(target)
    try:
        yield target
    finally:
        for module in modules:
            module.to(offload_device())
        if model_management is not None:
            model_management.soft_empty_cache()


def check_interrupted() -> None:
    """Raise ComfyUI's interrupt exception when the user cancelled the run; nothing outside ComfyUI."""
    model_management = _comfy("comfy.model_management")
    if model_management is not None:
        model_management.throw_exception_if_processing_interrupted()


class Progress:
    """A progress bar over `total` units: ComfyUI's when present (throttled), else tqdm's.

    `update(done)` also checks for cancel, so a run stops at the next update after the user cancels.
    """

    def __init__(self, total: int, description: str, unit: str = "frame"):
        self.total = total
        self._last_sent = 0.0
        comfy_utils = _comfy("comfy.utils")
        self._comfy_bar = comfy_utils.ProgressBar(total) if comfy_utils is not None else None
        self._tqdm = None if self._comfy_bar is not None else tqdm(total=total, desc=description, unit=unit)

    def update(self, done: int) -> None:
        """Report `done` of `total` units finished."""
        check_interrupted()
        if self._tqdm is not None:
            self._tqdm.update(done - self._tqdm.n)
            if done >= self.total:
                self._tqdm.close()
            return
        now = time.monotonic()
        if done >= self.total or now - self._last_sent >= PROGRESS_INTERVAL:
            self._last_sent = now
            self._comfy_bar.update_absolute(done, self.total)


@functools.cache
def _shown_by_name(error_class: type) -> type:
    """A subclass of `error_class` that ComfyUI names by its bare class name: it prefixes an error's name with its
    module, unless that is "builtins", and a node pack's modules are named by the pack's folder path."""
    return type(error_class.__name__, (error_class,), {"__module__": "builtins", "__qualname__": error_class.__qualname__})


def readable_errors(node: type) -> type:
    """Let the node's errors read as ComfyUI shows them, "FaceError: no face found in the image", not
    "/…/custom_nodes/talking-head-diffusion.errors.FaceError: …" (the class is still a FaceError)."""
    run = getattr(node, node.FUNCTION)

    @functools.wraps(run)
    def run_with_readable_errors(self, *args, **kwargs):
        try:
            return run(self, *args, **kwargs)
        except TalkingHeadError as error:
            raise _shown_by_name(type(error))(*error.args).with_traceback(error.__traceback__) from None

    setattr(node, node.FUNCTION, run_with_readable_errors)
    return node
