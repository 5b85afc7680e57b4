"""Copy a trained pipeline into the package as a bundled default: half-precision weights, the held-back
evaluation in its training record, and its model card, which puts the figures of the version it replaces
(the one in OUT) beside its own.

Usage: bundle_model.py {dae,landmark} MODEL EVALUATION_JSON OUT [NOTES_MARKDOWN|-] [REPLACED FOOTAGE]

NOTES_MARKDOWN (or - to keep the card's own notes) replaces the card's free text. REPLACED is the bundled folder
that the new one replaces when it is not OUT; FOOTAGE says what that version was measured on when it was not the
same held-back footage.
"""

import json
import shutil
import sys
from pathlib import Path

from talking_head.pipelines.base import TRAINING_RECORD
from talking_head.pipelines.dae_talker import DAETalkerPipeline
from talking_head.pipelines.landmark import LandmarkDiffusionPipeline

CARDS = {
    "dae": {
        "title": "DAE-Talker: GRID speaker s1 (bundled default, 128x128 face in TAEF2's latent, CPU-trained)",
        "license": "cc-by-4.0",
        "data": (
            "Trained on the GRID audio-visual sentence corpus (Cooke et al., 2006), speaker s1, CC BY 4.0: one man "
            "in one blue studio, frontal, 3 s sentences at 25 fps (`../shared/media/long/grid_s1`). Of the 950 "
            "sentences, sorted by name, every 38th from the second on (25) is held back whole and the first 20 "
            "of those give the figures below; of the rest every sixth (155 sentences, 7.6 minutes, 11,470 frames) "
            "trains, its last 10 % of each sentence validating. Face crops at 128x128 (crop scale 2). "
            "`scripts/train_grid_dae.sh` holds every step. The weights are offered under CC BY 4.0 with this "
            "attribution; the frame autoencoder (TAEF2) is MIT."
        ),
        "notes": (
            "## Configuration\n"
            "- Frame autoencoder: the pretrained TAEF2 (f=8, 32-channel latent, 1.34M + 1.34M parameters, MIT), "
            "frozen; latents at 16x16x32.\n"
            "- Decoder (`latent-small` DAEUNet, v-prediction) and semantic encoder (`small`, 512-d z_sem) at "
            "128x128, with a training-only mouth head (`--mouth-head-weight 0.5`) that reads the lips' shape from "
            "z_sem, so that the code must hold the mouth; the head is not exported.\n"
            "- Speech2Latent (`small`) on the audio encoder of OpenAI's Whisper, tiny.en (Radford et al., 2022; MIT, "
            "its notice in `speech_model/LICENSE`): the mean of its layers' hidden states, two vectors per video frame; "
            "400 steps (on these features it overfits the one man's 155 sentences after a few hundred). Chosen over "
            "Whisper base by measurement: on JFK's voice the mouth followed the speech at 0.64 (base: 0.54), on the "
            "held-back sentences at 0.88 (0.88), and tiny.en is 16 MB against 41 MB.\n"
            "- All on 2 CPU cores (one thread per process). Weights stored in float16 (loaded as float32).\n\n"
            "## How the figures were made\n"
            "`talking-head evaluate --data HELD_OUT --model pretrained/dae-talker-grid-s1 --steps 10 --sampler dpm++ "
            "--with-ceiling --mediapipe-model face_landmarker.task` on the 20 held-back sentences that "
            "`scripts/train_grid_dae.sh` prepares (1480 frames; PSNR and SSIM on the 128x128 face crop; the mouth "
            "opening from dlib's 68 landmarks on the crops enlarged to 256x256, and as a second judge from "
            "MediaPipe's face mesh, `mediapipe_*`). A voice it never heard: `talking-head generate --audio assets/jfk.flac --size 256 "
            "-o jfk.mp4`, then `talking-head evaluate --generated jfk.mp4 --real jfk.mp4 --metrics sync` (how the "
            "mouth follows the loudness of the speech, and how late).\n\n"
            "## Limits\nTrained on one CPU core for about three hours (the paper used 12 minutes of footage and "
            "days on GPUs). The mouth follows the held-back speech, but the frames are soft (21.7 dB from speech, "
            "24.3 dB from the real frames' own codes): the eyes, hair and shirt lose their fine detail. It draws "
            "only this man. On Whisper's features his mouth follows other voices' sounds better than on log-mel "
            "(JFK 0.64 at 1 frame, against 0.47 three frames late), at a cost of 0.84 dB on the held-back frames "
            "(speech2latent on Whisper fits the one man's sentences less closely). On four other voices it never heard "
            "(the same sync command) the two are even: English read speech (LJSpeech) 0.42 at 1 frame (log-mel 0.45 "
            "at 1), German 0.47 at 0 (0.28 at 1), Mandarin 0.11 at -5 (0.20 at 0), a LibriVox reader 0.37 at 1 "
            "(0.61 at 1). This measure rewards a mouth that follows the loudness, which log-mel's did; Mandarin, "
            "least like the man's English, is the weakest on both."
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


def main(kind: str, model: str, evaluation: str, output: str, notes_file: str | None = None,
         replaced_folder: str | None = None, replaced_footage: str | None = None) -> None:
    pipeline_class = {"dae": DAETalkerPipeline, "landmark": LandmarkDiffusionPipeline}[kind]
    pipeline = pipeline_class.from_pretrained(model)
    record = dict(pipeline.training_record or {})
    record["evaluation"] = json.loads(Path(evaluation).read_text())
    card = dict(CARDS[kind])
    if notes_file and notes_file != "-":
        card["notes"] = Path(notes_file).read_text()
    record["card"] = card
    replaced = Path(replaced_folder or output) / TRAINING_RECORD
    if replaced.exists():
        old = json.loads(replaced.read_text())
        record["previous"] = {"title": old["card"]["title"], "evaluation": old["evaluation"]}
        if replaced_footage:
            record["previous"]["footage"] = replaced_footage
    pipeline.training_record = record
    pipeline.half_precision()
    shutil.rmtree(output, ignore_errors=True)
    pipeline.save_pretrained(output)
    print(f"{output}: {sum(f.stat().st_size for f in Path(output).rglob('*') if f.is_file()) / 1e6:.1f} MB")


if __name__ == "__main__":
    main(*sys.argv[1:])
