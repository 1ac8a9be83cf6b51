#!/usr/bin/env bash
# Paper-sized run: hard star graphs (5 arms of 6-12 nodes, 56 ids; 50k train / 100 valid / 5k test), FlexMDM vs
# LFlexMDM (b_um fixed to 1, separate auxiliary network: the paper's best configuration) with the `flexmdm` /
# `lflexmdm` archs (d 768, 12 layers). Needs a GPU; optimiser settings are ours (the paper's are not restated).
#   bash examples/flexmdm/train_star_hard.sh [flexmdm|lflexmdm]
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${1:-lflexmdm}
SEED=${SEED:-1}
DATA=${DATA:-data-bin/star-hard}
SAVE=${SAVE:-checkpoints/star-hard-$ARCH}
[ -f "$DATA/train.src-tgt.src.bin" ] || iterref-make-star-graphs --difficulty hard --seed "$SEED" --out "$DATA" \
    --train 50000 --valid 100 --test 5000
fairseq-train "$DATA" --user-dir iterref_fairseq --task star_graph -s src -t tgt --arch "$ARCH" \
    --criterion flexmdm_loss --optimizer adam --adam-betas "(0.9,0.98)" --lr 3e-4 --lr-scheduler inverse_sqrt \
    --warmup-updates 2000 --clip-norm 1.0 --weight-decay 0.01 --dropout 0.0 --max-tokens 32768 \
    --max-update 200000 --max-target-positions 64 --max-source-positions 256 --fp16 --seed "$SEED" \
    --save-dir "$SAVE" --keep-last-epochs 2 --validate-interval-updates 5000 --log-interval 100
fairseq-generate "$DATA" --user-dir iterref_fairseq --task star_graph -s src -t tgt --path "$SAVE/checkpoint_best.pt" \
    --gen-subset test --batch-size 256 --scoring exact_match --sampling-steps 128 --confidence top_prob \
    --sampler-seed "$SEED" > "$SAVE/generate-test.txt"
tail -2 "$SAVE/generate-test.txt"
iterref-flexmdm-order "$DATA" --path "$SAVE/checkpoint_best.pt" --sampling-steps 128 --confidence top_prob \
    --plot "$SAVE/order.png" --out-json "$SAVE/order.json"
