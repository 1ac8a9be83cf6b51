"""``iterref-baseline-conformers``: RDKit ETKDG conformers, optionally relaxed by UFF or MMFF94 (thesis §6.4.2.1,
the baselines of Tables 6.1 and 6.2).

    iterref-baseline-conformers work/conformers/qm9_cpu --method etkdg+mmff --num-confs 100 --out base_mmff.sdf
    iterref-baseline-conformers work/conformers/qm9_cpu --method etkdg+uff etkdg+mmff --out base_{method}.sdf

Per molecule of ``DATA/<gen-subset>.sdf`` (file order): hydrogens are added, ``--num-confs`` conformers are embedded
with ETKDG (``--etkdg-version``: 1 is the thesis-era default of RDKit 2018.09, 3 today's) seeded with
``--seed`` + the molecule's index, then, for ``etkdg+uff`` / ``etkdg+mmff``, every conformer is minimized
(``maxIters`` 200, as the reference's ``baseline.py``) and the hydrogens are removed. The same seed gives the same
embeddings for the three methods, so UFF and MMFF start from the same conformers (as in the thesis, where their
success rates are equal); several ``--method`` values in one call embed once and minimize copies, as the
reference's script does, and each method's time includes the shared embedding.

A molecule whose embedding fails, or that the force field has no parameters for, yields fewer conformers (none when
the embedding fails): every failure is counted by reason in ``OUT.json`` and per molecule (``requested`` /
``obtained``), never dropped silently. Molecules run in parallel over ``--workers`` processes, one thread each; the
reported seconds per conformer are the summed per-molecule process times (one CPU core), comparable with
``iterref-generate-conformers`` run on one thread.

Output: ``--out`` (SDF; each record is one conformer with the properties ``mol_index`` (its molecule's index in
the reference split), ``conf_index`` and ``method``) and ``OUT.json`` (summary with provenance).
"""
import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from typing import Dict, List, Tuple

from .common import (CLIError, add_data_argument, add_gen_subset_argument, add_max_examples_argument, check_file,
                     check_out_dir, check_positive, console_main, new_parser, provenance, resolve_data)

PROG = "iterref-baseline-conformers"
METHODS = ("etkdg", "etkdg+uff", "etkdg+mmff")
logger = logging.getLogger("iterref.baseline_conformers")


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "conformer data directory (scripts/prepare_conformers.py): reads DATA/<gen-subset>.sdf")
    add_gen_subset_argument(p, "test", "split whose molecules get conformers", deprecated=["--split"])
    p.add_argument("--method", choices=METHODS, nargs="+", required=True,
                   help="ETKDG embedding alone or followed by UFF / MMFF94 minimization; several methods share one "
                        "embedding per molecule (then --out must contain {method})")
    p.add_argument("--num-confs", type=int, default=100, help="conformers per molecule (thesis: 100)")
    p.add_argument("--etkdg-version", type=int, choices=(1, 2, 3), default=1,
                   help="ETKDG version (1: the thesis's RDKit 2018.09 default; 3: current RDKit)")
    p.add_argument("--max-iters", type=int, default=200, help="force-field iterations (the reference: 200)")
    p.add_argument("--workers", type=int, default=1, help="molecules in parallel (one process and thread each)")
    p.add_argument("--seed", type=int, default=1, help="embedding seed of molecule i is SEED + i")
    add_max_examples_argument(p, 0, "the first N molecules of the split (0: all)")
    p.add_argument("--out", required=True,
                   help="output SDF ({method} is replaced by the method's name); the summary goes to OUT.json")
    return p


def embed_molecule(job: Tuple[int, bytes, Tuple[str, ...], int, int, int, int]) -> Dict:
    """One molecule: (index, RDKit binary, methods, K, ETKDG version, seed, max iters) -> per method its
    conformers (lists of (n, 3) heavy-atom coordinates), failure reasons and process seconds (the shared
    embedding's time is counted for every method)."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem, rdDistGeom

    RDLogger.DisableLog("rdApp.*")
    index, binary, methods, k, version, seed, max_iters = job
    t0 = time.process_time()
    mol = Chem.AddHs(Chem.Mol(binary))
    mol.RemoveAllConformers()
    params = {1: rdDistGeom.ETKDG, 2: rdDistGeom.ETKDGv2, 3: rdDistGeom.ETKDGv3}[version]()
    params.randomSeed = seed + index
    params.numThreads = 1
    ids = list(rdDistGeom.EmbedMultipleConfs(mol, k, params))
    embed_seconds = time.process_time() - t0
    heavy_idx = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    out = {}
    for method in methods:
        t1 = time.process_time()
        failures: Counter = Counter()
        if len(ids) < k:
            failures["embedding_failed"] += k - len(ids)
        m, kept = Chem.Mol(mol), list(ids)
        if kept and method != "etkdg":
            has_params, optimize = {"etkdg+uff": (AllChem.UFFHasAllMoleculeParams, AllChem.UFFOptimizeMoleculeConfs),
                                    "etkdg+mmff": (AllChem.MMFFHasAllMoleculeParams,
                                                   AllChem.MMFFOptimizeMoleculeConfs)}[method]
            if not has_params(m):
                failures[f"no_{method.split('+')[1]}_parameters"] += len(kept)
                kept = []
            else:
                optimize(m, numThreads=1, maxIters=max_iters)
        out[method] = {"confs": [m.GetConformer(c).GetPositions()[heavy_idx].tolist() for c in kept],
                       "failures": dict(failures), "seconds": embed_seconds + time.process_time() - t1}
    return {"index": index, "methods": out}


def write_conformers(writer, mol, index: int, confs, method: str) -> None:
    """Appends one SDF record per conformer (heavy atoms, the reference molecule's atom order)."""
    from ..data.conformers import mol_with_coordinates

    for c, xyz in enumerate(confs):
        m = mol_with_coordinates(mol, xyz)
        m.SetIntProp("mol_index", index)
        m.SetIntProp("conf_index", c)
        m.SetProp("method", method)
        writer.write(m)


def write_summary(summary: Dict) -> None:
    """OUT.json beside the SDF of one method, and one line on stdout."""
    with open(summary["out"] + ".json", "w") as f:
        json.dump(summary, f, indent=1)
    print(f"{summary['method']}: {summary['conformers']} conformers for {summary['molecules']} molecules "
          f"({summary['failures'] or 'no failures'}), {summary['seconds_cpu']:.1f} s CPU -> {summary['out']}")


def load_reference(args) -> List:
    from ..data.conformers import read_sdf

    path = check_file(os.path.join(args.data, f"{args.gen_subset}.sdf"), f"split {args.gen_subset!r}",
                      "create the splits with scripts/prepare_conformers.py or pass another --gen-subset")
    try:
        mols = read_sdf(path)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.max_examples:
        mols = mols[:args.max_examples]
    if not mols:
        raise CLIError(f"{path} has no molecule")
    return mols


def run(args) -> dict:
    """Writes one SDF + JSON per method; returns {method: summary}."""
    resolve_data(args, fix="pass the directory written by scripts/prepare_conformers.py as DATA")
    check_positive(num_confs=args.num_confs, workers=args.workers, max_iters=args.max_iters)
    methods = tuple(dict.fromkeys(args.method))
    if len(methods) > 1 and "{method}" not in args.out:
        raise CLIError(f"--out {args.out} must contain {{method}} when several methods are given (e.g. "
                       "work/base_{method}.sdf)")
    outs = {m: args.out.replace("{method}", m) for m in methods}
    for out in outs.values():
        check_out_dir(out)
    mols = load_reference(args)
    from rdkit import Chem
    from tqdm import tqdm

    jobs = [(i, m.ToBinary(), methods, args.num_confs, args.etkdg_version, args.seed, args.max_iters)
            for i, m in enumerate(mols)]
    per_molecule = {m: [] for m in methods}
    failures = {m: Counter() for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    t0 = time.time()
    if args.workers > 1:
        import multiprocessing as mp

        os.environ["OMP_NUM_THREADS"] = "1"
        pool = mp.get_context("spawn").Pool(args.workers)
        results = pool.imap(embed_molecule, jobs, chunksize=1)
    else:
        pool, results = None, map(embed_molecule, jobs)
    writers = {m: Chem.SDWriter(outs[m]) for m in methods}
    try:
        for mol, res in tqdm(zip(mols, results), total=len(mols), desc="+".join(methods), unit="mol",
                             disable=None):
            for m, r in res["methods"].items():
                write_conformers(writers[m], mol, res["index"], r["confs"], m)
                failures[m].update(r["failures"])
                seconds[m] += r["seconds"]
                per_molecule[m].append({"mol_index": res["index"], "requested": args.num_confs,
                                        "obtained": len(r["confs"]), "failures": r["failures"],
                                        "seconds": round(r["seconds"], 5)})
    finally:
        for w in writers.values():
            w.close()
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.time() - t0
    import rdkit

    summaries = {}
    for m in methods:
        obtained = sum(r["obtained"] for r in per_molecule[m])
        summaries[m] = {
            "method": m, "reference": os.path.abspath(os.path.join(args.data, f"{args.gen_subset}.sdf")),
            "out": outs[m], "molecules": len(mols), "num_confs": args.num_confs, "conformers": obtained,
            "failures": dict(failures[m]), "etkdg_version": args.etkdg_version, "max_iters": args.max_iters,
            "shared_embedding_with": [x for x in methods if x != m], "workers": args.workers,
            "seconds_cpu": round(seconds[m], 3), "seconds_wall_all_methods": round(wall, 3),
            "seconds_per_conformer": seconds[m] / obtained if obtained else None, "rdkit": rdkit.__version__,
            "per_molecule": per_molecule[m], "provenance": provenance(args),
        }
        write_summary(summaries[m])
    return summaries


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    run(args)
    return 0


def main(argv=None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
