"""The pictures the project shows: each shipped workflow's thumbnail (workflows/NAME.jpg, what ComfyUI's template
browser shows beside NAME.json) and the README's strip (docs/strip.jpg), all made from the outputs of the bundled
models on the workflows' own inputs (assets/: JFK's speech, the NASA portrait, the address video). The avatar
workflow's thumbnail comes from an avatar trained on its footage, given with --avatar:

    talking-head train avatar --video assets/grid_s1_footage.mp4 --out grid-s1-avatar
    python scripts/make_pictures.py --avatar grid-s1-avatar

Frames are taken at evenly spaced times, not chosen.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from talking_head import jobs
from talking_head.bundled import BUNDLED_MODELS, DAE_TALKER, LANDMARK_DIFFUSION
from talking_head.media.video import read_video_frames
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
THUMBNAIL_SIDE, STRIP_SIDE, STRIP_FRAMES = 256, 160, 6


def outputs(folder: Path, avatar: Path | None) -> dict[str, Path]:
    """Each workflow's video, made with the bundled models (and the avatar, if given) and the library's defaults."""
    speech = ASSETS / "jfk.flac"
    dae = DAETalkerPipeline.from_pretrained(BUNDLED_MODELS[DAE_TALKER])
    landmark = LandmarkDiffusionPipeline.from_pretrained(BUNDLED_MODELS[LANDMARK_DIFFUSION])
    videos = {name: folder / f"{name}.mp4" for name in ("dae_talker", "landmark_diffusion", "dubbing")}
    jobs.run(jobs.dae_talker_video(dae, speech, videos["dae_talker"], output_size=256))
    jobs.run(jobs.landmark_video(landmark, speech, ASSETS / "astronaut.jpg", videos["landmark_diffusion"]))
    jobs.run(jobs.dub_video(landmark, speech, ASSETS / "obama_head_motion.mp4", videos["dubbing"]))
    if avatar is not None:
        videos["avatar"] = folder / "avatar.mp4"
        jobs.run(jobs.dae_talker_video(DAETalkerPipeline.from_pretrained(avatar), speech, videos["avatar"],
                                       output_size=256))
    return videos


def evenly_spaced(video: Path, count: int, side: int) -> list[Image.Image]:
    """`count` frames of a video at evenly spaced times, square, `side` pixels."""
    frames = np.concatenate(list(read_video_frames(video)))
    picks = np.linspace(0, len(frames) - 1, count + 2).round().astype(int)[1:-1]
    return [Image.fromarray(frames[index]).resize((side, side), Image.LANCZOS) for index in picks]


def grid(images: list[Image.Image], columns: int) -> Image.Image:
    side = images[0].width
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * side, rows * side))
    for index, image in enumerate(images):
        sheet.paste(image, ((index % columns) * side, (index // columns) * side))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description="Make the workflows' thumbnails and the README's strip.")
    parser.add_argument("--avatar", type=Path, help="an avatar trained on assets/grid_s1_footage.mp4, for the avatar "
                        "workflow's thumbnail (it is not in the strip)")
    avatar = parser.parse_args().avatar
    with tempfile.TemporaryDirectory() as folder:
        videos = outputs(Path(folder), avatar)
        for name, video in videos.items():
            path = ROOT / "workflows" / f"{name}.jpg"
            grid(evenly_spaced(video, 4, THUMBNAIL_SIDE), 2).save(path, quality=88)
            print(f"wrote {path.relative_to(ROOT)}")
        strip = grid([frame for name, video in videos.items() if name != "avatar"
                      for frame in evenly_spaced(video, STRIP_FRAMES, STRIP_SIDE)], STRIP_FRAMES)
        strip.save(ROOT / "docs" / "strip.jpg", quality=88)
        print("wrote docs/strip.jpg")


if __name__ == "__main__":
    main()
