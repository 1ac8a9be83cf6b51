#!/usr/bin/env bash
# Thesis Tables 4.2 / 4.3 on WMT'14 En-De (needs GPUs and the internet for the download stage).
#
# usage: wmt14-en-de.sh RAWDIR OUTDIR
#
#   1. data: examples/refinement_nat/prepare-wmt14-en-de.sh with a 60k joint BPE (thesis §4.4); the
#      binarized data (joined dictionary) serves both directions
#   2. masked_translation_wmt (1024 hidden, 6 layers, 8 heads, GELU), masked-translation objective in both
#      directions, Adam lr 1e-4 inverse-sqrt, betas (0.9, 0.98), dropout 0.1, 256 sentences per update
#      (8 GPUs x 32 sentences; on fewer GPUs raise UPDATE_FREQ)
#   3. AR transformer baselines en->de and de->en (fairseq transformer_wmt_en_de_big-like, same data)
#   4. PPO policies per direction (gamma 0.9; history 50 for En->De, 0 for De->En, as selected in the thesis)
#   5. Table 4.2 (linear time, b = 1/4, four length candidates, PLL or AR rescoring) and Table 4.3 (constant time
#      T = 10/20, o_t = ceil(L/T) or L->1) with iterref-benchmark-masked on newstest2014 (all sentences)
#
# The thesis fine-tunes XLM's pretrained En-De MLM (mlm_ende_1024.pth); no pretrained weights are fetched here,
# so the model trains from scratch (expect lower BLEU than Table 4.2 unless MAX_UPDATE is large).
# Environment: PYTHON, MAX_UPDATE (300000), UPDATE_FREQ (1), MAX_SENTENCES (32 per GPU), POLICY_ITERS (2000).
set -euo pipefail
cd "$(dirname "$0")/../.."
RAW=${1:?usage: $0 RAWDIR OUTDIR}
OUT=${2:?usage: $0 RAWDIR OUTDIR}
PYTHON=${PYTHON:-python}
MAX_UPDATE=${MAX_UPDATE:-300000}
UPDATE_FREQ=${UPDATE_FREQ:-1}
MAX_SENTENCES=${MAX_SENTENCES:-32}
POLICY_ITERS=${POLICY_ITERS:-2000}
USER_DIR=$PWD/iterref_fairseq
DATA=$OUT/data
mkdir -p "$OUT"

if [ ! -f "$DATA/bin/dict.en.txt" ]; then
  BPE_OPS=60000 PYTHON=$PYTHON bash examples/refinement_nat/prepare-wmt14-en-de.sh all "$RAW" "$DATA"
fi

if [ ! -f "$OUT/mt/checkpoint_last.pt" ]; then
  fairseq-train "$DATA/bin" --user-dir "$USER_DIR" --task translation_refine -s en -t de \
    --arch masked_translation_wmt --criterion masked_translation_loss --translation-directions both \
    --optimizer adam --adam-betas '(0.9,0.98)' --lr 1e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000 \
    --dropout 0.1 --batch-size "$MAX_SENTENCES" --update-freq "$UPDATE_FREQ" --max-update "$MAX_UPDATE" \
    --fp16 --save-dir "$OUT/mt" --keep-last-epochs 5 --log-format simple --log-interval 100 --seed 1
fi

for pair in "en de" "de en"; do
  set -- $pair
  if [ ! -f "$OUT/ar-$1$2/checkpoint_best.pt" ]; then
    fairseq-train "$DATA/bin" --task translation -s "$1" -t "$2" --arch transformer_vaswani_wmt_en_de_big \
      --share-all-embeddings --dropout 0.1 --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
      --optimizer adam --adam-betas '(0.9,0.98)' --lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 4000 \
      --max-tokens 4096 --max-update "$MAX_UPDATE" --fp16 --save-dir "$OUT/ar-$1$2" --keep-last-epochs 5 \
      --log-format simple --log-interval 100 --seed 1
  fi
done

for pair in "en de 50" "de en 0"; do
  set -- $pair
  if [ ! -f "$OUT/policy-$1$2.pt" ]; then
    iterref-train-policy "$DATA/bin" --path "$OUT/mt/checkpoint_last.pt" -s "$1" -t "$2" \
      --out "$OUT/policy-$1$2.pt" --iterations "$POLICY_ITERS" --generation-batch 16 --buffer-size 10000 \
      --update-batch 128 --gamma 0.9 --history "$3" --hidden-dim 1024
  fi
done

LINEAR=""
for s in uniform left2right least2most easy-first learned; do
  LINEAR="$LINEAR,$s/L/one/b1/len4,$s/L/one/b4/len4,$s/L/one/b4/len4/ar,$s/2L/one/b4/len4"
done
CONSTANT=""
for s in uniform left2right least2most easy-first learned; do
  for t in 10 20; do CONSTANT="$CONSTANT,$s/$t/ceil/b1/len4,$s/$t/anneal/b1/len4,$s/$t/anneal/b1/len4/ar"; done
done
for pair in "en de" "de en"; do
  set -- $pair
  iterref-benchmark-masked "$DATA/bin" --path "$OUT/mt/checkpoint_last.pt" -s "$1" -t "$2" \
    --ar-path "$OUT/ar-$1$2/checkpoint_best.pt" --policy-path "$OUT/policy-$1$2.pt" --refs "$DATA/test.raw.$2" \
    --target-lang "$2" --gen-subset test --max-examples 0 --batch-size 64 \
    --systems "ar/b1,ar/b4${LINEAR}" --out "results/table42-$1$2.json"
  iterref-benchmark-masked "$DATA/bin" --path "$OUT/mt/checkpoint_last.pt" -s "$1" -t "$2" \
    --ar-path "$OUT/ar-$1$2/checkpoint_best.pt" --policy-path "$OUT/policy-$1$2.pt" --refs "$DATA/test.raw.$2" \
    --target-lang "$2" --gen-subset test --max-examples 0 --batch-size 64 \
    --systems "${CONSTANT#,}" --out "results/table43-$1$2.json"
  # Table 4.1: number of length candidates vs the gold length (validation set, easy-first)
  iterref-benchmark-masked "$DATA/bin" --path "$OUT/mt/checkpoint_last.pt" -s "$1" -t "$2" \
    --refs "$DATA/valid.raw.$2" --target-lang "$2" --gen-subset valid --max-examples 0 --batch-size 64 \
    --systems "easy-first/L/one/b1/gold,easy-first/L/one/b1/len1,easy-first/L/one/b1/len2,easy-first/L/one/b1/len3,easy-first/L/one/b1/len4" \
    --out "results/table41-$1$2.json"
done
echo "done: results/table4{1,2,3}-*.{json,md}"
