"""Deterministic samplers by name, and the denoising loop both pipelines share."""

from typing import Callable

import torch
from diffusers import (
    DDIMScheduler,
    DEISMultistepScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from ..errors import TalkingHeadError
from .settings import SAMPLER_NAMES

SAMPLERS = dict(zip(SAMPLER_NAMES, (DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler,
                                    DEISMultistepScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler)))


def make_scheduler(name: str, base: SchedulerMixin) -> SchedulerMixin:
    """A deterministic scheduler by name (see SAMPLERS), with the noise schedule of `base`."""
    try:
        scheduler_class = SAMPLERS[name.lower()]
    except KeyError:
        raise TalkingHeadError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}") from None
    if isinstance(base, scheduler_class):
        return base
    return scheduler_class.from_config(base.config)


def denoise(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: SchedulerMixin,
    initial_noise: torch.Tensor,
    num_inference_steps: int,
) -> torch.Tensor:
    """Run `scheduler` from `initial_noise` [B,C,H,W]; `predict(model_input, t)` is the network call."""
    scheduler.set_timesteps(num_inference_steps, device=initial_noise.device)
    sample = initial_noise * scheduler.init_noise_sigma
    for timestep in scheduler.timesteps:
        model_input = scheduler.scale_model_input(sample, timestep)
        sample = scheduler.step(predict(model_input, timestep), timestep, sample).prev_sample
    return sample
