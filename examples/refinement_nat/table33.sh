#!/usr/bin/env bash
# Thesis Table 3.3 in small on the demo's Bible De->En data (after `make demo`, OUT=work/demo): the refinement NAT
# of compare-fairseq-nat.sh trained three ways for NAT_MINUTES each (system nat: distilled targets, pDAE 0.5;
# nat-raw: raw targets; nat-pdae0: no DAE term), then the test book decoded at idec 1 / 10 / adaptive with the
# repeated tokens removed (default) and kept, in two iterref-benchmark-nat runs, and one table with the thesis's
# three contrasts -> RESULTS/bible_table33_<date>.{json,md}. With BEAM4=1 (default) a fourth system, nat-b4: the
# training targets distilled with the teacher's beam 4 (OUT/distill-beam4, the demo's; the other distilled systems
# train on its greedy output, OUT/distill; compare-fairseq-nat.sh distils whichever is missing).
# Knobs: OUT (work/demo), SEED (1), NAT_MINUTES (14), THREADS (1), PARALLEL (1: one run at a time), BEAM4 (1),
#   RESULTS (results/refinement_nat), PYTHON. Trained runs (OUT/compare/<system>-s<seed>/.trained) are reused.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work/demo}
SEED=${SEED:-1}
NAT_MINUTES=${NAT_MINUTES:-14}
THREADS=${THREADS:-1}
PARALLEL=${PARALLEL:-1}
RESULTS=${RESULTS:-results/refinement_nat}
PYTHON=${PYTHON:-python}
DATA=$OUT/bible
CMP=$OUT/compare
DATE=$(date -u +%Y-%m-%d)
log() { echo "[table33 $(date +%H:%M:%S)] $*" >&2; }
[ -f "$OUT/ar/checkpoint_last.pt" ] || { echo "$0: run make demo first (missing the AR teacher $OUT/ar)" >&2; exit 1; }

BEAM4=${BEAM4:-1}
SYSTEMS="nat nat-raw nat-pdae0"
ROWS=(--row "nat-s$SEED=distilled,0.5" --row "nat-raw-s$SEED=raw,0.5" --row "nat-pdae0-s$SEED=distilled,0")
if [ "$BEAM4" = 1 ]; then
  SYSTEMS="$SYSTEMS nat-b4"
  ROWS+=(--row "nat-b4-s$SEED=distilled-beam4,0.5")
fi
log "1/3 training $SYSTEMS (seed $SEED) for $NAT_MINUTES minutes each"
DISTILL_BEAM=1 SYSTEMS="$SYSTEMS" SEEDS=$SEED NAT_MINUTES=$NAT_MINUTES PARALLEL=$PARALLEL THREADS=$THREADS DECODE=0 \
  PYTHON=$PYTHON OUT=$OUT bash examples/refinement_nat/compare-fairseq-nat.sh

SYS_ARGS=() SPECS=()
for system in $SYSTEMS; do
  SYS_ARGS+=(--refinement-nat "$system-s$SEED=$CMP/$system-s$SEED/checkpoint_last.pt")
  for k in 1 10 adaptive; do SPECS+=("$system-s$SEED:$k"); done
done
SPECS=$(IFS=,; echo "${SPECS[*]}")
for repeats in removed kept; do
  log "2/3 decoding the test book, repeated tokens $repeats"
  FLAG=(); [ "$repeats" = kept ] && FLAG=(--keep-repeats)
  "$PYTHON" -m iterref_fairseq.cli.benchmark_nat "$DATA/bin" --cpu --threads "$THREADS" "${SYS_ARGS[@]}" \
    --systems "$SPECS" --speed-sentences 0 "${FLAG[@]}" \
    --refs "$DATA/test.ref.en.k" "$DATA/test.ref.en.4" "$DATA/test.ref.en.3" --out "$CMP/table33_$repeats-s$SEED.json"
done
log "3/3 the table -> $RESULTS/bible_table33_$DATE.md"
"$PYTHON" examples/refinement_nat/table33.py --removed "$CMP/table33_removed-s$SEED.json" \
  --kept "$CMP/table33_kept-s$SEED.json" "${ROWS[@]}" --out "$RESULTS/bible_table33_$DATE.json"
