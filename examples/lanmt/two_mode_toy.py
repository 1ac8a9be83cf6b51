#!/usr/bin/env python
"""The talk's refinement findings on a task where the latents must carry a choice: two-mode translation.

Each source sentence (random words ``w0``..``w19``) is translated word by word into ONE of two vocabularies, chosen
at random per sentence: ``w3 w7 w1`` → ``a3 a7 a1`` or ``b3 b7 b1``. The source does not say which. A
non-autoregressive decoder that does not know the mode writes each position's more likely word independently and
mixes the two (``a3 b7 a1``): the multimodality problem. In LaNMT the posterior q(z|x,y) can put the mode into the
latents, the prior p(z|x) cannot know it, and its mean lies between the two modes. Refinement in latent space is
meant to move z towards one mode: delta inference through E_q(z|x, ŷ), the score and energy networks in one step,
latent search by sampling and choosing. On the Bible data (docs/lanmt.md) none of them helps, and the latents carry
almost nothing after the budget-0 epoch; this script measures the same pipeline where the latents have something
to carry.

Pipeline (the stages of ``bible.sh`` at toy size, each a fairseq CLI or ``diagnose.py``, one thread). It differs
from ``bible.sh`` where the toy asks for it: repeated words are kept (``--keep-repeats``: sources repeat words),
the one-step delta row takes its step even when the output would not change (``--iter-decode-force-max-iter``), latent
search draws 8 latents, batches hold 2,000 tokens.
1. corpus (``--train-sentences``, 200 valid, ``--test-sentences``) and ``fairseq-preprocess``;
2. LaNMT (d 64) for ``--updates`` updates, free-bits budget 1 annealed to 0 (the default schedule), then the
   budget-0 epoch at lr 1e-4 (the reference's fine-tuning);
3. a score and an energy network on the fine-tuned model (``--score-updates``); a tiny AR transformer as rescorer;
4. ``fairseq-generate`` on the test sentences for the talk's rows, for the stage-1 and the fine-tuned model;
5. ``examples/lanmt/diagnose.py`` on both (KL per position; reference decoded from posterior vs prior mean).

Metric: *consistent* = the output is the source translated in one vocabulary (either mode); *exact* = equal to
the reference (at most about 0.5 for any system that cannot know the mode).

    python examples/lanmt/two_mode_toy.py --work work/two_mode_s1 --seed 1 \
        --out results/lanmt/lanmt_two_mode_toy_seed1_<date>.json

``--work`` must be a new or empty directory: every stage would otherwise resume from what an earlier run left there.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from iterref_fairseq.cli.common import new_parser  # noqa: E402
from iterref_fairseq.provenance import write_results  # noqa: E402

BIN = Path(sys.executable).parent
USER_DIR = str(REPO / "iterref_fairseq")
MODEL = ["--arch", "lanmt_tiny", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
         "--encoder-attention-heads", "4", "--prior-layers", "2", "--posterior-layers", "1", "--decoder-layers", "2"]
COMMON = ["--user-dir", USER_DIR, "--task", "translation_refine", "--dropout", "0", "--optimizer", "adam",
          "--adam-betas", "(0.9,0.98)", "--max-tokens", "2000", "--cpu", "--no-epoch-checkpoints",
          "--disable-validation", "--log-format", "simple", "--log-interval", "50"]


def write_corpus(raw: Path, n_train: int, n_test: int, seed: int) -> None:
    """{train,valid,test}.{src,tgt}: 3–8 source words, the target in vocabulary a or b (one per sentence)."""
    rng = random.Random(seed)
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("valid", 200), ("test", n_test)):
        with open(raw / f"{split}.src", "w") as fs, open(raw / f"{split}.tgt", "w") as ft:
            for _ in range(n):
                words = [rng.randrange(20) for _ in range(rng.randint(3, 8))]
                mode = rng.choice("ab")
                fs.write(" ".join(f"w{i}" for i in words) + "\n")
                ft.write(" ".join(f"{mode}{i}" for i in words) + "\n")


def run(name: str, *args, log: Optional[Path] = None) -> str:
    """Runs a console script of this venv (or, for a ``.py`` path, this Python on it) on one thread; stops with
    its output's tail on failure."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    command = [sys.executable, name] if name.endswith(".py") else [str(BIN / name)]
    proc = subprocess.run([*command, *map(str, args)], capture_output=True, text=True, env=env)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"two_mode_toy: {name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def consistent(source: str, hypothesis: str) -> bool:
    """Whether ``hypothesis`` is ``source`` word by word in one of the two vocabularies."""
    src, hyp = source.split(), hypothesis.split()
    return (len(src) == len(hyp) and len({h[:1] for h in hyp}) == 1 and hyp[0][:1] in ("a", "b")
            and all(h[1:] == s[1:] for s, h in zip(src, hyp)))


def score_generate(output: str) -> Dict[str, float]:
    """Consistent and exact fractions and mean decoder passes from ``fairseq-generate`` output (the first H line of
    a sentence is its chosen hypothesis). Raises ValueError when a sentence lacks its S, T or H line."""
    fields: Dict[str, Dict[str, str]] = {"S": {}, "T": {}, "H": {}, "I": {}}
    for line in output.splitlines():
        m = re.match(r"^([STHI])-(\d+)\t(.*)$", line)
        if m and m.group(2) not in fields[m.group(1)]:  # the first H is the chosen hypothesis
            fields[m.group(1)][m.group(2)] = m.group(3).split("\t")[-1]
    ids = list(fields["T"])
    for tag, name in (("S", "source"), ("H", "hypothesis")):
        if not ids or set(ids) != set(fields[tag]):
            raise ValueError(f"fairseq-generate output lacks the {name} ({tag}-) line of some test sentences")
    out = {"sentences": len(ids),
           "consistent": sum(consistent(fields["S"][i], fields["H"][i]) for i in ids) / len(ids),
           "exact": sum(fields["T"][i] == fields["H"][i] for i in ids) / len(ids)}
    if set(fields["I"]) == set(ids):
        out["decoder_passes"] = sum(float(fields["I"][i]) for i in ids) / len(ids)
    return out


def rows(ft: Path, stage1: Path, score: Path, energy: Path, ar: Path, samples: int) -> List[tuple]:
    """(model, system, checkpoint, fairseq-generate flags) of the table, the talk's order."""
    search = ["--latent-search-samples", samples, "--latent-search-noise", "0.5"]
    one_step = ["--iter-decode-max-iter", "2", "--iter-decode-force-max-iter"]
    table = []
    for model, path in (("stage 1 (budget annealed to 0)", stage1), ("after the budget-0 epoch", ft)):
        table += [(model, "prior mean", path, ["--latent-inference", "prior"]),
                  (model, "+ delta (1 step)", path, ["--latent-inference", "delta", *one_step]),
                  (model, "+ delta (until unchanged, ≤ 4 passes)", path,
                   ["--latent-inference", "delta", "--iter-decode-max-iter", "4"])]
    table += [("after the budget-0 epoch", "+ energy (1 step)", ft,
               ["--latent-inference", "energy", "--score-path", energy, *one_step]),
              ("after the budget-0 epoch", "+ score (1 step)", ft,
               ["--latent-inference", "score", "--score-path", score, *one_step]),
              ("after the budget-0 epoch", "+ score + latent search (own score)", ft,
               ["--latent-inference", "score", "--score-path", score, *one_step, *search]),
              ("after the budget-0 epoch", "+ score + latent search + AR rescoring", ft,
               ["--latent-inference", "score", "--score-path", score, *one_step, *search, "--rescore-path", ar])]
    return table


def main(argv=None) -> int:
    p = new_parser("two_mode_toy.py", __doc__)
    p.add_argument("--work", type=Path, required=True, help="directory for the corpus, checkpoints and logs")
    p.add_argument("--out", type=Path, required=True, help="results JSON (a .md table is written beside it)")
    p.add_argument("--train-sentences", type=int, default=6000)
    p.add_argument("--test-sentences", type=int, default=400)
    p.add_argument("--updates", type=int, default=600, help="LaNMT stage-1 updates")
    p.add_argument("--score-updates", type=int, default=400, help="updates of the score / energy network")
    p.add_argument("--search-samples", type=int, default=8, help="latents per sentence in latent search")
    p.add_argument("--decoder-source-copy", action="store_true",
                   help="train LaNMT with the source copied into the decoder input (the deviation of docs/lanmt.md)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    w = args.work
    if w.exists() and any(w.iterdir()):
        p.error(f"--work {w} is not empty: give a new directory (every stage would resume from the old files)")
    write_corpus(w / "raw", args.train_sentences, args.test_sentences, seed=args.seed)
    data = w / "bin"
    run("fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt", "--trainpref", w / "raw/train",
        "--validpref", w / "raw/valid", "--testpref", w / "raw/test", "--destdir", data, "--joined-dictionary",
        "--workers", "1")
    seed = ["--seed", args.seed]
    model = MODEL + (["--decoder-source-copy"] if args.decoder_source_copy else [])
    stage1, ft = w / "lanmt/checkpoint_last.pt", w / "lanmt_ft/checkpoint_last.pt"
    print(f"1/4 LaNMT, {args.updates} updates; then the budget-0 epoch", flush=True)
    run("fairseq-train", data, *COMMON, *model, *seed, "--criterion", "lanmt_loss", "--lr", "3e-3",
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "50", "--max-update", args.updates,
        "--save-dir", w / "lanmt", log=w / "lanmt.log")
    run("fairseq-train", data, *COMMON, *model, *seed, "--criterion", "lanmt_loss", "--kl-budget", "0",
        "--kl-budget-schedule", "constant", "--lr", "1e-4", "--lr-scheduler", "fixed", "--max-epoch", "1",
        "--finetune-from-model", stage1, "--save-dir", w / "lanmt_ft", log=w / "lanmt_ft.log")
    print(f"2/4 score and energy networks, {args.score_updates} updates each; AR rescorer", flush=True)
    for param in ("score", "energy"):
        run("fairseq-train", data, *COMMON, *seed, "--arch", "lanmt_score_tiny", "--score-param", param,
            "--score-embed-dim", "64", "--score-ffn-embed-dim", "128", "--criterion", "lanmt_score_loss",
            "--lanmt-path", ft, "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "50",
            "--max-update", args.score_updates, "--self-step-from-update", args.score_updates // 2,
            "--save-dir", w / param, log=w / f"{param}.log")
    ar_flags = ["--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim",
                "64", "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128", "--decoder-ffn-embed-dim",
                "128", "--encoder-attention-heads", "4", "--decoder-attention-heads", "4"]
    common_ar = ["translation" if c == "translation_refine" else c for c in COMMON]
    run("fairseq-train", data, *common_ar, *seed, *ar_flags, "--criterion", "cross_entropy", "--lr", "3e-3",
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "50", "--max-update", args.updates,
        "--save-dir", w / "ar", log=w / "ar.log")
    print("3/4 decoding the test sentences", flush=True)
    gen = ["--user-dir", USER_DIR, "--cpu", "--batch-size", "100", "--gen-subset", "test"]
    table = []
    ar_out = run("fairseq-generate", data, *gen, "--task", "translation", "--path", w / "ar/checkpoint_last.pt",
                 "--beam", "1")
    table.append({"model": "AR (1 layer each side)", "system": "greedy", **score_generate(ar_out)})
    for model, system, path, flags in rows(ft, stage1, w / "score/checkpoint_last.pt",
                                           w / "energy/checkpoint_last.pt", w / "ar/checkpoint_last.pt",
                                           args.search_samples):
        out = run("fairseq-generate", data, *gen, "--task", "translation_refine", "--path", path, "--keep-repeats",
                  "--print-step", "--decoding-seed", args.seed, *flags)
        table.append({"model": model, "system": system, **score_generate(out)})
        print(f"   {model:32s} {system:42s} consistent {table[-1]['consistent']:.3f}", flush=True)
    print("4/4 diagnosis (KL, reference from posterior vs prior mean)", flush=True)
    diagnosis = {}
    for name, path, stem in (("stage 1", stage1, "stage1"), ("after the budget-0 epoch", ft, "finetuned")):
        target = w / f"diagnose_{stem}.json"
        run(str(REPO / "examples/lanmt/diagnose.py"), data,
            "--path", path, "--gen-subset", "test", "--max-examples", args.test_sentences, "--out", target)
        d = json.loads(target.read_text())
        diagnosis[name] = {k: d[k] for k in ("kl_per_position", "reference_at_true_length",
                                             "delta_changed_fraction")}
    result = {"task": "two-mode word-by-word translation (mode random per sentence, not in the source)",
              "decoder_source_copy": args.decoder_source_copy,
              "train_sentences": args.train_sentences, "test_sentences": args.test_sentences,
              "updates": args.updates, "score_updates": args.score_updates, "rows": table,
              "diagnosis": diagnosis}
    write_results(result, args.out, markdown(result), argv, seed=args.seed)
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    lines = ["| model | system | consistent | exact | decoder passes |", "|---|---|---:|---:|---:|"]
    for r in result["rows"]:
        passes = f"{r['decoder_passes']:.2f}" if "decoder_passes" in r else "–"
        lines.append(f"| {r['model']} | {r['system']} | {r['consistent']:.3f} | {r['exact']:.3f} | {passes} |")
    lines += ["", "| model | KL / source position | token acc. of the reference from posterior mean / prior mean |",
              "|---|---:|---|"]
    for name, d in result["diagnosis"].items():
        ref = d["reference_at_true_length"]
        lines.append(f"| {name} | {d['kl_per_position']:.3f} | {ref['posterior mean']['token_accuracy']:.3f} / "
                     f"{ref['prior mean']['token_accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ValueError as err:  # incomplete fairseq-generate output (score_generate)
        sys.exit(f"two_mode_toy: {err}")
