#!/usr/bin/env bash
# Paper-sized run: unconditional molecule generation on MOSES as SAFE strings (needs `pip install safe-mol`; use
# FORMAT=smiles without it), FlexMDM vs LFlexMDM, 1024 tau-leaping steps; validity / uniqueness / diversity /
# quality (QED >= 0.6 and SA <= 4) of 1,000 samples. Needs a GPU; optimiser settings are ours.
#   bash examples/flexmdm/train_safe_molecules.sh [flexmdm|lflexmdm]
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${1:-lflexmdm}
FORMAT=${FORMAT:-safe}
SEED=${SEED:-1}
DATA=${DATA:-data-bin/moses-$FORMAT}
SAVE=${SAVE:-checkpoints/moses-$FORMAT-$ARCH}
SMI=${SMI:-}   # optional: directory from scripts/prepare_moses.py (train.smi/valid.smi/test.smi)
[ -f "$DATA/train.src-tgt.tgt.bin" ] || python scripts/prepare_molecule_strings.py --out "$DATA" --format "$FORMAT" \
    ${SMI:+--smi-dir "$SMI"} --valid-size 10000 --max-test 10000 --seed "$SEED"
fairseq-train "$DATA" --user-dir iterref_fairseq --task molecule_strings --molecule-format "$FORMAT" -s src -t tgt \
    --arch "$ARCH" --criterion flexmdm_loss --optimizer adam --adam-betas "(0.9,0.98)" --lr 3e-4 \
    --lr-scheduler inverse_sqrt --warmup-updates 2000 --clip-norm 1.0 --weight-decay 0.01 --dropout 0.0 \
    --max-tokens 65536 --max-update 200000 --max-target-positions 128 --fp16 --seed "$SEED" --save-dir "$SAVE" \
    --keep-last-epochs 2 --validate-interval-updates 5000 --log-interval 100
iterref-flexmdm-molecules "$DATA" --path "$SAVE/checkpoint_best.pt" --num-samples 1000 --batch-size 250 \
    --sampling-steps 1024 --seed "$SEED" --out-json "results/moses_${FORMAT}_${ARCH}.json" \
    --out-strings "$SAVE/samples.txt"
