"""One training loop for every model of the project, on accelerate.

A *task* says what is trained and how (its modules, loss, validation, samples and export); the loop owns
the rest: devices and mixed precision through accelerate, EMA weights, a time or step budget, periodic
checkpoints written atomically, resuming after a crash, and a JSON-lines log.
"""

import json
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
LOG_FILE = "log.jsonl"


@dataclass
class TrainConfig:
    """Settings shared by every training task."""

    output_dir: str
    max_steps: int = 100_000
    max_minutes: float = math.inf
    batch_size: int = 16
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    checkpoint_minutes: float = 5.0
    log_every: int = 50
    validate_every: int = 500
    sample_every: int = 2000
    mixed_precision: str = "no"
    seed: int = 0
    resume: bool = True


class TrainingTask(Protocol):
    """What a model's training supplies to the loop."""

    def modules(self) -> dict[str, torch.nn.Module]:
        """The trained modules by name."""

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        """An endless stream of training batches."""

    def loss(self, modules: dict[str, torch.nn.Module], batch: dict) -> torch.Tensor:
        """The training loss for one batch."""

    def validate(self, modules: dict[str, torch.nn.Module]) -> dict[str, float]:
        """Validation figures on held-back data (modules hold the EMA weights)."""

    def save_samples(self, modules: dict[str, torch.nn.Module], path: Path) -> dict[str, float]:
        """Write a sample image to `path`; may return figures measured on it."""

    def export(self, modules: dict[str, torch.nn.Module], output_dir: Path, training_summary: dict) -> None:
        """Save the trained result (EMA weights) where users load it from."""


def module_device(module: torch.nn.Module) -> torch.device:
    """The device a module's weights are on."""
    return next(module.parameters()).device


def _replace_directory(staging: Path, final: Path) -> None:
    """Swap a fully written `staging` folder into place so `final` is never half-written.

    SIGTERM and SIGINT wait for the two renames, so a stopped run keeps the old folder or the new one.
    """
    retired = final.with_name(final.name + ".old")
    shutil.rmtree(retired, ignore_errors=True)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        if final.exists():
            os.replace(final, retired)
        os.replace(staging, final)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    shutil.rmtree(retired, ignore_errors=True)


@dataclass(frozen=True)
class StepReport:
    """Where a run is, after each step: its step, the seconds it has trained (over every session) and its budget."""

    step: int
    elapsed_seconds: float
    budget_seconds: float
    max_steps: int


class Trainer:
    """Runs a `TrainingTask` under accelerate until its step or time budget is spent.

    `on_step(StepReport)` is called after every step; it may raise to stop the run (Ctrl-C and SIGTERM do the same):
    the run then writes a checkpoint before the exception goes on, so that running it again resumes there.
    """

    def __init__(self, task: TrainingTask, config: TrainConfig, on_step: Callable[[StepReport], None] | None = None):
        from accelerate import Accelerator

        self.task = task
        self.config = config
        self.on_step = on_step
        self.output_dir = Path(config.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision)
        torch.manual_seed(config.seed)
        self.modules = task.modules()
        parameters = [p for module in self.modules.values() for p in module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            parameters, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.emas = {name: EMAModel(module.parameters(), decay=config.ema_decay) for name, module in self.modules.items()}
        self.step = 0
        self.elapsed_seconds = 0.0
        if config.resume and (self.output_dir / CHECKPOINT_DIR).exists():
            self._load_checkpoint(self.output_dir / CHECKPOINT_DIR)
        names = list(self.modules)
        prepared = self.accelerator.prepare(*self.modules.values(), self.optimizer)
        self.modules = dict(zip(names, prepared[:-1]))
        self.optimizer = prepared[-1]
        for ema in self.emas.values():  # the shadow weights live beside the trained ones (on the GPU, if any)
            ema.to(self.accelerator.device)

    # -- checkpoints ------------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return
        staging = self.output_dir / (CHECKPOINT_DIR + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            self._write_checkpoint(staging)
            _replace_directory(staging, self.output_dir / CHECKPOINT_DIR)
        finally:  # stopped half-way: the last complete checkpoint stays, the partial one goes
            shutil.rmtree(staging, ignore_errors=True)

    def _write_checkpoint(self, staging: Path) -> None:
        for name, module in self.modules.items():
            state = self.accelerator.unwrap_model(module).state_dict()
            save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, staging / f"{name}.safetensors")
            shadow = {str(i): p.detach().contiguous().cpu() for i, p in enumerate(self.emas[name].shadow_params)}
            save_file(shadow, staging / f"{name}.ema.safetensors")
        torch.save(self.optimizer.state_dict(), staging / "optimizer.pt")
        state = {"step": self.step, "elapsed_seconds": self.elapsed_seconds, "config": asdict(self.config)}
        (staging / "state.json").write_text(json.dumps(state, indent=2, default=str))

    def _load_checkpoint(self, checkpoint: Path) -> None:
        for name, module in self.modules.items():
            module.load_state_dict(load_file(checkpoint / f"{name}.safetensors"))
            shadow = load_file(checkpoint / f"{name}.ema.safetensors")
            self.emas[name].shadow_params = [shadow[str(i)] for i in range(len(shadow))]
        self.optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        state = json.loads((checkpoint / "state.json").read_text())
        self.step = state["step"]
        for ema in self.emas.values():
            ema.optimization_step = self.step
        self.elapsed_seconds = state["elapsed_seconds"]
        logger.info("resumed from %s at step %d", checkpoint, self.step)

    # -- EMA views --------------------------------------------------------------------------------
    def ema_modules(self) -> dict[str, torch.nn.Module]:
        """Fresh copies of the modules holding the EMA weights, in eval mode."""
        import copy

        copies = {}
        for name, module in self.modules.items():
            ema_module = copy.deepcopy(self.accelerator.unwrap_model(module)).float()
            self.emas[name].copy_to(ema_module.parameters())
            copies[name] = ema_module.eval()
        return copies

    def _log(self, record: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        with open(self.output_dir / LOG_FILE, "a") as log:
            log.write(json.dumps(record) + "\n")

    def _evaluate(self, with_samples: bool) -> dict:
        if not self.accelerator.is_main_process:
            return {"step": self.step}
        ema_modules = self.ema_modules()
        with torch.no_grad():
            figures = self.task.validate(ema_modules)
            if with_samples:
                samples_dir = self.output_dir / "samples"
                samples_dir.mkdir(exist_ok=True)
                figures.update(self.task.save_samples(ema_modules, samples_dir / f"step-{self.step:07d}.png"))
        record = {"step": self.step, "elapsed_seconds": round(self.elapsed_seconds, 1), **figures}
        self._log(record)
        logger.info("validation %s", record)
        return record

    # -- the loop ---------------------------------------------------------------------------------
    def train(self) -> dict:
        """Train until the budget is spent; checkpoint, validate, export; return the last figures."""
        config = self.config
        # each process draws its own batches (with several GPUs, every process trains on different frames)
        process_seed = config.seed + self.step + 100_003 * self.accelerator.process_index
        generator = torch.Generator().manual_seed(process_seed)
        batches = self.task.batches(config.batch_size, generator)
        for module in self.modules.values():
            module.train()
        budget_seconds = config.max_minutes * 60
        last_checkpoint = time.monotonic()
        started = time.monotonic() - self.elapsed_seconds
        running_loss, running_count = 0.0, 0
        last_figures = None
        try:
            while self.step < config.max_steps and self.elapsed_seconds < budget_seconds:
                batch = {name: value.to(self.accelerator.device) for name, value in next(batches).items()}
                with self.accelerator.autocast():
                    loss = self.task.loss(self.modules, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss.item()} at step {self.step}")
                self.optimizer.zero_grad(set_to_none=True)
                self.accelerator.backward(loss)
                self.accelerator.clip_grad_norm_(
                    [p for m in self.modules.values() for p in m.parameters() if p.requires_grad], 1.0
                )
                self.optimizer.step()
                self.step += 1
                for name, module in self.modules.items():
                    self.emas[name].step(self.accelerator.unwrap_model(module).parameters())
                running_loss += loss.item()
                running_count += 1
                self.elapsed_seconds = time.monotonic() - started
                if self.step % config.log_every == 0:
                    self._log({"step": self.step, "elapsed_seconds": round(self.elapsed_seconds, 1),
                               "train_loss": running_loss / running_count})
                    running_loss, running_count = 0.0, 0
                if self.step % config.validate_every == 0:
                    last_figures = self._evaluate(with_samples=self.step % config.sample_every == 0)
                    for module in self.modules.values():
                        module.train()
                if time.monotonic() - last_checkpoint > config.checkpoint_minutes * 60:
                    self._save_checkpoint()
                    last_checkpoint = time.monotonic()
                if self.on_step is not None:
                    self.on_step(StepReport(self.step, self.elapsed_seconds, budget_seconds, config.max_steps))
        except FloatingPointError:
            raise  # diverged: the last periodic checkpoint is the one to resume from
        except BaseException:
            self._save_checkpoint()  # stopped (Ctrl-C, SIGTERM, a cancel): resume from here
            raise
        self._save_checkpoint()
        final = last_figures if last_figures and last_figures["step"] == self.step else self._evaluate(with_samples=True)
        summary = {"steps": self.step, "train_minutes": round(self.elapsed_seconds / 60, 1),
                   "batch_size": config.batch_size, "learning_rate": config.learning_rate,
                   "mixed_precision": config.mixed_precision, "final": final}
        if self.accelerator.is_main_process:
            # Written aside, then swapped in: a new export never mixes with the files of an older one.
            staging = self.output_dir / "model.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                self.task.export(self.ema_modules(), staging, summary)
                _replace_directory(staging, self.output_dir / "model")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return final
