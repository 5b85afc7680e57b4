#!/usr/bin/env bash
# How the bundled landmark pipeline (pretrained/landmark-diffusion) was made, step by step, with the project's
# own commands. Each training step resumes from its checkpoint when run again. Needs ../shared/media.
set -euo pipefail
MEDIA=${MEDIA:-../shared/media}
WORK=${WORK:-runs/default-landmark}
V=$MEDIA/video

# Six clips of five people train (the last 20 % of each validates); two clips are held out entirely:
# a woman the models never see, and an unseen clip of a seen speaker.
talking-head prepare --video "$V/edtalk_uncrop_Obama.mp4" "$V/styletalk_Obama_clip2_av.mp4" \
    "$V/styletalk_andrew_clip_1_av.mp4" "$V/styletalk_feifeili_clip1_av.mp4" \
    "$V/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4" "$V/videoretalking_face1.mp4" \
    --out "$WORK/train" --resolution 128 --crop smooth --crop-scale 2.0 --speaker-embeddings --overwrite
talking-head prepare --video "$V/edtalk_mouth_source_av.mp4" "$V/styletalk_feifeili_clip3_av.mp4" \
    --out "$WORK/heldout" --resolution 128 --crop smooth --crop-scale 2.0 --speaker-embeddings --val-fraction 1 --overwrite

# On 2 shared CPU cores. The autoencoder first (2 threads), then L2V (2 threads) beside A2L and a longer
# decoder-only run of the autoencoder (1 thread each).
OMP_NUM_THREADS=2 talking-head train autoencoder --data "$WORK/train" --out "$WORK/ae" --resolution 96 --preset small \
    --lr 5e-4 --max-minutes 11 --validate-every 200 --sample-every 400 --checkpoint-minutes 4
OMP_NUM_THREADS=1 talking-head train a2l --data "$WORK/train" --out "$WORK/a2l" --preset small --lr 1e-3 \
    --weight-decay 0.05 --max-steps 3000 --validate-every 250 --sample-every 1000 &
OMP_NUM_THREADS=1 talking-head train autoencoder --data "$WORK/train" --out "$WORK/ae-decoder" --resolution 96 \
    --init "$WORK/ae/model" --decoder-only --lr 5e-4 --max-minutes 40 --validate-every 200 --sample-every 400 &
OMP_NUM_THREADS=2 talking-head train l2v --data "$WORK/train" --out "$WORK/l2v" --autoencoder "$WORK/ae/model" \
    --resolution 96 --preset small --lr 3e-4 --batch-size 16 --max-minutes 95 --validate-every 250 --sample-every 500
wait
# The decoder again, with flipped and recoloured frames, so that it also draws faces it never saw; the
# encoder (and so the latent space L2V learned) stays as it is.
OMP_NUM_THREADS=2 talking-head train autoencoder --data "$WORK/train" --out "$WORK/ae-augmented" --resolution 96 \
    --init "$WORK/ae-decoder/model" --decoder-only --augment --lr 5e-4 --max-minutes 12 --validate-every 100
# L2V resumes at its last step and exports with the final decoder; A2L resumes and joins it.
talking-head train l2v --data "$WORK/train" --out "$WORK/l2v" --autoencoder "$WORK/ae-augmented/model" \
    --resolution 96 --preset small --max-minutes 95
talking-head train a2l --data "$WORK/train" --out "$WORK/a2l" --preset small --max-steps 3000 --l2v "$WORK/l2v/model"
talking-head evaluate --pipeline landmark --data "$WORK/heldout" --model "$WORK/a2l/model" --steps 50 \
    -o "$WORK/evaluation.json"
python scripts/bundle_model.py landmark "$WORK/a2l/model" "$WORK/evaluation.json" pretrained/landmark-diffusion \
    scripts/landmark_card_notes.md
