"""Molecules as graphs: RDKit SMILES <-> categorical graph tensors (thesis §5.4.2), shared by ``mol_graph``.

A molecule with n heavy atoms becomes

* ``nodes``: (n, 6) long, one category index per node property (§5.4.2.1), in the order of
  :data:`NODE_PROPERTIES`: atom type, number of hydrogens, formal charge, chirality tag, is-in-ring, is-aromatic;
* ``bonds``: (m, 3) long rows (i, j, bond type) with i < j for the m real bonds; every other pair of atoms is
  "no bond". :func:`dense_edges` turns this into the (n, n) symmetric matrix of :data:`BOND_TYPES` indices.

Every vocabulary has one extra MASK entry at index ``len(values)`` (``MolVocab.mask_index``); the bond vocabulary
is fixed (none, single, double, triple, aromatic; MASK = 5). Atom types, hydrogen counts and charges are read
from the training split and stored with the data (``vocab.json``); chirality, ring and aromatic flags are fixed.

Graph -> molecule (:func:`graph_to_mol`) rebuilds an RDKit molecule with explicit hydrogen counts and sanitizes
it; ``None`` means the graph is not a valid molecule (that is what the validity metric counts).

Chirality tags are defined by RDKit relative to the order in which an atom's bonds were added. The rebuilt
molecule adds bonds in sorted (i, j) order, so an atom's neighbours appear in ascending index order. When
featurizing we therefore flip CW <-> CCW whenever the permutation from RDKit's neighbour order to ascending order
is odd, so that the round trip SMILES -> graph -> SMILES keeps the stereo configuration.

Example: ethanol "CCO" -> nodes [[C,3H,0,unspec,0,0], [C,2H,...], [O,1H,...]] (as indices), bonds
[[0,1,single],[1,2,single]].
"""
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .feature_cache import cached_features

logger = logging.getLogger(__name__)

NODE_PROPERTIES: Tuple[str, ...] = ("atom_type", "num_hs", "formal_charge", "chirality", "in_ring", "aromatic")
BOND_TYPES: Tuple[str, ...] = ("none", "single", "double", "triple", "aromatic")
NO_BOND = 0
BOND_MASK = len(BOND_TYPES)  # index of MASK in the bond vocabulary
CHIRALITY_TAGS: Tuple[str, ...] = ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW", "CHI_OTHER")
CACHE_VERSION = 1


class MoleculeError(ValueError):
    """A SMILES string or data file that cannot be used (message names the input and the fix)."""


def _chem():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # RDKit prints parse errors on stderr; we count and report them ourselves
    return Chem


@dataclass
class MolVocab:
    """Category values of every node property; index ``len(values[p])`` is MASK for property p."""

    values: Dict[str, List] = field(default_factory=dict)

    @classmethod
    def fixed_defaults(cls) -> "MolVocab":
        return cls({"atom_type": [], "num_hs": [], "formal_charge": [], "chirality": list(CHIRALITY_TAGS),
                    "in_ring": [False, True], "aromatic": [False, True]})

    @classmethod
    def from_smiles(cls, smiles: Iterable[str]) -> "MolVocab":
        """Collects atom types, hydrogen counts and charges seen in ``smiles`` (unparsable strings are ignored)."""
        Chem = _chem()
        seen = {"atom_type": set(), "num_hs": set(), "formal_charge": set()}
        for s in smiles:
            mol = Chem.MolFromSmiles(s)
            if mol is None:
                continue
            for a in mol.GetAtoms():
                seen["atom_type"].add(a.GetSymbol())
                seen["num_hs"].add(int(a.GetTotalNumHs()))
                seen["formal_charge"].add(int(a.GetFormalCharge()))
        vocab = cls.fixed_defaults()
        vocab.values["atom_type"] = sorted(seen["atom_type"])
        vocab.values["num_hs"] = sorted(seen["num_hs"])
        vocab.values["formal_charge"] = sorted(seen["formal_charge"])
        return vocab

    @property
    def sizes(self) -> List[int]:
        """Number of real categories per node property (MASK excluded), in NODE_PROPERTIES order."""
        return [len(self.values[p]) for p in NODE_PROPERTIES]

    @property
    def mask_index(self) -> List[int]:
        return self.sizes

    def index(self, prop: str, value) -> int:
        try:
            return self.values[prop].index(value)
        except ValueError:
            raise KeyError(f"{prop}={value!r} is not in the vocabulary {self.values[prop]}") from None

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({"node_properties": list(NODE_PROPERTIES), "bond_types": list(BOND_TYPES),
                       "values": self.values}, f, indent=1)

    @classmethod
    def load(cls, path: str) -> "MolVocab":
        with open(path) as f:
            data = json.load(f)
        if tuple(data.get("node_properties", ())) != NODE_PROPERTIES:
            raise MoleculeError(f"{path}: not a molecule vocabulary of this version; delete it to rebuild it")
        return cls(data["values"])

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(self.values, sort_keys=True).encode()).hexdigest()[:12]


def _permutation_parity(order: Sequence[int]) -> int:
    """0 for an even permutation of sorted(order), 1 for odd (counts inversions; neighbour lists are tiny)."""
    inv = 0
    for a in range(len(order)):
        for b in range(a + 1, len(order)):
            inv += order[a] > order[b]
    return inv % 2


def mol_to_graph(mol, vocab: MolVocab) -> Tuple[np.ndarray, np.ndarray]:
    """RDKit molecule (heavy atoms, sanitized) -> (nodes (n, 6) int64, bonds (m, 3) int64 with i < j).

    Raises KeyError when a property value is not in ``vocab``."""
    Chem = _chem()
    bond_index = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3,
                  Chem.BondType.AROMATIC: 4}
    nodes = np.zeros((mol.GetNumAtoms(), len(NODE_PROPERTIES)), dtype=np.int64)
    for a in mol.GetAtoms():
        tag = str(a.GetChiralTag())
        tag = tag if tag in CHIRALITY_TAGS else "CHI_OTHER"
        if tag in ("CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW"):
            neighbours = [b.GetOtherAtomIdx(a.GetIdx()) for b in a.GetBonds()]
            if _permutation_parity(neighbours):  # see module docstring: re-express for ascending bond order
                tag = "CHI_TETRAHEDRAL_CCW" if tag == "CHI_TETRAHEDRAL_CW" else "CHI_TETRAHEDRAL_CW"
        values = (a.GetSymbol(), int(a.GetTotalNumHs()), int(a.GetFormalCharge()), tag, bool(a.IsInRing()),
                  bool(a.GetIsAromatic()))
        nodes[a.GetIdx()] = [vocab.index(p, v) for p, v in zip(NODE_PROPERTIES, values)]
    bonds = []
    for b in mol.GetBonds():
        i, j = sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
        if b.GetBondType() not in bond_index:
            raise KeyError(f"bond type {b.GetBondType()} is not one of {BOND_TYPES[1:]}")
        bonds.append((i, j, bond_index[b.GetBondType()]))
    bonds_arr = np.array(sorted(bonds), dtype=np.int64).reshape(-1, 3)
    return nodes, bonds_arr


def smiles_to_graph(smiles: str, vocab: MolVocab) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """SMILES -> (nodes, bonds), or None when RDKit rejects the string or a value is outside ``vocab``."""
    Chem = _chem()
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    try:
        return mol_to_graph(mol, vocab)
    except KeyError:
        return None


def dense_edges(bonds: np.ndarray, n: int) -> np.ndarray:
    """(m, 3) bond rows -> (n, n) symmetric bond-type matrix (0 = no bond, diagonal 0)."""
    adj = np.zeros((n, n), dtype=np.int64)
    if len(bonds):
        adj[bonds[:, 0], bonds[:, 1]] = bonds[:, 2]
        adj[bonds[:, 1], bonds[:, 0]] = bonds[:, 2]
    return adj


def graph_to_mol(nodes: np.ndarray, edges: np.ndarray, vocab: MolVocab, sanitize: bool = True):
    """(n, 6) node categories + (n, n) bond types -> sanitized RDKit Mol, or None if it is not a valid molecule.

    MASK entries make a graph invalid. The in-ring flag is not used: RDKit derives it from the bonds. With
    ``sanitize=False`` the unsanitized molecule is returned (None only when it cannot even be assembled)."""
    Chem = _chem()
    nodes = np.asarray(nodes)
    edges = np.asarray(edges)
    sizes = vocab.sizes
    bond_types = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE,
                  4: Chem.BondType.AROMATIC}
    rw = Chem.RWMol()
    try:
        for row in nodes:
            if any(int(v) >= s for v, s in zip(row, sizes)):
                return None  # a MASK (or out-of-range) value left in the graph
            vals = {p: vocab.values[p][int(v)] for p, v in zip(NODE_PROPERTIES, row)}
            atom = Chem.Atom(vals["atom_type"])
            atom.SetFormalCharge(int(vals["formal_charge"]))
            atom.SetNumExplicitHs(int(vals["num_hs"]))
            atom.SetNoImplicit(True)  # the hydrogen count is a node property, not inferred
            atom.SetChiralTag(getattr(Chem.ChiralType, vals["chirality"]))
            atom.SetIsAromatic(bool(vals["aromatic"]))
            rw.AddAtom(atom)
        n = len(nodes)
        for i in range(n):
            for j in range(i + 1, n):
                t = int(edges[i, j])
                if t == NO_BOND:
                    continue
                if t not in bond_types:
                    return None
                rw.AddBond(i, j, bond_types[t])
                if t == 4:
                    rw.GetBondBetweenAtoms(i, j).SetIsAromatic(True)
        mol = rw.GetMol()
        if not sanitize:
            return mol
        Chem.SanitizeMol(mol)
        # drop chirality tags on atoms that are not stereocentres (as MolFromSmiles does)
        Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    except Exception:  # RDKit raises several exception types for impossible valences / kekulization
        return None
    if mol.GetNumAtoms() == 0:
        return None
    return mol


INVALID_SMILES = "INVALID"  # written for graphs that are not molecules; RDKit rejects it (V is not organic-subset)


def graph_to_smiles(nodes: np.ndarray, edges: np.ndarray, vocab: MolVocab) -> Tuple[str, bool]:
    """-> (canonical SMILES, True) for a valid graph, (INVALID_SMILES, False) otherwise.

    Writing the SMILES of the unsanitized molecule instead is not safe: RDKit can crash (segfault) on it."""
    Chem = _chem()
    mol = graph_to_mol(nodes, edges, vocab)
    if mol is None:
        return INVALID_SMILES, False
    return Chem.MolToSmiles(mol), True


def canonical_smiles(smiles: str, isomeric: bool = True) -> Optional[str]:
    """Canonical SMILES, or None when RDKit rejects the string (or it has no atoms)."""
    Chem = _chem()
    mol = Chem.MolFromSmiles(smiles) if smiles else None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol, isomericSmiles=isomeric)


def read_smiles_file(path: str) -> List[str]:
    """One SMILES per line (first whitespace-separated field; a header line 'smiles'/'SMILES' is skipped)."""
    if not os.path.isfile(path):
        raise MoleculeError(f"SMILES file not found: {path} (create it with scripts/prepare_qm9.py or "
                            "scripts/prepare_moses.py, or check the path)")
    out = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for i, line in enumerate(f):
                field0 = line.strip().split()[0] if line.strip() else ""
                if i == 0 and field0.lower() == "smiles":
                    continue
                out.append(field0)
        except UnicodeDecodeError:
            raise MoleculeError(f"{path} is not a text file of SMILES (one per line)") from None
    return out


# ---------------------------------------------------------------------------------------------------------------
# featurized, on-disk cached datasets


@dataclass
class FeaturizedSet:
    """Graphs of one split stored flat: node rows of molecule k are nodes[node_offsets[k]:node_offsets[k+1]]."""

    smiles: List[str]
    nodes: np.ndarray  # (total_atoms, 6) int16
    node_offsets: np.ndarray  # (K+1,) int64
    bonds: np.ndarray  # (total_bonds, 3) int16, atom indices local to the molecule
    bond_offsets: np.ndarray  # (K+1,) int64
    num_rejected: int = 0
    rejected_examples: List[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.smiles)

    @property
    def num_atoms(self) -> np.ndarray:
        return np.diff(self.node_offsets)

    def graph(self, k: int) -> Tuple[np.ndarray, np.ndarray]:
        nodes = self.nodes[self.node_offsets[k]:self.node_offsets[k + 1]].astype(np.int64)
        bonds = self.bonds[self.bond_offsets[k]:self.bond_offsets[k + 1]].astype(np.int64)
        return nodes, bonds


def featurize(smiles: Sequence[str], vocab: MolVocab) -> FeaturizedSet:
    """Featurizes every SMILES; the ones RDKit rejects (or with values outside ``vocab``) are skipped and counted."""
    kept, node_chunks, bond_chunks, n_nodes, n_bonds, rejected = [], [], [], [0], [0], []
    for s in smiles:
        g = smiles_to_graph(s, vocab)
        if g is None:
            rejected.append(s)
            continue
        kept.append(s)
        node_chunks.append(g[0])
        bond_chunks.append(g[1])
        n_nodes.append(n_nodes[-1] + len(g[0]))
        n_bonds.append(n_bonds[-1] + len(g[1]))
    nodes = np.concatenate(node_chunks).astype(np.int16) if node_chunks else np.zeros((0, 6), np.int16)
    bonds = np.concatenate(bond_chunks).astype(np.int16) if bond_chunks else np.zeros((0, 3), np.int16)
    return FeaturizedSet(kept, nodes, np.array(n_nodes, np.int64), bonds, np.array(n_bonds, np.int64),
                         len(rejected), rejected[:10])


def load_featurized(smi_path: str, vocab: MolVocab, cache_dir: Optional[str] = None) -> FeaturizedSet:
    """Featurizes ``smi_path`` once and caches the arrays (``<cache_dir>/<name>.graphs.npz``, ``data/feature_cache``).

    The cache is keyed by the file's content digest and the vocabulary, so an edited file or vocabulary is
    featurized again; a second epoch (or run) reads the cache and never calls RDKit."""
    def build() -> Dict[str, np.ndarray]:
        fs = featurize(read_smiles_file(smi_path), vocab)
        return dict(smiles=np.array(fs.smiles, dtype=str), nodes=fs.nodes, node_offsets=fs.node_offsets,
                    bonds=fs.bonds, bond_offsets=fs.bond_offsets, num_rejected=np.array(fs.num_rejected),
                    rejected_examples=np.array(fs.rejected_examples, dtype=str))

    z = cached_features(smi_path, "graphs.npz", vocab.digest(), CACHE_VERSION, build, cache_dir)
    return FeaturizedSet([str(s) for s in z["smiles"]], z["nodes"], z["node_offsets"], z["bonds"],
                         z["bond_offsets"], int(z["num_rejected"]), [str(s) for s in z["rejected_examples"]])


# ---------------------------------------------------------------------------------------------------------------
# batching and masking


def collate_graphs(graphs: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Dict[str, torch.Tensor]:
    """Pads B graphs to N = max atoms.

    Returns nodes (B, N, 6) long (0 at padding), edges (B, N, N) long (0 = no bond at padding and diagonal),
    node_mask (B, N) bool, edge_mask (B, N, N) bool (real i != j pairs)."""
    B = len(graphs)
    N = max((len(g[0]) for g in graphs), default=0)
    nodes = torch.zeros(B, N, len(NODE_PROPERTIES), dtype=torch.long)
    edges = torch.zeros(B, N, N, dtype=torch.long)
    node_mask = torch.zeros(B, N, dtype=torch.bool)
    for b, (nd, bd) in enumerate(graphs):
        n = len(nd)
        nodes[b, :n] = torch.as_tensor(nd, dtype=torch.long)
        edges[b, :n, :n] = torch.as_tensor(dense_edges(np.asarray(bd), n))
        node_mask[b, :n] = True
    return {"nodes": nodes, "edges": edges, "node_mask": node_mask, "edge_mask": pair_mask(node_mask)}


def pair_mask(node_mask: torch.Tensor) -> torch.Tensor:
    """(B, N) -> (B, N, N): both atoms real and i != j."""
    N = node_mask.size(1)
    eye = torch.eye(N, dtype=torch.bool, device=node_mask.device)
    return node_mask.unsqueeze(2) & node_mask.unsqueeze(1) & ~eye


def sample_component_masks(node_mask: torch.Tensor, alpha: torch.Tensor,
                           generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Which components to mask: each node property of each real node and each unordered atom pair is chosen
    independently with probability alpha_b of its graph (§5.4.3; properties of one node independently, §5.4.2.1).

    Args:
        node_mask: (B, N) bool; alpha: (B,) float in [0, 1].
    Returns:
        node_sel (B, N, 6) bool, edge_sel (B, N, N) bool, symmetric, False on the diagonal and padding.
    """
    B, N = node_mask.shape
    dev = node_mask.device
    a = alpha.to(dev).float()
    u_nodes = torch.rand(B, N, len(NODE_PROPERTIES), generator=generator, device=dev)
    node_sel = (u_nodes < a.view(B, 1, 1)) & node_mask.unsqueeze(-1)
    u_edges = torch.rand(B, N, N, generator=generator, device=dev)
    upper = torch.triu(torch.ones(N, N, dtype=torch.bool, device=dev), diagonal=1)
    sel = (u_edges < a.view(B, 1, 1)) & upper & pair_mask(node_mask)
    edge_sel = sel | sel.transpose(1, 2)  # one decision per unordered pair (a bond is one component)
    return node_sel, edge_sel


def sample_component_fraction(node_mask: torch.Tensor, alpha: float,
                              generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Which components to mask at a generation step (thesis §5.3.3: "sample uniformly at random a fraction alpha
    of components"): per graph, exactly k = max(1, round(alpha C)) of its C components, chosen uniformly without
    replacement, where the components are the 6 properties of each real node and each unordered pair of real
    nodes (a bond or its absence). Example: 3 atoms give C = 6 * 3 + 3 = 21; alpha = 0.1 masks round(2.1) = 2.

    Args:
        node_mask: (B, N) bool; alpha: the fraction, in (0, 1].
    Returns:
        node_sel (B, N, 6) bool, edge_sel (B, N, N) bool, symmetric, False on the diagonal and padding.
    """
    B, N = node_mask.shape
    dev = node_mask.device
    P = len(NODE_PROPERTIES)
    upper = torch.triu(torch.ones(N, N, dtype=torch.bool, device=dev), diagonal=1)
    node_ok = node_mask.unsqueeze(-1).expand(B, N, P).reshape(B, N * P)
    pair_ok = (pair_mask(node_mask) & upper).reshape(B, N * N)
    ok = torch.cat([node_ok, pair_ok], 1)  # (B, N*P + N*N): every component of every graph, padding excluded
    n_comp = ok.sum(1)
    k = torch.clamp(torch.round(alpha * n_comp.double()).long(), min=1)
    k = torch.minimum(k, n_comp)
    # a uniform random order of each graph's components: the k smallest keys are a uniform k-subset
    keys = torch.rand(ok.shape, generator=generator, device=dev).masked_fill(~ok, 2.0)
    rank = keys.argsort(1).argsort(1)
    chosen = (rank < k.unsqueeze(1)) & ok
    node_sel = chosen[:, : N * P].view(B, N, P)
    sel = chosen[:, N * P:].view(B, N, N)
    return node_sel, sel | sel.transpose(1, 2)


def apply_masks(nodes: torch.Tensor, edges: torch.Tensor, node_sel: torch.Tensor, edge_sel: torch.Tensor,
                node_mask_values: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Replaces selected components by MASK. node_mask_values: (6,) long, the MASK index of each property."""
    masked_nodes = torch.where(node_sel, node_mask_values.view(1, 1, -1).to(nodes), nodes)
    masked_edges = edges.masked_fill(edge_sel, BOND_MASK)
    return masked_nodes, masked_edges
