#!/usr/bin/env bash
# Our two-decoder refinement NAT vs fairseq's built-in NATs at the same size, data and training budget.
#
# Runs after `make demo` (it reuses the demo's distilled Bible data, AR teacher and refinement NAT):
#   1. trains fairseq `iterative_nonautoregressive_transformer` (one shared decoder, token-only inputs; itrain 4,
#      pDAE 0.5, deterministic like ours) and `cmlm_transformer` (mask-predict) for NAT_MINUTES each, with the same
#      dimensions per decoder pass as refinement_nat_tiny (d 128, ffn 512, 4 heads, 2 encoder layers, 2 decoder
#      layers), the same optimizer, schedule and batch size;
#   2. decodes the test book with all of them side by side (iterref-benchmark-nat) -> OUT/compare_fairseq.{json,md}.
# Knobs: OUT (work/demo), NAT_MINUTES (14, as in the demo), SPEED_SENTENCES (100),
#        NAT_CKPT (our NAT to compare; default the demo's OUT/nat/checkpoint_last.pt).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work/demo}
NAT_MINUTES=${NAT_MINUTES:-14}
SPEED_SENTENCES=${SPEED_SENTENCES:-100}
PYTHON=${PYTHON:-python}
USER_DIR=$PWD/iterref_fairseq
DATA=$OUT/bible
NAT_CKPT=${NAT_CKPT:-$OUT/nat/checkpoint_last.pt}
[ -f "$NAT_CKPT" ] || { echo "$0: run make demo first (missing $NAT_CKPT)" >&2; exit 1; }
hours() { "$PYTHON" -c "print($1 / 60)"; }
log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }

COMMON=(--user-dir "$USER_DIR" --task translation_lev --criterion nat_loss --label-smoothing 0.1
  --encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 128 --decoder-embed-dim 128
  --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 --encoder-attention-heads 4 --decoder-attention-heads 4
  --share-all-embeddings --dropout 0.0 --optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3
  --lr-scheduler inverse_sqrt --warmup-updates 150 --max-tokens 2048 --max-update 100000
  --stop-time-hours "$(hours "$NAT_MINUTES")" --cpu --seed 1 --no-epoch-checkpoints --save-interval-updates 200
  --keep-interval-updates 1 --disable-validation --log-format simple --log-interval 50)

if [ ! -f "$OUT/fairseq_inat/checkpoint_last.pt" ]; then
  log "training fairseq iterative_nonautoregressive_transformer for $NAT_MINUTES minutes"
  fairseq-train "$OUT/distill/bin" "${COMMON[@]}" --arch iterative_nonautoregressive_transformer --noise full_mask \
    --train-step 4 --dae-ratio 0.5 --pred-length-offset --length-loss-factor 0.1 --save-dir "$OUT/fairseq_inat"
fi
if [ ! -f "$OUT/fairseq_cmlm/checkpoint_last.pt" ]; then
  log "training fairseq cmlm_transformer for $NAT_MINUTES minutes"
  fairseq-train "$OUT/distill/bin" "${COMMON[@]}" --arch cmlm_transformer --noise random_mask \
    --length-loss-factor 0.1 --save-dir "$OUT/fairseq_cmlm"
fi

log "decoding the test book with every system"
"$PYTHON" -m iterref_fairseq.cli.benchmark_nat "$DATA/bin" --ar-path "$OUT/ar/checkpoint_last.pt" --cpu \
  --path "$NAT_CKPT" --fairseq-nat inat="$OUT/fairseq_inat/checkpoint_last.pt" \
  --fairseq-nat cmlm="$OUT/fairseq_cmlm/checkpoint_last.pt" \
  --refs "$DATA/test.ref.en.k" "$DATA/test.ref.en.4" "$DATA/test.ref.en.3" \
  --systems ar:4,nat:1,nat:10,nat:adaptive,inat:1,inat:10,inat:adaptive,cmlm:1,cmlm:10,cmlm:adaptive \
  --speed-sentences "$SPEED_SENTENCES" --out "$OUT/compare_fairseq.json"
log "done: $OUT/compare_fairseq.md"
