"""Your own avatar in one step: DAE-Talker trained on a person's footage within a time budget
(`talking-head train avatar`, the ComfyUI node "Train DAE-Talker avatar", the demo's "Make your avatar" tab).

The recipe, stage by stage, in a work folder beside the output (`<out>.work`), each stage resumable:
1. the footage is checked in seconds (a face in most of it, one person, enough speech, not cut every few seconds)
   and refused with one line saying what is wrong and what is needed;
2. it is prepared: 128x128 face crops, the speech, the landmarks; the last 10 % of each video is held back;
3. the diffusion autoencoder (with the training-only mouth head) starts from the bundled DAE-Talker's decoder,
   semantic encoder and TAEF2 latent, and learns the new face;
4. speech2latent learns the new face's codes from speech, on the bundled model's speech features (Whisper's);
5. the result is measured on the held-back part and written with a model card as a pipeline folder that
   `generate --model`, the loaders and the demo take as it is.

`minutes` is the whole budget: what preparing took is taken off, a little is kept for the evaluation, and the rest
is split between the two trainings (AVATAR_RECIPE). Training checkpoints every few minutes and after a Ctrl-C or a
cancel; `resume=True` goes on from there. On a GPU it trains there, in bf16.
"""

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundled import BUNDLED_MODELS, DAE_TALKER
from ..errors import TalkingHeadError, VideoError
from ..media.audio import SAMPLE_RATE, load_audio, sound_seconds
from ..media.video import probe_video, read_video_frames
from ..pipelines.base import default_device, public_model_name
from ..pipelines.dae_talker import DAETalkerPipeline
from ..pipelines.settings import DEFAULT_SETTINGS


DEFAULT_MINUTES = 60.0
STATE_FILE = "avatar.json"
# Footage an avatar can be made from (checked before anything else runs).
MIN_SPEECH_SECONDS = 40.0  # sound above silence; the README's guidance is minutes
MIN_FACE_FRACTION = 0.8  # of the sampled seconds
MAX_SEVERAL_FACES_FRACTION = 0.2
MIN_SHOT_SECONDS = 8.0  # footage cut more often than this on average is refused
SAMPLES_PER_SECOND = 1.0
SECOND_FACE_AREA = 0.25  # a second face counts when it is at least this fraction of the largest one's area
CUT_HISTOGRAM_CORRELATION = 0.5  # consecutive samples whose colour histograms correlate less are a cut


@dataclass(frozen=True)
class AvatarRecipe:
    """How an avatar is made: the crops, the held-back part, the two trainings and how the budget is split."""

    resolution: int = 128
    crop_scale: float = 2.0
    held_back_fraction: float = 0.1
    mouth_head_weight: float = 0.5
    dae_learning_rate: float = 3e-4
    speech2latent_preset: str = "small"
    speech2latent_learning_rate: float = 3e-4
    speech2latent_share: float = 0.15  # of the training minutes; the DAE has the rest
    evaluation_seconds_per_frame: float = 0.2  # kept aside from the budget per held-back frame (2 CPU cores)
    checkpoint_minutes: float = 5.0


AVATAR_RECIPE = AvatarRecipe()


@dataclass(frozen=True)
class AvatarProgress:
    """Where an avatar run is: its stage ("check", "prepare", "dae", "speech2latent", "evaluate", "done"), the
    fraction of that stage done, and the seconds of the budget left (None before the budget is planned)."""

    stage: str
    fraction: float
    seconds_left: float | None


@dataclass(frozen=True)
class FootageReport:
    """What the footage check found: seconds of sound, sampled seconds, how many showed a face or several, cuts."""

    speech_seconds: float
    sampled: int
    with_face: int
    with_several_faces: int
    cuts: int
    duration_seconds: float


def check_footage(videos: list[Path], landmarker=None) -> FootageReport:
    """Refuse footage that cannot make an avatar, with one line saying what is wrong and what is needed: a file that
    is not a video with sound, no face, several people, too little speech, or cuts every few seconds."""
    from ..faces.landmarks import get_landmarker

    landmarker = landmarker or get_landmarker("dlib")
    speech = duration = 0.0
    sampled = with_face = with_several = cuts = 0
    for video in videos:
        if not video.is_file():
            raise VideoError(f"video not found: {video}")
        info = probe_video(video)
        if info["num_frames"] < 2:
            raise VideoError(f"{video.name} is a still image, not footage: give a video of the person speaking")
        if not info["has_audio"]:
            raise VideoError(f"{video.name} has no sound: an avatar learns the mouth from the speech that goes with it")
        duration += info["duration"]
        speech += sound_seconds(load_audio(video, allow_silence=True), SAMPLE_RATE)
        previous_histogram = None
        for batch in read_video_frames(video, fps=SAMPLES_PER_SECOND, batch=16):
            for frame in batch:
                boxes = landmarker.detect(frame)
                sampled += 1
                with_face += bool(boxes)
                with_several += len(boxes) > 1 and _area(boxes[1]) >= SECOND_FACE_AREA * _area(boxes[0])
                histogram = _colour_histogram(frame)
                if previous_histogram is not None:
                    cuts += _correlation(histogram, previous_histogram) < CUT_HISTOGRAM_CORRELATION
                previous_histogram = histogram
    report = FootageReport(speech, sampled, with_face, with_several, cuts, duration)
    if with_face < MIN_FACE_FRACTION * sampled:
        raise TalkingHeadError(f"a face was found in only {with_face} of {sampled} seconds sampled from the footage; "
                               "an avatar needs the person's face in view (frontal, well lit) nearly all the time")
    if with_several > MAX_SEVERAL_FACES_FRACTION * sampled:
        raise TalkingHeadError(f"{with_several} of {sampled} seconds sampled show two or more people; an avatar is "
                               "one person: give footage of that person alone")
    if speech < MIN_SPEECH_SECONDS:
        raise TalkingHeadError(f"the footage holds {speech:.0f} s of speech; an avatar needs at least "
                               f"{MIN_SPEECH_SECONDS:.0f} s, and a few minutes make a better one")
    if cuts and duration / (cuts + len(videos)) < MIN_SHOT_SECONDS:
        raise TalkingHeadError(f"the footage is cut {cuts} times in {duration:.0f} s (a shot every "
                               f"{duration / (cuts + len(videos)):.1f} s on average); an avatar needs continuous "
                               f"shots of at least {MIN_SHOT_SECONDS:.0f} s from one camera")
    return report


def _area(box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _colour_histogram(frame: np.ndarray) -> np.ndarray:
    """A normalised 8x8x8 colour histogram of a frame."""
    bins = (frame.reshape(-1, 3) // 32).astype(np.int64)
    histogram = np.bincount(bins[:, 0] * 64 + bins[:, 1] * 8 + bins[:, 2], minlength=512).astype(np.float64)
    return histogram / histogram.sum()


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-12))


def train_avatar(videos: list[str | os.PathLike], output: str | os.PathLike, *, minutes: float = DEFAULT_MINUTES,
                 resume: bool = False, name: str | None = None,
                 progress: Callable[[AvatarProgress], None] | None = None,
                 recipe: AvatarRecipe = AVATAR_RECIPE, base_model: str | os.PathLike = BUNDLED_MODELS[DAE_TALKER],
                 work_dir: str | os.PathLike | None = None) -> Path:
    """Make a DAE-Talker avatar of the person in `videos` within `minutes`, as a pipeline folder at `output`.

    The work (prepared footage, checkpoints) goes to `work_dir` (default `<output>.work`); with `resume` a run that
    was stopped goes on from its last checkpoint. `progress(AvatarProgress)` follows the stages; it may raise to stop
    the run, which then keeps a checkpoint. Returns `output`. Raises TalkingHeadError for footage that cannot make an
    avatar, before anything is written.
    """
    videos = [Path(video).resolve() for video in videos]
    output = Path(output)
    work = Path(work_dir) if work_dir is not None else output.with_name(output.name + ".work")
    if not videos:
        raise TalkingHeadError("give at least one video of the person speaking")
    if minutes <= 0:
        raise TalkingHeadError(f"the budget must be some minutes, not {minutes}")
    run = _AvatarRun(videos, output, work, minutes, name or output.name, progress or (lambda report: None), recipe,
                     Path(base_model))
    return run.go(resume)


class _AvatarRun:
    """One avatar run: its state file in the work folder says which stages are done and how the budget was split."""

    def __init__(self, videos, output, work, minutes, name, progress, recipe, base_model):
        self.videos, self.output, self.work, self.minutes, self.name = videos, output, work, minutes, name
        self.progress, self.recipe, self.base_model = progress, recipe, base_model
        self.state: dict = {}

    # -- the state file --------------------------------------------------------------------------
    def _footage(self) -> list[dict]:
        return [{"name": video.name, "bytes": video.stat().st_size} for video in self.videos]

    def _open(self, resume: bool) -> None:
        path = self.work / STATE_FILE
        if path.exists():
            state = json.loads(path.read_text())
            if not resume:
                raise TalkingHeadError(f"{self.work} already holds an avatar run; pass --resume to go on with it, or "
                                       "remove that folder to start again")
            if state["footage"] != self._footage():
                names = ", ".join(video["name"] for video in state["footage"])
                raise TalkingHeadError(f"{self.work} holds a run on other footage ({names}); remove that folder to "
                                       "start again")
            self.state = state
            return
        self.state = {"footage": self._footage(), "minutes": self.minutes, "done": []}

    def _save(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        temporary = self.work / (STATE_FILE + ".tmp")
        temporary.write_text(json.dumps(self.state, indent=2))
        os.replace(temporary, self.work / STATE_FILE)

    def _finish(self, stage: str, **facts) -> None:
        self.state["done"].append(stage)
        self.state.update(facts)
        self._save()

    # -- the stages ------------------------------------------------------------------------------
    def go(self, resume: bool) -> Path:
        self._open(resume)
        started = time.monotonic()
        if "check" not in self.state["done"]:
            self.progress(AvatarProgress("check", 0.0, None))
            report = check_footage(self.videos)
            self._finish("check", footage_check=report.__dict__)
        if "prepare" not in self.state["done"]:
            self.progress(AvatarProgress("prepare", 0.0, None))
            held_back_frames = self._prepare()
            prepare_minutes = (time.monotonic() - started) / 60
            evaluation = held_back_frames * self.recipe.evaluation_seconds_per_frame / 60
            training = max(self.minutes / 4, self.minutes - prepare_minutes - evaluation)  # a quarter at least
            s2l = training * self.recipe.speech2latent_share
            self._finish("prepare", prepare_minutes=round(prepare_minutes, 2),
                         plan={"dae_minutes": round(training - s2l, 2), "speech2latent_minutes": round(s2l, 2),
                               "evaluation_minutes": round(evaluation, 2)})
        if "dae" not in self.state["done"]:
            self._train_dae()
            self._finish("dae")
        if "speech2latent" not in self.state["done"]:
            self._train_speech2latent()
            self._finish("speech2latent")
        if "evaluate" not in self.state["done"]:
            self.progress(AvatarProgress("evaluate", 0.0, self.state["plan"]["evaluation_minutes"] * 60))
            self._evaluate()
            self._finish("evaluate")
        self._write_output()
        self.progress(AvatarProgress("done", 1.0, 0.0))
        return self.output

    @property
    def dataset_dir(self) -> Path:
        return self.work / "footage"

    def _prepare(self) -> int:
        """Prepare the footage and encode its frames into the base model's latent (so that this time, which grows
        with the footage, is taken off the budget before it is split); returns the number of held-back frames."""
        from ..data.dataset import TalkingHeadDataset
        from ..data.prepare import prepare_dataset
        from .dae_task import clip_raw_latents
        from .latent_cache import module_fingerprint

        prepare_dataset(self.videos, self.dataset_dir, resolution=self.recipe.resolution,
                        val_fraction=self.recipe.held_back_fraction, crop_scale=self.recipe.crop_scale,
                        overwrite=True, progress=False)
        dataset = TalkingHeadDataset(self.dataset_dir)
        vae = DAETalkerPipeline.from_pretrained(self.base_model).vae
        if vae is not None:  # a base model in pixel space has no latent to encode
            vae = vae.to(default_device())
            fingerprint = module_fingerprint(vae)
            for clip in dataset.clips:
                clip_raw_latents(dataset, clip, self.recipe.resolution, vae, fingerprint)
        return sum(clip.val_range[1] - clip.val_range[0] for clip in dataset.clips)

    def _seconds_left(self, stage: str, trained_seconds: float) -> float:
        plan = self.state["plan"]
        stage_left = max(0.0, plan[f"{stage}_minutes"] * 60 - trained_seconds)
        later = plan["evaluation_minutes"] + (plan["speech2latent_minutes"] if stage == "dae" else 0.0)
        return stage_left + later * 60

    def _trainer(self, task, stage: str, learning_rate: float, validate_every: int, sample_every: int):
        from .loop import TrainConfig, Trainer

        minutes = self.state["plan"][f"{stage}_minutes"]
        config = TrainConfig(output_dir=str(self.work / stage), max_minutes=minutes, learning_rate=learning_rate,
                             checkpoint_minutes=self.recipe.checkpoint_minutes, validate_every=validate_every,
                             sample_every=sample_every,
                             mixed_precision="bf16" if default_device().type == "cuda" else "no")

        def on_step(report) -> None:
            fraction = min(1.0, report.elapsed_seconds / report.budget_seconds)
            self.progress(AvatarProgress(stage, fraction, self._seconds_left(stage, report.elapsed_seconds)))

        return Trainer(task, config, on_step=on_step)

    def _train_dae(self) -> None:
        from ..data.dataset import TalkingHeadDataset
        from .dae_task import DAETask

        self.progress(AvatarProgress("dae", 0.0, self._seconds_left("dae", 0.0)))
        task = DAETask(TalkingHeadDataset(self.dataset_dir), image_size=self.recipe.resolution,
                       init=self.base_model, mouth_head_weight=self.recipe.mouth_head_weight)
        self._trainer(task, "dae", self.recipe.dae_learning_rate, validate_every=200, sample_every=1000).train()

    def _train_speech2latent(self) -> None:
        from ..data.dataset import TalkingHeadDataset
        from .speech2latent_task import Speech2LatentTask

        self.progress(AvatarProgress("speech2latent", 0.0, self._seconds_left("speech2latent", 0.0)))
        base = DAETalkerPipeline.from_pretrained(self.base_model)
        task = Speech2LatentTask(TalkingHeadDataset(self.dataset_dir), self.work / "dae" / "model",
                                 front_end=base.feature_extractor, preset=self.recipe.speech2latent_preset)
        self._trainer(task, "speech2latent", self.recipe.speech2latent_learning_rate, validate_every=100,
                      sample_every=500).train()

    def _evaluate(self) -> None:
        from ..data.dataset import TalkingHeadDataset
        from ..evaluation.holdout import evaluate_on_holdout

        pipeline = DAETalkerPipeline.from_pretrained(self.work / "speech2latent" / "model").to(default_device())
        dataset = TalkingHeadDataset(self.dataset_dir)
        settings = DEFAULT_SETTINGS["dae"]
        report = evaluate_on_holdout(pipeline, dataset, num_inference_steps=settings.num_inference_steps,
                                     sampler=settings.sampler, seed=settings.seed)
        semantic = evaluate_on_holdout(pipeline, dataset, semantic_only=True)
        report["mean"].update({key: value for key, value in semantic["mean"].items() if key.startswith("semantic_")})
        report["command"] = (f"talking-head evaluate --data {public_model_name(self.dataset_dir)} --model "
                             f"{self.name} --steps {settings.num_inference_steps} --sampler {settings.sampler}")
        (self.work / "evaluation.json").write_text(json.dumps(report, indent=2))

    def _write_output(self) -> None:
        pipeline = DAETalkerPipeline.from_pretrained(self.work / "speech2latent" / "model")
        record = dict(pipeline.training_record or {})
        record["evaluation"] = json.loads((self.work / "evaluation.json").read_text())
        record["avatar"] = {key: self.state[key] for key in ("footage", "minutes", "prepare_minutes", "plan",
                                                             "footage_check")}
        record["card"] = _card(self.name, self.state, record["evaluation"])
        pipeline.training_record = record
        staging = self.output.with_name(self.output.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            pipeline.half_precision().save_pretrained(staging)
            shutil.rmtree(self.output, ignore_errors=True)
            staging.rename(self.output)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _card(name: str, state: dict, evaluation: dict) -> dict:
    """The model card's title, data and notes: the footage it had and the held-back figures."""
    check = state["footage_check"]
    mean = evaluation["mean"]
    footage = ", ".join(f"`{video['name']}`" for video in state["footage"])
    figures = (f"mouth-opening correlation with the real video {mean['mouth_correlation']:.2f} (best lag "
               f"{mean['mouth_lag_frames']:.0f} frames), PSNR {mean['psnr']:.1f} dB, SSIM {mean['ssim']:.2f} on the "
               f"128x128 face crop, semantic read-out of the mouth {mean['semantic_mouth_readout_correlation']:.2f}")
    return {
        "title": f"DAE-Talker avatar: {name}",
        "license": "other",
        "data": (f"Made with `talking-head train avatar` from {footage}: {check['duration_seconds']:.0f} s of footage, "
                 f"{check['speech_seconds']:.0f} s of it speech. The last 10 % of each video was held back and "
                 "measures the model below. The decoder, semantic encoder and frame autoencoder started from the "
                 "bundled DAE-Talker (GRID speaker s1, Cooke et al., 2006, CC BY 4.0; TAEF2, MIT); the speech "
                 "features are Whisper's audio encoder's (OpenAI, MIT). The footage's own rights apply to these "
                 "weights: make avatars only of people who agreed."),
        "notes": (f"## Held-back figures\nFrom the held-back speech alone: {figures}. "
                  f"Budget {state['minutes']:.0f} minutes: preparing took {state['prepare_minutes']:.1f}, the "
                  f"diffusion autoencoder had {state['plan']['dae_minutes']:.1f} and speech2latent "
                  f"{state['plan']['speech2latent_minutes']:.1f}.\n\nMeasured with `{evaluation['command']}` on the "
                  "held-back part of the prepared footage (in the run's work folder)."),
    }


__all__ = ["AVATAR_RECIPE", "AvatarProgress", "AvatarRecipe", "DEFAULT_MINUTES", "FootageReport", "MIN_SPEECH_SECONDS",
           "check_footage", "train_avatar"]
