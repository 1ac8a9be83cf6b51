#!/usr/bin/env bash
# Table 5.5 / the ChEMBL rows of Table 5.3 at paper size on one GPU, on MOSES (the ChEMBL files GuacaMol uses
# cannot be installed offline; MOSES is a drug-like ZINC subset with a similar size distribution).
# masked_graph_model_chembl (6 tied layers, d0 = 2048), 512 molecules per update (32 x 16 accumulated, as in the
# thesis), mask rates 1% and 5% with training initialization, 300 steps, 10,000 samples.
# Knobs: OUT (work/mgm_moses), MAX_UPDATE (300000), NUM_SAMPLES (10000), STEPS (300), BATCH (1000).
set -euo pipefail
cd "$(dirname "$0")/../.."
source examples/mgm/common.sh
OUT=${OUT:-work/mgm_moses}
MAX_UPDATE=${MAX_UPDATE:-300000}
NUM_SAMPLES=${NUM_SAMPLES:-10000}
STEPS=${STEPS:-300}
BATCH=${BATCH:-1000}
PYTHON=${PYTHON:-python}
USER_DIR=$PWD/iterref_fairseq
DATA=$OUT/moses

[ -f "$DATA/train.smi" ] || "$PYTHON" scripts/prepare_moses.py --out "$DATA" --valid-size 10000
mgm_train_paper "$DATA" "$OUT/ckpt" masked_graph_model_chembl \
  --batch-size 32 --update-freq 16 --max-update "$MAX_UPDATE"
mgm_grid "$OUT/ckpt/checkpoint_best.pt" "$DATA" "$OUT/table55" "$NUM_SAMPLES" "$STEPS" 10 "$BATCH" \
  "0.01:train 0.05:train"
