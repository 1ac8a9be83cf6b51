#!/usr/bin/env bash
# Tables 6.1 / 6.2 of the thesis at CPU size: QM9 (DFT geometries from qm9pack), a CVGAE trained for at most
# TRAIN_HOURS on one thread, then on the same test molecules ETKDG+UFF, ETKDG+MMFF (one shared embedding), CVGAE
# and CVGAE+MMFF with NUM_CONFS conformers each, timed per conformer on one thread; then the same evaluation on
# egfr.sdf (17-32 heavy atoms, shipped inside rdkit) with the QM9 model. Writes
# results/cvgae/cvgae_{qm9,egfr}_cpu_<date>.{json,md,png,molecules.png}.
#
#   bash examples/cvgae/qm9_cpu_table.sh                          # defaults below (~2.5 hours on 2 cores)
#   MOLECULES=3000 TEST=100 NUM_CONFS=20 TRAIN_HOURS=0.1 EGFR=0 bash examples/cvgae/qm9_cpu_table.sh   # a look
#   ALIGNMENT=mirror bash examples/cvgae/qm9_cpu_table.sh    # the mirror-invariant deviation, same data and baselines
#   ALIGNMENT=mirror DROPOUT=0 MAX_UPDATE=12596 bash examples/cvgae/qm9_cpu_table.sh   # readout dropout 0, equal updates
#
# Resumes: existing data, checkpoints and generated files are kept (delete WORK to start over).
set -euo pipefail
cd "$(dirname "$0")/../.."
MOLECULES=${MOLECULES:-30000}     # QM9 molecules kept (train = the rest after valid and test)
VALID=${VALID:-500}
TEST=${TEST:-500}
NUM_CONFS=${NUM_CONFS:-100}       # conformers per test molecule (thesis: 100)
TRAIN_HOURS=${TRAIN_HOURS:-1.0}   # --stop-time-hours of the CVGAE training
LR=${LR:-1e-3}                    # Adam learning rate (3e-4: val prior RMSD 1.14 at 2,000 updates; 1e-3: 0.91)
SEED=${SEED:-1}
ALIGNMENT=${ALIGNMENT:-proper}    # cvgae_loss --alignment: proper (thesis) or mirror (+ --handedness stereo)
DROPOUT=${DROPOUT:-0.2}           # --readout-dropout (the thesis and reference: 0.2)
MAX_UPDATE=${MAX_UPDATE:-0}       # > 0: also stop at this many updates (a comparison at equal updates)
EGFR=${EGFR:-1}                   # also evaluate on egfr.sdf
EGFR_CONFS=${EGFR_CONFS:-20}      # conformers per egfr molecule (ETKDG takes ~0.1 s per conformer there)
WORKERS=${WORKERS:-2}             # baseline molecules in parallel (times are per-molecule process times)
WORK=${WORK:-work/cvgae_table}
OUT_DIR=${OUT_DIR:-results/cvgae}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
export OMP_NUM_THREADS=1
DATE=$(date -u +%Y-%m-%d)
log() { echo "[cvgae $(date +%H:%M:%S)] $*" >&2; }
DATA=$WORK/qm9
VARIANT=""
GEN_FLAGS=""
if [ "$ALIGNMENT" = mirror ]; then VARIANT=_mirror; GEN_FLAGS="--handedness stereo"; fi
if [ "$DROPOUT" != 0.2 ]; then VARIANT=${VARIANT}_drop$DROPOUT; fi
export GEN_FLAGS
CK=$WORK/cvgae_qm9_lr${LR}_s$SEED$VARIANT
mkdir -p "$WORK" "$OUT_DIR"

[ -f "$DATA/test.sdf" ] || { log "preparing QM9 ($MOLECULES molecules)"; "$PY" scripts/prepare_conformers.py --qm9 \
    --out "$DATA" --max-molecules "$MOLECULES" --valid-size "$VALID" --test-size "$TEST" --max-atoms 9 --seed "$SEED"; }

if [ ! -f "$CK/train.done" ]; then
  log "training cvgae_qm9 for at most $TRAIN_HOURS h (checkpoint by validation prior RMSD, 10 samples)"
  mkdir -p "$CK"
  "$BIN/fairseq-train" "$DATA" --user-dir iterref_fairseq --task conformer --arch cvgae_qm9 --criterion cvgae_loss \
      --alignment "$ALIGNMENT" --optimizer adam --lr "$LR" --batch-size 20 --required-batch-size-multiple 1 --max-epoch 1000 \
      --stop-time-hours "$TRAIN_HOURS" --cpu --save-dir "$CK" --seed "$SEED" --log-format simple --log-interval 100 \
      --validate-interval-updates 500 --save-interval-updates 500 --keep-interval-updates 2 --no-epoch-checkpoints \
      --best-checkpoint-metric prior_rmsd --readout-dropout "$DROPOUT" --max-update "$MAX_UPDATE" \
      > "$CK/train.log" 2>&1
  touch "$CK/train.done"
fi

source examples/cvgae/common.sh
evaluate_set() {  # evaluate_set NAME DATA_DIR CONFS
  BASELINE_DIR="$WORK/generated_$1" four_methods_table "$2" "$CK/checkpoint_best.pt" "$WORK/generated_$1$VARIANT" \
      "$OUT_DIR/cvgae_${1}_cpu${VARIANT}_$DATE.json" "$3" "$WORKERS" "$SEED" --cpu
}

evaluate_set qm9 "$DATA" "$NUM_CONFS"
if [ "$EGFR" = 1 ]; then
  EGFR_SDF=$("$PY" -c "import os, rdkit; print(os.path.join(os.path.dirname(rdkit.__file__), 'Contrib/PBF/testData/egfr.sdf'))")
  [ -f "$WORK/egfr_data/test.sdf" ] || "$PY" scripts/prepare_conformers.py --sdf "$EGFR_SDF" --out "$WORK/egfr_data" \
      --test-only --max-atoms 50
  evaluate_set egfr "$WORK/egfr_data" "$EGFR_CONFS"
fi
"$PY" examples/cvgae/learning_curve.py "$CK/train.log" --out "$OUT_DIR/cvgae_qm9_cpu${VARIANT}_learning_curve_$DATE.json"
log "done: $OUT_DIR"
