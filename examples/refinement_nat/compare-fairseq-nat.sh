#!/usr/bin/env bash
# Our refinement NAT against fairseq's built-in NATs at the same size, data and wall-clock training budget.
#
# Runs after `make demo` (it reuses the demo's Bible data and AR teacher):
#   0. distils the training targets with the teacher where a system needs targets that are not there yet
#      (greedy -> OUT/distill, or beam DISTILL_BEAM -> OUT/distill-beamK; beam 4 for nat-b4);
#   1. trains every system in SYSTEMS for NAT_MINUTES per seed in SEEDS, PARALLEL runs at a time with THREADS
#      torch threads each (side by side on the same machine, so they share it equally), with interval checkpoints
#      every CKPT_UPDATES updates (for the learning curves) into OUT/compare/<system>-s<seed>/ (log: train.log);
#   2. decodes the test book with every final checkpoint side by side (iterref-benchmark-nat: BLEU, passes, speed)
#      -> OUT/compare/compare_fairseq.{json,md};
#   3. learning curves on the first 300 validation verses (BLEU at idec 1 and 10 against training minutes)
#      -> OUT/compare/learning_curves.{json,md,png}.
# Systems (same dimensions per decoder pass as refinement_nat_tiny: d 128, ffn 512, 4 heads, 2 encoder layers,
# 2 layers per decoder; the same optimizer, schedule and batch size):
#   nat        refinement_nat with this release's defaults, on the targets distilled with
#              the teacher's beam DISTILL_BEAM (1: greedy, as every system marked "distilled" below)
#   nat-curr   the same with --refine-from-update CURRICULUM_UPDATES (decoder 1 alone first)
#   nat-ri     nat-curr with --refiner-init decoder1 (decoder 2 copied from decoder 1 at the switch): the demo's recipe
#   nat-0.2    the 0.2 decoder (highway on every sublayer, constant beta 0.5): the demo's recipe before 0.3
#   nat-glat   nat with glancing sampling for decoder 1 (--glancing-ratio 0.5 -> 0.3 over GLANCE_UPDATES)
#   nat-glat-curr  nat-glat with the curriculum of nat-curr
#   nat-ri-glat    nat-ri with the glancing of nat-glat (the best of our recipes at the demo's budget)
#   nat-raw    nat trained on the raw (not distilled) targets      } with the decoding options, the Bible
#   nat-pdae0  nat without the DAE term (pDAE 0)                   } version of thesis Table 3.3
#   nat-b4     nat on targets distilled with the teacher's beam 4  } (OUT/distill-beam4, whatever DISTILL_BEAM)
#   cmlm       fairseq cmlm_transformer (mask-predict), label smoothing 0.1
#   inat       fairseq iterative_nonautoregressive_transformer (one shared decoder; itrain 4, pDAE 0.5)
#   ar         the AR teacher's recipe (fairseq transformer on the raw targets), for its learning curve (greedy)
#   lanmt      LaNMT (lanmt_tiny: d 128, ffn 512, 4 heads, 2 layers per stack, latent dim 8), free-bits budget 1
#              annealed to 0 over LANMT_BUDGET_UPDATES (3600) updates; trained only (decode it with
#              examples/lanmt/bible.sh, which also fine-tunes it and trains its score network)
#   lanmt-copy lanmt with --decoder-source-copy (a named deviation: the decoder input also carries the source
#              embeddings through the length transform; docs/lanmt.md)
# Knobs: OUT (work/demo), NAT_MINUTES (14), SEEDS ("1 2"), SYSTEMS ("nat cmlm"), PARALLEL (2), THREADS (1),
#        CKPT_UPDATES (200), CURRICULUM_UPDATES (600), DISTILL_BEAM (1: the teacher's beam for every distilled system;
#        4 = the targets of `make demo`), GLANCE_UPDATES (2000), SPEED_SENTENCES (100), NAT_EXTRA (extra flags for nat*),
#        DECODE (1: decode and draw curves after training; 0: train only, e.g. to add systems to a later run),
#        CMP (OUT/compare: where the runs and results go; another folder keeps variants of NAT_EXTRA apart).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work/demo}
NAT_MINUTES=${NAT_MINUTES:-14}
SEEDS=${SEEDS:-1 2}
SYSTEMS=${SYSTEMS:-nat cmlm}
PARALLEL=${PARALLEL:-2}
THREADS=${THREADS:-1}
CKPT_UPDATES=${CKPT_UPDATES:-200}
CURRICULUM_UPDATES=${CURRICULUM_UPDATES:-600}
SPEED_SENTENCES=${SPEED_SENTENCES:-100}
NAT_EXTRA=${NAT_EXTRA:-}
PYTHON=${PYTHON:-python}
USER_DIR=$PWD/iterref_fairseq
DATA=$OUT/bible
CMP=${CMP:-$OUT/compare}
DISTILL_BEAM=${DISTILL_BEAM:-1}
log() { echo "[compare $(date +%H:%M:%S)] $*" >&2; }
source examples/common.sh  # hours, distill_dir, distill_stage
[ -f "$OUT/ar/checkpoint_last.pt" ] && [ -f "$DATA/bin/dict.en.txt" ] || {
  echo "$0: run make demo first (missing the Bible data $DATA/bin or the AR teacher $OUT/ar)" >&2; exit 1; }
DISTILLED=$(distill_dir)
mkdir -p "$CMP"

DIMS=(--encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 128 --decoder-embed-dim 128
  --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 --encoder-attention-heads 4 --decoder-attention-heads 4)
COMMON=(--dropout 0.0 --optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt
  --warmup-updates 150 --max-tokens 2048 --max-update 100000 --stop-time-hours "$(hours "$NAT_MINUTES")" --cpu
  --save-interval-updates "$CKPT_UPDATES" --keep-interval-updates -1 --no-epoch-checkpoints
  --disable-validation --log-format simple --log-interval 25)
NAT=(--task translation_refine --arch refinement_nat_tiny --criterion refinement_nat_loss --train-steps 4
  --dae-prob 0.5 --max-length-offset 20)
FAIRSEQ=(--task translation_lev --criterion nat_loss --label-smoothing 0.1 --share-all-embeddings
  --length-loss-factor 0.1)

flags_of() {  # the fairseq-train flags of system $1
  case "$1" in
    nat) echo "${NAT[@]} $NAT_EXTRA" ;;
    nat-curr) echo "${NAT[@]} --refine-from-update $CURRICULUM_UPDATES $NAT_EXTRA" ;;
    nat-ri) echo "${NAT[@]} --refine-from-update $CURRICULUM_UPDATES --refiner-init decoder1 $NAT_EXTRA" ;;
    nat-glat) echo "${NAT[@]} --glancing-ratio 0.5 --glancing-ratio-end 0.3 --glancing-anneal-updates \
                   ${GLANCE_UPDATES:-2000} $NAT_EXTRA" ;;
    nat-glat-curr) echo "${NAT[@]} --glancing-ratio 0.5 --glancing-ratio-end 0.3 --glancing-anneal-updates \
                   ${GLANCE_UPDATES:-2000} --refine-from-update $CURRICULUM_UPDATES $NAT_EXTRA" ;;
    nat-ri-glat) echo "${NAT[@]} --refine-from-update $CURRICULUM_UPDATES --refiner-init decoder1 --glancing-ratio 0.5 \
                      --glancing-ratio-end 0.3 --glancing-anneal-updates ${GLANCE_UPDATES:-2000} $NAT_EXTRA" ;;
    nat-raw|nat-b4) echo "${NAT[@]} $NAT_EXTRA" ;;  # the recipe of nat on other targets (data_of)
    nat-pdae0) echo "${NAT[@]} --dae-prob 0 $NAT_EXTRA" ;;
    nat-0.2) echo "${NAT[@]} --decoder-connections highway --corruption-schedule constant --corruption-prob 0.5" ;;
    cmlm) echo "${FAIRSEQ[@]} --arch cmlm_transformer --noise random_mask" ;;
    ar) echo "--task translation --arch transformer --share-all-embeddings --dropout 0.1 \
              --criterion label_smoothed_cross_entropy --label-smoothing 0.1" ;;
    inat) echo "${FAIRSEQ[@]} --arch iterative_nonautoregressive_transformer --noise full_mask --train-step 4 \
                --dae-ratio 0.5 --pred-length-offset" ;;
    lanmt) echo "--task translation_refine --arch lanmt_tiny --criterion lanmt_loss --kl-budget-updates \
                 ${LANMT_BUDGET_UPDATES:-3600}" ;;
    lanmt-copy) echo "$(flags_of lanmt) --decoder-source-copy" ;;
    *) echo "unknown system $1 (nat, nat-curr, nat-ri, nat-glat, nat-glat-curr, nat-ri-glat, nat-raw, nat-pdae0," \
            "nat-b4, nat-0.2, cmlm, inat, ar, lanmt, lanmt-copy)" >&2; return 1 ;;
  esac
}

data_of() {  # the training data of system $1: targets distilled with beam DISTILL_BEAM, except nat-raw, nat-b4, ar
  case "$1" in nat-raw|ar) echo "$DATA/bin" ;; nat-b4) echo "$OUT/distill-beam4/bin" ;; *) echo "$DISTILLED/bin" ;; esac
}

distill_for() {  # make the distilled targets that system $1 trains on, if it needs any that are not there yet
  case "$1" in
    nat-raw|ar) ;;
    nat-b4) DISTILL_BEAM=4 distill_stage "distilling the training targets with the teacher's beam 4" \
              "$OUT/distill-beam4" ;;
    *) distill_stage "distilling the training targets with the teacher's beam $DISTILL_BEAM" "$DISTILLED" ;;
  esac
}

train_one() {  # system seed
  local dir="$CMP/$1-s$2"
  if [ -f "$dir/.trained" ]; then return 0; fi
  mkdir -p "$dir"
  local flags data dims=("${DIMS[@]}")
  flags=$(flags_of "$1")
  data=$(data_of "$1")  # there: checked at the top (raw) or made by distill_for before the runs start
  case "$1" in lanmt*) dims=() ;; esac  # lanmt_tiny has the same sizes under its own flag names
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS fairseq-train "$data" --user-dir "$USER_DIR" \
    "${dims[@]}" "${COMMON[@]}" $flags --seed "$2" --save-dir "$dir" > "$dir/train.log" 2>&1
  touch "$dir/.trained"
}

for system in $SYSTEMS; do flags_of "$system" > /dev/null; done  # every name checked before anything runs
for system in $SYSTEMS; do distill_for "$system"; done  # targets made before the parallel runs (no two distil one)
log "1/3 training ${SYSTEMS// /, } for $NAT_MINUTES minutes, seeds ${SEEDS// /, }, $PARALLEL at a time"
running=0 failed=0
for seed in $SEEDS; do
  for system in $SYSTEMS; do
    train_one "$system" "$seed" &
    running=$((running + 1))
    if [ "$running" -ge "$PARALLEL" ]; then wait -n || failed=1; running=$((running - 1)); fi
  done
done
while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
[ "$failed" = 0 ] || { log "a training run failed (the message above, or its train.log, says why)"; exit 1; }

if [ "${DECODE:-1}" = 0 ]; then log "trained; DECODE=0: no decoding"; exit 0; fi
log "2/3 decoding the test book with every final checkpoint"
SYS_ARGS=() ; SPECS="ar:1,ar:4"
for seed in $SEEDS; do
  for system in $SYSTEMS; do
    ckpt="$CMP/$system-s$seed/checkpoint_last.pt"
    case "$system" in
      ar) continue ;;  # the table's AR row is the teacher
      nat*) SYS_ARGS+=(--refinement-nat "$system-s$seed=$ckpt") ;;
      *) SYS_ARGS+=(--fairseq-nat "$system-s$seed=$ckpt") ;;
    esac
    for k in 1 10 adaptive; do SPECS="$SPECS,$system-s$seed:$k"; done
  done
done
"$PYTHON" -m iterref_fairseq.cli.benchmark_nat "$DATA/bin" --ar-path "$OUT/ar/checkpoint_last.pt" --cpu \
  "${SYS_ARGS[@]}" --refs "$DATA/test.ref.en.k" "$DATA/test.ref.en.4" "$DATA/test.ref.en.3" \
  --systems "$SPECS" --speed-sentences "$SPEED_SENTENCES" --out "$CMP/compare_fairseq.json"

log "3/3 learning curves (first 300 validation verses)"
RUNS=()
for seed in $SEEDS; do
  for system in $SYSTEMS; do
    if [ "$system" = ar ]; then RUNS+=(--ar "ar-s$seed=$CMP/ar-s$seed"); else RUNS+=(--run "$system-s$seed=$CMP/$system-s$seed"); fi
  done
done
"$PYTHON" examples/refinement_nat/learning_curve.py "$DATA/bin" "${RUNS[@]}" --gen-subset valid \
  --refs "$DATA/valid.ref.en.k" "$DATA/valid.ref.en.4" "$DATA/valid.ref.en.3" --max-examples 300 --idec 1,10 \
  --out "$CMP/learning_curves.json"
log "done: $CMP/compare_fairseq.md, $CMP/learning_curves.md"
