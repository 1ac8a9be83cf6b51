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

usage() { echo "usage: $0 download|extract|prepare|all RAWDIR OUTDIR [prepare_parallel.py options]" >&2; exit 2; }
[ $# -ge 3 ] || usage
STAGE=$1 RAW=$2 OUT=$3
shift 3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-python}
BPE_OPS=${BPE_OPS:-40000}
WORKERS=${WORKERS:-$(nproc 2>/dev/null || echo 2)}
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

die() { echo "$0: error: $*" >&2; exit 1; }

fetch() {  # fetch URL FILE (skipped when FILE exists)
  local url=$1 out=$2
  if [ -s "$out" ]; then echo "[wmt14] have $out" >&2; return; fi
  echo "[wmt14] downloading $url" >&2
  if command -v wget >/dev/null 2>&1; then
    wget -q --show-progress -O "$out.part" "$url" || die "download of $url failed; set STATMT to a mirror"
  else
    curl -fL --retry 3 -o "$out.part" "$url" || die "download of $url failed; set STATMT to a mirror"
  fi
  mv "$out.part" "$out"
}

find_one() {
  local hit
  hit=$(find "$1" -type f -name "$2" | sort | head -n 1)
  [ -n "$hit" ] || die "$2 not found under $1; is the archive complete? (re-run download)"
  echo "$hit"
}

segments() {  # text of the <seg> elements of a WMT SGML file, one per line
  sed -n 's/^[[:space:]]*<seg[^>]*>[[:space:]]*\(.*\)<\/seg>[[:space:]]*$/\1/p' "$1" | sed 's/[[:space:]]*$//'
}

check_aligned() {
  local split n_src n_tgt
  for split in train valid test; do
    n_src=$(wc -l < "$RAW/$split.$SRC"); n_tgt=$(wc -l < "$RAW/$split.$TGT")
    [ "$n_src" -eq "$n_tgt" ] || die "$RAW/$split.$SRC has $n_src lines but $RAW/$split.$TGT has $n_tgt"
    [ "$n_src" -gt 0 ] || die "$RAW/$split.$SRC is empty"
    echo "[wmt14] $split: $n_src segments" >&2
  done
}

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

prepare() {
  for f in train valid test; do
    [ -s "$RAW/$f.$SRC" ] && [ -s "$RAW/$f.$TGT" ] || die "$RAW/$f.$SRC/.$TGT missing; run the download stage first"
  done
  "$PYTHON" "$ROOT/scripts/prepare_parallel.py" --src $SRC --tgt $TGT \
    --train-prefix "$RAW/train" --valid-prefix "$RAW/valid" --test-prefix "$RAW/test" \
    --out-dir "$OUT" --bpe-ops "$BPE_OPS" --workers "$WORKERS" --normalize-punct \
    --max-len 250 --max-len-ratio 1.5 --binarize "$@"
}

case $STAGE in
  download) download ;;
  extract) extract ;;
  prepare) prepare "$@" ;;
  all) download; prepare "$@" ;;
  *) usage ;;
esac
