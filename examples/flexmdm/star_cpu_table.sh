#!/usr/bin/env bash
# CPU evidence table: star graphs (easy, medium), FlexMDM vs LFlexMDM vs an AR fairseq `transformer` of about the
# same size, each trained for the same wall-clock budget on the same data; exact match on 5k (or TEST) fresh test
# graphs. Writes results/flexmdm_star_cpu_<date>.{json,md}.
#
#   bash examples/flexmdm/star_cpu_table.sh                   # defaults below (about 6 x BUDGET_MIN minutes)
#   BUDGET_MIN=5 TRAIN=20000 TEST=500 bash examples/flexmdm/star_cpu_table.sh   # quick look
#   MAX_UPDATE=2500 BUDGET_MIN=120 bash examples/flexmdm/star_cpu_table.sh       # equal updates instead of minutes
#
# PARALLEL=1 trains the difficulties side by side, one single-threaded process each (on a 2-core machine two
# 1-thread processes get ~1.6x the combined throughput of one 2-thread process for these tiny models). Every model
# of a table then runs under the same conditions, which is what the equal-budget comparison needs.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUDGET_MIN=${BUDGET_MIN:-20}          # training minutes per model
MAX_UPDATE=${MAX_UPDATE:-1000000}     # or an update budget (same batch size for all models); the first limit wins
TRAIN=${TRAIN:-50000}
TEST=${TEST:-1000}
STEPS=${STEPS:-64}                    # tau-leaping steps
SEED=${SEED:-1}
DIFFICULTIES=${DIFFICULTIES:-"easy medium"}
WORK=${WORK:-work/flexmdm_star}
OUT_DIR=${OUT_DIR:-results}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
PARALLEL=${PARALLEL:-0}
if [ "$PARALLEL" = 1 ]; then export OMP_NUM_THREADS=1; else export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}; fi
HOURS=$("$PY" -c "print($BUDGET_MIN / 60)")
COMMON=(--user-dir iterref_fairseq --task star_graph -s src -t tgt --cpu --optimizer adam --adam-betas "(0.9,0.98)"
        --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 500 --max-tokens 4000 --max-update "$MAX_UPDATE"
        --stop-time-hours "$HOURS" --no-epoch-checkpoints --save-interval-updates 1000000 --disable-validation
        --log-format simple --log-interval 100 --seed "$SEED")
run_difficulty() {
  local D=$1 DATA=$WORK/data-$1 M CK GEN
  # test graphs are generated with the training data but are disjoint from it (deduplicated on graph + query)
  [ -f "$DATA/train.src-tgt.src.bin" ] || "$BIN/iterref-make-star-graphs" --difficulty "$D" --seed "$SEED" \
      --out "$DATA" --train "$TRAIN" --valid 100 --test "$TEST"
  for M in flexmdm lflexmdm ar; do
    CK=$WORK/$D-$M
    if [ ! -f "$CK/checkpoint_last.pt" ]; then
      case $M in
        flexmdm)  "$BIN/fairseq-train" "$DATA" "${COMMON[@]}" --arch flexmdm_tiny --criterion flexmdm_loss --save-dir "$CK" ;;
        lflexmdm) "$BIN/fairseq-train" "$DATA" "${COMMON[@]}" --arch lflexmdm_tiny --criterion flexmdm_loss --save-dir "$CK" ;;
        ar)       "$BIN/fairseq-train" "$DATA" "${COMMON[@]}" --arch transformer --criterion cross_entropy \
                    --share-all-embeddings --encoder-embed-dim 128 --decoder-embed-dim 128 --encoder-ffn-embed-dim 512 \
                    --decoder-ffn-embed-dim 512 --encoder-layers 2 --decoder-layers 2 --encoder-attention-heads 4 \
                    --decoder-attention-heads 4 --dropout 0.0 --save-dir "$CK" ;;
      esac
    fi
    if [ "$M" = ar ]; then GEN=(--beam 1); else GEN=(--sampling-steps "$STEPS" --confidence top_prob --sampler-seed "$SEED"); fi
    "$BIN/fairseq-generate" "$DATA" --user-dir iterref_fairseq --task star_graph -s src -t tgt --cpu --path "$CK/checkpoint_last.pt" \
        --gen-subset test --batch-size 200 --scoring exact_match --seed "$SEED" "${GEN[@]}" > "$CK/generate.txt"
    # order analysis (paper Fig. 5): corr(generation time, distance to the junction) on the exactly-correct paths
    if [ "$M" != ar ]; then
      "$BIN/iterref-analyze-star-order" "$DATA" --path "$CK/checkpoint_last.pt" --sampling-steps "$STEPS" --cpu \
          --max-examples "$TEST" --seed "$SEED" --out "$CK/order.json" --plot "$CK/order.png" > "$CK/order.txt"
    fi
  done
}
mkdir -p "$WORK"
ARGS=()
PIDS=()
for D in $DIFFICULTIES; do
  if [ "$PARALLEL" = 1 ]; then run_difficulty "$D" > "$WORK/$D.log" 2>&1 & PIDS+=($!); else run_difficulty "$D"; fi
  for M in flexmdm lflexmdm ar; do ARGS+=("$D:$M:$WORK/$D-$M"); done
done
for P in "${PIDS[@]}"; do wait "$P" || { echo "a difficulty failed: see $WORK/*.log" >&2; exit 1; }; done
"$PY" examples/flexmdm/summarize_star.py --budget-min "$BUDGET_MIN" --steps "$STEPS" --seed "$SEED" --out-dir "$OUT_DIR" "${ARGS[@]}"
