"""Reference conformers for the ``conformer`` task (thesis ch. 6; docs/cvgae.md): QM9 geometries and SDF files.

One reference conformer per molecule, heavy atoms only (the thesis's CVGAE models heavy atoms; hydrogens are
implicit). Two sources:

* QM9 from the ``qm9pack`` wheel: each row has the SMILES and the DFT geometry of every atom (``XYZ_Ang``, H
  included). The molecule is rebuilt with RDKit's own tools: connectivity from the coordinates
  (``rdDetermineBonds.DetermineConnectivity``), bond orders and charges from the SMILES as a template
  (``AssignBondOrdersFromTemplate``), hydrogen counts from the geometry; then the result must be the same molecule
  as the SMILES (canonical SMILES without stereo), so a geometry whose hydrogens sit elsewhere (another tautomer)
  is rejected too; stereo is taken from the 3-D geometry. A molecule whose geometry does not have the SMILES's
  connectivity (QM9 has some that rearranged during relaxation) is rejected with the reason.
* any SDF with 3-D coordinates (e.g. ``Contrib/PBF/testData/egfr.sdf`` inside the rdkit wheel).

Every rejected molecule is counted by reason (:class:`Rejections`), never dropped silently.
"""
import glob
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import numpy as np

REJECT_REASONS = {
    "xyz_unreadable": "the XYZ geometry could not be read (atom count / element list mismatch)",
    "smiles_unreadable": "RDKit could not parse the SMILES",
    "connectivity_differs": "the bonds perceived from the geometry do not match the SMILES's graph",
    "molecule_differs": "the rebuilt molecule is not the SMILES's molecule",
    "sdf_unreadable": "RDKit could not read the SDF record",
    "no_3d_coordinates": "the record has no 3-D conformer",
    "no_heavy_atoms": "the molecule has no heavy atoms (hydrogens only)",
    "too_many_atoms": "more heavy atoms than --max-atoms",
    "too_few_atoms": "fewer than 2 heavy atoms (no geometry to predict)",
}


@dataclass
class Rejections:
    """Counts of rejected molecules by reason, with a few examples each."""
    counts: Counter = field(default_factory=Counter)
    examples: Dict[str, List[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str) -> None:
        if reason not in REJECT_REASONS:
            raise KeyError(f"unknown rejection reason {reason!r}")
        self.counts[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(example)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> Dict:
        return {r: {"count": n, "meaning": REJECT_REASONS[r], "examples": self.examples[r]}
                for r, n in sorted(self.counts.items())}


@dataclass(frozen=True)
class QM9Record:
    index: int
    smiles: str
    elements: Tuple[str, ...]
    xyz: Tuple[Tuple[float, float, float], ...]  # Angstrom, one row per atom (H included)


def qm9_csv_files() -> List[str]:
    try:
        import qm9pack
    except ImportError:
        raise RuntimeError("qm9pack is not installed: pip install qm9pack==1.0.3") from None
    files = sorted(glob.glob(os.path.join(os.path.dirname(qm9pack.__file__), "data", "qm9_part*.csv")))
    if not files:
        raise RuntimeError("qm9pack has no data/qm9_part*.csv files; reinstall it: "
                           "pip install --force-reinstall qm9pack==1.0.3")
    return files


def parse_xyz(text: str) -> Tuple[Tuple[float, float, float], ...]:
    """``XYZ_Ang`` of qm9pack: a JSON list of [x, y, z]; QM9's original files write some small numbers in
    Mathematica's ``1.5*^-6`` form, read here as 1.5e-6. () when unreadable (counted as ``xyz_unreadable``)."""
    import ast

    try:  # a Python literal rather than JSON: some rows write "0." and "1."
        rows = ast.literal_eval(text.replace("*^", "e"))
        return tuple(tuple(float(v) for v in row) for row in rows) if all(len(r) == 3 for r in rows) else ()
    except (ValueError, TypeError, SyntaxError):
        return ()


def read_qm9_rows(files: Optional[Sequence[str]] = None) -> List[Tuple[int, str, str, str]]:
    """(index, SMILES, elements, XYZ) of every molecule of the qm9pack CSV parts, unparsed (cheap to shuffle)."""
    import pandas as pd

    rows = []
    for f in files or qm9_csv_files():
        df = pd.read_csv(f, usecols=["Index", "SMILES", "Elements", "XYZ_Ang"], dtype=str)
        rows += list(zip(df["Index"].astype(int), df["SMILES"], df["Elements"], df["XYZ_Ang"]))
    return rows


def record_from_row(row: Tuple[int, str, str, str]) -> QM9Record:
    """Column ``Elements`` is a Python-style list of symbols, ``XYZ_Ang`` a list of [x, y, z] (:func:`parse_xyz`)."""
    import ast

    index, smiles, elements, xyz = row
    try:
        symbols = tuple(str(e) for e in ast.literal_eval(elements))
    except (ValueError, SyntaxError):
        symbols = ()
    return QM9Record(int(index), str(smiles), symbols, parse_xyz(str(xyz)))


def read_qm9_records(files: Optional[Sequence[str]] = None) -> Iterator[QM9Record]:
    """Every molecule of the qm9pack CSV parts, in file order."""
    for row in read_qm9_rows(files):
        yield record_from_row(row)


def _xyz_block(elements: Sequence[str], xyz: Sequence[Sequence[float]]) -> str:
    rows = [f"{e} {x:.10f} {y:.10f} {z:.10f}" for e, (x, y, z) in zip(elements, xyz)]
    return f"{len(rows)}\n\n" + "\n".join(rows) + "\n"


# bond perception from distances. RDKit's default (connect-the-dots: covalent radii plus a tolerance) bonds the
# bridgeheads of bicyclo[1.1.1] rings (1.87 A apart; 79 of the first 3,000 QM9 molecules), so when the bond count
# differs from the SMILES's the perception is repeated with d(i, j) < f (r_i + r_j) for stricter f (every ordinary
# bond, C-C 1.54 A, stays under 1.1 x 1.52 = 1.67 A)
PERCEPTION_ATTEMPTS = ({}, {"useVdw": True, "covFactor": 1.2}, {"useVdw": True, "covFactor": 1.1})


def canonical_no_stereo(mol) -> str:
    from rdkit import Chem

    return Chem.MolToSmiles(mol, isomericSmiles=False)


def mol_from_qm9(record: QM9Record) -> Tuple[Optional[object], Optional[str]]:
    """(heavy-atom RDKit molecule with one 3-D conformer, None) or (None, rejection reason)."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem, rdDetermineBonds

    RDLogger.DisableLog("rdApp.*")
    if len(record.elements) != len(record.xyz) or not record.elements:
        return None, "xyz_unreadable"
    template = Chem.MolFromSmiles(record.smiles)
    if template is None:
        return None, "smiles_unreadable"
    expected = canonical_no_stereo(template)
    Chem.Kekulize(template, clearAromaticFlags=True)  # the template match works on Kekulé bonds
    geometry = Chem.MolFromXYZBlock(_xyz_block(record.elements, record.xyz))
    if geometry is None:
        return None, "xyz_unreadable"
    for attempt in PERCEPTION_ATTEMPTS:
        raw = Chem.Mol(geometry)  # DetermineConnectivity replaces any bonds, so each attempt starts from a copy
        try:
            rdDetermineBonds.DetermineConnectivity(raw, **attempt)
        except (ValueError, RuntimeError):
            continue
        heavy = Chem.RemoveHs(raw, sanitize=False)  # keeps the heavy atoms' order
        if heavy.GetNumBonds() == template.GetNumBonds():
            break
    else:
        return None, "connectivity_differs"
    # hydrogens per heavy atom as the geometry has them
    h_counts = [sum(n.GetAtomicNum() == 1 for n in a.GetNeighbors()) for a in raw.GetAtoms() if a.GetAtomicNum() != 1]
    for atom in heavy.GetAtoms():
        atom.SetNoImplicit(False)  # let the template's sanitization place the hydrogens
    try:
        mol = AllChem.AssignBondOrdersFromTemplate(template, heavy)
    except (ValueError, RuntimeError):
        return None, "connectivity_differs"
    for atom, h in zip(mol.GetAtoms(), h_counts):
        atom.SetNumExplicitHs(h)
        atom.SetNoImplicit(True)
    try:
        Chem.SanitizeMol(mol)
    except (ValueError, RuntimeError):
        return None, "molecule_differs"
    if canonical_no_stereo(mol) != expected:
        return None, "molecule_differs"
    Chem.AssignStereochemistryFrom3D(mol)
    mol.SetProp("_Name", f"qm9_{record.index}")
    mol.SetProp("smiles", record.smiles)
    return mol, None


def check_heavy_molecule(mol, max_atoms: int) -> Optional[str]:
    """Rejection reason for a heavy-atom molecule, or None."""
    n = sum(a.GetAtomicNum() > 1 for a in mol.GetAtoms())  # RemoveHs keeps hydrogens bonded to hydrogens
    if n == 0:
        return "no_heavy_atoms"
    if n < 2:
        return "too_few_atoms"
    if n > max_atoms:
        return "too_many_atoms"
    return None


def qm9_molecules(max_atoms: int, rejections: Rejections, limit: Optional[int] = None, seed: int = 1,
                  progress: bool = True) -> List[object]:
    """QM9 molecules with their DFT geometry, heavy atoms only, in a seeded random order; ``limit`` stops after
    that many kept molecules (CPU sizes)."""
    rows = read_qm9_rows()
    random.Random(seed).shuffle(rows)
    kept = []
    it: Iterable = rows
    if progress:
        from tqdm import tqdm

        it = tqdm(rows, desc="QM9 geometries", mininterval=2.0)
    for row in it:
        rec = record_from_row(row)
        mol, reason = mol_from_qm9(rec)
        reason = reason or check_heavy_molecule(mol, max_atoms)
        if reason:
            rejections.add(reason, f"qm9_{rec.index} {rec.smiles}")
            continue
        kept.append(mol)
        if limit is not None and len(kept) >= limit:
            break
    return kept


def sdf_molecules(path: str, max_atoms: int, rejections: Rejections) -> List[object]:
    """Molecules of an SDF with 3-D coordinates, heavy atoms only (records in file order)."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--sdf {path}: no such file")
    kept = []
    for k, mol in enumerate(Chem.SDMolSupplier(path, removeHs=False, sanitize=True)):
        name = f"{os.path.basename(path)}#{k}"
        if mol is None:
            rejections.add("sdf_unreadable", name)
            continue
        name = mol.GetProp("_Name") if mol.HasProp("_Name") and mol.GetProp("_Name").strip() else name
        if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
            rejections.add("no_3d_coordinates", name)
            continue
        heavy = Chem.RemoveHs(mol)
        reason = check_heavy_molecule(heavy, max_atoms)
        if reason:
            rejections.add(reason, name)
            continue
        heavy.SetProp("_Name", name)
        heavy.SetProp("smiles", Chem.MolToSmiles(heavy))
        kept.append(heavy)
    return kept


def split_molecules(mols: Sequence[object], valid: int, test: int) -> Dict[str, List[object]]:
    """valid = the first ``valid``, test = the next ``test``, train = the rest (``mols`` already shuffled)."""
    if valid + test > len(mols):
        raise ValueError(f"--valid-size + --test-size ({valid + test}) exceed the {len(mols)} molecules kept")
    return {"train": list(mols[valid + test:]), "valid": list(mols[:valid]), "test": list(mols[valid:valid + test])}


def mol_with_coordinates(mol, xyz: Sequence[Sequence[float]]):
    """A copy of ``mol`` whose only conformer has the coordinates ``xyz`` (n, 3), in ``mol``'s atom order."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    m = Chem.Mol(mol)
    m.RemoveAllConformers()
    conf = Chem.Conformer(m.GetNumAtoms())
    for a, (x, y, z) in enumerate(xyz):
        conf.SetAtomPosition(a, Point3D(float(x), float(y), float(z)))
    m.AddConformer(conf, assignId=True)
    return m


def write_sdf(path: str, mols: Iterable[object]) -> int:
    from rdkit import Chem

    n = 0
    with Chem.SDWriter(path) as w:
        for mol in mols:
            w.write(mol)
            n += 1
    return n


def read_sdf(path: str) -> List[object]:
    """Molecules of a prepared split (heavy atoms, one conformer each); raises ValueError naming a bad record."""
    from rdkit import Chem

    mols = []
    for k, mol in enumerate(Chem.SDMolSupplier(path, removeHs=False)):
        if mol is None or mol.GetNumConformers() == 0:
            raise ValueError(f"{path}: record {k} is unreadable or has no coordinates; rewrite the file with "
                             "scripts/prepare_conformers.py")
        mols.append(mol)
    return mols


# ---------------------------------------------------------------------------------------------------- features
# Node and pair features of the reference code (nyu-dl/dl4chem-geometry, QM9_featurize.py / COD_featurize.py; the
# thesis names none): heavy atoms, hydrogens only as a count.
ELEMENTS = {"qm9": ("C", "N", "O", "F"),
            "cod": ("C", "N", "O", "F", "Cl", "Br", "I", "S", "B", "Si", "P", "Te", "Se", "Ge", "As")}
HYBRIDIZATIONS = {"qm9": ("SP", "SP2", "SP3"), "cod": ("SP", "SP2", "SP3", "SP3D", "SP3D2")}
RING_SIZES = (3, 4, 5, 6, 7, 8)
BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
PAIR_FEATURES = 10  # bond type (4), Z/E (2), conjugated, in ring, same ring, graph distance


def node_feature_dim(element_set: str) -> int:
    return len(ELEMENTS[element_set]) + len(HYBRIDIZATIONS[element_set]) + 7 + len(RING_SIZES) + 2


def atom_features(mol, element_set: str = "qm9") -> Tuple["np.ndarray", Counter]:
    """(n, node_feature_dim) float32 features and a Counter of elements outside the set (their one-hot is zero,
    as in the reference; the caller reports them). Layout per heavy atom i:

    element one-hot | hybridization one-hot | atomic number, heavy degree, formal charge, total H, implicit
    valence, radical electrons, aromatic (raw integers) | number of SSSR rings of size 3..8 containing i |
    CIP label R, S (from the 3-D structure).
    """
    return _atom_features(_with_stereo(mol), element_set)


def _with_stereo(mol):
    """A copy of ``mol`` with CIP labels and bond stereo assigned from its 3-D conformer (the input is unchanged)."""
    from rdkit import Chem

    mol = Chem.Mol(mol)
    if mol.GetNumConformers():
        Chem.AssignStereochemistryFrom3D(mol)
    return mol


def _atom_features(mol, element_set: str) -> Tuple["np.ndarray", Counter]:
    import numpy as np
    from rdkit import Chem

    if element_set not in ELEMENTS:
        raise ValueError(f"unknown element set {element_set!r}; choose one of {', '.join(ELEMENTS)}")
    elements, hybrid = ELEMENTS[element_set], HYBRIDIZATIONS[element_set]
    rings = mol.GetRingInfo().AtomRings()
    out = np.zeros((mol.GetNumAtoms(), node_feature_dim(element_set)), dtype=np.float32)
    unknown: Counter = Counter()
    for atom in mol.GetAtoms():
        i, row, k = atom.GetIdx(), out[atom.GetIdx()], 0
        sym = atom.GetSymbol()
        if sym in elements:
            row[elements.index(sym)] = 1
        else:
            unknown[sym] += 1
        k += len(elements)
        h = str(atom.GetHybridization())
        if h in hybrid:
            row[k + hybrid.index(h)] = 1
        k += len(hybrid)
        row[k:k + 7] = (atom.GetAtomicNum(), atom.GetDegree(), atom.GetFormalCharge(), atom.GetTotalNumHs(),
                        atom.GetValence(Chem.ValenceType.IMPLICIT), atom.GetNumRadicalElectrons(),
                        int(atom.GetIsAromatic()))
        k += 7
        for ring in rings:
            if i in ring and len(ring) in RING_SIZES:
                row[k + RING_SIZES.index(len(ring))] += 1
        k += len(RING_SIZES)
        cip = atom.GetProp("_CIPCode") if atom.HasProp("_CIPCode") else None
        if cip in ("R", "S"):
            row[k + ("R", "S").index(cip)] = 1
    return out, unknown


def pair_features(mol) -> "np.ndarray":
    """(n, n, 10) float32 features of every atom pair (the complete graph; zero on the diagonal):

    [0:4] bond type one-hot (bonded pairs), [4:6] bond stereo Z / E, [6] conjugated, [7] bond in a ring,
    [8] both atoms in one SSSR ring (any pair), [9] topological distance (bonds on the shortest path; 0 for atoms
    in different fragments).
    """
    return _pair_features(_with_stereo(mol))


def _pair_features(mol) -> "np.ndarray":
    import numpy as np
    from rdkit import Chem

    n = mol.GetNumAtoms()
    out = np.zeros((n, n, PAIR_FEATURES), dtype=np.float32)
    dist = Chem.GetDistanceMatrix(mol)
    out[..., 9] = np.where(dist < 1e6, dist, 0.0)  # RDKit writes 1e8 between fragments
    for ring in mol.GetRingInfo().AtomRings():
        idx = np.array(ring)
        out[idx[:, None], idx[None, :], 8] = 1
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        f = np.zeros(8, dtype=np.float32)
        t = str(bond.GetBondType())
        if t in BOND_TYPES:
            f[BOND_TYPES.index(t)] = 1
        stereo = str(bond.GetStereo())
        f[4], f[5] = stereo == "STEREOZ", stereo == "STEREOE"
        f[6], f[7] = bond.GetIsConjugated(), bond.IsInRing()
        out[i, j, :8] = out[j, i, :8] = f
    out[np.arange(n), np.arange(n)] = 0
    return out


# --------------------------------------------------------------------------------------- featurized, cached sets
CACHE_VERSION = 1


class ConformerDataError(ValueError):
    """A conformer data file that cannot be used (the message names the file, the record and the fix)."""


@dataclass
class ConformerSet:
    """One split, featurized, stored flat. Molecule k has n_k = num_atoms[k] heavy atoms:

    nodes[node_offsets[k]:node_offsets[k + 1]]   (n_k, node_dim) atom features (integers, int16)
    pairs[pair_offsets[k]:pair_offsets[k + 1]]   (n_k * n_k, 10) pair features, row-major over (i, j) (int8)
    coords[node_offsets[k]:node_offsets[k + 1]]  (n_k, 3) reference coordinates in Angstrom (float32)
    """
    names: List[str]
    smiles: List[str]
    nodes: "np.ndarray"
    node_offsets: "np.ndarray"
    pairs: "np.ndarray"
    pair_offsets: "np.ndarray"
    coords: "np.ndarray"
    unknown_elements: Dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_atoms(self) -> "np.ndarray":
        import numpy as np

        return np.diff(self.node_offsets)

    def graph(self, k: int) -> Tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
        """(nodes (n, node_dim), pairs (n, n, 10), coords (n, 3)) of molecule k, float32."""
        import numpy as np

        a, b = self.node_offsets[k], self.node_offsets[k + 1]
        n = int(b - a)
        pairs = self.pairs[self.pair_offsets[k]:self.pair_offsets[k + 1]].reshape(n, n, PAIR_FEATURES)
        return (self.nodes[a:b].astype(np.float32), pairs.astype(np.float32), self.coords[a:b].astype(np.float32))


def check_split_molecule(mol, k: int, path: str) -> None:
    """A record of a prepared split: heavy atoms only, and as many atoms as its ``smiles`` property (when set)."""
    from rdkit import Chem

    fix = "write the split with scripts/prepare_conformers.py (heavy atoms, one conformer per molecule)"
    if any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()):
        raise ConformerDataError(f"{path}: record {k} ({mol.GetProp('_Name') if mol.HasProp('_Name') else ''}) "
                                 f"has explicit hydrogens; the conformer task models heavy atoms only: {fix}")
    if mol.HasProp("smiles"):
        ref = Chem.MolFromSmiles(mol.GetProp("smiles"))
        if ref is None or ref.GetNumAtoms() != mol.GetNumAtoms():
            raise ConformerDataError(
                f"{path}: record {k} has {mol.GetNumAtoms()} atoms but its smiles property "
                f"{mol.GetProp('smiles')!r} has {'no readable molecule' if ref is None else ref.GetNumAtoms()}; "
                f"the coordinates do not belong to that SMILES: {fix}")


def featurize_conformers(mols: Sequence[object], element_set: str, path: str = "<molecules>") -> ConformerSet:
    """Atom and pair features (reference-code layout) and coordinates of every molecule; stereo is assigned from
    each molecule's 3-D conformer once, on a copy."""
    import numpy as np

    names, smiles, node_chunks, pair_chunks, coord_chunks = [], [], [], [], []
    unknown: Counter = Counter()
    for k, mol in enumerate(mols):
        check_split_molecule(mol, k, path)
        m = _with_stereo(mol)
        nodes, unk = _atom_features(m, element_set)
        unknown.update(unk)
        pairs = _pair_features(m)
        if pairs[..., 9].max(initial=0) > 127 or np.abs(nodes).max(initial=0) > 32767:
            raise ConformerDataError(f"{path}: record {k} is too large to cache (graph distance > 127)")
        names.append(m.GetProp("_Name") if m.HasProp("_Name") else f"{os.path.basename(path)}#{k}")
        smiles.append(m.GetProp("smiles") if m.HasProp("smiles") else canonical_no_stereo(m))
        node_chunks.append(nodes.astype(np.int16))
        pair_chunks.append(pairs.reshape(-1, PAIR_FEATURES).astype(np.int8))
        coord_chunks.append(m.GetConformer().GetPositions().astype(np.float32))
    n = [len(c) for c in node_chunks]
    dim = node_feature_dim(element_set)
    return ConformerSet(
        names, smiles,
        np.concatenate(node_chunks) if node_chunks else np.zeros((0, dim), np.int16),
        np.concatenate([[0], np.cumsum(n)]).astype(np.int64),
        np.concatenate(pair_chunks) if pair_chunks else np.zeros((0, PAIR_FEATURES), np.int8),
        np.concatenate([[0], np.cumsum([x * x for x in n])]).astype(np.int64),
        np.concatenate(coord_chunks) if coord_chunks else np.zeros((0, 3), np.float32),
        dict(unknown))


def load_conformer_set(sdf_path: str, element_set: str, cache_dir: Optional[str] = None) -> ConformerSet:
    """Featurizes a prepared split once and caches it (``<cache_dir>/<name>.<element_set>.conformers.npz``, keyed
    by the file's content digest; the cache of ``data/feature_cache``, as for ``mol_graph``), so later epochs and
    runs never call RDKit."""
    import json

    import numpy as np

    from .feature_cache import cached_features

    if not os.path.isfile(sdf_path):
        raise ConformerDataError(f"{sdf_path} not found: create the splits with scripts/prepare_conformers.py")
    fields = ("nodes", "node_offsets", "pairs", "pair_offsets", "coords")

    def build() -> Dict[str, "np.ndarray"]:
        try:
            mols = read_sdf(sdf_path)
        except ValueError as err:
            raise ConformerDataError(str(err)) from None
        cs = featurize_conformers(mols, element_set, sdf_path)
        return dict(names=np.array(cs.names, dtype=str), smiles=np.array(cs.smiles, dtype=str),
                    unknown_elements=np.array(json.dumps(cs.unknown_elements)),
                    **{f: getattr(cs, f) for f in fields})

    z = cached_features(sdf_path, f"{element_set}.conformers.npz", element_set, CACHE_VERSION, build, cache_dir)
    return ConformerSet([str(n) for n in z["names"]], [str(m) for m in z["smiles"]], *(z[f] for f in fields),
                        json.loads(str(z["unknown_elements"])))


def collate_conformers(graphs: Sequence[Tuple["np.ndarray", "np.ndarray", "np.ndarray"]]) -> Dict[str, object]:
    """Pads B molecules to N = the largest one: nodes (B, N, node_dim), pairs (B, N, N, 10), coords (B, N, 3)
    float tensors (zero at padding) and node_mask (B, N) bool."""
    import torch

    B = len(graphs)
    N = max((len(g[0]) for g in graphs), default=0)
    dim = graphs[0][0].shape[1] if graphs else 0
    nodes = torch.zeros(B, N, dim)
    pairs = torch.zeros(B, N, N, PAIR_FEATURES)
    coords = torch.zeros(B, N, 3)
    node_mask = torch.zeros(B, N, dtype=torch.bool)
    for b, (nd, pr, xyz) in enumerate(graphs):
        n = len(nd)
        nodes[b, :n] = torch.from_numpy(nd)
        pairs[b, :n, :n] = torch.from_numpy(pr)
        coords[b, :n] = torch.from_numpy(xyz)
        node_mask[b, :n] = True
    return {"nodes": nodes, "pairs": pairs, "coords": coords, "node_mask": node_mask}
