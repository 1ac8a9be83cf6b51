# Shared stages of the Bible de-en examples (sourced, not run): examples/refinement_nat/demo.sh,
# examples/refinement_nat/table33.sh and examples/masked_translation/train-bible-tiny.sh. Source it after `cd` to the repository root.
#
# The sourcing script defines log() and sets OUT, DATA (the Bible data directory), PYTHON, USER_DIR and the knobs
# TRAIN_PAIRS, MAX_TOKENS_PER_SIDE, BPE_OPS, AR_MINUTES. Each stage is skipped when its output exists (so an
# interrupted run resumes); otherwise it logs its MESSAGE argument and runs.

hours() { "$PYTHON" -c "print($1 / 60)"; }  # minutes -> hours, for --stop-time-hours

# bible_data_stage MESSAGE: the Bible data (prepare-bible-de-en.sh: Acts = test, Hebrews = valid) into $DATA
bible_data_stage() {
  if [ -f "$DATA/bin/dict.en.txt" ]; then return 0; fi
  log "$1"
  PYTHON=$PYTHON bash examples/refinement_nat/prepare-bible-de-en.sh "$DATA" \
    --max-train "$TRAIN_PAIRS" --max-tokens-per-side "$MAX_TOKENS_PER_SIDE" --bpe-ops "$BPE_OPS"
}

# ar_teacher_stage MESSAGE: a tiny autoregressive transformer (de->en) trained for $AR_MINUTES minutes on the CPU
# into $OUT/ar (the teacher of demo.sh, the baseline / rescorer of train-bible-tiny.sh)
ar_teacher_stage() {
  if [ -f "$OUT/ar/checkpoint_last.pt" ]; then return 0; fi
  log "$1"
  fairseq-train "$DATA/bin" --user-dir "$USER_DIR" --task translation --arch transformer \
    --encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 128 --decoder-embed-dim 128 \
    --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 --encoder-attention-heads 4 \
    --decoder-attention-heads 4 --share-all-embeddings --dropout 0.1 \
    --criterion label_smoothed_cross_entropy --label-smoothing 0.1 \
    --optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 150 \
    --max-tokens 2048 --max-update 100000 --stop-time-hours "$(hours "$AR_MINUTES")" --cpu --seed 1 \
    --save-dir "$OUT/ar" --no-epoch-checkpoints --save-interval-updates 200 --keep-interval-updates 1 \
    --disable-validation --log-format simple --log-interval 50
}

# distill_dir: where distill_stage writes by default: $OUT/distill for the teacher's greedy output (beam 1),
# $OUT/distill-beamK for beam K, so that scripts sharing an OUT never mix the two kinds of targets
distill_dir() {
  if [ "${DISTILL_BEAM:-1}" = 1 ]; then echo "$OUT/distill"; else echo "$OUT/distill-beam${DISTILL_BEAM}"; fi
}

# distill_stage MESSAGE [DIR]: the training targets rewritten by the teacher $OUT/ar (beam ${DISTILL_BEAM:-1}) into
# DIR/bin (default: distill_dir; sequence-level knowledge distillation: the NAT of demo.sh (beam 4) and the masked
# model of train-bible-tiny.sh (beam 1) train on it; table33.sh compares beam 1 with beam 4). A DIR distilled with
# another beam stops the script with a message instead of being reused.
distill_stage() {
  local dir=${2:-$(distill_dir)}
  if [ -f "$dir/bin/dict.en.txt" ]; then
    local made
    made=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1])).get("beam", "?"))' "$dir/distill.json" \
           2>/dev/null || echo "?")
    if [ "$made" != "?" ] && [ "$made" != "${DISTILL_BEAM:-1}" ]; then
      echo "error: $dir holds targets distilled with beam $made, not DISTILL_BEAM=${DISTILL_BEAM:-1}; set" \
           "DISTILL_BEAM=$made or remove $dir" >&2
      return 1
    fi
    return 0
  fi
  log "$1"
  "$PYTHON" scripts/distill.py --data "$DATA/bin" --path "$OUT/ar/checkpoint_last.pt" --out "$dir" \
    --beam "${DISTILL_BEAM:-1}" --max-tokens 12000 --cpu
}
