#!/usr/bin/env bash
# How the bundled DAE-Talker (pretrained/dae-talker-grid-s1) was made: GRID speaker s1 (CC BY 4.0) at 128x128 in the
# pretrained TAEF2 latent, with the training-only mouth head; every step, with the project's own commands. Each
# training step resumes from its checkpoint when run again (the DAE ran in two sessions, 91 and 93 minutes, on one
# core each). Needs ../shared/media and ../shared/weights/taef2.
set -euo pipefail
MEDIA=${MEDIA:-../shared/media}
WEIGHTS=${WEIGHTS:-../shared/weights}
WORK=${WORK:-runs/grid-dae}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # on 2 shared cores; raise it on a machine of your own
mkdir -p "$WORK"

# The sentences, sorted by name: every 38th from the second on (25) is held back whole, and the first 20 of those
# measure the model; of the rest every third is taken and of those every second (155, 7.6 minutes, 11,470 frames)
# trains.
ls "$MEDIA/long/grid_s1/" | sed -n 's/\.mp4$//p' | sort > "$WORK/all.txt"
awk 'NR % 38 == 2' "$WORK/all.txt" | head -25 > "$WORK/heldout.txt"
grep -vxF -f "$WORK/heldout.txt" "$WORK/all.txt" | awk 'NR % 3 == 1' | awk 'NR % 2 == 1' > "$WORK/train.txt"
videos() { sed "s|^|$MEDIA/long/grid_s1/|; s|$|.mp4|" "$1"; }

talking-head convert-taesd --encoder "$WEIGHTS/taef2/taef2_encoder.pth" --decoder "$WEIGHTS/taef2/taef2_decoder.pth" \
    --licence "$WEIGHTS/taef2/LICENSE" --out "$WORK/taef2"
head -20 "$WORK/heldout.txt" > "$WORK/measured.txt"
talking-head prepare --video $(videos "$WORK/measured.txt") --out "$WORK/heldout" --resolution 128 --crop-scale 2.0 \
    --val-fraction 1.0 --overwrite
talking-head prepare --video $(videos "$WORK/train.txt") --out "$WORK/train" --resolution 128 --crop-scale 2.0 \
    --val-fraction 0.1 --overwrite
talking-head train dae --data "$WORK/train" --out "$WORK/dae" --autoencoder "$WORK/taef2" --resolution 128 \
    --mouth-head-weight 0.5 --lr 3e-4 --max-minutes 184 --validate-every 200 --sample-every 400
# speech2latent hears Whisper tiny.en's audio encoder (OpenAI, MIT): `talking-head convert-whisper tiny.en.pt --out
# WHISPER` makes the folder from OpenAI's checkpoint; 400 steps, before it overfits the one man's sentences.
talking-head train speech2latent --data "$WORK/train" --out "$WORK/s2l" --dae "$WORK/dae/model" --preset small \
    --lr 3e-4 --max-steps 400 --validate-every 100 --sample-every 500 --features whisper \
    --speech-model "${WHISPER:-$WEIGHTS/whisper-tiny.en-encoder}" --feature-layers mean
talking-head evaluate --data "$WORK/heldout" --model "$WORK/s2l/model" --steps 10 --sampler dpm++ --with-ceiling \
    -o "$WORK/evaluation.json"
python scripts/bundle_model.py dae "$WORK/s2l/model" "$WORK/evaluation.json" pretrained/dae-talker-grid-s1 -
