# Shared by the examples/cvgae scripts (sourced): the four methods of Table 6.1 on one data set, then the tables.
# Needs BIN (the venv's bin directory) and a log function. Optional: GEN_FLAGS (extra iterref-generate-conformers
# flags, e.g. "--handedness stereo") and BASELINE_DIR (where the ETKDG files are, or are written; default
# GENERATED_DIR: a second CVGAE variant on the same data reuses the first one's baselines).
#
#   four_methods_table DATA_DIR CHECKPOINT GENERATED_DIR RESULTS_JSON NUM_CONFS WORKERS SEED [--cpu]
four_methods_table() {
  local data=$1 ckpt=$2 G=$3 out=$4 k=$5 workers=$6 seed=$7 device=${8:-}
  local B=${BASELINE_DIR:-$3}
  mkdir -p "$G" "$B" "$(dirname "$out")"
  # A method is done when its summary (FILE.sdf.json, written last) exists: an interrupted run leaves a partial SDF.
  # ETKDG+UFF and ETKDG+MMFF minimize copies of one embedding per molecule (as the reference's baseline.py)
  { [ -f "$B/etkdg+uff.sdf.json" ] && [ -f "$B/etkdg+mmff.sdf.json" ]; } || { log "ETKDG + UFF / MMFF, $k conformers per molecule"
    "$BIN/iterref-baseline-conformers" "$data" --method etkdg+uff etkdg+mmff --num-confs "$k" --workers "$workers" \
        --seed "$seed" --out "$B/{method}.sdf"; }
  # shellcheck disable=SC2086
  [ -f "$G/cvgae.sdf.json" ] || { log "CVGAE"; "$BIN/iterref-generate-conformers" "$data" --path "$ckpt" \
      --num-confs "$k" --seed "$seed" $device ${GEN_FLAGS:-} --out "$G/cvgae.sdf"; }
  # shellcheck disable=SC2086
  [ -f "$G/cvgae+mmff.sdf.json" ] || { log "CVGAE+MMFF"; "$BIN/iterref-generate-conformers" "$data" --path "$ckpt" \
      --num-confs "$k" --seed "$seed" $device ${GEN_FLAGS:-} --mmff --out "$G/cvgae+mmff.sdf"; }
  log "evaluating -> $out"
  "$BIN/iterref-evaluate-conformers" --reference "$data/test.sdf" "$B/etkdg+uff.sdf" "$B/etkdg+mmff.sdf" \
      "$G/cvgae.sdf" "$G/cvgae+mmff.sdf" --out "$out"
}
