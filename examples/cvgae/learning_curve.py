#!/usr/bin/env python
"""The CVGAE's learning curve from a fairseq-train log: validation prior RMSD (10 prior samples per molecule, the
checkpoint-selection metric), posterior reconstruction RMSD and the KL terms against updates and wall time.
Writes OUT (JSON with provenance) and OUT with .png.

    python examples/cvgae/learning_curve.py work/cvgae_table/cvgae_qm9_s1/train.log --out curve.json

With ``--fit-from U --fit-target R`` it also fits a power law prior_rmsd = a * updates^(-b) to the points from update
U on (least squares in log-log space) and extrapolates the updates at which it would reach R: how far the budget is
from a target, if the curve keeps its slope (an extrapolation, not a measurement). ``--fit-until V`` fits only the
points up to update V and lists the later ones beside the fit's prediction (``held_out``): a test of the
extrapolation on a run that went on.

A run resumed from its checkpoint writes a second log; give the logs in order (each log's points replace the
earlier logs' from its first update count on, as a resume from an older checkpoint retrains those updates).

    python examples/cvgae/learning_curve.py run/train.log run/train2.log --fit-from 2000 --fit-until 25000 --out c.json
"""
import argparse
import json
import os
import re
import sys
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

FIELDS = ("reconstruction", "kl_posterior_prior", "kl_prior_standard", "rmsd", "prior_rmsd", "num_updates", "wall")


def read_log(path: str) -> List[dict]:
    """The validation points of one log, in its order."""
    points = []
    with open(path) as f:
        for line in f:
            if "| valid | " in line:
                values = dict(re.findall(r"\| (\w+) ([-\d.e]+)", line))
                points.append({k: float(values[k]) for k in FIELDS if k in values})
    return points


def parse(*paths: str) -> List[dict]:
    """The validation points of the logs of one run, given in order. A resumed run continues from a checkpoint that
    may be older than the end of the previous log (a crash after the last save): each log's points replace the
    earlier logs' points from its own first update count on."""
    points: List[dict] = []
    for path in paths:
        new = read_log(path)
        counted = [p["num_updates"] for p in new if "num_updates" in p]
        if counted:
            start = min(counted)
            points = [p for p in points if p.get("num_updates", -1) < start]
        points += new
    return points


def power_law_fit(points, from_update: float, key: str = "prior_rmsd", until_update: Optional[float] = None) -> dict:
    """a, b of key = a * u^(-b) fitted to the points with from_update <= u (<= until_update when given; log-log
    least squares), with the number of points and the root-mean-square residual in log space. With until_update,
    ``held_out`` lists the later points beside the fit's prediction, with their mean and largest relative error."""
    import numpy as np

    last = float("inf") if until_update is None else until_update
    sel = [(p["num_updates"], p[key]) for p in points
           if from_update <= p.get("num_updates", 0) <= last and p.get(key, 0) > 0]
    if len(sel) < 2:
        span = "from there on" if until_update is None else f"between it and --fit-until {until_update}"
        raise ValueError(f"--fit-from {from_update}: {len(sel)} validation point(s) {span}; need at least 2")
    x, y = np.log(np.array(sel, dtype=float)).T
    if np.ptp(x) == 0:
        raise ValueError(f"--fit-from {from_update}: every point has the same update count")
    slope, intercept = np.polyfit(x, y, 1)
    rms = float(np.sqrt(np.mean((y - intercept - slope * x) ** 2)))
    fit = {"a": float(np.exp(intercept)), "b": float(-slope), "from_update": from_update, "points": len(sel),
           "log_rms_residual": rms}
    if until_update is not None:
        fit["until_update"] = until_update
        later = [p for p in points if p.get("num_updates", 0) > until_update and key in p]
        fit["held_out"] = [{"num_updates": p["num_updates"], key: p[key],
                            "predicted": fit["a"] * p["num_updates"] ** -fit["b"]} for p in later]
        errors = [(h[key] - h["predicted"]) / h["predicted"] for h in fit["held_out"]]
        if errors:
            fit["held_out_mean_relative_error"] = float(np.mean(errors))
            fit["held_out_max_abs_relative_error"] = float(np.max(np.abs(errors)))
    return fit


def updates_to_reach(fit: dict, target: float) -> float:
    """The update count at which a * u^(-b) equals ``target`` (inf when the fitted curve does not fall)."""
    if fit["b"] <= 0:
        return float("inf")
    return (target / fit["a"]) ** (-1.0 / fit["b"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log", nargs="+", help="fairseq-train log(s) (--log-format simple), in order")
    p.add_argument("--out", required=True, help="output JSON; the plot goes beside it")
    p.add_argument("--fit-from", type=float, help="fit a power law to the validation prior RMSD from this update on")
    p.add_argument("--fit-target", type=float, help="with --fit-from: extrapolate the updates to reach this RMSD")
    p.add_argument("--fit-until", type=float,
                   help="with --fit-from: fit only the points up to this update; the later ones are compared with the "
                        "fit's prediction (held_out)")
    args = p.parse_args(argv)
    if args.fit_until is not None and args.fit_from is None:
        p.error("--fit-until needs --fit-from")
    points = parse(*args.log)
    if not points:
        p.error(f"{' '.join(args.log)}: no validation line; train with validation (--validate-interval-updates)")
    from iterref_fairseq.provenance import run_metadata

    meta = run_metadata([os.path.basename(__file__)] + (argv if argv is not None else sys.argv[1:]), seed=None)
    meta["note"] = "seed is null: this script only reads a training log"
    result = {"log": [os.path.abspath(log) for log in args.log], "points": points, "provenance": meta}
    if args.fit_from is not None:
        try:
            fit = power_law_fit(points, args.fit_from, until_update=args.fit_until)
        except ValueError as err:
            p.error(str(err))
        if args.fit_target is not None:
            fit["target"] = args.fit_target
            fit["updates_to_target"] = updates_to_reach(fit, args.fit_target)
        result["power_law_fit"] = fit
        if args.fit_until is not None and not fit["held_out"]:
            print(f"learning_curve.py: warning: no validation point after --fit-until {args.fit_until}; "
                  "nothing to compare the fit with", file=sys.stderr)
        print(json.dumps(fit))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    from iterref_fairseq.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    x = [pt["num_updates"] for pt in points]
    ax.plot(x, [pt["prior_rmsd"] for pt in points], marker="o", label="prior samples (generation)")
    ax.plot(x, [pt["rmsd"] for pt in points], marker="s", label="posterior reconstruction")
    if "power_law_fit" in result:
        fit = result["power_law_fit"]
        xs = [u for u in x if u >= fit["from_update"]]
        until = f" (fitted up to {fit['until_update']:.0f})" if "until_update" in fit else ""
        ax.plot(xs, [fit["a"] * u ** -fit["b"] for u in xs], color="grey", ls="--",
                label=f"fit {fit['a']:.2f} u^-{fit['b']:.3f}{until}")
        if "until_update" in fit:
            ax.axvline(fit["until_update"], color="grey", lw=0.8)
    ax.set_xlabel("updates (batch 20 molecules)")
    ax.set_ylabel("validation RMSD (A)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.splitext(args.out)[0] + ".png", dpi=120)
    print(json.dumps(points[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
