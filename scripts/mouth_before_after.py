"""Open-mouth frames of the held-out people side by side: the real face crop, the lower face made at the model's size
and enlarged (what the pipeline did before it worked at the portrait's resolution), and the lower face made at the
crop's own size (what it does now), each from the real landmarks, L2V drawing inside the mouth.

    python scripts/mouth_before_after.py HELD_OUT_DATASET OUT.jpg [--model pretrained/landmark-diffusion] [--size 256]

For each clip the frame with the widest real mouth is shown; rows are clips, columns real / before / after.
"""

import argparse

import cv2
import numpy as np
from PIL import Image, ImageDraw

from talking_head.data.dataset import TalkingHeadDataset
from talking_head.evaluation.landmark_holdout import crops_from_landmarks
from talking_head.faces.align import rescaled_landmarks
from talking_head.faces.landmarks import mouth_opening
from talking_head.faces.paste import paste_masks
from talking_head.faces.warp import with_still_jaw
from talking_head.media.images import to_uint8
from talking_head.media.video import resize_frames
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

STEPS, SAMPLER = 25, "ddim"  # the settings of the card's evaluation


def pasted(real: np.ndarray, made: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The real crops with the made lower faces pasted in, as the video pastes them."""
    alpha = paste_masks(with_still_jaw(landmarks[0], landmarks), real.shape[1])[..., None]
    return np.clip(real + alpha * (made.astype(np.float32) - real), 0, 255).round().astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("output")
    parser.add_argument("--model", default="pretrained/landmark-diffusion")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    pipeline = LandmarkDiffusionPipeline.from_pretrained(args.model)
    dataset, size, model_size = TalkingHeadDataset(args.data), args.size, pipeline.image_size
    noise, rows = pipeline.initial_noise(0), []
    for clip in dataset.clips:
        real = to_uint8(dataset.clip_frames(clip, "val", size))
        landmarks = rescaled_landmarks(dataset.clip_array(clip, "landmarks", "val").numpy(), dataset.resolution, size)
        widest = int(np.argmax(mouth_opening(landmarks)))
        picked = [0, widest]  # the first frame is the portrait (the identity reference)
        after = crops_from_landmarks(pipeline, landmarks[picked], real[picked], noise, STEPS, SAMPLER, 2, "warped")
        small = resize_frames(real[picked], model_size)
        before = crops_from_landmarks(pipeline, rescaled_landmarks(landmarks[picked], size, model_size), small, noise,
                                      STEPS, SAMPLER, 2, "warped")
        before = np.stack([cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC) for crop in before])
        rows.append([real[widest], pasted(real[picked], before, landmarks[picked])[1],
                     pasted(real[picked], after, landmarks[picked])[1]])
    sheet = Image.new("RGB", (3 * size, len(rows) * size + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for column, title in enumerate(("real", f"before: made at {model_size} px, enlarged", f"now: made at {size} px")):
        draw.text((column * size + 6, 6), title, fill="black")
    for row, images in enumerate(rows):
        for column, image in enumerate(images):
            sheet.paste(Image.fromarray(image), (column * size, 24 + row * size))
    sheet.save(args.output, quality=90)
    print(args.output)


if __name__ == "__main__":
    main()
