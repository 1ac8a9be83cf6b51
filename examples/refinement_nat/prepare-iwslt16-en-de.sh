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

usage() { echo "usage: $0 download|extract|prepare|all RAWDIR OUTDIR [prepare_parallel.py options]" >&2; exit 2; }
[ $# -ge 3 ] || usage
STAGE=$1 RAW=$2 OUT=$3
shift 3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-python}
BPE_OPS=${BPE_OPS:-40000}
WORKERS=${WORKERS:-$(nproc 2>/dev/null || echo 2)}
URL=${IWSLT16_URL:-https://wit3.fbk.eu/archive/2016-01/texts/en/de/en-de.tgz}
SRC=en TGT=de

die() { echo "$0: error: $*" >&2; exit 1; }

fetch() {  # fetch URL FILE (skipped when FILE exists)
  local url=$1 out=$2
  if [ -s "$out" ]; then echo "[iwslt16] have $out" >&2; return; fi
  echo "[iwslt16] downloading $url" >&2
  if command -v wget >/dev/null 2>&1; then
    wget -q --show-progress -O "$out.part" "$url" || die "download of $url failed; set IWSLT16_URL to a mirror"
  else
    curl -fL --retry 3 -o "$out.part" "$url" || die "download of $url failed; set IWSLT16_URL to a mirror"
  fi
  mv "$out.part" "$out"
}

find_one() {  # find_one DIR NAME: path of the file NAME somewhere under DIR
  local hit
  hit=$(find "$1" -type f -name "$2" | sort | head -n 1)
  [ -n "$hit" ] || die "$2 not found under $1; is the archive complete? (re-run download)"
  echo "$hit"
}

segments() {  # text of the <seg> elements of an IWSLT XML / WMT SGML file, one per line
  sed -n 's/^[[:space:]]*<seg[^>]*>[[:space:]]*\(.*\)<\/seg>[[:space:]]*$/\1/p' "$1" | sed 's/[[:space:]]*$//'
}

check_aligned() {
  local split n_src n_tgt
  for split in train valid test; do
    n_src=$(wc -l < "$RAW/$split.$SRC"); n_tgt=$(wc -l < "$RAW/$split.$TGT")
    [ "$n_src" -eq "$n_tgt" ] || die "$RAW/$split.$SRC has $n_src lines but $RAW/$split.$TGT has $n_tgt"
    [ "$n_src" -gt 0 ] || die "$RAW/$split.$SRC is empty"
    echo "[iwslt16] $split: $n_src segments" >&2
  done
}

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

prepare() {
  for f in train valid test; do
    [ -s "$RAW/$f.$SRC" ] && [ -s "$RAW/$f.$TGT" ] || die "$RAW/$f.$SRC/.$TGT missing; run the download stage first"
  done
  "$PYTHON" "$ROOT/scripts/prepare_parallel.py" --src $SRC --tgt $TGT \
    --train-prefix "$RAW/train" --valid-prefix "$RAW/valid" --test-prefix "$RAW/test" \
    --out-dir "$OUT" --bpe-ops "$BPE_OPS" --workers "$WORKERS" --binarize "$@"
}

case $STAGE in
  download) download ;;
  extract) extract ;;
  prepare) prepare "$@" ;;
  all) download; prepare "$@" ;;
  *) usage ;;
esac
