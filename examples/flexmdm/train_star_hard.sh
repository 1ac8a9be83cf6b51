#!/usr/bin/env bash
# Paper-sized run: hard star graphs (5 paths of 6-12 nodes crossing one junction, 56 ids; 50k train / 100 valid / 5k test), FlexMDM vs
# LFlexMDM (b_um fixed to 1, separate auxiliary network: the paper's best configuration) with the `flexmdm` /
# `lflexmdm` archs (d 768, 12 layers). Needs a GPU; optimiser settings are ours (the paper's are not restated).
#   bash examples/flexmdm/train_star_hard.sh [flexmdm|lflexmdm]
# CPU smoke run of the same pipeline (tiny data, two updates of the paper-sized model; checks that it runs):
#   DEVICE_ARGS=--cpu TRAIN=300 TEST=8 MAX_UPDATE=2 MAX_TOKENS=2000 STEPS=4 DATA=/tmp/hard SAVE=/tmp/hard-ck \
#     bash examples/flexmdm/train_star_hard.sh lflexmdm
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${1:-lflexmdm}
SEED=${SEED:-1}
DATA=${DATA:-data-bin/star-hard}
SAVE=${SAVE:-checkpoints/star-hard-$ARCH}
TRAIN=${TRAIN:-50000}
TEST=${TEST:-5000}
MAX_UPDATE=${MAX_UPDATE:-200000}
MAX_TOKENS=${MAX_TOKENS:-32768}
STEPS=${STEPS:-128}                  # tau-leaping steps
DEVICE_ARGS=${DEVICE_ARGS:---fp16}   # GPU mixed precision; --cpu for a smoke run
[ -f "$DATA/train.src-tgt.src.bin" ] || iterref-make-star-graphs --difficulty hard --seed "$SEED" --out "$DATA" \
    --train "$TRAIN" --valid 100 --test "$TEST"
fairseq-train "$DATA" --user-dir iterref_fairseq --task star_graph -s src -t tgt --arch "$ARCH" \
    --criterion flexmdm_loss --optimizer adam --adam-betas "(0.9,0.98)" --lr 3e-4 --lr-scheduler inverse_sqrt \
    --warmup-updates 2000 --clip-norm 1.0 --weight-decay 0.01 --dropout 0.0 --max-tokens "$MAX_TOKENS" \
    --max-update "$MAX_UPDATE" --max-target-positions 64 --max-source-positions 256 $DEVICE_ARGS --seed "$SEED" \
    --save-dir "$SAVE" --keep-last-epochs 2 --validate-interval-updates 5000 --log-interval 100
fairseq-generate "$DATA" --user-dir iterref_fairseq --task star_graph -s src -t tgt --path "$SAVE/checkpoint_best.pt" \
    --gen-subset test --batch-size 256 --scoring exact_match --sampling-steps "$STEPS" --confidence top_prob \
    --sampler-seed "$SEED" ${DEVICE_ARGS/--fp16/} > "$SAVE/generate-test.txt"
tail -2 "$SAVE/generate-test.txt"
iterref-analyze-star-order "$DATA" --path "$SAVE/checkpoint_best.pt" --sampling-steps "$STEPS" --confidence top_prob \
    ${DEVICE_ARGS/--fp16/} --plot "$SAVE/order.png" --out "$SAVE/order.json"
