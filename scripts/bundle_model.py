"""Copy a trained pipeline into the package as a bundled default: half-precision weights, the held-back
evaluation in its training record, and its model card, which puts the figures of the version it replaces
(the one in OUT) beside its own.

Usage: bundle_model.py {dae,landmark} MODEL EVALUATION_JSON OUT [NOTES_MARKDOWN]
"""

import json
import shutil
import sys
from pathlib import Path

import torch

from talking_head.pipelines.base import TRAINING_RECORD
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

CARDS = {
    "dae": {
        "title": "DAE-Talker: Obama (bundled default, 64x64, CPU-trained)",
        "license": "other",
        "data": (
            "20 s of a weekly address by President Barack Obama (US-government work, public domain), "
            "`edtalk_uncrop_Obama.mp4`, 450x450 at 25 fps, one fixed face crop. The first 16 s (400 frames) "
            "train every stage; the last 4 s (100 frames) are held back for the figures below. The weights are "
            "offered under the project's Apache-2.0 licence; the footage is public domain."
        ),
        "notes": (
            "## Configuration\n"
            "- Frame autoencoder (`small`, f=4, 3-channel latent, 0.92M parameters): 362 steps, 6 min, "
            "reconstructs the held-back frames at 32.5 dB PSNR.\n"
            "- Decoder (`latent-small` DAEUNet, 6.3M parameters, v-prediction, linear betas 1e-4..0.02) and "
            "semantic encoder (`small`, 3.1M parameters, 512-d z_sem) at 64x64: 3228 steps of batch 16, 70 min.\n"
            "- Speech2Latent (`small`, log-mel features, 3.6M parameters): 1004 steps of 16 windows of 4 s, 12 min.\n"
            "- All on 2 CPU cores (one thread per process). Weights stored in float16 (loaded as float32).\n\n"
            "## Limits\nTrained in about 90 minutes of CPU time on 16 seconds of footage (the paper used "
            "12 minutes of footage and days on 8 GPUs). Frames are 64x64 and soft; the mouth opens and closes "
            "with the loudness and rhythm of speech but moves far less than the real one, and does not yet "
            "follow phonemes."
        ),
    },
    "landmark": {
        "title": "Landmark-guided diffusion (A2L + L2V): any portrait (bundled default, 128x128 face in TAEF2's "
                 "latent, CPU-trained)",
        "license": "other",
        "data": (
            "L2V: about 8 minutes of 46 public clips of about 33 people talking (`../shared/media`: `video/`, "
            "`multi/` and `long/` clips: VoxCeleb2 and MEAD samples, GRID and VidTIMIT speakers, addresses, "
            "selfie and stock-style videos), 25 fps, cropped to the face with a smoothed track; the last 20 % of "
            "each clip validates. A2L also hears 238 sentences (about 12 minutes) of GRID speaker s1 (the GRID "
            "audio-visual sentence corpus, Cooke et al., 2006, CC BY 4.0). Held out entirely, for the figures "
            "below: six people no model here saw or heard: `edtalk_mouth_source`, `styletalk_feifeili_clip3`, "
            "`pcavs_00086`, `spectre_W023_level_2_surprised_010`, `liveportrait_d12`, `aniportrait_pose_ref_video`. "
            "Most clips come from the example folders of research repositories without a media licence, so "
            "these weights are for research and testing."
        ),
        "notes": "",  # filled from the run by main()
    },
}


def main(kind: str, model: str, evaluation: str, output: str, notes_file: str | None = None) -> None:
    pipeline_class = {"dae": DAETalkerPipeline, "landmark": LandmarkDiffusionPipeline}[kind]
    pipeline = pipeline_class.from_pretrained(model)
    record = dict(pipeline.training_record or {})
    record["evaluation"] = json.loads(Path(evaluation).read_text())
    card = dict(CARDS[kind])
    if notes_file:
        card["notes"] = Path(notes_file).read_text()
    record["card"] = card
    replaced = Path(output) / TRAINING_RECORD
    if replaced.exists():
        old = json.loads(replaced.read_text())
        record["previous"] = {"title": old["card"]["title"], "evaluation": old["evaluation"]}
    pipeline.training_record = record
    pipeline.to(torch.float16)
    shutil.rmtree(output, ignore_errors=True)
    pipeline.save_pretrained(output)
    print(f"{output}: {sum(f.stat().st_size for f in Path(output).rglob('*') if f.is_file()) / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
