#!/usr/bin/env bash
# CPU evidence for the molecule-string task: FlexMDM vs LFlexMDM (tiny archs) on MOSES SMILES (or, with
# DATASET=qm9, the shorter QM9 SMILES of the qm9pack wheel: at most 9 heavy atoms, a CPU-sized stand-in), trained side
# by side for the same wall-clock budget (one single-threaded process each), then NUM samples at STEPS tau-leaping
# steps: validity / uniqueness / diversity / quality (QED >= 0.6 and SA <= 4).
# Writes results/flexmdm_<DATASET>_cpu_<date>.{json,md}.
#
#   bash examples/flexmdm/molecules_cpu_table.sh                        # defaults below (~BUDGET_MIN + 10 minutes)
#   BUDGET_MIN=3 TRAIN=20000 NUM=100 STEPS=64 bash examples/flexmdm/molecules_cpu_table.sh    # quick look
#   MAX_UPDATE=1500 BUDGET_MIN=60 bash examples/flexmdm/molecules_cpu_table.sh                # equal updates
#   DATASET=qm9 MAX_UPDATE=2500 BUDGET_MIN=60 bash examples/flexmdm/molecules_cpu_table.sh    # QM9 SMILES
set -euo pipefail
cd "$(dirname "$0")/../.."
BUDGET_MIN=${BUDGET_MIN:-15}          # training minutes per model
MAX_UPDATE=${MAX_UPDATE:-1000000}     # or an update budget per model (same batch size); the first limit wins
TRAIN=${TRAIN:-200000}                # MOSES training molecules used
NUM=${NUM:-500}                       # samples per model
STEPS=${STEPS:-256}                   # tau-leaping steps (the paper samples with 1,024)
SEED=${SEED:-1}
DATASET=${DATASET:-moses}             # moses | qm9
WORK=${WORK:-work/flexmdm_$DATASET}
OUT_DIR=${OUT_DIR:-results}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")
export OMP_NUM_THREADS=1
DATA=$WORK/$DATASET-smiles
mkdir -p "$WORK"
case $DATASET in
  moses) SMI=() ;;
  qm9)   [ -f "$WORK/qm9-smi/train.smi" ] || "$PY" scripts/prepare_qm9.py --out "$WORK/qm9-smi" --valid-size 1000 \
           --test-size 1000 --seed "$SEED"
         SMI=(--smi-dir "$WORK/qm9-smi") ;;
  *) echo "DATASET must be moses or qm9, got '$DATASET'" >&2; exit 2 ;;
esac
[ -f "$DATA/train.src-tgt.tgt.bin" ] || "$PY" scripts/prepare_molecule_strings.py --out "$DATA" --format smiles \
    "${SMI[@]}" --max-train "$TRAIN" --valid-size 1000 --max-test 1000 --seed "$SEED"
HOURS=$("$PY" -c "print($BUDGET_MIN / 60)")
run_model() {
  local M=$1 CK=$WORK/$1
  if [ ! -f "$CK/checkpoint_last.pt" ]; then
    "$BIN/fairseq-train" "$DATA" --user-dir iterref_fairseq --task molecule_strings --molecule-format smiles \
      -s src -t tgt --cpu --arch "${M}_tiny" --criterion flexmdm_loss --optimizer adam --adam-betas "(0.9,0.98)" \
      --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 500 --max-tokens 4000 --max-update "$MAX_UPDATE" \
      --stop-time-hours "$HOURS" --no-epoch-checkpoints --save-interval-updates 1000000 --disable-validation \
      --log-format simple --log-interval 100 --seed "$SEED" --save-dir "$CK"
  fi
  "$BIN/iterref-generate-molecule-strings" "$DATA" --path "$CK/checkpoint_last.pt" --num-samples "$NUM" \
    --batch-size 100 --sampling-steps "$STEPS" --seed "$SEED" --cpu --out "$CK/samples.txt"  # + samples.txt.json
}
PIDS=()
for M in flexmdm lflexmdm; do run_model "$M" > "$WORK/$M.log" 2>&1 & PIDS+=($!); done
for P in "${PIDS[@]}"; do wait "$P" || { echo "a model failed: see $WORK/*.log" >&2; exit 1; }; done
"$PY" - "$WORK" "$OUT_DIR" "$BUDGET_MIN" "$MAX_UPDATE" "$DATASET" <<'EOF'
import datetime, json, os, platform, sys
from pathlib import Path
import torch
sys.path.insert(0, "examples/flexmdm")
from summarize_star import NAMES, checkpoint_size
work, out_dir, budget, max_update, dataset = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rows = []
for m in ("flexmdm", "lflexmdm"):
    r = json.loads((work / m / "samples.txt.json").read_text())
    params, updates = checkpoint_size(work / m / "checkpoint_last.pt")
    r.update(model=m, name=NAMES[m], parameters=params, updates=updates)
    rows.append(r)
date = datetime.date.today().isoformat()
out_dir.mkdir(exist_ok=True)
limited_by_updates = max_update < 1000000
meta = {"dataset": dataset, "budget_minutes_per_model": budget, "max_update_per_model": max_update if limited_by_updates else None, "date": date, "cpu_count": os.cpu_count(), "omp_threads_per_model": 1,
        "hardware": f"{platform.machine()} {platform.processor()}".strip(), "torch": torch.__version__}
(out_dir / f"flexmdm_{dataset}_cpu_{date}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
budget_text = (f"at most {budget:g} CPU minutes or {max_update} updates per model, whichever came first"
               if limited_by_updates else f"{budget:g} CPU minutes per model")
lines = [f"{dataset.upper()} SMILES, {budget_text} (side by side, 1 thread each), "
         f"{rows[0]['sampling_steps']} tau-leaping steps, {rows[0]['n']} samples; percentages.", "",
         "| model | validity | uniqueness | diversity | quality | parameters | updates |", "|---|---:|---:|---:|---:|---:|---:|"]
fmt = lambda x: "-" if x is None else f"{x:.1f}"  # noqa: E731 - diversity is undefined without two valid molecules
lines += [f"| {r['name']} | {fmt(r['validity'])} | {fmt(r['uniqueness'])} | {fmt(r['diversity'])} | {fmt(r['quality'])} | "
          f"{r['parameters']:,} | {r['updates']} |" for r in rows]
(out_dir / f"flexmdm_{dataset}_cpu_{date}.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
