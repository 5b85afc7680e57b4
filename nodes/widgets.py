"""Input specs several nodes share, in ComfyUI's classic INPUT_TYPES form: (type, options with a tooltip)."""

from ..faces.landmarks import LANDMARK_BACKENDS
from ..pipelines.settings import DEFAULT_SETTINGS, MAX_BATCH_SIZE, MAX_STEPS, PAPER_SETTINGS, SAMPLER_NAMES

CATEGORY = "talking_head"
DAE_CATEGORY = f"{CATEGORY}/DAE-Talker"
LANDMARK_CATEGORY = f"{CATEGORY}/landmark-guided"

MAX_SEED = 0xFFFFFFFFFFFFFFFF


def steps(pipeline: str) -> tuple:
    default, paper = DEFAULT_SETTINGS[pipeline], PAPER_SETTINGS[pipeline]
    return ("INT", {"default": default.num_inference_steps, "min": 1, "max": MAX_STEPS,
                    "tooltip": f"Denoising steps per frame; the paper uses {paper.num_inference_steps} "
                               f"{paper.sampler.upper()} steps. Fewer is faster and softer."})


SAMPLER = (list(SAMPLER_NAMES), {"default": DEFAULT_SETTINGS["dae"].sampler,
                                 "tooltip": "Deterministic sampler built from the model's noise schedule (ddim is the "
                                            "paper's; dpm++ and unipc need fewer steps)."})
SEED = ("INT", {"default": DEFAULT_SETTINGS["dae"].seed, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                "tooltip": "Seed of the one noise image every frame starts from."})
BATCH_SIZE = ("INT", {"default": DEFAULT_SETTINGS["dae"].batch_size, "min": 1, "max": MAX_BATCH_SIZE,
                      "tooltip": "Frames denoised together; lower it when memory runs short. Cancel takes effect between batches."})
LANDMARK_BACKEND = (list(LANDMARK_BACKENDS), {"default": "dlib",
                                              "tooltip": "68-point landmark detector: dlib (the paper's, offline) or "
                                                         "face_alignment (downloads its weights on first use)."})
FRAME_RATE = ("FLOAT", {"default": 25.0, "min": 1.0, "max": 240.0, "step": 0.01,
                        "tooltip": "Frame rate of the incoming frames (GetVideoComponents' fps); they are resampled to the model's."})
