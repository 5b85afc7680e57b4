#!/usr/bin/env bash
# How the bundled landmark pipeline (pretrained/landmark-diffusion) was made, step by step, with the project's
# own commands. Each training step resumes from its checkpoint when run again. Needs ../shared/media and
# ../shared/weights/taef2, whisper-base-encoder and mediapipe-face-landmarker.
set -euo pipefail
MEDIA=${MEDIA:-../shared/media}
TAEF2=${TAEF2:-../shared/weights/taef2}
WHISPER=${WHISPER:-../shared/weights/whisper-base-encoder}
MEDIAPIPE_MODEL=${MEDIAPIPE_MODEL:-../shared/weights/mediapipe-face-landmarker/face_landmarker.task}
WORK=${WORK:-runs/default-landmark}

# The pretrained frame autoencoder (TAEF2, MIT): f=8, a 32-channel latent.
talking-head convert-taesd --encoder "$TAEF2/taef2_encoder.pth" --decoder "$TAEF2/taef2_decoder.pth" \
    --licence "$TAEF2/LICENSE" --out "$WORK/taef2"

# Training footage: every multi-person clip with speech, except the people held out below (47 videos, about
# 45 people; those with too few faces found are left out and listed in dataset.json). The last 20 % of each
# clip validates.
cd "$MEDIA"
TRAIN=(video/edtalk_uncrop_Obama.mp4 video/sadtalker_WDA_AlexandriaOcasioCortez_000.mp4
    video/styletalk_Obama_clip1_av.mp4 video/styletalk_Obama_clip2_av.mp4 video/styletalk_andrew_clip_1_av.mp4
    video/videoretalking_face1.mp4 multi/emotionmorphing_obama.mp4 multi/himanshu-testvideos_california_video1.mp4
    multi/himanshu-testvideos_iilegal_drug_policy_video1.mp4 multi/latentsync_demo1_video.mp4
    multi/latentsync_demo3_video.mp4 multi/lipnet_*.mpg multi/liveportrait_d11.mp4 multi/pcavs_00002.mp4
    multi/pcavs_00010.mp4 multi/pcavs_00015.mp4 multi/pcavs_00098.mp4 multi/pcavs_517600055.mp4
    multi/pcavs_620900105.mp4 multi/pcavs_681100216.mp4 multi/pcavs_731200067.mp4 multi/pcavs_741400104.mp4
    multi/pcavs_741400163.mp4 multi/pushpakgote-lipnet_bbbs5s.mpg multi/spectre_M003_level_1_disgusted_015.mp4
    multi/spectre_M026_level_3_disgusted_018.mp4 multi/spectre_M030_level_3_angry_016.mp4
    multi/spectre_W040_level_3_happy_029.mp4 multi/subtitleeffect_dili.mp4 multi/wav2lipgfpgan_kim_7s_raw.mp4
    long/himanshu-testvideos_security_and_foreign_policy_video1.mp4 long/vidtimit_fadg0/*.mp4)
# Six people held out entirely: the evaluation's unseen faces and voices.
HELD_OUT=(video/edtalk_mouth_source_av.mp4 video/styletalk_feifeili_clip3_av.mp4 multi/pcavs_00086.mp4
    multi/spectre_W023_level_2_surprised_010.mp4 multi/liveportrait_d12.mp4 multi/aniportrait_pose_ref_video.mp4)
cd - >/dev/null
PREPARE=(--resolution 256 --crop smooth --crop-scale 2.0 --speaker-embeddings --overwrite)
talking-head prepare --video "${TRAIN[@]/#/$MEDIA/}" --out "$WORK/train" "${PREPARE[@]}" --skip-unusable
talking-head prepare --video "${HELD_OUT[@]/#/$MEDIA/}" --out "$WORK/heldout" "${PREPARE[@]}" --val-fraction 1
# A2L also hears GRID speaker s1 (CC BY 4.0): every fourth of its 950 sentences, about 12 minutes.
talking-head prepare --video $(ls "$MEDIA"/long/grid_s1/*.mp4 | awk 'NR % 4 == 1') --out "$WORK/grid" "${PREPARE[@]}"

# On 2 shared CPU cores: L2V (2 threads) in TAEF2's latent at 128x128, every second frame, beside A2L (1 thread).
# A2L hears speech through the audio encoder of Whisper base (MIT): the mean of its layers' hidden states.
A2L=(--preset small --features whisper --speech-model "$WHISPER" --feature-layers mean)
OMP_NUM_THREADS=1 talking-head train a2l --data "$WORK/train" "$WORK/grid" --out "$WORK/a2l" "${A2L[@]}" \
    --lr 1e-3 --weight-decay 0.05 --max-steps 6000 --validate-every 500 --sample-every 2000 &
OMP_NUM_THREADS=2 talking-head train l2v --data "$WORK/train" --out "$WORK/l2v" --autoencoder "$WORK/taef2" \
    --resolution 128 --preset medium --frame-stride 2 --lr 3e-4 --batch-size 16 --max-minutes 75 \
    --validate-every 500 --sample-every 1000
wait
# A2L resumes at its last step and joins L2V into one pipeline.
talking-head train a2l --data "$WORK/train" "$WORK/grid" --out "$WORK/a2l" "${A2L[@]}" --max-steps 6000 \
    --l2v "$WORK/l2v/model"
# MediaPipe's face mesh is the second judge of the mouth (the mediapipe extra and its face_landmarker.task).
talking-head evaluate --pipeline landmark --data "$WORK/heldout" --model "$WORK/a2l/model" --steps 25 --sampler ddim \
    --size 128 --mediapipe-model "$MEDIAPIPE_MODEL" \
    -o "$WORK/evaluation.json"
python scripts/bundle_model.py landmark "$WORK/a2l/model" "$WORK/evaluation.json" pretrained/landmark-diffusion \
    scripts/landmark_card_notes.md
python scripts/mouth_before_after.py "$WORK/heldout" pretrained/landmark-diffusion/mouth_before_after.jpg --size 256
