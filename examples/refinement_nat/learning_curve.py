#!/usr/bin/env python
"""BLEU against training minutes for NAT runs: the checkpoints of each run decoded at fixed numbers of passes.

Every run directory holds the interval checkpoints of one fairseq-train run (``--save-interval-updates N
--keep-interval-updates -1``) and its log (``train.log``). A checkpoint's training time is read from fairseq's
cumulative ``wall`` time in the log lines around its update. Each checkpoint is decoded on the first ``--max-examples`` sentences
of ``--gen-subset`` with every ``--idec`` (our refinement NAT: this package's generator, fixed passes; fairseq's
NATs: fairseq's generator, idec - 1 iterations). For the AR model ``--ar RUN`` gives greedy BLEU per checkpoint;
for a LaNMT run ``--latent RUN`` the BLEU of every ``--latent-settings`` (prior, delta, score: latent-space inference
with one refinement step). A score network belongs to the frozen LaNMT it was trained on, so score decoding of the
checkpoint at update U reads its own network, ``--latent-score-nets DIR``/U/checkpoint_last.pt
(examples/lanmt/bible.sh trains them).

    python examples/refinement_nat/learning_curve.py DATA_BIN --refs valid.ref.en.k \\
        --run nat=work/lc/nat --run cmlm=work/lc/cmlm --ar ar=work/demo/ar --idec 1,10 \\
        --out results/refinement_nat/learning_curves.json

Writes JSON (per run: updates, minutes, BLEU per idec), a markdown table with the minutes each run needs to reach
``--target-fraction`` of ``--reference-bleu`` (e.g. 50% of AR beam-4 BLEU), and a PNG of the curves.
"""
import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from iterref_fairseq.cli.benchmark_nat import (build_generator, build_latent_generator, decode,  # noqa: E402
                                               detokenize, load_model, read_refs)

UPDATE_LINE = re.compile(r"num_updates=(\d+).*?(?<![a-z_])wall=(\d+)")


LOADED_LINE = re.compile(r"Loaded checkpoint .*\(epoch \d+ @ (\d+) updates\)")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def wall_minutes(log: Path) -> dict:
    """{update: wall-clock minutes since the start of training} from fairseq's simple-format log lines (``wall`` is
    cumulative; ``train_wall`` counts only the last log interval).

    A run resumed from a mid-epoch checkpoint in the same log (a ``Loaded checkpoint ... (epoch E @ U updates)``
    line) gets its ``wall`` meter back from the checkpoint but never restarted, so it reads 0 from then on. After
    such a line the minutes are those of the last line before it plus the time elapsed since the resumption, from
    the lines' timestamps: walls 60, 120 | resumed at 10:00:00 | lines at 10:01:00 and 10:02:30 (wall=0) ->
    minutes 1, 2, 3, 4.5."""
    from datetime import datetime

    minutes, last, resumed = {}, 0.0, None  # resumed: (timestamp of the resumption, minutes before it)
    for line in log.read_text(errors="replace").splitlines():
        stamp = STAMP.match(line)
        when = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S") if stamp else None
        if LOADED_LINE.search(line) and when is not None:
            resumed = (when, last)
            continue
        m = UPDATE_LINE.search(line)
        if not m:
            continue
        if resumed is not None and when is not None:
            value = resumed[1] + (when - resumed[0]).total_seconds() / 60.0
        else:
            value = int(m.group(2)) / 60.0
        minutes[int(m.group(1))] = last = value
    return minutes


def minutes_at(update: int, table: dict) -> float:
    """Training minutes at ``update``, interpolated linearly between the logged updates."""
    known = sorted(table)
    if not known:
        return float("nan")
    if update <= known[0]:
        return table[known[0]] * update / max(known[0], 1)
    for a, b in zip(known, known[1:]):
        if a <= update <= b:
            return table[a] + (table[b] - table[a]) * (update - a) / max(b - a, 1)
    last = known[-1]
    rate = table[last] / max(last, 1)
    return table[last] + rate * (update - last)


def merge_runs(paths: List[Path]) -> Dict[str, list]:
    """The ``runs`` of several earlier --out files in one dict; a run name found in two files is an error (which of
    the two curves would be meant is ambiguous)."""
    runs, source = {}, {}
    for path in paths:
        for name, points in json.loads(Path(path).read_text())["runs"].items():
            if name in runs:
                raise SystemExit(f"--reuse: run {name!r} is in both {source[name]} and {path}; rename it in one "
                                 "of them or pass only one")
            runs[name], source[name] = points, path
    return runs


def checkpoints(run: Path):
    out = []
    for p in run.glob("checkpoint_*_*.pt"):
        m = re.match(r"checkpoint_\d+_(\d+)\.pt", p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


def decoded_checkpoints(run: Path, every: int):
    """The (update, path) checkpoints of ``run`` that the curve decodes: every ``every``-th by update, and the last.
    examples/lanmt/bible.sh trains its per-checkpoint score networks on exactly these."""
    ckpts = checkpoints(run)
    return [c for i, c in enumerate(ckpts) if i % every == every - 1 or i == len(ckpts) - 1]


def bleu_of(path, data, kind, idecs, args, refs, score_path=None) -> list:
    """BLEU of checkpoint ``path`` decoded with each setting in ``idecs`` (the checkpoint is loaded once);
    ``score_path``: the score network of a LaNMT checkpoint (for the setting "score")."""
    import sacrebleu

    task, model = load_model(str(path), data, False, False)
    if kind == "auto":  # a --run: our refinement NAT or a fairseq NAT, told apart by the checkpoint's model
        from iterref_fairseq.models.refinement_nat import RefinementNATModel

        kind = "nat" if isinstance(model, RefinementNATModel) else "fairseq"
    task.load_dataset(args.gen_subset)
    gen_args = argparse.Namespace(length_beam=1, stop_criterion="unchanged", keep_repeats=False, max_len_a=1.2,
                                  max_len_b=10, latent_max_iter=2, latent_step_size=0.8, latent_search_samples=1,
                                  latent_search_noise=0.0, seed=1, score_path=score_path, energy_path=None)
    scores = []
    for idec in idecs:
        if kind == "latent":
            generator = build_latent_generator(str(idec), task, model, gen_args)
        else:
            generator = build_generator(kind, str(idec), task, model, gen_args)
        # decode the whole split (batches are sorted by length, so a prefix of ids is spread over all of them),
        # then score the first max_examples sentences
        hyps, _, _, _, _ = decode(task, model, generator, args.gen_subset, 64, False)
        if args.max_examples:
            hyps = {i: h for i, h in hyps.items() if i < args.max_examples}
        text = detokenize(task, hyps, args.target_lang)
        if len(text) != len(refs[0]):
            raise SystemExit(f"{path}: {len(text)} sentences decoded, {len(refs[0])} references")
        scores.append(sacrebleu.corpus_bleu(text, refs).score)
    return scores


def score_net_of(folder, update: int, run: str) -> str:
    """The score network trained on the frozen checkpoint of ``run`` at ``update``."""
    if folder is None:
        raise SystemExit(f"--latent-settings has 'score' for the LaNMT run {run}: pass --latent-score-nets DIR with "
                         "one score network per checkpoint (DIR/<update>/checkpoint_last.pt), or drop 'score'")
    path = Path(folder) / str(update) / "checkpoint_last.pt"
    if not path.is_file():
        raise SystemExit(f"{run} update {update}: no score network at {path}; train one on that checkpoint "
                         "(fairseq-train --arch lanmt_score_tiny --lanmt-path CHECKPOINT --save-dir "
                         f"{path.parent}, as examples/lanmt/bible.sh does) or decode fewer checkpoints (--every)")
    return str(path)


def _split_size(args) -> int:
    with open(args.refs[0], encoding="utf-8") as f:
        return sum(1 for _ in f)


def first_reaching(points, key, target):
    for p in points:
        if p["bleu"].get(key) is not None and p["bleu"][key] >= target:
            return p["minutes"]
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--run", action="append", default=[], metavar="NAME=DIR",
                   help="a NAT run: refinement_nat or a fairseq NAT (told apart by its checkpoint's model)")
    p.add_argument("--ar", action="append", default=[], metavar="NAME=DIR", help="an AR run (greedy BLEU)")
    p.add_argument("--latent", action="append", default=[], metavar="NAME=DIR", help="a LaNMT run")
    p.add_argument("--latent-settings", default="prior,delta", help="latent inference per LaNMT checkpoint")
    p.add_argument("--latent-score-nets", type=Path, metavar="DIR",
                   help="score networks per LaNMT checkpoint, DIR/<update>/checkpoint_last.pt (for 'score' in "
                        "--latent-settings)")
    p.add_argument("--refs", nargs="+", required=True)
    p.add_argument("--gen-subset", default="valid")
    p.add_argument("--max-examples", type=int, default=300)
    p.add_argument("--idec", default="1,10")
    p.add_argument("--target-lang", default="en")
    p.add_argument("--reference-bleu", type=float, help="e.g. AR beam-4 BLEU on the same sentences")
    p.add_argument("--reference-ar", metavar="CHECKPOINT",
                   help="compute --reference-bleu here: this AR checkpoint with beam --reference-beam on the same "
                        "sentences")
    p.add_argument("--reference-beam", type=int, default=4, help="beam of --reference-ar")
    p.add_argument("--target-fraction", type=float, default=0.5)
    p.add_argument("--every", type=int, default=1, help="decode every k-th checkpoint (the last one always)")
    p.add_argument("--latent-every", type=int, help="--every for the --latent runs only (default: --every); their "
                                                     "score decoding needs a score network per decoded checkpoint")
    p.add_argument("--reuse", type=Path, action="append", default=[],
                   help="take the BLEU of every checkpoint from this earlier --out JSON (no decoding) and recompute "
                        "the minutes from the logs, the table and the plot; repeat it to merge several files")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    earlier = merge_runs(args.reuse)
    n = args.max_examples
    first = read_refs(args.refs, n, prefix=True) if n else read_refs(args.refs, _split_size(args), prefix=False)
    if args.reference_ar:
        args.reference_bleu = bleu_of(args.reference_ar, args.data, "ar", [args.reference_beam], args, first)[0]
        print(f"reference: AR beam {args.reference_beam} BLEU {args.reference_bleu:.2f}", file=sys.stderr)
    results = {}
    specs = [(s, "nat") for s in args.run] + [(s, "ar") for s in args.ar] + [(s, "latent") for s in args.latent]
    for spec, family in specs:
        name, _, directory = spec.partition("=")
        run = Path(directory)
        table = wall_minutes(run / "train.log")
        ckpts = decoded_checkpoints(run, args.latent_every if family == "latent" and args.latent_every else args.every)
        points = []
        for update, path in ckpts:
            bleu = {}
            reused = [q["bleu"] for q in earlier.get(name, []) if q["update"] == update]
            if reused:
                bleu = reused[0]
            elif family == "ar":
                bleu["greedy"] = bleu_of(path, args.data, "ar", [1], args, first)[0]
            elif family == "latent":
                settings = args.latent_settings.split(",")
                score = score_net_of(args.latent_score_nets, update, name) if "score" in settings else None
                bleu = dict(zip(settings, bleu_of(path, args.data, "latent", settings, args, first, score)))
            else:
                idecs = args.idec.split(",")
                scores = bleu_of(path, args.data, "auto", [int(i) for i in idecs], args, first)
                bleu = {f"idec{i}": b for i, b in zip(idecs, scores)}
            points.append({"update": update, "minutes": round(minutes_at(update, table), 2), "bleu": bleu})
            print(f"{name} update {update} ({points[-1]['minutes']} min): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in bleu.items()), file=sys.stderr)
        results[name] = points
    lines = []
    if args.reference_bleu:
        target = args.target_fraction * args.reference_bleu
        lines += [f"Minutes of training to reach {args.target_fraction:.0%} of {args.reference_bleu:.2f} BLEU "
                  f"({target:.2f}):", "", "| run | curve | minutes |", "|---|---|---|"]
        for name, points in results.items():
            for key in (points[0]["bleu"] if points else {}):
                m = first_reaching(points, key, target)
                lines.append(f"| {name} | {key} | {'not reached' if m is None else f'{m:.1f}'} |")
    lines += ["", "| run | update | minutes | BLEU |", "|---|---|---|---|"]
    for name, points in results.items():
        for pt in points:
            lines.append(f"| {name} | {pt['update']} | {pt['minutes']:.1f} | "
                         + ", ".join(f"{k} {v:.2f}" for k, v in pt["bleu"].items()) + " |")
    table = "\n".join(lines)
    print(table)
    from iterref_fairseq.provenance import run_metadata

    provenance = run_metadata([sys.argv[0], *(argv or sys.argv[1:])])
    provenance["note"] = ("decoding is deterministic (no seed); each run's training seed is in its train.log and "
                          "its checkpoints")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs": results, "gen_subset": args.gen_subset, "max_examples": n,
                                    "reference_bleu": args.reference_bleu, "reference_ar": args.reference_ar,
                                    "reference_beam": args.reference_beam if args.reference_ar else None,
                                    "provenance": provenance}, indent=1))
    args.out.with_suffix(".md").write_text(table + "\n")
    try:
        from iterref_fairseq.plotting import pyplot

        plt = pyplot()

        fig, ax = plt.subplots(figsize=(7, 4.5))
        styles = ("-", "--", ":", "-.")
        for run, (name, points) in enumerate(results.items()):  # one colour per run, one line style per curve
            for k, key in enumerate(points[0]["bleu"] if points else {}):
                ax.plot([q["minutes"] for q in points], [q["bleu"][key] for q in points], marker="o",
                        color=f"C{run % 10}", linestyle=styles[k % len(styles)], label=f"{name} {key}")
        if args.reference_bleu:
            ax.axhline(args.target_fraction * args.reference_bleu, color="grey", ls="--",
                       label=f"{args.target_fraction:.0%} of AR beam {args.reference_beam if args.reference_ar else 4}")
        ax.set_xlabel("training minutes")
        ax.set_ylabel(f"BLEU ({args.gen_subset}, first {n} sentences)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out.with_suffix(".png"), dpi=120)
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
