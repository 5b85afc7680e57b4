#!/usr/bin/env bash
# How the previous bundled DAE-Talker (Obama at 64x64, replaced by GRID speaker s1: scripts/train_grid_dae.sh) was
# made, step by step, with the project's own commands, for its figures in the README. Each training step resumes
# from its checkpoint when run again. Needs ../shared/media.
set -euo pipefail
MEDIA=${MEDIA:-../shared/media}
WORK=${WORK:-runs/obama-dae}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # on 2 shared cores; raise it on a machine of your own

# 20 s of a public-domain Obama address (25 fps): the first 16 s train, the last 4 s are held back.
talking-head prepare --video "$MEDIA/video/edtalk_uncrop_Obama.mp4" --out "$WORK/data" --resolution 256 --overwrite
talking-head train autoencoder --data "$WORK/data" --out "$WORK/ae" --resolution 64 --lr 1e-3 \
    --max-minutes 6 --validate-every 200 --sample-every 400
talking-head train dae --data "$WORK/data" --out "$WORK/dae" --autoencoder "$WORK/ae/model" --resolution 64 \
    --lr 3e-4 --max-minutes 70 --validate-every 250 --sample-every 500
talking-head train speech2latent --data "$WORK/data" --out "$WORK/s2l" --dae "$WORK/dae/model" --preset small \
    --lr 3e-4 --max-minutes 15 --validate-every 100 --sample-every 500
talking-head evaluate --data "$WORK/data" --model "$WORK/s2l/model" --steps 100 --sampler ddim --with-ceiling -o "$WORK/evaluation.json"
