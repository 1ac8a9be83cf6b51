"""``iterref-generate-conformers``: conformers from a trained CVGAE (thesis §6.3.3): z ~ P(Z | G), X = the
likelihood mean; with ``--mmff`` each one is then relaxed by MMFF94 (CVGAE+MMFF, Table 6.1).

    iterref-generate-conformers work/conformers/qm9_cpu --path checkpoints/cvgae/checkpoint_best.pt \\
        --num-confs 100 --out cvgae.sdf [--mmff]

Molecules of ``DATA/<gen-subset>.sdf`` are decoded ``--batch-size`` at a time, all ``--num-confs`` samples of a
molecule in one pass (the edge networks run once per molecule). Sampling is seeded (``--seed``). ``--mmff`` follows
the reference's ``baseline_nn.py``: hydrogens added with coordinates, ``MMFFOptimizeMolecule`` (maxIters 200),
hydrogens removed; a conformer whose MMFF step fails (no parameters, an RDKit error) is counted as a failure.

``--handedness stereo`` is for models trained with ``--alignment mirror`` (a deviation: they learn conformers up to
reflection). Each decoded conformer is mirrored with probability 1/2 (seeded), then, where the molecule has
tetrahedral stereocentres with chiral tags (the stereo of the input graph, which ETKDG also obeys), the conformer or
its mirror image is kept, whichever has more centres with the molecule's tags (RDKit's tags from 3-D); on a tie the
random choice stands. MMFF (``--mmff``) then starts from the chosen handedness. The default ``as-decoded`` keeps the
model's output (the thesis).

Output: ``--out`` (SDF; one record per conformer with ``mol_index`` (index in the split), ``conf_index``,
``method``) and ``OUT.json`` (counts, failures, seconds of the model and of MMFF, seconds per conformer, settings,
provenance). The model's CPU time is measured with the threads torch is given (``OMP_NUM_THREADS``; use 1 to compare
with the one-core baselines).
"""
import argparse
import logging
import os
import sys
import time
from collections import Counter

import torch

from .baseline_conformers import load_reference, write_conformers, write_summary
from .common import (CLIError, add_data_argument, add_device_arguments, add_gen_subset_argument,
                     add_max_examples_argument, check_out_dir, check_positive, console_main, load_checkpoint,
                     new_parser, provenance, resolve_data, resolve_device)

PROG = "iterref-generate-conformers"
logger = logging.getLogger("iterref.generate_conformers")


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "conformer data directory (scripts/prepare_conformers.py): reads DATA/<gen-subset>.sdf")
    p.add_argument("--path", required=True, metavar="CHECKPOINT", help="cvgae checkpoint (fairseq-train output)")
    add_gen_subset_argument(p, "test", "split whose molecules get conformers", deprecated=["--split"])
    p.add_argument("--num-confs", type=int, default=100, help="conformers per molecule (thesis: 100)")
    p.add_argument("--mmff", action="store_true", help="relax every conformer with MMFF94 (CVGAE+MMFF)")
    p.add_argument("--max-iters", type=int, default=200, help="MMFF iterations (the reference: 200)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="scale of the prior's standard deviation when sampling z (thesis: 1)")
    p.add_argument("--handedness", choices=("as-decoded", "stereo"), default="as-decoded",
                   help="as-decoded (thesis) or stereo: draw each conformer's handedness, then match the "
                   "molecule's stereocentres (for --alignment mirror models)")
    p.add_argument("--batch-size", type=int, default=20, help="molecules decoded together")
    p.add_argument("--seed", type=int, default=1, help="sampling seed")
    add_max_examples_argument(p, 0, "the first N molecules of the split (0: all)")
    p.add_argument("--out", required=True, help="output SDF; the summary goes to OUT.json")
    add_device_arguments(p)
    return p


def mmff_relax(mol, xyz, max_iters: int):
    """Heavy-atom coordinates (n, 3) after MMFF94 with hydrogens placed by RDKit; (None, reason) on failure."""
    coords, reason, _converged = mmff_relax_status(mol, xyz, max_iters)
    return coords, reason


def mmff_relax_status(mol, xyz, max_iters: int):
    """:func:`mmff_relax` plus whether the minimizer converged within ``max_iters`` (RDKit returns 1 when it needed
    more iterations): (coords or None, failure reason or None, converged)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from ..data.conformers import mol_with_coordinates

    try:
        mh = Chem.AddHs(mol_with_coordinates(mol, xyz), addCoords=True)
        if not AllChem.MMFFHasAllMoleculeParams(mh):
            return None, "no_mmff_parameters", False
        status = AllChem.MMFFOptimizeMolecule(mh, maxIters=max_iters)
    except (ValueError, RuntimeError):
        return None, "mmff_error", False
    heavy = [a.GetIdx() for a in mh.GetAtoms() if a.GetAtomicNum() > 1]
    return mh.GetConformer().GetPositions()[heavy].tolist(), None, status == 0


def chiral_tags(mol) -> dict:
    """{atom index: chiral tag} of the tetrahedral centres that carry a CW / CCW tag."""
    from rdkit import Chem

    wanted = (Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW)
    return {a.GetIdx(): a.GetChiralTag() for a in mol.GetAtoms() if a.GetChiralTag() in wanted}


def tags_matched(mol, xyz, tags: dict) -> int:
    """How many of ``tags`` the conformer ``xyz`` (n, 3) has (RDKit's tags assigned from its 3-D structure)."""
    from rdkit import Chem

    from ..data.conformers import mol_with_coordinates

    m = mol_with_coordinates(mol, xyz)
    Chem.AssignStereochemistryFrom3D(m, replaceExistingTags=True)
    return sum(m.GetAtomWithIdx(i).GetChiralTag() == t for i, t in tags.items())


def assign_handedness(mol, confs, rng) -> tuple:
    """``--handedness stereo`` for one molecule: confs (K, n, 3) array -> (confs, Counter of what was done).

    Mirroring negates the x coordinates. The random draw comes first, so on molecules without stereocentres (or
    with a tie) the two mirror images are equally likely."""
    import numpy as np

    confs = np.array(confs, dtype=np.float64)
    flip = rng.random(len(confs)) < 0.5
    confs[flip, :, 0] *= -1
    done = Counter(random_mirror=int(flip.sum()))
    tags = chiral_tags(mol)
    if tags:
        for k in range(len(confs)):
            mirror = confs[k] * np.array([-1.0, 1.0, 1.0])
            if tags_matched(mol, mirror, tags) > tags_matched(mol, confs[k], tags):
                confs[k] = mirror
                done["stereo_mirror"] += 1
    return confs, done


def run(args) -> dict:
    resolve_data(args, fix="pass the directory written by scripts/prepare_conformers.py as DATA")
    check_positive(num_confs=args.num_confs, batch_size=args.batch_size, max_iters=args.max_iters)
    if args.temperature < 0:
        raise CLIError(f"--temperature must be >= 0, got {args.temperature}")
    check_out_dir(args.out)
    from ..data.conformers import ConformerDataError

    fix = "pass --path CHECKPOINT written by fairseq-train --task conformer --arch cvgae_*"
    try:
        models, _cfg, task = load_checkpoint(args.path, args.data, fix, overrides={"max_atoms": None})
    except ConformerDataError as err:
        raise CLIError(str(err)) from None
    model = models[0]
    if not hasattr(model, "sample_conformers"):
        raise CLIError(f"{args.path} is not a CVGAE checkpoint (no sample_conformers hook): {fix}")
    device = resolve_device(args)
    model = model.to(device).eval()
    mols = load_reference(args)
    try:
        ds = task.load_dataset(args.gen_subset)
    except ConformerDataError as err:
        raise CLIError(str(err)) from None
    from tqdm import tqdm

    from ..data.conformers import collate_conformers

    method = "cvgae+mmff" if args.mmff else "cvgae"
    gen = torch.Generator(device=device).manual_seed(args.seed)
    import numpy as np

    flip_rng = np.random.default_rng(args.seed)
    per_molecule, failures, handedness = [], Counter(), Counter()
    model_seconds = mmff_seconds = 0.0
    from rdkit import Chem

    with Chem.SDWriter(args.out) as w, torch.inference_mode():
        for start in tqdm(range(0, len(mols), args.batch_size), desc=method, unit="batch", disable=None):
            idx = list(range(start, min(start + args.batch_size, len(mols))))
            batch = collate_conformers([ds.cs.graph(i) for i in idx])
            t0 = time.process_time()
            x = model.sample_conformers(batch["nodes"].to(device), batch["pairs"].to(device),
                                        batch["node_mask"].to(device), args.num_confs, args.temperature,
                                        generator=gen).double().cpu().numpy()
            model_seconds += time.process_time() - t0
            for b, i in enumerate(idx):
                n = mols[i].GetNumAtoms()
                if n != int(batch["node_mask"][b].sum()):
                    raise CLIError(f"molecule {i} of {args.gen_subset}.sdf has {n} atoms but its features "
                                   f"{int(batch['node_mask'][b].sum())}: delete DATA/cache and rerun")
                confs, fails = [xyz[:n].tolist() for xyz in x[b]], Counter()
                if args.handedness == "stereo":
                    t1 = time.process_time()
                    flipped, done = assign_handedness(mols[i], confs, flip_rng)
                    confs = flipped.tolist()
                    handedness.update(done)
                    model_seconds += time.process_time() - t1
                if args.mmff:
                    t1 = time.process_time()
                    relaxed = []
                    for xyz in confs:
                        r, reason = mmff_relax(mols[i], xyz, args.max_iters)
                        if r is None:
                            fails[reason] += 1
                        else:
                            relaxed.append(r)
                    confs = relaxed
                    mmff_seconds += time.process_time() - t1
                write_conformers(w, mols[i], i, confs, method)
                failures.update(fails)
                per_molecule.append({"mol_index": i, "requested": args.num_confs, "obtained": len(confs),
                                     "failures": dict(fails)})
    obtained = sum(r["obtained"] for r in per_molecule)
    total = model_seconds + mmff_seconds
    summary = {
        "method": method, "checkpoint": os.path.abspath(args.path),
        "reference": os.path.abspath(os.path.join(args.data, f"{args.gen_subset}.sdf")), "out": args.out,
        "molecules": len(mols), "num_confs": args.num_confs, "conformers": obtained, "failures": dict(failures),
        "temperature": args.temperature, "handedness": args.handedness, "handedness_counts": dict(handedness),
        "batch_size": args.batch_size, "seed": args.seed, "device": str(device),
        "torch_threads": torch.get_num_threads(), "seconds_model": round(model_seconds, 3),
        "seconds_mmff": round(mmff_seconds, 3), "seconds_cpu": round(total, 3),
        "seconds_per_conformer": total / obtained if obtained else None, "per_molecule": per_molecule,
        "provenance": provenance(args),
    }
    write_summary(summary)
    return summary


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    run(args)
    return 0


def main(argv=None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
