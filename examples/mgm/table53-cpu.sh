#!/usr/bin/env bash
# A small Table 5.3 on a CPU (2 cores, about 1 hour with the defaults: 30 min training): QM9 subset, masked_graph_model_tiny,
# mask rate 10% / 20% x training / marginal initialization, GuacaMol metrics, Figs. 5.3 / 5.8 / 5.12.
#
# Knobs (environment): OUT (work/mgm_cpu), MOLECULES (30000 QM9 molecules in total), TRAIN_MINUTES (30),
#   MAX_UPDATE (0 = no update limit; the first limit wins), NUM_SAMPLES (1000), STEPS (200), TRAJ_EVERY (10),
#   BATCH (500), EVAL_FLAGS ("--max-reference 5000").
# Novelty is scored twice: against the training molecules and against the whole QM9 (the thesis's reference,
# DATA/all.smi written by prepare_qm9.py --write-all).
# Stages whose output exists are skipped, so an interrupted run resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/mgm/common.sh
OUT=${OUT:-work/mgm_cpu}
MOLECULES=${MOLECULES:-30000}
TRAIN_MINUTES=${TRAIN_MINUTES:-30}
MAX_UPDATE=${MAX_UPDATE:-0}
NUM_SAMPLES=${NUM_SAMPLES:-1000}
STEPS=${STEPS:-200}
TRAJ_EVERY=${TRAJ_EVERY:-10}
BATCH=${BATCH:-500}
EVAL_FLAGS=${EVAL_FLAGS:---max-reference 5000}
PYTHON=${PYTHON:-python}
USER_DIR=$PWD/iterref_fairseq
DATA=$OUT/qm9
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if [ ! -f "$DATA/train.smi" ] || [ ! -f "$DATA/all.smi" ]; then
  log "1/3 preparing $MOLECULES QM9 molecules into $DATA"
  "$PYTHON" scripts/prepare_qm9.py --out "$DATA" --max-molecules "$MOLECULES" --valid-size 1000 --test-size 1000 --write-all
fi
if [ ! -f "$OUT/ckpt/checkpoint_best.pt" ]; then
  log "2/3 training masked_graph_model_tiny for $TRAIN_MINUTES minutes"
  fairseq-train "$DATA" --user-dir "$USER_DIR" --task mol_graph --arch masked_graph_model_tiny \
    --criterion masked_graph_loss --optimizer adam --lr 1e-3 --adam-betas '(0.9,0.98)' --clip-norm 10 \
    --batch-size 128 --max-epoch 1000 --max-update "$MAX_UPDATE" --stop-time-hours "$("$PYTHON" -c "print($TRAIN_MINUTES / 60)")" \
    --cpu --save-dir "$OUT/ckpt" --no-epoch-checkpoints --log-format simple --log-interval 50 --seed 1
fi
log "3/3 sampling and scoring (Table 5.3 grid)"
# shellcheck disable=SC2086
NOVELTY_REFERENCE=$DATA/all.smi mgm_grid "$OUT/ckpt/checkpoint_best.pt" "$DATA" "$OUT/table53" "$NUM_SAMPLES" "$STEPS" "$TRAJ_EVERY" "$BATCH" \
  "0.1:train 0.1:marginal 0.2:train 0.2:marginal" $EVAL_FLAGS
