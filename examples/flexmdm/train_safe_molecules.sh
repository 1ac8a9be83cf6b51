#!/usr/bin/env bash
# Paper-sized run: unconditional molecule generation on MOSES as SAFE strings (needs `pip install safe-mol`; use
# FORMAT=smiles without it), FlexMDM vs LFlexMDM, 1024 tau-leaping steps; validity / uniqueness / diversity /
# quality (QED >= 0.6 and SA <= 4) of 1,000 samples. Needs a GPU; optimiser settings are ours.
#   bash examples/flexmdm/train_safe_molecules.sh [flexmdm|lflexmdm]
# CPU smoke run of the same pipeline (SMILES, small data, two updates of the paper-sized model, few samples):
#   FORMAT=smiles DEVICE_ARGS=--cpu MAX_TRAIN=2000 VALID=100 MAX_UPDATE=2 MAX_TOKENS=4000 NUM=8 STEPS=8 \
#     DATA=/tmp/mol SAVE=/tmp/mol-ck OUT_JSON=/tmp/mol.json bash examples/flexmdm/train_safe_molecules.sh lflexmdm
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${1:-lflexmdm}
FORMAT=${FORMAT:-safe}
SEED=${SEED:-1}
DATA=${DATA:-data-bin/moses-$FORMAT}
SAVE=${SAVE:-checkpoints/moses-$FORMAT-$ARCH}
MAX_TRAIN=${MAX_TRAIN:-0}            # 0 = every training molecule
VALID=${VALID:-10000}
MAX_UPDATE=${MAX_UPDATE:-200000}
MAX_TOKENS=${MAX_TOKENS:-65536}
NUM=${NUM:-1000}                      # samples scored
STEPS=${STEPS:-1024}                  # tau-leaping steps
DEVICE_ARGS=${DEVICE_ARGS:---fp16}    # GPU mixed precision; --cpu for a smoke run
OUT_JSON=${OUT_JSON:-results/moses_${FORMAT}_${ARCH}.json}
SMI=${SMI:-}   # optional: directory from scripts/prepare_moses.py (train.smi/valid.smi/test.smi)
[ -f "$DATA/train.src-tgt.tgt.bin" ] || python scripts/prepare_molecule_strings.py --out "$DATA" --format "$FORMAT" \
    ${SMI:+--smi-dir "$SMI"} --max-train "$MAX_TRAIN" --valid-size "$VALID" --max-test 10000 --seed "$SEED"
fairseq-train "$DATA" --user-dir iterref_fairseq --task molecule_strings --molecule-format "$FORMAT" -s src -t tgt \
    --arch "$ARCH" --criterion flexmdm_loss --optimizer adam --adam-betas "(0.9,0.98)" --lr 3e-4 \
    --lr-scheduler inverse_sqrt --warmup-updates 2000 --clip-norm 1.0 --weight-decay 0.01 --dropout 0.0 \
    --max-tokens "$MAX_TOKENS" --max-update "$MAX_UPDATE" --max-target-positions 128 $DEVICE_ARGS --seed "$SEED" \
    --save-dir "$SAVE" --keep-last-epochs 2 --validate-interval-updates 5000 --log-interval 100
iterref-generate-molecule-strings "$DATA" --path "$SAVE/checkpoint_best.pt" --num-samples "$NUM" --batch-size 250 \
    --sampling-steps "$STEPS" --seed "$SEED" ${DEVICE_ARGS/--fp16/} --out "$SAVE/samples.txt"
mkdir -p "$(dirname "$OUT_JSON")"
cp "$SAVE/samples.txt.json" "$OUT_JSON"
