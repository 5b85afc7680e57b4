"""The demo's page: one tab per pipeline, the settings most visitors touch in view and the rest folded away."""

import inspect
import time
from pathlib import Path

import gradio as gr

from ..errors import TalkingHeadError
from ..media.video import probe_video
from ..pipelines.dae_talker import DAETalkerPipeline
from ..pipelines.landmark import LandmarkDiffusionPipeline
from ..pipelines.settings import (
    DEFAULT_LOWER_FACE,
    DEFAULT_MOTION_SCALE,
    DEFAULT_SETTINGS,
    MAX_MOTION_SCALE,
    PAPER_SETTINGS,
    SAMPLER_NAMES,
)
from ..training.avatar import DEFAULT_MINUTES
from .runner import (
    AVATAR_FOLDER,
    BUNDLED_DAE,
    BUNDLED_LANDMARK,
    BUNDLED_MODELS,
    Limits,
    check_audio,
    describe_model,
    fit_portrait,
    load_pipeline,
    local_avatars,
    model_source,
    output_path,
    check_video,
    run_avatar,
    run_dae_talker,
    run_dub,
    run_landmark,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# Examples from the public-domain media in assets/: [portrait, speech], [portrait, speech, head-motion video], [speech].
LANDMARK_EXAMPLES = [[str(ASSETS / "astronaut.jpg"), str(ASSETS / "jfk.flac")]]
HEAD_MOTION_EXAMPLES = [[str(ASSETS / "obama_portrait.jpg"), str(ASSETS / "librivox_0880.wav"),
                         str(ASSETS / "obama_head_motion.mp4")]]
DAE_EXAMPLES = [[str(ASSETS / "jfk.flac")], [str(ASSETS / "librivox_0880.wav")]]
INTRO = """# Talking heads from speech
Give a speech recording and get a talking-head video. **Any portrait** animates a photo you upload
(landmark-guided diffusion, Tan, Cheng, Xiong et al. 2024); **DAE-Talker** animates the one person a model was trained on
(Du et al. 2023). The bundled models were trained on a few minutes of CPU-friendly footage: expect blurry,
low-resolution faces. The videos are synthetic: use only faces you have the consent to animate and say so
wherever you share them."""


AVATAR_INTRO = """Film yourself (or someone who agreed) talking to a still camera: **minutes of speech, one person, one
shot**. The demo checks the footage, trains a DAE-Talker on it within the time you give (an hour on two CPU cores gives
a first avatar; more is better), measures it on a held-back part and keeps it on this machine: pick it in the
DAE-Talker tab. Stop keeps a checkpoint; run again with the same name and footage to go on."""
AVATAR_PUBLIC = ("Making an avatar trains a model for an hour or more on the machine it runs on, with your footage. "
                 "A shared demo cannot offer that: run the demo on your own computer (`talking-head app`) to make one.")
DAE, LANDMARK = DEFAULT_SETTINGS["dae"], DEFAULT_SETTINGS["landmark"]
DEFAULT_PORTRAIT_SIDE, DEFAULT_DAE_SIZE = 512, 256


def _model_info(limits: Limits) -> str:
    return ("Or type a Hub repo id (org/name)." if limits.public
            else "Or type a Hub repo id (org/name) or a local folder.")


def _portrait_input() -> gr.Image:
    """The portrait upload; a file that is not a picture gets a message naming it (gr.Image alone says only that
    preprocessing failed). Wrapped per instance: a gr.Image subclass would make gradio write a .pyi stub here."""
    image = gr.Image(type="filepath", label="Portrait", sources=["upload", "webcam", "clipboard"])
    preprocess = image.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except Exception:
            name = getattr(payload, "orig_name", None) or "the file"
            raise gr.Error(f"The portrait ({name}) is not an image this demo can read. Upload a JPEG, PNG or WebP "
                           "photo.", print_exception=False) from None

    image.preprocess = checked
    return image


def _follow(steps, progress: gr.Progress, unit: str = "frames"):
    """Report each step to the page's progress bar; yields between steps so that Stop takes effect. With `unit` None
    the bar shows the fraction done."""
    for step in steps:
        if step.total > 1:
            progress(step.done / step.total if unit is None else (step.done, step.total), desc=step.description,
                     unit=unit or "steps")
        else:
            progress(0, desc=step.description)
        yield f"{step.description}…"


def _visitor_error(error: TalkingHeadError, *uploads) -> gr.Error:
    """The error for the page, with the server's paths shown as names: the visitor's uploads, the bundled models'
    folders and the Hub cache."""
    from huggingface_hub.constants import HF_HUB_CACHE

    message = str(error)
    for upload in uploads:
        if isinstance(upload, str) and upload:
            message = message.replace(upload, Path(upload).name)
    for name, folder in BUNDLED_MODELS.items():
        message = message.replace(str(folder), name)
    return gr.Error(message.replace(str(HF_HUB_CACHE), "hub-cache"), print_exception=False)


def _summary(seconds: float, video: Path, started: float, pipeline) -> str:
    facts = probe_video(video)
    return (f"{seconds:.1f} s of speech → {facts['num_frames']} frames, {facts['width']}x{facts['height']}, "
            f"in {time.monotonic() - started:.0f} s. {describe_model(pipeline)}")


def dae_talker_handler(limits: Limits):
    """The DAE-Talker tab's generate function (a generator, so the queue can cancel it between batches)."""

    def generate(model, audio, pose_video=None, steps=DAE.num_inference_steps, seed=DAE.seed,
                 output_size=DEFAULT_DAE_SIZE, sampler=DAE.sampler, batch_size=DAE.batch_size, progress=gr.Progress()):
        try:
            model = model_source(model, BUNDLED_DAE, limits)
            seconds = check_audio(audio, limits)
            started, video = time.monotonic(), output_path()
            steps_run = run_dae_talker(model=model, audio=audio, pose_video=pose_video, steps=steps, sampler=sampler,
                                       seed=seed, output_size=output_size, batch_size=batch_size, output=video)
            for status in _follow(steps_run, progress):
                yield gr.skip(), status
            yield str(video), _summary(seconds, video, started, load_pipeline(DAETalkerPipeline, model))
        except TalkingHeadError as error:
            raise _visitor_error(error, audio, pose_video) from None

    return generate


def landmark_handler(limits: Limits):
    """The landmark tab's generate function (a generator, so the queue can cancel it between batches)."""

    def generate(portrait, audio, pose_video=None, steps=LANDMARK.num_inference_steps, seed=LANDMARK.seed,
                 longest_side=DEFAULT_PORTRAIT_SIDE, model=BUNDLED_LANDMARK, sampler=LANDMARK.sampler, face_index=0,
                 batch_size=LANDMARK.batch_size, motion_scale=DEFAULT_MOTION_SCALE, lower_face=DEFAULT_LOWER_FACE,
                 progress=gr.Progress()):
        try:
            model = model_source(model, BUNDLED_LANDMARK, limits)
            seconds = check_audio(audio, limits)
            image = fit_portrait(portrait, longest_side, limits)
            started, video, preview = time.monotonic(), output_path(), output_path()
            steps_run = run_landmark(model=model, audio=audio, portrait=image, pose_video=pose_video, steps=steps,
                                     sampler=sampler, seed=seed, face_index=face_index, batch_size=batch_size,
                                     motion_scale=motion_scale, lower_face=lower_face, output=video,
                                     preview=preview)
            for status in _follow(steps_run, progress):
                yield gr.skip(), gr.skip(), status
            yield str(video), str(preview), _summary(seconds, video, started,
                                                     load_pipeline(LandmarkDiffusionPipeline, model))
        except TalkingHeadError as error:
            raise _visitor_error(error, audio, portrait, pose_video) from None

    return generate


def dub_handler(limits: Limits):
    """The dubbing tab's generate function (a generator, so the queue can cancel it between batches)."""

    def generate(video, audio, steps=LANDMARK.num_inference_steps, seed=LANDMARK.seed, model=BUNDLED_LANDMARK,
                 sampler=LANDMARK.sampler, face_index=0, batch_size=LANDMARK.batch_size,
                 motion_scale=DEFAULT_MOTION_SCALE, progress=gr.Progress()):
        try:
            model = model_source(model, BUNDLED_LANDMARK, limits)
            check_video(video, limits)
            seconds = check_audio(audio, limits)
            started, output = time.monotonic(), output_path()
            steps_run = run_dub(model=model, audio=audio, video=video, steps=steps, sampler=sampler, seed=seed,
                                face_index=face_index, batch_size=batch_size, motion_scale=motion_scale, output=output)
            for status in _follow(steps_run, progress):
                yield gr.skip(), status
            yield str(output), _summary(seconds, output, started, load_pipeline(LandmarkDiffusionPipeline, model))
        except TalkingHeadError as error:
            raise _visitor_error(error, audio, video) from None

    return generate


def avatar_handler(limits: Limits):
    """The avatar tab's train function (a generator: Stop ends the training at a checkpoint)."""

    def train(videos, name="my-avatar", minutes=DEFAULT_MINUTES, progress=gr.Progress()):
        if limits.public:
            raise gr.Error(AVATAR_PUBLIC, print_exception=False)
        paths = [getattr(video, "name", video) for video in (videos or [])]
        try:
            steps = run_avatar(videos=paths, name=(name or "").strip(), minutes=minutes)
            for status in _follow(steps, progress, unit=None):
                yield status
            model = DAETalkerPipeline.from_pretrained(AVATAR_FOLDER / name.strip())
            yield _avatar_summary(name.strip(), model)
        except TalkingHeadError as error:
            raise _visitor_error(error, *paths) from None

    return train


def _avatar_summary(name: str, model) -> str:
    figures = model.training_record["evaluation"]["mean"]
    return (f"**{name}** is ready: pick it in the DAE-Talker tab. On its held-back footage, from the speech alone: "
            f"the mouth follows the real one at {figures['mouth_correlation']:.2f}, PSNR {figures['psnr']:.1f} dB, "
            f"the semantic code reads the mouth at {figures['semantic_mouth_readout_correlation']:.2f}. "
            "Its model card (README.md in its folder) says how it was made.")


def _common_settings(pipeline: str):
    default, paper = DEFAULT_SETTINGS[pipeline], PAPER_SETTINGS[pipeline]
    steps = gr.Slider(1, paper.num_inference_steps, value=default.num_inference_steps, step=1, label="Denoising steps",
                      info=f"More is sharper and slower; the paper uses {paper.num_inference_steps} "
                           f"{paper.sampler.upper()} steps.")
    seed = gr.Number(value=default.seed, precision=0, minimum=0, label="Seed",
                     info="The one noise image every frame starts from.")
    return steps, seed


def _folded_settings(pipeline: str):
    default = DEFAULT_SETTINGS[pipeline]
    sampler = gr.Dropdown(list(SAMPLER_NAMES), value=default.sampler, label="Sampler",
                          info="dpm++ is fast; ddim with the paper's steps is the paper's own.")
    batch_size = gr.Slider(1, 64, value=default.batch_size, step=1, label="Frames per batch",
                           info="Lower it if memory runs short.")
    return sampler, batch_size


def build_app(limits: Limits | None = None) -> gr.Blocks:
    """The demo as a gradio Blocks app (queue it and launch it, or see `launch`)."""
    limits = limits or Limits()
    with gr.Blocks(title="talking-head-diffusion", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        with gr.Tab("Any portrait"):
            with gr.Row():
                with gr.Column():
                    portrait = _portrait_input()
                    audio = gr.Audio(type="filepath", format=None, label="Speech", sources=["upload", "microphone"])
                    pose_video = gr.Video(label="Head motion from a video (optional; the head stays still without)",
                                          sources=["upload"])
                    steps, seed = _common_settings("landmark")
                    motion_scale = gr.Slider(0, MAX_MOTION_SCALE, value=DEFAULT_MOTION_SCALE, step=0.05,
                                             label="Mouth motion", info="How far the mouth and jaw move: 1 is what "
                                             "the model measured when trained, more exaggerates, 0 keeps the face still.")
                    longest_side = gr.Slider(256, limits.max_portrait_side,
                                             value=min(DEFAULT_PORTRAIT_SIDE, limits.max_portrait_side),
                                             step=64, label="Output size (longest side, pixels)",
                                             info="Larger photos are scaled down to this.")
                    with gr.Accordion("More settings", open=False):
                        model = gr.Dropdown([(f"{BUNDLED_LANDMARK} (bundled)", BUNDLED_LANDMARK)],
                                            value=BUNDLED_LANDMARK, allow_custom_value=True, label="Model",
                                            info=_model_info(limits))
                        sampler, batch_size = _folded_settings("landmark")
                        face_index = gr.Number(value=0, precision=0, minimum=0, label="Face",
                                               info="With several faces: 0 is the largest, 1 the next, ...")
                        lower_face = gr.Radio([("The portrait's own, moved; L2V draws the mouth", "warped"),
                                               ("All drawn by L2V (the paper's way)", "drawn")],
                                              value=DEFAULT_LOWER_FACE, label="Lower face")
                    with gr.Row():
                        run = gr.Button("Generate", variant="primary")
                        stop = gr.Button("Stop")
                with gr.Column():
                    video = gr.Video(label="Talking head", interactive=False)
                    preview = gr.Video(label="Landmarks (A2L's output, L2V's condition)", interactive=False)
                    status = gr.Markdown()
            handler = landmark_handler(limits)
            inputs = dict(portrait=portrait, audio=audio, pose_video=pose_video, steps=steps, seed=seed,
                          longest_side=longest_side, model=model, sampler=sampler, face_index=face_index,
                          batch_size=batch_size, motion_scale=motion_scale, lower_face=lower_face)
            event = run.click(handler, _in_order(handler, inputs), [video, preview, status], api_name="landmark")
            stop.click(None, cancels=[event])
            for examples, label in ((LANDMARK_EXAMPLES, "Examples"), (HEAD_MOTION_EXAMPLES, "With head motion from a video")):
                names = ("portrait", "audio", "pose_video")[:len(examples[0])]
                gr.Examples(examples, [inputs[name] for name in names], [video, preview, status], label=label,
                            fn=_with_defaults(handler, inputs, names), cache_examples=True, cache_mode="lazy")

        with gr.Tab("Dub a video"):
            with gr.Row():
                with gr.Column():
                    dub_video = gr.Video(label=f"Video of a person speaking (at most {limits.max_video_seconds:g} s, "
                                               f"{limits.max_video_side} pixels a side)", sources=["upload"])
                    audio = gr.Audio(type="filepath", format=None, label="New speech", sources=["upload", "microphone"])
                    steps, seed = _common_settings("landmark")
                    motion_scale = gr.Slider(0, MAX_MOTION_SCALE, value=DEFAULT_MOTION_SCALE, step=0.05,
                                             label="Mouth motion", info="How far the mouth and jaw move: 1 is what "
                                             "the model measured when trained.")
                    with gr.Accordion("More settings", open=False):
                        model = gr.Dropdown([(f"{BUNDLED_LANDMARK} (bundled)", BUNDLED_LANDMARK)],
                                            value=BUNDLED_LANDMARK, allow_custom_value=True, label="Model",
                                            info=_model_info(limits))
                        sampler, batch_size = _folded_settings("landmark")
                        face_index = gr.Number(value=0, precision=0, minimum=0, label="Face",
                                               info="With several faces: 0 is the largest, 1 the next, ...")
                    with gr.Row():
                        run = gr.Button("Dub", variant="primary")
                        stop = gr.Button("Stop")
                with gr.Column():
                    video = gr.Video(label="Dubbed video (its own size and frame rate, as long as the speech)",
                                     interactive=False)
                    status = gr.Markdown()
            handler = dub_handler(limits)
            inputs = dict(video=dub_video, audio=audio, steps=steps, seed=seed, model=model, sampler=sampler,
                          face_index=face_index, batch_size=batch_size, motion_scale=motion_scale)
            event = run.click(handler, _in_order(handler, inputs), [video, status], api_name="dub")
            stop.click(None, cancels=[event])

        with gr.Tab("DAE-Talker"):
            with gr.Row():
                with gr.Column():
                    avatars = [] if limits.public else [(f"{name} (made here)", name) for name in local_avatars()]
                    model = gr.Dropdown([(f"{BUNDLED_DAE} (bundled)", BUNDLED_DAE), *avatars], value=BUNDLED_DAE,
                                        allow_custom_value=True, label="Model",
                                        info="A DAE-Talker draws the one person it was trained on. "
                                             + _model_info(limits))
                    audio = gr.Audio(type="filepath", format=None, label="Speech", sources=["upload", "microphone"])
                    pose_video = gr.Video(label="Head pose from a video (optional; predicted from the speech without)",
                                          sources=["upload"])
                    steps, seed = _common_settings("dae")
                    output_size = gr.Slider(0, 1024, value=DEFAULT_DAE_SIZE, step=32,
                                            label="Output size (pixels; 0 = the model's)")
                    with gr.Accordion("More settings", open=False):
                        sampler, batch_size = _folded_settings("dae")
                    with gr.Row():
                        run = gr.Button("Generate", variant="primary")
                        stop = gr.Button("Stop")
                with gr.Column():
                    video = gr.Video(label="Talking head", interactive=False)
                    status = gr.Markdown()
            handler = dae_talker_handler(limits)
            inputs = dict(model=model, audio=audio, pose_video=pose_video, steps=steps, seed=seed,
                          output_size=output_size, sampler=sampler, batch_size=batch_size)
            event = run.click(handler, _in_order(handler, inputs), [video, status], api_name="dae_talker")
            stop.click(None, cancels=[event])
            gr.Examples(DAE_EXAMPLES, [audio], [video, status], fn=_with_defaults(handler, inputs, ("audio",)),
                        cache_examples=True, cache_mode="lazy")

        with gr.Tab("Make your avatar"):
            gr.Markdown(AVATAR_PUBLIC if limits.public else AVATAR_INTRO)
            with gr.Row():
                with gr.Column():
                    footage = gr.File(file_count="multiple", file_types=["video"],
                                      label="Footage (one person speaking)", interactive=not limits.public)
                    name = gr.Textbox(value="my-avatar", label="Name", interactive=not limits.public,
                                      info="The avatar's folder name; the same name and footage resume a stopped run.")
                    minutes = gr.Slider(5, 600, value=DEFAULT_MINUTES, step=5, label="Time budget (minutes)",
                                        interactive=not limits.public,
                                        info="Preparing, training and measuring all included.")
                    with gr.Row():
                        run = gr.Button("Make the avatar", variant="primary", interactive=not limits.public)
                        stop = gr.Button("Stop", interactive=not limits.public)
                with gr.Column():
                    status = gr.Markdown()
            handler = avatar_handler(limits)
            inputs = dict(videos=footage, name=name, minutes=minutes)
            event = run.click(handler, _in_order(handler, inputs), [status], api_name="avatar")
            stop.click(None, cancels=[event])
    return app


def _in_order(handler, inputs: dict) -> list:
    """The input components in the order of the handler's parameters, which gradio fills by position."""
    return [inputs[name] for name in inspect.signature(handler).parameters if name in inputs]


def _with_defaults(handler, inputs: dict, names: tuple[str, ...]):
    """`handler` called with an example's values for the inputs `names`, by name, and every other input's default."""
    defaults = {name: component.value for name, component in inputs.items()}

    def run_example(*values):
        yield from handler(**{**defaults, **dict(zip(names, values))})

    return run_example


def launch(limits: Limits | None = None, **launch_kwargs) -> gr.Blocks:
    """Queue the demo (one run at a time, the rest wait) and serve it; `launch_kwargs` go to gradio's launch."""
    limits = limits or Limits()
    app = build_app(limits).queue(default_concurrency_limit=1, max_size=limits.queue_size)
    app.launch(max_file_size=f"{limits.max_upload_mb:g}mb", show_error=True, **launch_kwargs)
    return app
