#!/usr/bin/env bash
# The LaNMT talk's table on the demo's Bible De->En data (CPU scale), after `make demo` (it reuses the demo's
# data and AR teacher, OUT=work/demo, and trains on the teacher's greedy output, OUT/distill, which step 1 distils
# when it is missing; DISTILL_BEAM=4 trains on the beam-4 output that the demo itself distils, OUT/distill-beam4):
#   1. LaNMT (lanmt_tiny) for LANMT_MINUTES minutes with interval checkpoints, as the `lanmt` system of
#      examples/refinement_nat/compare-fairseq-nat.sh (same optimizer, schedule, batch and data as the refinement NAT
#      and fairseq CMLM runs there) -> CMP/LANMT_SYSTEM-s$SEED (CMP = OUT/compare, OUT/compare-beamK with DISTILL_BEAM=K)
#   2. one epoch with free-bits budget 0 at a constant lr of 1e-4 (the reference's fine-tuning) -> STAGES/ft
#      (STAGES = OUT/LANMT_SYSTEM, OUT/LANMT_SYSTEM-beamK with DISTILL_BEAM=K)
#   3. the score and the energy network (lanmt_score_tiny) on the frozen fine-tuned model, SCORE_MINUTES each
#   4. the table on the test book (Acts, 3 references) in one iterref-benchmark-nat run: AR beam 3 and 1, LaNMT
#      prior mean, + delta, + energy, + score, + score + latent search (own score / AR teacher): BLEU, decoder passes,
#      sentences/s at batch 1 and batched, speed-ups vs AR beam 3 -> RESULTS/lanmt_bible_<date>.{json,md}
#   5. learning curves on the first 300 validation verses: LaNMT prior / delta / score against the refinement NAT
#      and CMLM curves of CURVE_DIR (their BLEU reused from CURVE_DIR/learning_curves.json when it exists), with the
#      minutes each needs to reach 50% of AR beam-3 BLEU -> RESULTS/lanmt_learning_curves_<date>.{json,md,png};
#      score decoding needs a score network per LaNMT checkpoint (it is trained on a frozen model): one is trained
#      for CURVE_SCORE_MINUTES on every CURVE_EVERY-th checkpoint and the last -> STAGES/curve-score/<update>
#   6. examples/lanmt/diagnose.py on the fine-tuned model: KL per source position, the reference's accuracy at its
#      true length from the posterior mean, the prior mean and after delta / score steps
#      -> RESULTS/lanmt_diagnosis_<date>.{json,md}
# Knobs: OUT (work/demo), LANMT_SYSTEM (lanmt; lanmt-copy trains with the named deviation --decoder-source-copy,
#   writes its stages to OUT/lanmt-copy and its results as lanmt_copy_*), LANMT_MINUTES (30), SCORE_MINUTES (10),
#   DISTILL_BEAM (1; with K > 1 the runs go to OUT/compare-beamK and OUT/LANMT_SYSTEM-beamK and the results are named
#   NAME_beamK_*), SEED (1), THREADS (1), SEARCH_SAMPLES (50),
#   SPEED_SENTENCES (100), CURVE_DIR (CMP: runs on the same targets), CURVE_RUNS (the other runs of CURVE_DIR on the curve:
#   "nat-s1 nat-curr-s1 cmlm-s1"), CURVE_REUSE (a learning_curve.py JSON whose BLEU values are reused:
#   CURVE_DIR/learning_curves.json),
#   CURVE_EVERY (3: the LaNMT checkpoints on the curve, every 3rd and the last), CURVE_SCORE_MINUTES (3; 0: no score
#   line), RESULTS (results/lanmt), PYTHON; LANMT_BUDGET_UPDATES (3600) is passed to compare-fairseq-nat.sh (the free-bits
#   budget is 1 for the first half of these updates, then falls linearly to 0).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work/demo}
LANMT_MINUTES=${LANMT_MINUTES:-30}
SCORE_MINUTES=${SCORE_MINUTES:-10}
SEED=${SEED:-1}
THREADS=${THREADS:-1}
SEARCH_SAMPLES=${SEARCH_SAMPLES:-50}
SPEED_SENTENCES=${SPEED_SENTENCES:-100}
CURVE_RUNS=${CURVE_RUNS:-nat-s1 nat-curr-s1 cmlm-s1}
RESULTS=${RESULTS:-results/lanmt}
PYTHON=${PYTHON:-python}
USER_DIR=$PWD/iterref_fairseq
DATA=$OUT/bible
DATE=$(date -u +%Y-%m-%d)
LANMT_SYSTEM=${LANMT_SYSTEM:-lanmt}
case "$LANMT_SYSTEM" in
  lanmt) MODEL_FLAGS=() ;;
  lanmt-copy) MODEL_FLAGS=(--decoder-source-copy) ;;
  *) echo "$0: LANMT_SYSTEM must be lanmt or lanmt-copy (got $LANMT_SYSTEM)" >&2; exit 2 ;;
esac
DISTILL_BEAM=${DISTILL_BEAM:-1}
source examples/common.sh  # hours, distill_dir
DISTILLED=$(distill_dir)                  # OUT/distill (beam 1) or OUT/distill-beamK
SUFFIX=""; [ "$DISTILL_BEAM" = 1 ] || SUFFIX="-beam$DISTILL_BEAM"
NAME=${LANMT_SYSTEM//-/_}${SUFFIX//-/_}   # results: RESULTS/${NAME}_bible_<date>.json, ...
STAGES=$OUT/$LANMT_SYSTEM$SUFFIX          # fine-tuned model, score and energy networks
CMP=$OUT/compare$SUFFIX
RUN=$CMP/$LANMT_SYSTEM-s$SEED
CURVE_DIR=${CURVE_DIR:-$CMP}
log() { echo "[lanmt-bible $(date +%H:%M:%S)] $*" >&2; }
[ -f "$OUT/ar/checkpoint_last.pt" ] || { echo "$0: run make demo first (missing the AR teacher $OUT/ar)" >&2; exit 1; }
mkdir -p "$STAGES" "$RESULTS"
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS

log "1/6 LaNMT for $LANMT_MINUTES minutes"
DISTILL_BEAM=$DISTILL_BEAM CMP=$CMP SYSTEMS=$LANMT_SYSTEM SEEDS=$SEED NAT_MINUTES=$LANMT_MINUTES DECODE=0 PARALLEL=1 \
  THREADS=$THREADS PYTHON=$PYTHON OUT=$OUT bash examples/refinement_nat/compare-fairseq-nat.sh

COMMON=(--user-dir "$USER_DIR" --task translation_refine --optimizer adam --adam-betas '(0.9,0.98)'
  --max-tokens 2048 --cpu --no-epoch-checkpoints --disable-validation --log-format simple --log-interval 25
  --seed "$SEED")
if [ ! -f "$STAGES/ft/.trained" ]; then
  log "2/6 one epoch with budget 0, lr 1e-4"
  fairseq-train "$DISTILLED/bin" "${COMMON[@]}" --arch lanmt_tiny --criterion lanmt_loss --dropout 0.0 "${MODEL_FLAGS[@]}" \
    --kl-budget 0 --kl-budget-schedule constant --lr 1e-4 --lr-scheduler fixed --max-epoch 1 \
    --finetune-from-model "$RUN/checkpoint_last.pt" --save-dir "$STAGES/ft" > "$STAGES/ft.log" 2>&1
  touch "$STAGES/ft/.trained"
fi
train_score_net() {  # PARAM (score|energy) LANMT_CHECKPOINT SAVE_DIR MINUTES LOG: lanmt_score_tiny on a frozen LaNMT
  fairseq-train "$DISTILLED/bin" "${COMMON[@]}" --arch lanmt_score_tiny --score-param "$1" \
    --criterion lanmt_score_loss --lanmt-path "$2" --dropout 0.0 --lr 1e-3 \
    --lr-scheduler inverse_sqrt --warmup-updates 150 --max-update 100000 \
    --self-step-from-update "${SELF_STEP_FROM:-300}" --stop-time-hours "$(hours "$4")" \
    --save-dir "$3" > "$5" 2>&1
  touch "$3/.trained"
}
for param in score energy; do
  if [ -f "$STAGES/$param/.trained" ]; then continue; fi
  log "3/6 $param network for $SCORE_MINUTES minutes"
  train_score_net "$param" "$STAGES/ft/checkpoint_last.pt" "$STAGES/$param" "$SCORE_MINUTES" "$STAGES/$param.log"
done

log "4/6 the table on the test book"
"$PYTHON" -m iterref_fairseq.cli.benchmark_nat "$DATA/bin" --cpu --threads "$THREADS" \
  --ar-path "$OUT/ar/checkpoint_last.pt" --latent "lanmt=$STAGES/ft/checkpoint_last.pt" \
  --score-path "$STAGES/score/checkpoint_last.pt" --energy-path "$STAGES/energy/checkpoint_last.pt" \
  --systems ar:3,ar:1,lanmt:prior,lanmt:delta,lanmt:energy,lanmt:score,lanmt:score+search,lanmt:score+search+ar \
  --latent-search-samples "$SEARCH_SAMPLES" --speed-base "AR b=3" --speed-sentences "$SPEED_SENTENCES" \
  --refs "$DATA/test.ref.en.k" "$DATA/test.ref.en.4" "$DATA/test.ref.en.3" --out "$RESULTS/${NAME}_bible_$DATE.json"

log "5/6 learning curves (first 300 validation verses)"
CURVE_EVERY=${CURVE_EVERY:-3}
CURVE_SCORE_MINUTES=${CURVE_SCORE_MINUTES:-3}
SETTINGS=prior,delta; SCORE_NETS=()
if [ "$CURVE_SCORE_MINUTES" != 0 ]; then
  SETTINGS=prior,delta,score; SCORE_NETS=(--latent-score-nets "$STAGES/curve-score")
  # one network per checkpoint that learning_curve.py --latent-every decodes (its own selection, printed here)
  while read -r update ckpt; do
    dir=$STAGES/curve-score/$update
    if [ -f "$dir/.trained" ]; then continue; fi
    log "   score network on the checkpoint at update $update for $CURVE_SCORE_MINUTES minutes"
    mkdir -p "$dir"
    train_score_net score "$ckpt" "$dir" "$CURVE_SCORE_MINUTES" "$dir/train.log" < /dev/null  # stdin: the list
  done < <("$PYTHON" -c 'import sys; from pathlib import Path; sys.path.insert(0, "examples/refinement_nat")
from learning_curve import decoded_checkpoints
for update, path in decoded_checkpoints(Path(sys.argv[1]), int(sys.argv[2])): print(update, path)' "$RUN" "$CURVE_EVERY")
fi
RUNS=(--latent "$LANMT_SYSTEM-s$SEED=$RUN")
for r in $CURVE_RUNS; do [ -d "$CURVE_DIR/$r" ] && RUNS+=(--run "$r=$CURVE_DIR/$r"); done
REUSE=()
CURVE_REUSE=${CURVE_REUSE:-$CURVE_DIR/learning_curves.json}
[ -f "$CURVE_REUSE" ] && REUSE=(--reuse "$CURVE_REUSE")
"$PYTHON" examples/refinement_nat/learning_curve.py "$DATA/bin" "${RUNS[@]}" "${REUSE[@]}" --gen-subset valid \
  --latent-settings "$SETTINGS" "${SCORE_NETS[@]}" --latent-every "$CURVE_EVERY" \
  --refs "$DATA/valid.ref.en.k" "$DATA/valid.ref.en.4" "$DATA/valid.ref.en.3" --max-examples 300 --idec 1,10 \
  --reference-ar "$OUT/ar/checkpoint_last.pt" --reference-beam 3 --out "$RESULTS/${NAME}_learning_curves_$DATE.json"
log "6/6 diagnosis: what the latents carry, what each step changes (first 300 validation verses)"
"$PYTHON" examples/lanmt/diagnose.py "$DATA/bin" --path "$STAGES/ft/checkpoint_last.pt" \
  --score-path "$STAGES/score/checkpoint_last.pt" --gen-subset valid --max-examples 300 \
  --out "$RESULTS/${NAME}_diagnosis_$DATE.json"
log "done: $RESULTS/${NAME}_bible_$DATE.md, $RESULTS/${NAME}_learning_curves_$DATE.md, $RESULTS/${NAME}_diagnosis_$DATE.md"
