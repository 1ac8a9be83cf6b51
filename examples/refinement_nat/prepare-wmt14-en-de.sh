#!/usr/bin/env bash
# WMT'14 English-German: Europarl v7 + Common Crawl + News Commentary v9 (4.5M pairs), newstest2013 (valid),
# newstest2014 (test, the full 3003-sentence set).
#
# usage: prepare-wmt14-en-de.sh download|extract|prepare|all RAWDIR OUTDIR [prepare_parallel.py options]
#
#   download  fetch the statmt.org archives into RAWDIR/orig (needs the internet), then `extract`
#   extract   offline: archives -> raw aligned text RAWDIR/{train,valid,test}.{en,de}
#   prepare   offline: scripts/prepare_parallel.py (punctuation normalization, Moses tokenization, length/ratio
#             cleaning of train, joint BPE, fairseq-preprocess) -> OUTDIR, binarized data in OUTDIR/bin
#   all       download + prepare
#
# Environment: PYTHON (default python), BPE_OPS (default 40000), WORKERS (default nproc), STATMT (mirror base URL).
set -euo pipefail

source "$(dirname "$0")/prepare-common.sh"
parse_stage_args "$@"
shift 3
TAG=wmt14 MIRROR_HINT=STATMT
PREPARE_ARGS=(--normalize-punct --max-len 250 --max-len-ratio 1.5)
STATMT=${STATMT:-https://www.statmt.org}
SRC=en TGT=de

ARCHIVES=(
  "$STATMT/wmt13/training-parallel-europarl-v7.tgz"
  "$STATMT/wmt13/training-parallel-commoncrawl.tgz"
  "$STATMT/wmt14/training-parallel-nc-v9.tgz"
  "$STATMT/wmt14/dev.tgz"
  "$STATMT/wmt14/test-full.tgz"
)
TRAIN_CORPORA=(europarl-v7.de-en commoncrawl.de-en news-commentary-v9.de-en)

extract() {
  local orig=$RAW/orig url l c
  for url in "${ARCHIVES[@]}"; do
    [ -s "$orig/$(basename "$url")" ] || die "$orig/$(basename "$url") not found; run the download stage first"
    tar -xzf "$orig/$(basename "$url")" -C "$orig"
  done
  for l in $SRC $TGT; do
    : > "$RAW/train.$l"
    for c in "${TRAIN_CORPORA[@]}"; do
      cat "$(find_one "$orig" "$c.$l")" >> "$RAW/train.$l"
    done
    cp "$(find_one "$orig" "newstest2013.$l")" "$RAW/valid.$l"
  done
  # newstest2014 (full): English source side and German reference of the de-en release are aligned
  segments "$(find_one "$orig" "newstest2014-deen-src.$SRC.sgm")" > "$RAW/test.$SRC"
  segments "$(find_one "$orig" "newstest2014-deen-ref.$TGT.sgm")" > "$RAW/test.$TGT"
  check_aligned
}

download() {
  local url
  mkdir -p "$RAW/orig"
  for url in "${ARCHIVES[@]}"; do fetch "$url" "$RAW/orig/$(basename "$url")"; done
  extract
}

run_stage "$@"
