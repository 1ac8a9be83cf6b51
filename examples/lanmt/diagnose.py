#!/usr/bin/env python
"""What a LaNMT checkpoint's latents carry, and what each inference step changes (the LaNMT counterpart of the
refinement NAT's per-step NLL diagnosis).

On the first ``--max-examples`` sentences of a split, with the references (distilled targets when DATA is the
distilled data):

* ``kl_per_position``: KL(q(z|x,y) || p(z|x)) in nats per source position, summed over the latent dimensions (the
  information about y that the latents can carry; the free-bits budget allows b per position);
* ``sigma_prior`` / ``sigma_posterior`` (mean standard deviations) and ``posterior_mean_spread`` (std of E_q[z]);
* token accuracy and NLL of the reference at its TRUE length, decoded from the posterior mean (what the latents
  can express when y is known), from the prior mean, and after 1..K delta steps and score steps from the prior
  mean: if the posterior-mean row is not better than the prior-mean row, refinement in latent space has nothing
  to move towards;
* length accuracy of the length predictor from the prior mean and from the posterior mean;
* the fraction of sentences whose argmax output (at the predicted length) changes with each delta step.

    python examples/lanmt/diagnose.py DATA_BIN --path LANMT.pt [--score-path SCORE.pt] --gen-subset valid \\
        --max-examples 300 --out diag.json
    python examples/lanmt/diagnose.py DATA_BIN --path RUN/checkpoint_*_*.pt --gen-subset train --out curve.json

With several checkpoints (no ``--score-path``) the JSON holds one entry per checkpoint under ``points``, in the
order given, and the markdown one row per checkpoint.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from iterref_fairseq.cli.benchmark_nat import batches, load_model  # noqa: E402
from iterref_fairseq.cli.common import checkpoint_updates, load_checkpoint_state  # noqa: E402
from iterref_fairseq.generators.latent import same_output  # noqa: E402
from iterref_fairseq.models.lanmt import kl_gaussians, right_align  # noqa: E402


def reference_scores(model, encoder_out, z, target):
    """(correct tokens, summed NLL, tokens) of the reference ``target`` (B, T) decoded from z at its true length."""
    mask = target.ne(model.pad)
    states, _ = model.decoder_states(encoder_out, z, mask.sum(1).clamp(min=1))
    logits = model.output_projection(states[:, : target.size(1)]) + model.output_mask
    logp = torch.log_softmax(logits.float(), -1)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    correct = (logp.argmax(-1).eq(target) & mask).sum()
    return int(correct), float(nll[mask].sum()), int(mask.sum())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--path", required=True, nargs="+", help="LaNMT checkpoint(s)")
    p.add_argument("--score-path", help="score network of that checkpoint (adds the score-step rows)")
    p.add_argument("--gen-subset", default="valid")
    p.add_argument("--max-examples", type=int, default=300)
    p.add_argument("--steps", type=int, default=3, help="delta / score steps to evaluate")
    p.add_argument("--step-size", type=float, default=0.8)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.score_path and len(args.path) > 1:
        p.error("--score-path belongs to one LaNMT checkpoint: pass a single --path with it")
    points = [diagnose(path, args) for path in args.path]
    from iterref_fairseq.provenance import write_results

    result = dict(points[0]) if len(points) == 1 else {"points": points}
    lines = markdown(points[0]) if len(points) == 1 else curve_markdown(points)
    write_results(result, args.out, "\n".join(lines) + "\n", argv, seed=1)
    print("\n".join(lines))
    return 0


def diagnose(path: str, args) -> dict:
    """The diagnosis of one checkpoint (the fields listed in the module docstring)."""
    torch.manual_seed(1)
    state = load_checkpoint_state(path, args.data, "pass --path LANMT_CHECKPOINT written by fairseq-train")
    task, model = load_model(path, args.data, False, False, state=state)
    task.load_dataset(args.gen_subset)
    scorer = task.load_score_network(args.score_path, model, args) if args.score_path else None
    rows = {}
    totals = {"kl": 0.0, "positions": 0, "sigma_p": 0.0, "sigma_q": 0.0, "mu_q_sq": 0.0, "mu_q": 0.0,
              "len_prior": 0, "len_post": 0, "sentences": 0}
    changed = [0] * args.steps

    def add(name, result):
        c, nll, n = rows.get(name, (0, 0.0, 0))
        rows[name] = (c + result[0], nll + result[1], n + result[2])

    with torch.no_grad():
        for sample in batches(task, args.gen_subset, 64):
            keep = sample["id"] < args.max_examples if args.max_examples else sample["id"].ge(0)
            if not bool(keep.any()):
                continue
            src, tgt = sample["net_input"]["src_tokens"][keep], sample["target"][keep]
            target = right_align(tgt.masked_fill(tgt.eq(model.eos), model.pad), model.pad)
            target = target[:, : max(int(target.ne(model.pad).sum(1).max()), 1)]
            tmask = target.ne(model.pad)
            enc = model.encode(src)
            mu_p, s_p = model.prior(enc)
            mu_q, s_q = model.posterior(enc, target, tmask)
            k = enc["mask"]
            totals["kl"] += float(kl_gaussians(mu_q, s_q, mu_p, s_p)[k].sum())
            totals["positions"] += int(k.sum())
            totals["sigma_p"] += float(s_p.mean(-1)[k].sum())
            totals["sigma_q"] += float(s_q.mean(-1)[k].sum())
            totals["mu_q"] += float(mu_q[k].sum())
            totals["mu_q_sq"] += float(mu_q[k].pow(2).sum())
            true = tmask.sum(1)
            totals["len_prior"] += int(model.predict_lengths(enc, mu_p).eq(true).sum())
            totals["len_post"] += int(model.predict_lengths(enc, mu_q).eq(true).sum())
            totals["sentences"] += int(src.size(0))
            add("posterior mean", reference_scores(model, enc, mu_q, target))
            add("prior mean", reference_scores(model, enc, mu_p, target))
            z = mu_p
            prev = model.decode_latent(enc, z, model.predict_lengths(enc, z))
            for step in range(args.steps):
                z = model.posterior_mean(enc, prev.tokens, prev.padding_mask)
                add(f"delta step {step + 1}", reference_scores(model, enc, z, target))
                new = model.decode_latent(enc, z, model.predict_lengths(enc, z))
                changed[step] += int((~same_output(prev, new, model.pad)).sum())
                prev = new
            if scorer is not None:
                z = mu_p
                for step in range(args.steps):
                    z = z + args.step_size * scorer.direction(enc, z)
                    add(f"score step {step + 1}", reference_scores(model, enc, z, target))
    n_pos, n_sent = totals["positions"], totals["sentences"]
    mean_mu = totals["mu_q"] / (n_pos * model.latent_dim)
    return {
        "checkpoint": path, "num_updates": checkpoint_updates(state), "score_path": args.score_path, "split": args.gen_subset, "sentences": n_sent,
        "kl_per_position": totals["kl"] / n_pos, "sigma_prior": totals["sigma_p"] / n_pos,
        "sigma_posterior": totals["sigma_q"] / n_pos,
        "posterior_mean_spread": (totals["mu_q_sq"] / (n_pos * model.latent_dim) - mean_mu ** 2) ** 0.5,
        "length_accuracy": {"prior mean": totals["len_prior"] / n_sent, "posterior mean": totals["len_post"] / n_sent},
        "reference_at_true_length": {name: {"token_accuracy": c / n, "nll_per_token": nll / n}
                                     for name, (c, nll, n) in rows.items()},
        "delta_changed_fraction": [c / n_sent for c in changed],
    }


def markdown(result: dict) -> list:
    lines = [f"KL per source position {result['kl_per_position']:.3f} nats; sigma prior {result['sigma_prior']:.2f}, "
             f"posterior {result['sigma_posterior']:.2f}; spread of E_q[z] {result['posterior_mean_spread']:.2f}; "
             f"length accuracy prior {result['length_accuracy']['prior mean']:.3f} / posterior "
             f"{result['length_accuracy']['posterior mean']:.3f}; outputs changed by delta steps "
             + ", ".join(f"{c:.3f}" for c in result["delta_changed_fraction"]), "",
             "| latent (reference decoded at its true length) | token accuracy | NLL per token |", "|---|---|---|"]
    for name, r in result["reference_at_true_length"].items():
        lines.append(f"| {name} | {r['token_accuracy']:.3f} | {r['nll_per_token']:.3f} |")
    return lines


def curve_markdown(points: list) -> list:
    lines = ["| checkpoint | updates | KL / position | token acc. posterior mean / prior mean / delta step 1 | "
             "NLL posterior mean / prior mean / delta step 1 | length acc. prior |", "|---|---:|---:|---|---|---:|"]
    for r in points:
        ref = r["reference_at_true_length"]
        names = ("posterior mean", "prior mean", "delta step 1")
        acc = " / ".join(f"{ref[n]['token_accuracy']:.3f}" for n in names if n in ref)
        nll = " / ".join(f"{ref[n]['nll_per_token']:.2f}" for n in names if n in ref)
        lines.append(f"| {r['checkpoint']} | {r['num_updates']} | {r['kl_per_position']:.2f} | {acc} | {nll} | "
                     f"{r['length_accuracy']['prior mean']:.2f} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
