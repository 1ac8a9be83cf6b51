#!/usr/bin/env bash
# CPU evidence on the paper's star graphs (easy, medium): FlexMDM vs LFlexMDM vs an AR fairseq `transformer` of
# about the same size, equal updates and batch, several training seeds, a learning curve (exact match on TEST fresh
# test graphs at the end; a shard of them every CURVE_EVERY updates), failure kinds and the order analysis. Writes
# results/flexmdm/flexmdm_star_cpu_<TAG>_<date>.{json,md,png}.
#
#   bash examples/flexmdm/star_cpu_table.sh                                    # defaults below
#   DIFFICULTIES=easy SEEDS=1 MAX_UPDATE=500 TEST=200 bash examples/flexmdm/star_cpu_table.sh   # quick look
#   VARIANTS="lflexmdm lflexmdm-nocount lflexmdm-v020reg lflexmdm-v020reg-nocount" TAG=ablation \
#       bash examples/flexmdm/star_cpu_table.sh                                # count head x regularisers
#
# Variants: flexmdm, lflexmdm (defaults: count head, the reference's regularisers), ar; lflexmdm-nocount
# (--no-count-head), lflexmdm-v020reg (0.2.0's regularisers: pooled schedule term, linear tail, no KL) and
# lflexmdm-v020reg-nocount. Runs whose generate.txt exists are skipped, so an interrupted table resumes; two
# instances with different SEEDS or VARIANTS can share a WORK directory (one thread each on a 2-core machine).
# SUMMARIZE=0 skips the table (e.g. for all instances but the last).
set -euo pipefail
cd "$(dirname "$0")/../.."
MAX_UPDATE=${MAX_UPDATE:-2000}        # updates per model (the same batch for every model)
BATCH=${BATCH:-64}                    # sentences per batch (the reference's per-device batch)
CURVE_EVERY=${CURVE_EVERY:-500}       # a learning-curve point every N updates
CURVE_SHARDS=${CURVE_SHARDS:-4}       # intermediate curve points decode every CURVE_SHARDS-th batch of the test graphs
TRAIN=${TRAIN:-50000}
TEST=${TEST:-1000}
ORDER_EXAMPLES=${ORDER_EXAMPLES:-500} # test graphs of the order analysis
STEPS=${STEPS:-64}                    # tau-leaping steps
DATA_SEED=${DATA_SEED:-1}             # the graphs are the same for every training seed
SEEDS=${SEEDS:-"1 2"}
DIFFICULTIES=${DIFFICULTIES:-"easy medium"}
VARIANTS=${VARIANTS:-"flexmdm lflexmdm ar"}
WORK=${WORK:-work/flexmdm_star}
OUT_DIR=${OUT_DIR:-results/flexmdm}
TAG=${TAG:-${MAX_UPDATE}upd}
SUMMARIZE=${SUMMARIZE:-1}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
log() { echo "[star $(date +%H:%M:%S)] $*" >&2; }
COMMON=(--user-dir iterref_fairseq --task star_graph -s src -t tgt --cpu --optimizer adam --adam-betas "(0.9,0.98)"
        --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 500 --batch-size "$BATCH" --max-tokens 100000
        --max-update "$MAX_UPDATE" --save-interval-updates "$CURVE_EVERY" --keep-interval-updates -1
        --no-epoch-checkpoints --disable-validation --log-format simple --log-interval 100)
AR_ARCH=(--arch transformer --criterion cross_entropy --share-all-embeddings --encoder-embed-dim 128
         --decoder-embed-dim 128 --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 --encoder-layers 2
         --decoder-layers 2 --encoder-attention-heads 4 --decoder-attention-heads 4 --dropout 0.0)
V020_REG=(--schedule-reg-form pooled --tail-penalty-form linear --kuma-kl-weight 0)

train_flags() {
  case $1 in
    flexmdm)                  echo --arch flexmdm_tiny --criterion flexmdm_loss ;;
    lflexmdm)                 echo --arch lflexmdm_tiny --criterion flexmdm_loss ;;
    lflexmdm-nocount)         echo --arch lflexmdm_tiny --criterion flexmdm_loss --no-count-head ;;
    lflexmdm-v020reg)         echo --arch lflexmdm_tiny --criterion flexmdm_loss "${V020_REG[@]}" ;;
    lflexmdm-v020reg-nocount) echo --arch lflexmdm_tiny --criterion flexmdm_loss --no-count-head "${V020_REG[@]}" ;;
    ar)                       echo "${AR_ARCH[@]}" ;;
    *) echo "unknown variant $1 (see the header of $0)" >&2; exit 2 ;;
  esac
}

generate() {  # generate DATA CKPT VARIANT SEED OUT [extra fairseq-generate flags]
  local gen data=$1 ckpt=$2 variant=$3 seed=$4 out=$5
  shift 5
  if [ "$variant" = ar ]; then gen=(--beam 1); else gen=(--sampling-steps "$STEPS" --confidence top_prob --sampler-seed "$seed"); fi
  "$BIN/fairseq-generate" "$data" --user-dir iterref_fairseq --task star_graph -s src -t tgt --cpu --path "$ckpt" \
      --gen-subset test --batch-size 250 --scoring exact_match --seed "$seed" "${gen[@]}" "$@" > "$out"
}

run_one() {  # run_one DIFFICULTY VARIANT SEED
  local D=$1 V=$2 S=$3 DATA=$WORK/data-$1 CK=$WORK/$1-$2-s$3 N
  [ -f "$CK/generate.txt" ] && return 0
  if [ ! -f "$CK/checkpoint_last.pt" ] || [ ! -f "$CK/train.done" ]; then
    log "$D $V seed $S: training $MAX_UPDATE updates"
    mkdir -p "$CK"
    # shellcheck disable=SC2046
    "$BIN/fairseq-train" "$DATA" "${COMMON[@]}" $(train_flags "$V") --seed "$S" --save-dir "$CK" > "$CK/train.log" 2>&1
    touch "$CK/train.done"
  fi
  mkdir -p "$CK/curve"
  log "$D $V seed $S: learning curve and final evaluation"
  # intermediate points on one shard of the test graphs (every CURVE_SHARDS-th batch of 25: batches are sorted by
  # length, so small batches keep the shard stratified; one shard of 250-graph batches held the shortest graphs of
  # medium and read 24% where all graphs read 10%); the last point is the final evaluation on all of them
  for N in $(seq "$CURVE_EVERY" "$CURVE_EVERY" $((MAX_UPDATE - 1))); do
    local C
    C=$(ls "$CK"/checkpoint_*_"$N".pt 2>/dev/null | head -1 || true)
    [ -n "$C" ] && [ ! -f "$CK/curve/generate_$N.txt" ] && generate "$DATA" "$C" "$V" "$S" \
        "$CK/curve/generate_$N.txt" --distributed-world-size "$CURVE_SHARDS" --distributed-rank 0 --batch-size 25
  done
  if [ "$V" != ar ]; then  # order analysis (paper Fig. 5) on the exactly-correct paths, sampled without confidence
    "$BIN/iterref-analyze-star-order" "$DATA" --path "$CK/checkpoint_last.pt" --sampling-steps "$STEPS" --cpu \
        --max-examples "$ORDER_EXAMPLES" --seed "$S" --out "$CK/order.json" > "$CK/order.txt" 2>&1
  fi
  generate "$DATA" "$CK/checkpoint_last.pt" "$V" "$S" "$CK/generate.txt.part"
  cp "$CK/generate.txt.part" "$CK/curve/generate_$MAX_UPDATE.txt"
  mv "$CK/generate.txt.part" "$CK/generate.txt"
}

mkdir -p "$WORK"
ARGS=()
for D in $DIFFICULTIES; do
  # the test graphs are generated with the training data and are disjoint from it (deduplicated on graph + query)
  [ -f "$WORK/data-$D/train.src-tgt.src.bin" ] || "$BIN/iterref-make-star-graphs" --difficulty "$D" \
      --seed "$DATA_SEED" --out "$WORK/data-$D" --train "$TRAIN" --valid 100 --test "$TEST" > /dev/null
  for S in $SEEDS; do
    for V in $VARIANTS; do
      run_one "$D" "$V" "$S"
      ARGS+=("$D:$V:$S:$WORK/$D-$V-s$S")
    done
  done
done
if [ "$SUMMARIZE" = 1 ]; then
  "$PY" examples/flexmdm/summarize_star.py --max-update "$MAX_UPDATE" --batch "$BATCH" --steps "$STEPS" \
      --tag "$TAG" --out-dir "$OUT_DIR" "${ARGS[@]}"
fi
