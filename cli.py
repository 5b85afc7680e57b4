"""The `talking-head` command line: generate, prepare, train, evaluate, convert."""

import argparse
import logging
import math
import os
import signal
import sys
from pathlib import Path

from .bundled import BUNDLED_MODELS, DAE_TALKER, LANDMARK_DIFFUSION
from .errors import TalkingHeadError
from .evaluation import ALL_METRICS as EVALUATION_METRICS
from .faces.landmarks import LANDMARK_BACKENDS as LANDMARKER_NAMES
from .media.feature_kinds import KINDS as FEATURE_KINDS
from .media.feature_kinds import LAYERS as FEATURE_LAYERS
from .pipelines.settings import (
    DEFAULT_LOWER_FACE,
    DEFAULT_MOTION_SCALE,
    LOWER_FACES,
    DEFAULT_SETTINGS,
    MAX_BATCH_SIZE,
    MAX_MOTION_SCALE,
    MAX_STEPS,
    PAPER_SETTINGS,
    SAMPLER_NAMES,
)

DEFAULT_DAE_MODEL = BUNDLED_MODELS[DAE_TALKER]
DEFAULT_LANDMARK_MODEL = BUNDLED_MODELS[LANDMARK_DIFFUSION]
# The landmark backends as the command line spells them (face-alignment, as its package is named).
LANDMARK_BACKENDS = tuple(name.replace("_", "-") for name in LANDMARKER_NAMES)


class Stopped(BaseException):
    """The run was stopped by a signal (SIGTERM or SIGINT); cleanup runs as for any error."""

    def __init__(self, signal_number: int):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


def _stop(signal_number, _frame) -> None:
    raise Stopped(signal_number)


def _integer(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`, else a usage error that names the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use {low} to {high}")
        return value

    return parse


def _add_landmark_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--motion-scale", type=float,
                        help=f"how far the mouth and jaw move, times what A2L measured when it was trained (landmark "
                             f"pipeline; 0 to {MAX_MOTION_SCALE:g}, default {DEFAULT_MOTION_SCALE:g})")
    parser.add_argument("--lower-face", choices=LOWER_FACES,
                        help="warped: the portrait's own lower face moved onto the landmarks, L2V drawing inside the "
                             "mouth; drawn: all of it drawn by L2V, as in the paper (landmark pipeline; default "
                             f"{DEFAULT_LOWER_FACE})")


def _landmark_options(args) -> tuple[float, str]:
    """The --motion-scale and --lower-face asked for (the defaults without them); refused for DAE-Talker, whose
    mouth follows its speech2latent and whose decoder draws the whole frame."""
    for option, value in (("--motion-scale", args.motion_scale), ("--lower-face", args.lower_face)):
        if value is not None and args.pipeline != "landmark":
            raise TalkingHeadError(f"{option} is for the landmark pipeline (--pipeline landmark)")
    return (DEFAULT_MOTION_SCALE if args.motion_scale is None else args.motion_scale,
            args.lower_face or DEFAULT_LOWER_FACE)


def _mp4_path(text: str) -> str:
    """An argparse type: a video to write, named .mp4 (the container written), and not an existing folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; name the mp4 file to write")
    if path.suffix.lower() != ".mp4":
        raise argparse.ArgumentTypeError(f"{text}: the output is an mp4 (h264 + aac); name it .mp4")
    return text


def _require_files(**files) -> None:
    """A clear error, before any model loads, for a named input file that is not there."""
    for what, path in files.items():
        if path is not None and Path(path).is_dir():
            raise TalkingHeadError(f"the {what.replace('_', ' ')} {path} is a folder, not a file")
        if path is not None and not Path(path).is_file():
            raise TalkingHeadError(f"{what.replace('_', ' ')} not found: {path}")


def _progress_bar():
    """A callback(done, total) that draws a tqdm bar, and a function that closes it."""
    from tqdm.auto import tqdm

    bars = []

    def report(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="frame", desc="generating"))
        bars[0].update(done - bars[0].n)

    def close() -> None:
        for bar in bars:
            bar.close()

    return report, close


def _sampling(args, pipeline: str):
    """The sampling settings asked for: the fast defaults (the papers' with --paper), changed by the options given."""
    base = (PAPER_SETTINGS if args.paper else DEFAULT_SETTINGS)[pipeline]
    return base.updated(num_inference_steps=args.steps, sampler=args.sampler, seed=args.seed, batch_size=args.batch_size)


def _generate(args) -> None:
    _require_files(audio=args.audio, portrait=args.image, video=args.video, pose_video=args.pose_from)
    if args.image and args.video:
        raise TalkingHeadError("give either --image (a portrait to animate) or --video (a video to dub), not both")
    args.sampling = _sampling(args, args.pipeline)
    args.motion_scale, args.lower_face = _landmark_options(args)
    if args.pipeline == "landmark":
        _generate_landmark(args)
        return

    from . import jobs
    from .pipelines.dae_talker import DAETalkerPipeline

    if args.image or args.video:
        raise TalkingHeadError(f"{'--image' if args.image else '--video'} is for the landmark pipeline (--pipeline "
                               "landmark); DAE-Talker draws the person it was trained on")
    pipeline = DAETalkerPipeline.from_pretrained(args.model or DEFAULT_DAE_MODEL)
    report, close = _progress_bar()
    try:
        jobs.run(jobs.dae_talker_video(pipeline, args.audio, args.output, settings=args.sampling,
                                       pose_from=args.pose_from, output_size=args.size), report)
    finally:
        close()
    print(args.output)


def _generate_landmark(args) -> None:
    from . import jobs
    from .pipelines.landmark import LandmarkDiffusionPipeline

    if not args.image and not args.video:
        raise TalkingHeadError("the landmark pipeline needs a portrait to animate (--image PHOTO) or a video to dub "
                               "(--video VIDEO)")
    if args.size:
        raise TalkingHeadError("--size is for DAE-Talker; the landmark pipeline keeps the portrait's or video's size")
    if args.video and (args.pose_from or args.preview):
        raise TalkingHeadError(f"{'--pose-from' if args.pose_from else '--preview'} is for animating a portrait; a "
                               "dubbed video keeps its own head motion")
    pipeline = LandmarkDiffusionPipeline.from_pretrained(args.model or DEFAULT_LANDMARK_MODEL)
    face = "largest" if args.face is None else args.face
    report, close = _progress_bar()
    try:
        if args.video:
            jobs.run(jobs.dub_video(pipeline, args.audio, args.video, args.output, settings=args.sampling, face=face,
                                    motion_scale=args.motion_scale, lower_face=args.lower_face), report)
        else:
            jobs.run(jobs.landmark_video(pipeline, args.audio, args.image, args.output, settings=args.sampling,
                                         pose_from=args.pose_from, face=face, motion_scale=args.motion_scale,
                                         lower_face=args.lower_face, landmark_preview_path=args.preview), report)
    finally:
        close()
    print(args.output)


def _prepare(args) -> None:
    from .data.prepare import prepare_dataset

    output = prepare_dataset(args.video, args.out, fps=args.fps, resolution=args.resolution,
                             val_fraction=args.val_fraction, feature_kinds=tuple(args.features),
                             landmark_backend=args.landmarks, crop_mode=args.crop, crop_scale=args.crop_scale,
                             speaker_embeddings=args.speaker_embeddings, skip_unusable=args.skip_unusable,
                             overwrite=args.overwrite)
    print(output)


def _train(args) -> None:
    from .data.dataset import TalkingHeadDataset
    from .training.loop import TrainConfig, Trainer

    if args.model == "avatar":
        _train_avatar(args)
        return
    if args.video or args.minutes is not None or args.resume:
        raise TalkingHeadError("--video, --minutes and --resume are for `train avatar`; the other models train on "
                               "--data (a prepared dataset) and resume by themselves")
    if not args.data:
        raise TalkingHeadError(f"train {args.model} needs --data, a dataset folder from `talking-head prepare`")
    dataset = TalkingHeadDataset(args.data)
    if args.model == "autoencoder":
        from .training.autoencoder_task import AutoencoderTask

        task = AutoencoderTask(dataset, image_size=args.resolution, preset=args.preset or "small", init=args.init,
                               decoder_only=args.decoder_only, augment=args.augment)
    elif args.model == "dae":
        from .training.dae_task import DAETask

        task = DAETask(dataset, image_size=args.resolution, autoencoder=args.autoencoder,
                       unet_preset=args.preset or "latent-small", encoder_preset=args.encoder_preset,
                       prediction_type=args.prediction, mouth_weight=args.mouth_weight,
                       mouth_head_weight=args.mouth_head_weight, init=args.init)
    elif args.model == "l2v":
        from .training.l2v_task import L2VTask

        if not args.autoencoder and not args.init:
            raise TalkingHeadError("train l2v needs --autoencoder, the folder of a trained frame autoencoder, "
                                   "or --init, a landmark pipeline folder to continue from")
        if args.init and args.preset:
            raise TalkingHeadError("--preset sets the size of a new L2V; the L2V of --init keeps its own")
        task = L2VTask(dataset, args.autoencoder, image_size=args.resolution, preset=args.preset or "small",
                       frame_stride=args.frame_stride, init=args.init)
    elif args.model == "a2l":
        from .training.a2l_task import A2LTask

        task = A2LTask(dataset, front_end=_front_end(args, dataset), preset=args.preset or "small",
                       window_frames=args.window, l2v=args.l2v, mouth_opening_weight=args.mouth_opening_weight)
    elif args.model == "mouth-refiner":
        from .training.mouth_refiner_task import MouthRefinerTask

        if not args.l2v:
            raise TalkingHeadError("train mouth-refiner needs --l2v, the landmark pipeline folder whose L2V drawings "
                                   "it learns to redraw (the trained refiner joins it)")
        task = MouthRefinerTask(dataset, args.l2v, frames_per_clip=args.frames_per_clip)
    else:
        from .training.speech2latent_task import Speech2LatentTask

        if not args.dae:
            raise TalkingHeadError("train speech2latent needs --dae, the folder of a trained DAE (from `train dae`)")
        task = Speech2LatentTask(dataset, args.dae, front_end=_front_end(args, dataset), preset=args.preset or "base",
                                 window_frames=args.window)
    config = TrainConfig(output_dir=args.out, max_steps=args.max_steps, max_minutes=args.max_minutes,
                         batch_size=args.batch_size, learning_rate=args.lr, weight_decay=args.weight_decay,
                         checkpoint_minutes=args.checkpoint_minutes,
                         validate_every=args.validate_every, sample_every=args.sample_every,
                         mixed_precision=args.mixed_precision, seed=args.seed, resume=not args.restart)
    final = Trainer(task, config).train()
    print(f"saved {Path(args.out) / 'model'}: {final}")


def _train_avatar(args) -> None:
    from .training.avatar import DEFAULT_MINUTES, train_avatar

    if args.data:
        raise TalkingHeadError("train avatar takes the footage itself (--video), not a prepared dataset (--data)")
    if not args.video:
        raise TalkingHeadError("train avatar needs --video, footage of the person speaking")
    report, close = _avatar_progress()
    try:
        output = train_avatar(args.video, args.out, minutes=DEFAULT_MINUTES if args.minutes is None else args.minutes,
                              resume=args.resume,
                              progress=report)
    finally:
        close()
    print(output)


def _avatar_progress():
    """A one-line progress display for `train avatar` on stderr (the stage, how far, the time left), drawn once the
    footage has passed its check, and its close."""
    from tqdm.auto import tqdm

    bars = []

    def report(progress) -> None:
        if progress.stage == "check":
            return
        if not bars:
            bars.append(tqdm(total=1000, bar_format="{desc} {percentage:3.0f}% |{bar:20}| {postfix}", file=sys.stderr))
        bar = bars[0]
        bar.set_description_str(f"{progress.stage:>13}", refresh=False)
        bar.set_postfix_str("" if progress.seconds_left is None else f"{progress.seconds_left / 60:.0f} min left",
                            refresh=False)
        bar.n = round(progress.fraction * 1000)
        bar.refresh()

    def close() -> None:
        for bar in bars:
            bar.close()

    return report, close


def _front_end(args, dataset):
    """The audio front end `train a2l` / `train speech2latent` learn from (--features, --speech-model,
    --feature-layers)."""
    from .media.features import AudioFeatureExtractor

    if args.features == "logmel" and (args.speech_model or args.feature_layers != "last"):
        raise TalkingHeadError("--speech-model and --feature-layers are for the speech model features "
                               "(--features whisper, wav2vec2 or hubert), not logmel")
    front_end = AudioFeatureExtractor(args.features, fps=dataset.fps, model_name=args.speech_model,
                                      layers=args.feature_layers)
    if front_end.kind != "logmel":
        front_end.speech_model  # noqa: B018 (loads it now: a model that cannot be had fails before any work)
    return front_end


def _evaluate(args) -> None:
    import json

    for report_path in (args.output, args.csv):
        if report_path and (Path(report_path).is_dir() or not Path(report_path).parent.is_dir()):
            raise TalkingHeadError(f"cannot write the report to {report_path}: name a file in a folder that exists")
    if args.generated or args.real:
        _evaluate_videos(args)
        return
    if not args.data:
        raise TalkingHeadError("evaluate needs --generated VIDEO... --real VIDEO..., or --data DATASET for the held-back clips")
    from .pipelines.base import public_model_name
    from .data.dataset import TalkingHeadDataset

    sampling = vars(_sampling(args, args.pipeline))
    motion_scale, lower_face = _landmark_options(args)
    dataset = TalkingHeadDataset(args.data)
    if (args.a2l_only or args.size) and args.pipeline != "landmark":
        raise TalkingHeadError("--a2l-only and --size measure the landmark pipeline; add --pipeline landmark")
    drawing = not (args.semantic_only or args.a2l_only)
    mouth_judge, unavailable = _mouth_judge(args.mediapipe_model) if drawing else (None, {})
    if args.pipeline == "landmark":
        from .evaluation.landmark_holdout import evaluate_landmark_pipeline
        from .pipelines.landmark import LandmarkDiffusionPipeline

        model = args.model or DEFAULT_LANDMARK_MODEL
        pipeline = LandmarkDiffusionPipeline.from_pretrained(model)
        report = evaluate_landmark_pipeline(pipeline, dataset, motion_scale=motion_scale, lower_face=lower_face,
                                            mouth_judge=mouth_judge, a2l_only=args.a2l_only, size=args.size,
                                            **sampling)
    else:
        from .evaluation.holdout import evaluate_on_holdout
        from .pipelines.dae_talker import DAETalkerPipeline

        model = args.model or DEFAULT_DAE_MODEL
        pipeline = DAETalkerPipeline.from_pretrained(model)
        report = evaluate_on_holdout(pipeline, dataset, use_real_pose=args.real_pose, with_ceiling=args.with_ceiling,
                                     semantic_only=args.semantic_only, mouth_judge=mouth_judge, **sampling)
    report["model"] = public_model_name(model)
    report["unavailable"] = unavailable
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text)
    print(text)


def _mouth_judge(model_path: str | None):
    """MediaPipe's mouth measure for `evaluate --data`, or None and why it cannot be had ({"mediapipe": reason})."""
    from .errors import MetricWeightsError
    from .evaluation.mediapipe_mouth import MediaPipeMouth

    try:
        return MediaPipeMouth(model_path), {}
    except MetricWeightsError as error:
        return None, {"mediapipe": str(error)}


def _evaluate_videos(args) -> None:
    import json

    from .evaluation.videos import MetricWeights, evaluate_videos, format_table, write_csv

    weights = MetricWeights(lpips=args.lpips_weights, lpips_backbone=args.lpips_backbone_weights,
                            syncnet=args.syncnet_weights, mediapipe=args.mediapipe_model)
    report = evaluate_videos(args.generated, args.real or [], metrics=args.metrics, weights=weights,
                             landmark_backend=args.landmarks, device=args.device)
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=2))
    if args.csv:
        write_csv(report, args.csv)
    print(format_table(report))


def _convert(args) -> None:
    from .convert.diffae_checkpoint import convert_to_pretrained

    convert_to_pretrained(args.checkpoint, args.out)
    print(args.out)


def _convert_taesd(args) -> None:
    from .convert.tiny_autoencoder import convert_tiny_autoencoder

    print(convert_tiny_autoencoder(args.encoder, args.decoder, args.out, licence=args.licence))


def _convert_ge2e(args) -> None:
    from .convert.speaker_encoder import convert_speaker_encoder

    print(convert_speaker_encoder(args.weights, args.out, licence=args.licence, half=args.half))


def _convert_whisper(args) -> None:
    from .convert.whisper import convert_whisper_encoder

    print(convert_whisper_encoder(args.source, args.out, licence=args.licence, half=args.half))


def _app(args) -> None:
    try:
        from .gradio_app import launch
    except ImportError as error:
        raise TalkingHeadError(f"the demo needs gradio ({error}): pip install 'talking-head-diffusion[app]'") from None
    launch(server_name=args.host, server_port=args.port, share=args.share)


def _sampling_options(parser: argparse.ArgumentParser) -> None:
    """--steps, --sampler, --seed, --batch-size and --paper; their defaults come from pipelines/settings.py."""
    fast = ", ".join(f"{settings.num_inference_steps} for {name}" for name, settings in DEFAULT_SETTINGS.items())
    paper = ", ".join(f"{settings.num_inference_steps} {settings.sampler.upper()} steps for {name}"
                      for name, settings in PAPER_SETTINGS.items())
    parser.add_argument("--paper", action="store_true", help=f"the papers' own sampling: {paper}")
    parser.add_argument("--steps", type=_integer(1, MAX_STEPS), help=f"sampler steps (default: {fast})")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES,
                        help=f"default: {DEFAULT_SETTINGS['dae'].sampler} (ddim with --paper)")
    parser.add_argument("--seed", type=_integer(0, 2**63 - 1), help="seed of the noise shared by all frames (default: "
                        f"{DEFAULT_SETTINGS['dae'].seed})")
    parser.add_argument("--batch-size", type=_integer(1, MAX_BATCH_SIZE), help="frames decoded at once (default: "
                        f"{DEFAULT_SETTINGS['dae'].batch_size})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `talking-head`."""
    parser = argparse.ArgumentParser(prog="talking-head", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="speech (and a portrait) to a talking-head mp4")
    generate.add_argument("--audio", required=True, help="speech: wav, flac, mp3, m4a or a video's audio track")
    generate.add_argument("--pipeline", choices=["dae", "landmark"], default="dae",
                          help="dae: DAE-Talker, the person it was trained on; landmark: any portrait (--image)")
    generate.add_argument("--image", help="portrait photo to animate (landmark pipeline)")
    generate.add_argument("--video", help="a video of a person to dub with the speech, at its own size and frame rate "
                          "(landmark pipeline)")
    generate.add_argument("--face", type=int, help="which face to animate when the portrait or video shows several "
                          "(0 = largest, 1 = next, ...; default: the largest)")
    _add_landmark_options(generate)
    generate.add_argument("--preview", type=_mp4_path, help="also write the landmark drawings as a video here (landmark pipeline)")
    generate.add_argument("--model", help="Hub repo id or local pipeline folder (default: the bundled model)")
    _sampling_options(generate)
    generate.add_argument("--pose-from", help="a video whose head motion the result follows")
    generate.add_argument("--size", type=_integer(32, 4096), help="output frame size in pixels (dae; default: the model's)")
    generate.add_argument("-o", "--output", type=_mp4_path, required=True, help="the mp4 to write")
    generate.set_defaults(run=_generate)

    prepare = commands.add_parser("prepare", help="turn footage of a person into a training dataset")
    prepare.add_argument("--video", nargs="+", required=True, help="videos with the person speaking")
    prepare.add_argument("--out", required=True, help="the dataset folder to write")
    prepare.add_argument("--fps", type=float, default=25.0)
    prepare.add_argument("--resolution", type=int, default=256, help="size of the stored face crops")
    prepare.add_argument("--val-fraction", type=float, default=0.2, help="last part of each video kept for validation")
    prepare.add_argument("--features", nargs="+", default=["logmel"], choices=["logmel", "wav2vec2", "hubert"],
                         help="audio features to compute now, with their default models (training computes any "
                              "others it needs from the stored speech, once)")
    prepare.add_argument("--landmarks", default="dlib", choices=LANDMARK_BACKENDS,
                         help="landmark detector (face-alignment downloads its weights on first use)")
    prepare.add_argument("--crop", choices=["fixed", "smooth"], default="fixed",
                         help="one crop box per video (still speaker) or a smoothed track (moving head)")
    prepare.add_argument("--crop-scale", type=float, default=2.4,
                         help="crop size relative to the face: 2.4 frames the head and shoulders, 2.0 the face")
    prepare.add_argument("--speaker-embeddings", action="store_true",
                         help="also store each video's voice embedding (needed by `train a2l`)")
    prepare.add_argument("--skip-unusable", action="store_true",
                         help="leave out, with a warning, videos that cannot be used (no face, no speech) instead of stopping")
    prepare.add_argument("--overwrite", action="store_true")
    prepare.set_defaults(run=_prepare)

    train = commands.add_parser("train", help="train a model on a prepared dataset, or an avatar from your footage")
    train.add_argument("model", choices=["avatar", "autoencoder", "dae", "speech2latent", "a2l", "l2v",
                                        "mouth-refiner"],
                       help="avatar: a whole DAE-Talker from --video in one step; the others: one stage on --data")
    train.add_argument("--data", nargs="+", help="dataset folders from `talking-head prepare` (several train together)")
    train.add_argument("--video", nargs="+", help="footage of one person speaking, minutes of it (avatar)")
    train.add_argument("--minutes", type=float, help="the whole time budget, preparing and measuring included "
                       "(avatar; default 60)")
    train.add_argument("--resume", action="store_true", help="go on with a stopped run from its last checkpoint "
                       "(avatar; its work folder is OUT.work)")
    train.add_argument("--out", required=True, help="training folder: checkpoint, log, samples, model/ (for avatar: "
                       "the model folder itself)")
    train.add_argument("--resolution", type=int, default=64, help="frame size the model works at")
    train.add_argument("--preset", help="model size preset")
    train.add_argument("--encoder-preset", default="small", help="semantic encoder preset (dae)")
    train.add_argument("--autoencoder", help="frame autoencoder folder (trained, or converted with `convert-taesd`): "
                       "diffuse in its latent (dae, l2v)")
    train.add_argument("--frame-stride", type=int, default=1,
                       help="train on every n-th frame; neighbouring frames differ little (l2v)")
    train.add_argument("--init", help="a trained folder to continue from: an autoencoder (autoencoder), a DAE-Talker "
                       "whose decoder, semantic encoder and autoencoder are kept (dae), or a landmark pipeline whose "
                       "L2V and autoencoder are kept (l2v)")
    train.add_argument("--decoder-only", action="store_true",
                       help="train only the decoder of --init, keeping its latent space (autoencoder)")
    train.add_argument("--augment", action="store_true",
                       help="flip and recolour the frames, to reconstruct unseen faces too (autoencoder)")
    train.add_argument("--prediction", choices=["v_prediction", "epsilon"], default="v_prediction")
    train.add_argument("--mouth-weight", type=float, default=1.0,
                       help="weigh the loss over the mouth this many times the rest of the frame (dae)")
    train.add_argument("--mouth-head-weight", type=float, default=0.0,
                       help="weight of a training-only head that reads the lips' shape from the semantic code, "
                            "so that the code must hold the mouth; 0 leaves it out (dae)")
    train.add_argument("--mouth-opening-weight", type=float, default=0.0,
                       help="weight of a loss on the mouth opening (the inner lips' gap) beside the landmark "
                            "error (a2l)")
    train.add_argument("--dae", help="pipeline folder of the trained DAE (speech2latent)")
    train.add_argument("--l2v", help="pipeline folder of the trained L2V; the exported model joins it (a2l, "
                       "mouth-refiner)")
    train.add_argument("--frames-per-clip", type=int, default=64,
                       help="frames of each clip that L2V draws for the refiner to learn from (mouth-refiner)")
    train.add_argument("--features", default="logmel", choices=FEATURE_KINDS,
                       help="the speech features the model hears: logmel (no weights), or a speech model's hidden "
                            "states (--speech-model) (speech2latent, a2l)")
    train.add_argument("--speech-model", help="the speech model of --features: a folder (e.g. from `convert-whisper`), "
                       "a Hub repo id or, for whisper, an OpenAI .pt checkpoint; the trained pipeline carries it "
                       "(speech2latent, a2l)")
    train.add_argument("--feature-layers", default="last", choices=FEATURE_LAYERS,
                       help="which of the speech model's hidden states: its output, the mean of its layers, or all "
                            "side by side (speech2latent, a2l)")
    train.add_argument("--window", type=int, default=100, help="frames per training window (speech2latent, a2l)")
    train.add_argument("--batch-size", type=int, default=16)
    train.add_argument("--lr", type=float, default=2e-4)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--max-steps", type=int, default=1_000_000)
    train.add_argument("--max-minutes", type=float, default=math.inf)
    train.add_argument("--checkpoint-minutes", type=float, default=5.0)
    train.add_argument("--validate-every", type=int, default=500)
    train.add_argument("--sample-every", type=int, default=2000)
    train.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="measure generated videos against real ones, or a model on a "
                                   "dataset's held-back clips")
    evaluate.add_argument("--generated", nargs="+", help="generated videos (each with the speech it was made from)")
    evaluate.add_argument("--real", nargs="+", help="the real videos for the same speech, in the same order")
    evaluate.add_argument("--metrics", nargs="+", default=list(EVALUATION_METRICS), choices=EVALUATION_METRICS,
                          help="metrics to compute for --generated/--real (default: all)")
    evaluate.add_argument("--lpips-weights", help="LPIPS v0.1 alex.pth (default: downloaded on first use)")
    evaluate.add_argument("--lpips-backbone-weights", help="torchvision AlexNet weights for LPIPS (default: downloaded)")
    evaluate.add_argument("--syncnet-weights", help="SyncNet syncnet_v2.model for LSE-C/LSE-D (default: downloaded)")
    evaluate.add_argument("--mediapipe-model", help="MediaPipe's face_landmarker.task, a second judge of the mouth "
                          "(needs the mediapipe extra; default: downloaded on first use)")
    evaluate.add_argument("--landmarks", default="dlib", choices=LANDMARK_BACKENDS,
                          help="landmark detector for the landmark metrics")
    evaluate.add_argument("--device", default="cpu", help="where the metric networks run, e.g. cuda")
    evaluate.add_argument("--csv", help="write the per-video table as CSV here too")
    evaluate.add_argument("--data", help="a dataset folder from `talking-head prepare`: evaluate a model on its "
                          "held-back clips")
    evaluate.add_argument("--pipeline", choices=["dae", "landmark"], default="dae")
    evaluate.add_argument("--model", help="Hub repo id or local pipeline folder (default: the bundled model)")
    _add_landmark_options(evaluate)
    _sampling_options(evaluate)
    evaluate.add_argument("--size", type=_integer(32, 4096), help="the crop size the held-out clips are measured at "
                          "(landmark; default: the model's): the lower face is made at it, as a video makes it at "
                          "the portrait's size")
    evaluate.add_argument("--real-pose", action="store_true",
                          help="drive the pose with the real one instead of the predicted (dae)")
    stages = evaluate.add_mutually_exclusive_group()
    stages.add_argument("--with-ceiling", action="store_true",
                        help="also measure each stage alone: the real frames at the model's size, the frame "
                             "autoencoder, the decoder from the real frames' own latents, and what the semantic "
                             "code holds (dae)")
    stages.add_argument("--semantic-only", action="store_true",
                        help="measure only what the semantic code holds (its directions and the mouth read-out): "
                             "draws no frames and needs no speech2latent, to judge a DAE before training one (dae)")
    stages.add_argument("--a2l-only", action="store_true",
                        help="measure only A2L's landmarks against the real ones, drawing no frames: seconds, to "
                             "judge an A2L (landmark)")
    evaluate.add_argument("-o", "--output", help="write the report as JSON here too")
    evaluate.set_defaults(run=_evaluate)

    convert = commands.add_parser("convert-diffae", help="official diffusion-autoencoders checkpoint to diffusers folders")
    convert.add_argument("checkpoint", help="e.g. ffhq256_autoenc/last.ckpt")
    convert.add_argument("--out", required=True)
    convert.set_defaults(run=_convert)

    taesd = commands.add_parser("convert-taesd", help="published TAESD-family weights (e.g. TAEF2) to a frame "
                                "autoencoder folder for `train --autoencoder`")
    taesd.add_argument("--encoder", required=True, help="e.g. taef2_encoder.pth")
    taesd.add_argument("--decoder", required=True, help="e.g. taef2_decoder.pth")
    taesd.add_argument("--licence", help="the weights' licence file, copied into the folder")
    taesd.add_argument("--out", required=True)
    taesd.set_defaults(run=_convert_taesd)

    ge2e = commands.add_parser("convert-ge2e", help="Resemblyzer's published GE2E voice encoder (pretrained.pt) to "
                               "a speaker encoder folder (the voice embeddings A2L hears)")
    ge2e.add_argument("--weights", required=True, help="e.g. resemblyzer/pretrained.pt")
    ge2e.add_argument("--licence", help="the weights' licence file, copied into the folder (default: Resemblyzer's "
                      "Apache-2.0 notice)")
    ge2e.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    ge2e.add_argument("--out", required=True)
    ge2e.set_defaults(run=_convert_ge2e)

    whisper = commands.add_parser("convert-whisper", help="Whisper weights (an OpenAI .pt checkpoint, a transformers "
                                  "folder or Hub repo, or an encoder folder) to an encoder folder for "
                                  "`train --speech-model`")
    whisper.add_argument("source", help="e.g. base.pt, openai/whisper-base or a folder")
    whisper.add_argument("--licence", help="the weights' licence file, copied into the folder (default: the one "
                         "beside the weights, or OpenAI's MIT notice for a .pt checkpoint)")
    whisper.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    whisper.add_argument("--out", required=True)
    whisper.set_defaults(run=_convert_whisper)

    app = commands.add_parser("app", help="serve the Gradio demo in a browser")
    app.add_argument("--host", help="address to listen on, 0.0.0.0 for every interface (default: GRADIO_SERVER_NAME, "
                     "else 127.0.0.1)")
    app.add_argument("--port", type=int, help="port to listen on (default: GRADIO_SERVER_PORT, else 7860 or the next "
                     "free one)")
    app.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    app.set_defaults(run=_app)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `talking-head`; returns the exit status."""
    args = build_parser().parse_args(argv)
    # Idle OpenMP threads sleep instead of spinning, unless the user chose otherwise: with other work on the cores,
    # spinning threads made generation twice as slow (README, Performance). Read when torch loads, so set it first.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    previous = {number: signal.signal(number, _stop) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        args.run(args)
    except TalkingHeadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Stopped as stopped:
        print(f"stopped by {stopped}: nothing half-written was left", file=sys.stderr)
        return 128 + stopped.signal_number
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
