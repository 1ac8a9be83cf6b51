"""Task ``mol_graph``: molecules as padded graphs for the masked graph model (thesis ch. 5).

Data directory (written by ``scripts/prepare_qm9.py`` / ``scripts/prepare_moses.py``)::

    DATA/train.smi valid.smi test.smi   one SMILES per line
    DATA/vocab.json                     node-property vocabularies (built from train.smi on first use, then kept
                                        with the data so every run and checkpoint sees the same categories)
    DATA/cache/<split>.graphs.npz       featurized graphs (built once; later epochs and runs never call RDKit)

A batch is ``{"id", "nsentences", "ntokens" (atoms), "net_input": {"nodes" (B, N, 6), "edges" (B, N, N),
"node_mask" (B, N)}}`` with N the largest molecule of the batch. The masking noise is applied by the criterion
(``masked_graph_loss``), which draws alpha per graph.

SMILES that RDKit rejects (or that use categories missing from vocab.json) stop the run with a message naming the
file; ``--skip-invalid-smiles`` skips them instead and reports the count. ``--max-atoms`` drops larger molecules
(counted). The largest molecule of each split is logged (``max atoms``).
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import torch
from fairseq.data import FairseqDataset
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task

from ..data.molecules import (BOND_TYPES, NODE_PROPERTIES, FeaturizedSet, MoleculeError, MolVocab,
                              collate_graphs, load_featurized, read_smiles_file)

logger = logging.getLogger(__name__)


class MolGraphDataset(FairseqDataset):
    """Featurized graphs of one split; items are (nodes (n, 6), bonds (m, 3)) numpy arrays."""

    def __init__(self, fs: FeaturizedSet, indices: Optional[np.ndarray] = None):
        self.fs = fs
        self.indices = np.arange(len(fs)) if indices is None else np.asarray(indices)
        self.sizes = fs.num_atoms[self.indices].astype(np.int64)

    def __getitem__(self, index):
        nodes, bonds = self.fs.graph(int(self.indices[index]))
        return {"id": index, "nodes": nodes, "bonds": bonds}

    def __len__(self):
        return len(self.indices)

    def smiles(self, index: int) -> str:
        return self.fs.smiles[int(self.indices[index])]

    @property
    def max_atoms(self) -> int:
        return int(self.sizes.max()) if len(self.sizes) else 0

    def num_tokens(self, index):
        return int(self.sizes[index])

    def size(self, index):
        return int(self.sizes[index])

    def ordered_indices(self):
        # similar sizes together keeps padding (N^2 edges) small; fairseq shuffles the batches each epoch
        return np.argsort(self.sizes, kind="mergesort")

    def collater(self, samples):
        if not samples:
            return {}
        batch = collate_graphs([(s["nodes"], s["bonds"]) for s in samples])
        return {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": int(batch["node_mask"].sum()),
            "net_input": {"nodes": batch["nodes"], "edges": batch["edges"], "node_mask": batch["node_mask"]},
        }


@dataclass
class MolGraphConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "data directory with train.smi, valid.smi, test.smi"})
    max_atoms: Optional[int] = field(
        default=None, metadata={"help": "drop molecules with more heavy atoms than this (the count is logged)"}
    )
    skip_invalid_smiles: bool = field(
        default=False,
        metadata={"help": "skip SMILES that RDKit rejects (or with categories not in vocab.json) and report the "
                          "count, instead of stopping"},
    )


@register_task("mol_graph", dataclass=MolGraphConfig)
class MolGraphTask(FairseqTask):
    cfg: MolGraphConfig

    def __init__(self, cfg: MolGraphConfig, vocab: MolVocab):
        super().__init__(cfg)
        self.vocab = vocab

    @classmethod
    def setup_task(cls, cfg: MolGraphConfig, **kwargs):
        data = cfg.data
        if not data or not os.path.isdir(data):
            raise MoleculeError(f"molecule data directory not found: {data!r} (create it with "
                                "scripts/prepare_qm9.py --out DIR or scripts/prepare_moses.py --out DIR)")
        vocab_path = os.path.join(data, "vocab.json")
        if os.path.exists(vocab_path):
            vocab = MolVocab.load(vocab_path)
        else:
            train = os.path.join(data, "train.smi")
            vocab = MolVocab.from_smiles(read_smiles_file(train))
            if not vocab.values["atom_type"]:
                raise MoleculeError(f"{train} contains no molecule RDKit can read; re-run the prepare script")
            vocab.save(vocab_path)
            logger.info("wrote %s (vocabularies built from %s)", vocab_path, train)
        logger.info("node property sizes %s, bond types %s", dict(zip(NODE_PROPERTIES, vocab.sizes)), BOND_TYPES)
        return cls(cfg, vocab)

    def split_path(self, split: str) -> str:
        return os.path.join(self.cfg.data, f"{split}.smi")

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        path = self.split_path(split)
        if not os.path.exists(path):
            raise MoleculeError(f"{path} not found: the data directory needs {split}.smi (one SMILES per line)")
        fs = load_featurized(path, self.vocab)
        if fs.num_rejected:
            msg = (f"{path}: {fs.num_rejected} SMILES are rejected by RDKit or use atom types / charges / hydrogen "
                   f"counts not in {os.path.join(self.cfg.data, 'vocab.json')} (e.g. {fs.rejected_examples[:3]})")
            if not self.cfg.skip_invalid_smiles:
                raise MoleculeError(msg + "; clean the file with scripts/prepare_qm9.py / prepare_moses.py or pass "
                                          "--skip-invalid-smiles")
            logger.warning(msg + "; skipped (--skip-invalid-smiles)")
        if len(fs) == 0:
            raise MoleculeError(f"{path} has no usable molecule")
        indices = None
        if self.cfg.max_atoms:
            indices = np.nonzero(fs.num_atoms <= self.cfg.max_atoms)[0]
            dropped = len(fs) - len(indices)
            if dropped:
                logger.warning("%s: dropped %d molecules with more than %d atoms (--max-atoms)", path, dropped,
                               self.cfg.max_atoms)
        ds = MolGraphDataset(fs, indices)
        logger.info("%s: %d molecules, max atoms %d", split, len(ds), ds.max_atoms)
        self.datasets[split] = ds
        return ds

    def graph_marginals(self, split: str = "train") -> Dict[str, np.ndarray]:
        """Category frequencies over the training graphs (for marginal initialization, §5.3.3).

        Returns {"nodes": [ (V_k,) probabilities ], "edges": (5,) probabilities over all unordered atom pairs,
        "num_atoms": (max_atoms + 1,) probabilities of the molecule size}."""
        if split not in self.datasets:
            self.load_dataset(split)
        ds = self.datasets[split]
        fs = ds.fs
        rows = np.concatenate([np.arange(fs.node_offsets[k], fs.node_offsets[k + 1]) for k in ds.indices])
        nodes = fs.nodes[rows].astype(np.int64)
        node_p = []
        for k, size in enumerate(self.vocab.sizes):
            c = np.bincount(nodes[:, k], minlength=size).astype(np.float64)
            node_p.append(c / c.sum())
        brows = np.concatenate([np.arange(fs.bond_offsets[k], fs.bond_offsets[k + 1]) for k in ds.indices])
        edge_c = np.bincount(fs.bonds[brows, 2].astype(np.int64), minlength=len(BOND_TYPES)).astype(np.float64)
        n = ds.sizes.astype(np.float64)
        edge_c[0] = (n * (n - 1) / 2).sum() - edge_c[1:].sum()  # every pair without a bond is "no bond"
        size_c = np.bincount(ds.sizes).astype(np.float64)
        return {"nodes": node_p, "edges": edge_c / edge_c.sum(), "num_atoms": size_c / size_c.sum()}

    def max_positions(self):
        return None

    @property
    def source_dictionary(self):
        return None

    @property
    def target_dictionary(self):
        return None
