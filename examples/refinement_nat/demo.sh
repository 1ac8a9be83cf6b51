#!/usr/bin/env bash
# The main job (`make demo`): a small Table 3.1 on German->English Bible text, on a CPU (about 30 minutes on
# 2 cores, install included).
#
#   1. prepare the Bible data (Acts = test, Hebrews = valid), a training subset of short verses
#   2. train a tiny autoregressive teacher (fairseq `transformer`) for AR_MINUTES
#   3. distill: rewrite the training targets with the teacher's greedy output
#   4. train `refinement_nat_tiny` on the distilled data for NAT_MINUTES (the paper's method with the reference
#      code's settings: itrain = 4, pDAE = 0.5, layerwise corruption, residual attention blocks and highway
#      feed-forward blocks; no dropout: the CPU budget is far below convergence, so the model underfits), plus
#      NAT_FLAGS. One deviation by default: the curriculum --refine-from-update 600 (decoder 1 alone for the first
#      600 updates; at this budget it gave 3.0 instead of 2.0 validation BLEU, docs/refinement_nat.md); set
#      NAT_FLAGS="" for the paper's training from the first update.
#   5. decode the test book with AR beam 1/4 and the NAT with idec = 1, 2, 5, 10, 20 and adaptive (cap 20);
#      print and save the table (OUT/table31.json, OUT/table31.md)
#
# Every stage is skipped when its output exists (the NAT stage: when its training has ended), so an interrupted
# run resumes. Knobs (environment):
#   OUT (work/demo), TRAIN_PAIRS (0 = all, before the length filter), MAX_TOKENS_PER_SIDE (40), BPE_OPS (6000),
#   AR_MINUTES (7), NAT_MINUTES (14), NAT_UPDATES (100000, a cap: training stops at whichever comes first),
#   NAT_FLAGS ("--refine-from-update 600"), DISTILL_BEAM (1), SPEED_SENTENCES (100)
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/common.sh
OUT=${OUT:-work/demo}
TRAIN_PAIRS=${TRAIN_PAIRS:-0}
MAX_TOKENS_PER_SIDE=${MAX_TOKENS_PER_SIDE:-40}
BPE_OPS=${BPE_OPS:-6000}
AR_MINUTES=${AR_MINUTES:-7}
NAT_UPDATES=${NAT_UPDATES:-100000}
NAT_MINUTES=${NAT_MINUTES:-14}
NAT_FLAGS=${NAT_FLAGS---refine-from-update 600}
DISTILL_BEAM=${DISTILL_BEAM:-1}
SPEED_SENTENCES=${SPEED_SENTENCES:-100}
PYTHON=${PYTHON:-python}
USER_DIR=$PWD/iterref_fairseq
DATA=$OUT/bible
mkdir -p "$OUT"
log() { echo "[demo $(date +%H:%M:%S)] $*" >&2; }

bible_data_stage "1/5 preparing Bible de->en data into $DATA"
ar_teacher_stage "2/5 training the AR teacher for $AR_MINUTES minutes"

distill_stage "3/5 distilling the training targets (teacher beam $DISTILL_BEAM)"

# the marker is written only when training ends, so an interrupted run resumes from checkpoint_last.pt
if [ ! -f "$OUT/nat/.trained" ]; then
  log "4/5 training refinement_nat_tiny on the distilled data for $NAT_MINUTES minutes"
  # shellcheck disable=SC2086
  fairseq-train "$OUT/distill/bin" --user-dir "$USER_DIR" --task translation_refine --arch refinement_nat_tiny \
    --criterion refinement_nat_loss --train-steps 4 --dae-prob 0.5 --max-length-offset 20 $NAT_FLAGS \
    --optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 150 \
    --dropout 0.0 --max-tokens 2048 --max-update "$NAT_UPDATES" --stop-time-hours "$(hours "$NAT_MINUTES")" --cpu --seed 1 \
    --save-dir "$OUT/nat" --no-epoch-checkpoints --save-interval-updates 200 --keep-interval-updates 1 \
    --disable-validation --log-format simple --log-interval 50
  touch "$OUT/nat/.trained"
fi

log "5/5 decoding the test book (Acts) with every system"
"$PYTHON" -m iterref_fairseq.cli.benchmark_nat "$DATA/bin" --path "$OUT/nat/checkpoint_last.pt" --cpu \
  --ar-path "$OUT/ar/checkpoint_last.pt" --refs "$DATA/test.ref.en.k" "$DATA/test.ref.en.4" "$DATA/test.ref.en.3" \
  --systems ar:1,ar:4,nat:1,nat:2,nat:5,nat:10,nat:20,nat:adaptive --speed-sentences "$SPEED_SENTENCES" \
  --save-hypotheses "$OUT/hypotheses" --out "$OUT/table31.json"
log "done: $OUT/table31.md and $OUT/table31.json"
