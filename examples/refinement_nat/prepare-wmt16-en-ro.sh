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

source "$(dirname "$0")/prepare-common.sh"
parse_stage_args "$@"
shift 3
TAG=wmt16 MIRROR_HINT=STATMT/SETIMES_URL
PREPARE_ARGS=(--normalize-punct --ro-strip-diacritics --max-len 250 --max-len-ratio 1.5)
STATMT=${STATMT:-https://www.statmt.org}
SETIMES_URL=${SETIMES_URL:-https://object.pouta.csc.fi/OPUS-SETIMES/v2/moses/en-ro.txt.zip}
SRC=en TGT=ro

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

run_stage "$@"
