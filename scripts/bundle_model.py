"""Copy a trained DAE-Talker into the package as the bundled default: half-precision weights, the held-back
evaluation in its training record, and its model card. Usage: bundle_model.py MODEL EVALUATION_JSON OUT"""

import json
import shutil
import sys
from pathlib import Path

import torch

from talking_head.pipelines.dae_talker import DAETalkerPipeline

CARD = {
    "title": "DAE-Talker: Obama (bundled default, 64x64, CPU-trained)",
    "license": "other",
    "data": (
        "20 s of a weekly address by President Barack Obama (US-government work, public domain), "
        "`edtalk_uncrop_Obama.mp4`, 450x450 at 25 fps, one fixed face crop. The first 16 s (400 frames) "
        "train every stage; the last 4 s (100 frames) are held back for the figures below. The weights are "
        "offered under the project's Apache-2.0 licence; the footage is public domain."
    ),
    "notes": (
        "## Limits\nTrained on a 2-core CPU in about 90 minutes on 16 seconds of footage (the paper used "
        "12 minutes of footage and days on 8 GPUs). Frames are 64x64 and soft; the mouth follows the loudness "
        "and rhythm of speech more than its phonemes."
    ),
}


def main(model: str, evaluation: str, output: str) -> None:
    pipeline = DAETalkerPipeline.from_pretrained(model)
    record = dict(pipeline.training_record or {})
    record["evaluation"] = json.loads(Path(evaluation).read_text())
    record["card"] = CARD
    pipeline.training_record = record
    pipeline.to(torch.float16)
    shutil.rmtree(output, ignore_errors=True)
    pipeline.save_pretrained(output)
    print(f"{output}: {sum(f.stat().st_size for f in Path(output).rglob('*') if f.is_file()) / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
