"""How frames are sampled, and the defaults: the one place the pipelines and every front end (command line, Gradio,
ComfyUI nodes, evaluate) take them from.

The default is the fast one: DPM-Solver++ with 10 steps for DAE-Talker and 15 for the landmark pipeline.
DAE-Talker's 10 steps draw the bundled model's held-back frames as well as 25 do (from their own codes, against the
real frames: 24.1 dB with 10 steps, 23.9 dB with 25, 24.2 dB with 25 DDIM steps); the landmark pipeline's 15 steps
differ from the paper's 200 DDIM steps by about 55 dB (README, Performance). `PAPER_SETTINGS` are the papers' own
(`--paper` on the command line). The landmark pipeline's motion scale (how far A2L's mouth and jaw move) has its
default and range here too, and so has its choice of lower face (`LOWER_FACES`).
"""

import numbers
from dataclasses import dataclass

from ..errors import TalkingHeadError

SAMPLER_NAMES = ("ddim", "dpm++", "unipc", "deis", "euler", "heun")
MAX_STEPS = 1000  # the noise schedules' training steps
MAX_BATCH_SIZE = 1024


@dataclass(frozen=True)
class SamplingSettings:
    """Sampler, steps, the seed of the one noise image every frame starts from, and frames denoised at once."""

    num_inference_steps: int
    sampler: str = "dpm++"
    seed: int = 0
    batch_size: int = 16

    def __post_init__(self):
        _check_whole("steps", self.num_inference_steps, 1, MAX_STEPS)
        _check_whole("batch size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_whole("seed", self.seed, 0, 2**64 - 1)
        if self.sampler not in SAMPLER_NAMES:
            raise TalkingHeadError(f"unknown sampler {self.sampler!r}; choose one of {', '.join(SAMPLER_NAMES)}")

    def updated(self, **changes) -> "SamplingSettings":
        """These settings with the given fields changed; fields given as None keep their value."""
        fields = {name: getattr(self, name) for name in ("num_inference_steps", "sampler", "seed", "batch_size")}
        return SamplingSettings(**{**fields, **{name: value for name, value in changes.items() if value is not None}})


def _check_whole(what: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TalkingHeadError(f"{what} must be a whole number from {low} to {high}, not {value!r}")


DEFAULT_SETTINGS = {"dae": SamplingSettings(10), "landmark": SamplingSettings(15)}
PAPER_SETTINGS = {"dae": SamplingSettings(100, "ddim"), "landmark": SamplingSettings(200, "ddim")}

# A2L's motion as its model measured it (its `motion_gain`); the landmark pipeline's `motion_scale` multiplies it.
DEFAULT_MOTION_SCALE = 1.0
MAX_MOTION_SCALE = 4.0


def check_motion_scale(motion_scale: float) -> None:
    """One clear error for a motion scale outside 0..MAX_MOTION_SCALE."""
    if isinstance(motion_scale, bool) or not isinstance(motion_scale, numbers.Real) \
            or not 0 <= motion_scale <= MAX_MOTION_SCALE:
        raise TalkingHeadError(f"motion scale must be a number from 0 to {MAX_MOTION_SCALE:g}, not {motion_scale!r}")


# How the landmark pipeline makes each frame's lower face: "warped", the portrait's own lower face moved onto the
# frame's landmarks with L2V's drawing inside the mouth (teeth and tongue, which a warp cannot show); "drawn", all of
# it drawn by L2V (the paper's way, blotchy on faces unlike its training footage).
LOWER_FACES = ("warped", "drawn")
DEFAULT_LOWER_FACE = "warped"


def check_lower_face(lower_face: str) -> None:
    """One clear error for a lower face other than those of LOWER_FACES."""
    if lower_face not in LOWER_FACES:
        raise TalkingHeadError(f"lower face must be one of {', '.join(LOWER_FACES)}, not {lower_face!r}")
