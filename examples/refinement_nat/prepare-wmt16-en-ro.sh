#!/usr/bin/env bash
# WMT'16 English-Romanian: Europarl v8 + SETIMES2 (~610k pairs), newsdev2016 (valid), newstest2016 (test).
# Romanian is normalized and stripped of diacritics (the usual WMT'16 En-Ro setup).
#
# usage: prepare-wmt16-en-ro.sh download|extract|prepare|all RAWDIR OUTDIR [prepare_parallel.py options]
#
#   download  fetch the archives into RAWDIR/orig (needs the internet), then `extract`
#   extract   offline: archives -> raw aligned text RAWDIR/{train,valid,test}.{en,ro}
#   prepare   offline: scripts/prepare_parallel.py -> OUTDIR, binarized data in OUTDIR/bin (both directions)
#   all       download + prepare
#
# Environment: PYTHON (default python), BPE_OPS (default 40000), WORKERS (default nproc),
#              STATMT (mirror of www.statmt.org), SETIMES_URL (OPUS SETIMES v2 en-ro moses zip).
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
SETIMES_URL=${SETIMES_URL:-https://object.pouta.csc.fi/OPUS-SETIMES/v2/moses/en-ro.txt.zip}
SRC=en TGT=ro

die() { echo "$0: error: $*" >&2; exit 1; }

fetch() {  # fetch URL FILE (skipped when FILE exists)
  local url=$1 out=$2
  if [ -s "$out" ]; then echo "[wmt16] have $out" >&2; return; fi
  echo "[wmt16] downloading $url" >&2
  if command -v wget >/dev/null 2>&1; then
    wget -q --show-progress -O "$out.part" "$url" || die "download of $url failed; set STATMT/SETIMES_URL to a mirror"
  else
    curl -fL --retry 3 -o "$out.part" "$url" || die "download of $url failed; set STATMT/SETIMES_URL to a mirror"
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
    echo "[wmt16] $split: $n_src segments" >&2
  done
}

extract() {
  local orig=$RAW/orig f l
  for f in training-parallel-ep-v8.tgz dev-romanian-updated.tgz test.tgz setimes2-en-ro.txt.zip; do
    [ -s "$orig/$f" ] || die "$orig/$f not found; run the download stage first"
  done
  tar -xzf "$orig/training-parallel-ep-v8.tgz" -C "$orig"
  tar -xzf "$orig/dev-romanian-updated.tgz" -C "$orig"
  tar -xzf "$orig/test.tgz" -C "$orig"
  mkdir -p "$orig/setimes2"
  "$PYTHON" -m zipfile -e "$orig/setimes2-en-ro.txt.zip" "$orig/setimes2"
  for l in $SRC $TGT; do
    cat "$(find_one "$orig" "europarl-v8.ro-en.$l")" "$(find_one "$orig/setimes2" "SETIMES*.en-ro.$l")" \
      > "$RAW/train.$l"
  done
  # the en->ro releases: English source and Romanian reference (same sentences as the ro->en ones)
  segments "$(find_one "$orig" "newsdev2016-enro-src.$SRC.sgm")" > "$RAW/valid.$SRC"
  segments "$(find_one "$orig" "newsdev2016-enro-ref.$TGT.sgm")" > "$RAW/valid.$TGT"
  segments "$(find_one "$orig" "newstest2016-enro-src.$SRC.sgm")" > "$RAW/test.$SRC"
  segments "$(find_one "$orig" "newstest2016-enro-ref.$TGT.sgm")" > "$RAW/test.$TGT"
  check_aligned
}

download() {
  mkdir -p "$RAW/orig"
  fetch "$STATMT/wmt16/translation-task/training-parallel-ep-v8.tgz" "$RAW/orig/training-parallel-ep-v8.tgz"
  fetch "$SETIMES_URL" "$RAW/orig/setimes2-en-ro.txt.zip"
  fetch "$STATMT/wmt16/translation-task/dev-romanian-updated.tgz" "$RAW/orig/dev-romanian-updated.tgz"
  fetch "$STATMT/wmt16/translation-task/test.tgz" "$RAW/orig/test.tgz"
  extract
}

prepare() {
  for f in train valid test; do
    [ -s "$RAW/$f.$SRC" ] && [ -s "$RAW/$f.$TGT" ] || die "$RAW/$f.$SRC/.$TGT missing; run the download stage first"
  done
  "$PYTHON" "$ROOT/scripts/prepare_parallel.py" --src $SRC --tgt $TGT \
    --train-prefix "$RAW/train" --valid-prefix "$RAW/valid" --test-prefix "$RAW/test" \
    --out-dir "$OUT" --bpe-ops "$BPE_OPS" --workers "$WORKERS" --normalize-punct --ro-strip-diacritics \
    --max-len 250 --max-len-ratio 1.5 --binarize "$@"
}

case $STAGE in
  download) download ;;
  extract) extract ;;
  prepare) prepare "$@" ;;
  all) download; prepare "$@" ;;
  *) usage ;;
esac
