#!/usr/bin/env bash
# IWSLT'16 English-German (TED talks), as used by Lee, Mansimov & Cho (2018).
#
# usage: prepare-iwslt16-en-de.sh download|extract|prepare|all RAWDIR OUTDIR [prepare_parallel.py options]
#
#   download  fetch the WIT3 archive into RAWDIR/orig (needs the internet), then `extract`
#   extract   offline: archive -> raw aligned text RAWDIR/{train,valid,test}.{en,de}
#               train = train.tags.en-de (metadata lines such as <url>, <talkid>, <title> dropped)
#               valid = IWSLT16.TED.tst2013, test = IWSLT16.TED.tst2014
#   prepare   offline: scripts/prepare_parallel.py (Moses tokenization, joint BPE, fairseq-preprocess) -> OUTDIR,
#             binarized data in OUTDIR/bin (usable in both directions: --source-lang en/de)
#   all       download + prepare
#
# Environment: PYTHON (default python), BPE_OPS (default 40000), WORKERS (default nproc),
#              IWSLT16_URL (mirror of the 2016-01 en-de archive, if the default moves).
set -euo pipefail

source "$(dirname "$0")/prepare-common.sh"
parse_stage_args "$@"
shift 3
TAG=iwslt16 MIRROR_HINT=IWSLT16_URL
PREPARE_ARGS=()
URL=${IWSLT16_URL:-https://wit3.fbk.eu/archive/2016-01/texts/en/de/en-de.tgz}
SRC=en TGT=de

extract() {
  local orig=$RAW/orig archive l
  archive=$orig/en-de.tgz
  [ -s "$archive" ] || die "$archive not found; run the download stage first (or copy the archive there)"
  tar -xzf "$archive" -C "$orig"
  for l in $SRC $TGT; do
    grep -v '^[[:space:]]*<' "$(find_one "$orig" "train.tags.en-de.$l")" \
      | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' > "$RAW/train.$l"
    segments "$(find_one "$orig" "IWSLT16.TED.tst2013.en-de.$l.xml")" > "$RAW/valid.$l"
    segments "$(find_one "$orig" "IWSLT16.TED.tst2014.en-de.$l.xml")" > "$RAW/test.$l"
  done
  check_aligned
}

download() {
  mkdir -p "$RAW/orig"
  fetch "$URL" "$RAW/orig/en-de.tgz"
  extract
}

run_stage "$@"
