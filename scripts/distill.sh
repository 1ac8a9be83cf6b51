#!/usr/bin/env bash
# Sequence-level knowledge distillation; thin wrapper around scripts/distill.py (see its --help).
# usage: scripts/distill.sh --data DATA_BIN --path TEACHER.pt --out OUTDIR [--beam 4] [--max-tokens N] [...]
set -euo pipefail
exec "${PYTHON:-python}" "$(cd "$(dirname "$0")" && pwd)/distill.py" "$@"
