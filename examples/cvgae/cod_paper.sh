#!/usr/bin/env bash
# Thesis §6.4 on COD or CSD (not installable offline): SDF=FILE with 3-D structures the user has (e.g. COD's organic
# subset exported to SDF), <= 50 heavy atoms, 3,000 validation / 3,000 test molecules, cvgae_cod (5 message-passing
# steps, n_max 50) with the 15-element COD one-hot; then Tables 6.1 / 6.2 as in qm9_paper.sh.
#
#   SDF=cod_organic.sdf bash examples/cvgae/cod_paper.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${SDF:?set SDF to an SDF file with 3-D coordinates (COD / CSD structures)}"
WORK=${WORK:-work/cvgae_cod}
SEED=${SEED:-1}
PATIENCE=${PATIENCE:-20}
WORKERS=${WORKERS:-16}
NUM_CONFS=${NUM_CONFS:-100}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
DATE=$(date -u +%Y-%m-%d)
DATA=$WORK/data
CK=$WORK/cvgae_cod_s$SEED
mkdir -p "$WORK" results/cvgae
[ -f "$DATA/test.sdf" ] || "$PY" scripts/prepare_conformers.py --sdf "$SDF" --out "$DATA" --valid-size 3000 \
    --test-size 3000 --max-atoms 50 --seed "$SEED"
[ -f "$CK/checkpoint_best.pt" ] || "$BIN/fairseq-train" "$DATA" --user-dir iterref_fairseq --task conformer \
    --element-set cod --max-atoms 50 --arch cvgae_cod --criterion cvgae_loss --optimizer adam --lr 3e-4 \
    --batch-size 20 --required-batch-size-multiple 1 --max-epoch 2500 --patience "$PATIENCE" --save-dir "$CK" \
    --seed "$SEED" --best-checkpoint-metric prior_rmsd --no-epoch-checkpoints --log-format simple \
    | tee "$CK.train.log"
log() { echo "[cvgae $(date +%H:%M:%S)] $*" >&2; }
source examples/cvgae/common.sh
four_methods_table "$DATA" "$CK/checkpoint_best.pt" "$WORK/generated" "results/cvgae/cvgae_cod_paper_$DATE.json" \
    "$NUM_CONFS" "$WORKERS" "$SEED"
