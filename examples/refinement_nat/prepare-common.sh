# Shared helpers of the prepare-<dataset>.sh scripts (sourced, not run).
#
# The sourcing script sets TAG (log prefix), MIRROR_HINT (what to set when a download fails), SRC, TGT, and
# defines download() and extract(); it calls `parse_stage_args "$@"` first and `run_stage "$@"` last, with
# PREPARE_ARGS holding its dataset-specific prepare_parallel.py options.
usage() { echo "usage: $0 download|extract|prepare|all RAWDIR OUTDIR [prepare_parallel.py options]" >&2; exit 2; }

parse_stage_args() {  # sets STAGE RAW OUT ROOT PYTHON BPE_OPS WORKERS; the caller shifts 3
  [ $# -ge 3 ] || usage
  STAGE=$1 RAW=$2 OUT=$3
  ROOT=$(cd "$(dirname "$0")/../.." && pwd)
  PYTHON=${PYTHON:-python}
  BPE_OPS=${BPE_OPS:-40000}
  WORKERS=${WORKERS:-$(nproc 2>/dev/null || echo 2)}
}

die() { echo "$0: error: $*" >&2; exit 1; }

fetch() {  # fetch URL FILE (skipped when FILE exists)
  local url=$1 out=$2
  if [ -s "$out" ]; then echo "[$TAG] have $out" >&2; return; fi
  echo "[$TAG] downloading $url" >&2
  if command -v wget >/dev/null 2>&1; then
    wget -q --show-progress -O "$out.part" "$url" || die "download of $url failed; set $MIRROR_HINT to a mirror"
  else
    curl -fL --retry 3 -o "$out.part" "$url" || die "download of $url failed; set $MIRROR_HINT to a mirror"
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
    echo "[$TAG] $split: $n_src segments" >&2
  done
}

prepare() {
  local f
  for f in train valid test; do
    [ -s "$RAW/$f.$SRC" ] && [ -s "$RAW/$f.$TGT" ] || die "$RAW/$f.$SRC/.$TGT missing; run the download stage first"
  done
  "$PYTHON" "$ROOT/scripts/prepare_parallel.py" --src "$SRC" --tgt "$TGT" \
    --train-prefix "$RAW/train" --valid-prefix "$RAW/valid" --test-prefix "$RAW/test" \
    --out-dir "$OUT" --bpe-ops "$BPE_OPS" --workers "$WORKERS" "${PREPARE_ARGS[@]}" --binarize "$@"
}

run_stage() {
  case $STAGE in
    download) download ;;
    extract) extract ;;
    prepare) prepare "$@" ;;
    all) download; prepare "$@" ;;
    *) usage ;;
  esac
}
