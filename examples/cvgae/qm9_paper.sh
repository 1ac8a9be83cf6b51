#!/usr/bin/env bash
# Thesis §6.4 on QM9 at paper size: all of qm9pack's QM9, 5,000 validation / 5,000 test molecules, cvgae_qm9 trained
# until the validation prior RMSD stops improving (PATIENCE validations), 100 conformers per test molecule for
# ETKDG+UFF, ETKDG+MMFF (CPU workers), CVGAE and CVGAE+MMFF; Tables 6.1 / 6.2 in results/cvgae/.
#
#   bash examples/cvgae/qm9_paper.sh            # GPU for training and generation; WORKERS CPU processes for RDKit
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-work/cvgae_paper}
SEED=${SEED:-1}
PATIENCE=${PATIENCE:-20}          # validations (every epoch) without improvement before stopping
WORKERS=${WORKERS:-16}
NUM_CONFS=${NUM_CONFS:-100}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
DATE=$(date -u +%Y-%m-%d)
DATA=$WORK/qm9
CK=$WORK/cvgae_qm9_s$SEED
mkdir -p "$WORK" results/cvgae
[ -f "$DATA/test.sdf" ] || "$PY" scripts/prepare_conformers.py --qm9 --out "$DATA" --valid-size 5000 --test-size 5000 \
    --max-atoms 9 --seed "$SEED"
[ -f "$CK/checkpoint_best.pt" ] || "$BIN/fairseq-train" "$DATA" --user-dir iterref_fairseq --task conformer \
    --arch cvgae_qm9 --criterion cvgae_loss --optimizer adam --lr 3e-4 --batch-size 20 \
    --required-batch-size-multiple 1 --max-epoch 2500 --patience "$PATIENCE" --save-dir "$CK" --seed "$SEED" \
    --best-checkpoint-metric prior_rmsd --no-epoch-checkpoints --log-format simple --log-interval 500 \
    | tee "$CK.train.log"
log() { echo "[cvgae $(date +%H:%M:%S)] $*" >&2; }
source examples/cvgae/common.sh
four_methods_table "$DATA" "$CK/checkpoint_best.pt" "$WORK/generated" "results/cvgae/cvgae_qm9_paper_$DATE.json" \
    "$NUM_CONFS" "$WORKERS" "$SEED"
