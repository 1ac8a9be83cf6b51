#!/usr/bin/env bash
# Shared steps of the MGM examples (sourced). Needs: PYTHON, USER_DIR, and the plugin's console scripts on PATH.
#
# mgm_grid CKPT DATA OUT NUM_SAMPLES STEPS TRAJ_EVERY BATCH "RATE:INIT ..." [extra evaluate flags]
#   generates one sample file per mask rate / initialization (OUT/mgm_<rate>_<init>.smi, with trajectories),
#   scores them all against DATA/train.smi (OUT/table.json + a printed table), and draws
#   NOVELTY_REFERENCE (environment, optional): a second novelty reference scored beside the training set.
#   Fig. 5.8 (metrics vs step, first configuration), Fig. 5.3 (Fréchet vs novelty) and Fig. 5.12 (a trajectory).
#
# mgm_train_paper DATA SAVE_DIR ARCH [extra fairseq-train flags]
#   the thesis's GPU training recipe (Adam 1e-4 (0.9, 0.98), gradient norm clipped at 10, early stopping after 20
#   validations without improvement, seed 1) into SAVE_DIR; skipped when SAVE_DIR/checkpoint_best.pt exists.
log() { echo "[mgm $(date +%H:%M:%S)] $*" >&2; }

mgm_train_paper() {
  local data=$1 save_dir=$2 arch=$3
  shift 3
  if [ -f "$save_dir/checkpoint_best.pt" ]; then return 0; fi
  fairseq-train "$data" --user-dir "$USER_DIR" --task mol_graph --arch "$arch" \
    --criterion masked_graph_loss --optimizer adam --lr 1e-4 --adam-betas '(0.9,0.98)' --clip-norm 10 \
    "$@" --save-dir "$save_dir" --no-epoch-checkpoints \
    --patience 20 --log-format simple --log-interval 100 --seed 1
}

mgm_grid() {
  local ckpt=$1 data=$2 out=$3 num=$4 steps=$5 every=$6 batch=$7 grid=$8
  shift 8
  mkdir -p "$out"
  local files=()
  for cfg in $grid; do
    local rate=${cfg%%:*} init=${cfg##*:}
    local f="$out/mgm_${rate}_${init}.smi"
    if [ ! -f "$f.json" ]; then
      log "generating $num molecules, mask rate $rate, $init init, $steps steps"
      "$PYTHON" -m iterref_fairseq.cli.generate_molecules "$data" --path "$ckpt" --num-samples "$num" \
        --init "$init" --mask-rate "$rate" --steps "$steps" --trajectory-every "$every" --batch-size "$batch" \
        --out "$f"
    fi
    files+=("$f")
  done
  log "scoring ${files[*]}"
  local novelty=()
  if [ -n "${NOVELTY_REFERENCE:-}" ]; then novelty=(--novelty-reference "$NOVELTY_REFERENCE"); fi
  "$PYTHON" -m iterref_fairseq.cli.evaluate_molecules --reference "$data/train.smi" "${files[@]}" "${novelty[@]}" \
    --out "$out/table.json" "$@" | grep -v '^{' | tee "$out/table.txt"
  "$PYTHON" -m iterref_fairseq.cli.plot_molecules trajectory --trajectory "${files[0]}.trajectory.jsonl" \
    --index 0 --every 2 --out "$out/fig512_trajectory.png"
  "$PYTHON" -m iterref_fairseq.cli.plot_molecules steps --trajectory "${files[0]}.trajectory.jsonl" \
    --reference "$data/train.smi" --out "$out/fig58_steps.png" "$@"
  if [[ " $* " != *" --no-fcd "* ]]; then
    "$PYTHON" -m iterref_fairseq.cli.plot_molecules tradeoff "$out/table.json" "$out/fig58_steps.json" \
      --out "$out/fig53_tradeoff.png"
  fi
  log "results in $out (table.txt, table.json, fig*.png)"
}
