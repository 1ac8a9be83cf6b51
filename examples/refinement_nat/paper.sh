#!/usr/bin/env bash
# Thesis Tables 3.1 / 3.2 on the paper's datasets: prepare -> AR teacher -> distill -> refinement NAT -> table.
#
# usage: paper.sh iwslt16-en-de|wmt14-en-de|wmt16-en-ro RAWDIR OUTDIR
#
#   1. data: examples/refinement_nat/prepare-<dataset>.sh $DATA_STAGE RAWDIR OUTDIR/data (joint BPE 40k; the
#      binarized data serves both directions). DATA_STAGE=all downloads (internet), =prepare starts from the
#      extracted raw text RAWDIR/{train,valid,test}.{src,tgt} (offline).
#   2. per direction in DIRECTIONS: the AR teacher (fairseq transformer: transformer_iwslt_de_en on IWSLT'16,
#      transformer_wmt_en_de on WMT), label smoothing 0.1
#   3. distillation: the teacher's beam-4 output replaces the training targets (scripts/distill.sh)
#   4. the refinement NAT with the thesis's settings (§3.6; REFERENCE.md §1): itrain 4, pDAE 0.5, no label
#      smoothing, layerwise corruption; IWSLT'16: small model (d 278), lr 3e-4 annealed linearly to 1e-5,
#      deterministic approximation; WMT'14: base model, warm-up schedule, stochastic approximation; WMT'16:
#      base model, warm-up schedule, deterministic approximation
#   5. the table with iterref-benchmark-nat on the test set (newstest2014 / tst2014 / newstest2016): AR b=1/4,
#      NAT idec 1/2/5/10/20 and adaptive, BLEU and batch-1 / batched speed -> OUTDIR/table31-<dir>.{json,md}
#
# Environment: PYTHON, DIRECTIONS (default "en-de de-en"; "en-ro ro-en" for wmt16-en-ro), DATA_STAGE (all),
#   DEVICE_FLAGS (--fp16 on a GPU; "--cpu" for a CPU run), MAX_TOKENS (2048 per GPU, the thesis's batches),
#   UPDATE_FREQ (1), NAT_MAX_UPDATE (300000), AR_MAX_UPDATE (100000), BPE_OPS (40000), and for small test runs:
#   NAT_ARCH, AR_ARCH, AR_FLAGS (extra teacher flags, e.g. smaller dimensions), DISTILL_ARGS (extra
#   scripts/distill.py flags, e.g. --max-len-b), SPEED_SENTENCES (100); STOP_AFTER=distill ends each direction
#   after stage 3 (examples/lanmt/paper.sh reuses stages 1-3 this way).
# Every stage is skipped when its output exists, so an interrupted run resumes.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASET=${1:?usage: $0 iwslt16-en-de|wmt14-en-de|wmt16-en-ro RAWDIR OUTDIR}
RAW=${2:?usage: $0 DATASET RAWDIR OUTDIR}
OUT=${3:?usage: $0 DATASET RAWDIR OUTDIR}
PYTHON=${PYTHON:-python}
DATA_STAGE=${DATA_STAGE:-all}
DEVICE_FLAGS=${DEVICE_FLAGS:---fp16}
MAX_TOKENS=${MAX_TOKENS:-2048}
UPDATE_FREQ=${UPDATE_FREQ:-1}
NAT_MAX_UPDATE=${NAT_MAX_UPDATE:-300000}
AR_MAX_UPDATE=${AR_MAX_UPDATE:-100000}
SPEED_SENTENCES=${SPEED_SENTENCES:-100}
USER_DIR=$PWD/iterref_fairseq
DATA=$OUT/data
log() { echo "[paper $(date +%H:%M:%S)] $*" >&2; }

case "$DATASET" in
  iwslt16-en-de)
    DIRECTIONS=${DIRECTIONS:-en-de de-en}
    NAT_ARCH=${NAT_ARCH:-refinement_nat_iwslt16}
    AR_ARCH=${AR_ARCH:-transformer_iwslt_de_en}
    NAT_RECIPE=(--lr 3e-4 --lr-scheduler polynomial_decay --end-learning-rate 1e-5
      --total-num-update "$NAT_MAX_UPDATE") ;;
  wmt14-en-de)
    DIRECTIONS=${DIRECTIONS:-en-de de-en}
    NAT_ARCH=${NAT_ARCH:-refinement_nat_wmt}
    AR_ARCH=${AR_ARCH:-transformer_wmt_en_de}
    NAT_RECIPE=(--lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000 --stochastic-approx) ;;
  wmt16-en-ro)
    DIRECTIONS=${DIRECTIONS:-en-ro ro-en}
    NAT_ARCH=${NAT_ARCH:-refinement_nat_wmt}
    AR_ARCH=${AR_ARCH:-transformer_wmt_en_de}
    NAT_RECIPE=(--lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000) ;;
  *) echo "$0: unknown dataset $DATASET (iwslt16-en-de, wmt14-en-de, wmt16-en-ro)" >&2; exit 2 ;;
esac

if [ ! -f "$DATA/bin/preprocess.log" ]; then
  log "1/5 data ($DATA_STAGE)"
  BPE_OPS=${BPE_OPS:-40000} PYTHON=$PYTHON bash "examples/refinement_nat/prepare-$DATASET.sh" "$DATA_STAGE" "$RAW" \
    "$DATA"
fi

for direction in $DIRECTIONS; do
  src=${direction%-*} tgt=${direction#*-}
  dir=$OUT/$direction
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  if [ ! -f "$dir/ar/checkpoint_last.pt" ]; then
    log "2/5 $direction: AR teacher $AR_ARCH"
    fairseq-train "$DATA/bin" --task translation -s "$src" -t "$tgt" --arch "$AR_ARCH" --share-all-embeddings \
      --dropout 0.1 --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --optimizer adam \
      --adam-betas '(0.9,0.98)' --lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000 \
      --max-tokens "$((2 * MAX_TOKENS))" --update-freq "$UPDATE_FREQ" --max-update "$AR_MAX_UPDATE" $DEVICE_FLAGS \
      --save-dir "$dir/ar" --keep-last-epochs 5 --disable-validation --log-format simple --log-interval 100 --seed 1 \
      ${AR_FLAGS:-}
  fi
  if [ ! -f "$dir/distill/bin/dict.$tgt.txt" ]; then
    log "3/5 $direction: distilling the training targets (teacher beam 4)"
    # shellcheck disable=SC2086
    PYTHON=$PYTHON bash scripts/distill.sh --data "$DATA/bin" --path "$dir/ar/checkpoint_last.pt" --out "$dir/distill" \
      --beam 4 --source-lang "$src" --target-lang "$tgt" $( [[ "$DEVICE_FLAGS" == *--cpu* ]] && echo --cpu ) \
      ${DISTILL_ARGS:-}
  fi
  if [ "${STOP_AFTER:-}" = distill ]; then continue; fi
  if [ ! -f "$dir/nat/.trained" ]; then
    log "4/5 $direction: refinement NAT $NAT_ARCH"
    # shellcheck disable=SC2086
    fairseq-train "$dir/distill/bin" --user-dir "$USER_DIR" --task translation_refine -s "$src" -t "$tgt" \
      --arch "$NAT_ARCH" --criterion refinement_nat_loss --train-steps 4 --dae-prob 0.5 --dropout 0.1 \
      --optimizer adam --adam-betas '(0.9,0.98)' --adam-eps 1e-9 "${NAT_RECIPE[@]}" --max-tokens "$MAX_TOKENS" \
      --update-freq "$UPDATE_FREQ" --max-update "$NAT_MAX_UPDATE" $DEVICE_FLAGS --save-dir "$dir/nat" \
      --keep-last-epochs 5 --disable-validation --log-format simple --log-interval 100 --seed 1
    touch "$dir/nat/.trained"
  fi
  log "5/5 $direction: Table 3.1 rows on the test set"
  # shellcheck disable=SC2086
  "$PYTHON" -m iterref_fairseq.cli.benchmark_nat "$DATA/bin" \
    --path "$dir/nat/checkpoint_last.pt" --ar-path "$dir/ar/checkpoint_last.pt" --refs "$DATA/test.raw.$tgt" \
    --target-lang "$tgt" --systems ar:1,ar:4,nat:1,nat:2,nat:5,nat:10,nat:20,nat:adaptive \
    --speed-sentences "$SPEED_SENTENCES" $( [[ "$DEVICE_FLAGS" == *--cpu* ]] && echo --cpu ) \
    --out "$OUT/table31-$direction.json"
done
log "done: $OUT/table31-*.{json,md}"
