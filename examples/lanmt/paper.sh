#!/usr/bin/env bash
# The LaNMT talk's table on the paper's datasets: prepare -> AR teacher -> distill -> LaNMT -> budget-0 fine-tuning
# -> score and energy networks -> table (prior / delta / energy / score / score + latent search, against AR beam 1/3).
#
# usage: paper.sh wmt14-en-de|wmt16-en-ro|iwslt16-en-de RAWDIR OUTDIR
#
#   1-3. data, AR teacher and distilled targets: examples/refinement_nat/paper.sh with STOP_AFTER=distill (same
#        knobs: DATA_STAGE, DIRECTIONS, AR_ARCH, AR_MAX_UPDATE, BPE_OPS, DISTILL_ARGS, ...), outputs shared with it
#   4. LaNMT (lanmt_wmt: d 512, 6 layers per stack, latent dim 8; the paper's settings, REFERENCE: Adam
#      (0.9, 0.98), inverse-sqrt schedule with 4k warm-up, label smoothing 0.1, free-bits budget 1 for the first
#      half of LANMT_MAX_UPDATE then annealed to 0) -> OUTDIR/<dir>/lanmt
#   5. one epoch with budget 0 at a constant learning rate of 1e-4 (the reference's fine-tuning) -> <dir>/lanmt_ft
#   6. the score network and the energy network (lanmt_score_wmt, 4 delta steps as proxy target) on the frozen
#      fine-tuned model -> <dir>/score, <dir>/energy
#   7. the table on the test set with iterref-benchmark-nat, speed-ups against AR beam 3 at batch 1 and batched
#      -> OUTDIR/lanmt-<dir>.{json,md}
#
# Knobs: LANMT_ARCH (lanmt_wmt), SCORE_ARCH (lanmt_score_wmt), LANMT_MAX_UPDATE (100000), SCORE_MAX_UPDATE
#   (20000), MAX_TOKENS (4096), UPDATE_FREQ (1), DEVICE_FLAGS (--fp16; --cpu for a CPU run), SEARCH_SAMPLES (50),
#   SPEED_SENTENCES (100), PYTHON. Every stage is skipped when its output exists, so an interrupted run resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASET=${1:?usage: $0 wmt14-en-de|wmt16-en-ro|iwslt16-en-de RAWDIR OUTDIR}
RAW=${2:?usage: $0 DATASET RAWDIR OUTDIR}
OUT=${3:?usage: $0 DATASET RAWDIR OUTDIR}
PYTHON=${PYTHON:-python}
DEVICE_FLAGS=${DEVICE_FLAGS:---fp16}
LANMT_ARCH=${LANMT_ARCH:-lanmt_wmt}
SCORE_ARCH=${SCORE_ARCH:-lanmt_score_wmt}
LANMT_MAX_UPDATE=${LANMT_MAX_UPDATE:-100000}
SCORE_MAX_UPDATE=${SCORE_MAX_UPDATE:-20000}
MAX_TOKENS=${MAX_TOKENS:-4096}
UPDATE_FREQ=${UPDATE_FREQ:-1}
SEARCH_SAMPLES=${SEARCH_SAMPLES:-50}
SPEED_SENTENCES=${SPEED_SENTENCES:-100}
USER_DIR=$PWD/iterref_fairseq
log() { echo "[lanmt $(date +%H:%M:%S)] $*" >&2; }
case "$DATASET" in
  wmt14-en-de|iwslt16-en-de) DIRECTIONS=${DIRECTIONS:-en-de de-en} ;;
  wmt16-en-ro) DIRECTIONS=${DIRECTIONS:-en-ro ro-en} ;;
  *) echo "$0: unknown dataset $DATASET (wmt14-en-de, wmt16-en-ro, iwslt16-en-de)" >&2; exit 2 ;;
esac
export DIRECTIONS
CPU_FLAG=$( [[ "$DEVICE_FLAGS" == *--cpu* ]] && echo --cpu || true )

log "1-3: data, AR teacher, distillation (examples/refinement_nat/paper.sh)"
STOP_AFTER=distill PYTHON=$PYTHON bash examples/refinement_nat/paper.sh "$DATASET" "$RAW" "$OUT"

train() {  # DIR DATA FLAGS...: fairseq-train into DIR unless DIR/.trained exists
  local dir=$1 data=$2; shift 2
  if [ -f "$dir/.trained" ]; then return 0; fi
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  fairseq-train "$data" --user-dir "$USER_DIR" --task translation_refine -s "$src" -t "$tgt" \
    --optimizer adam --adam-betas '(0.9,0.98)' --max-tokens "$MAX_TOKENS" --update-freq "$UPDATE_FREQ" \
    $DEVICE_FLAGS --save-dir "$dir" --keep-last-epochs 2 --disable-validation --log-format simple \
    --log-interval 100 --seed 1 "$@"
  touch "$dir/.trained"
}

for direction in $DIRECTIONS; do
  src=${direction%-*} tgt=${direction#*-}
  dir=$OUT/$direction
  distilled=$dir/distill/bin
  log "4/7 $direction: LaNMT $LANMT_ARCH"
  train "$dir/lanmt" "$distilled" --arch "$LANMT_ARCH" --criterion lanmt_loss --lr 5e-4 \
    --lr-scheduler inverse_sqrt --warmup-updates 4000 --max-update "$LANMT_MAX_UPDATE"
  log "5/7 $direction: one epoch with budget 0 (lr 1e-4)"
  train "$dir/lanmt_ft" "$distilled" --arch "$LANMT_ARCH" --criterion lanmt_loss --kl-budget 0 \
    --kl-budget-schedule constant --lr 1e-4 --lr-scheduler fixed --max-epoch 1 \
    --finetune-from-model "$dir/lanmt/checkpoint_last.pt"
  for param in score energy; do
    log "6/7 $direction: $param network"
    train "$dir/$param" "$distilled" --arch "$SCORE_ARCH" --score-param "$param" --criterion lanmt_score_loss \
      --lanmt-path "$dir/lanmt_ft/checkpoint_last.pt" --lr 3e-4 --lr-scheduler inverse_sqrt --warmup-updates 1000 \
      --max-update "$SCORE_MAX_UPDATE"
  done
  log "7/7 $direction: the talk's table on the test set"
  # shellcheck disable=SC2086
  "$PYTHON" -m iterref_fairseq.cli.benchmark_nat "$OUT/data/bin" \
    --latent "lanmt=$dir/lanmt_ft/checkpoint_last.pt" --score-path "$dir/score/checkpoint_last.pt" \
    --energy-path "$dir/energy/checkpoint_last.pt" --ar-path "$dir/ar/checkpoint_last.pt" \
    --systems ar:3,ar:1,lanmt:prior,lanmt:delta,lanmt:energy,lanmt:score,lanmt:score+search,lanmt:score+search+ar \
    --latent-search-samples "$SEARCH_SAMPLES" --speed-base "AR b=3" --refs "$OUT/data/test.raw.$tgt" \
    --target-lang "$tgt" --speed-sentences "$SPEED_SENTENCES" $CPU_FLAG --out "$OUT/lanmt-$direction.json"
done
log "done: $OUT/lanmt-*.{json,md}"
