"""Task ``conformer``: molecular graphs with one reference 3-D conformer each, for the CVGAE (thesis ch. 6).

Data directory (written by ``scripts/prepare_conformers.py``)::

    DATA/train.sdf valid.sdf test.sdf                      heavy atoms, one conformer per molecule
    DATA/cache/<split>.<element set>.conformers.npz        features (built once; later runs never call RDKit)

A batch is ``{"id", "nsentences" (molecules), "ntokens" (atoms), "net_input": {"nodes" (B, N, node_dim),
"pairs" (B, N, N, 10), "node_mask" (B, N), "coords" (B, N, 3)}}`` with N the largest molecule of the batch.
``coords`` (the reference conformer) is the posterior's input and the reconstruction target; generation reads only
nodes, pairs and node_mask. Features follow the reference code's layout (``data/conformers.py``).

Bad input stops with one message: a split file that is missing, has hydrogens or a record whose ``smiles`` property
has another atom count, molecules larger than ``--max-atoms`` (counted). Elements outside ``--element-set`` are
kept with an all-zero element one-hot, as in the reference code, and their counts are logged.

fairseq rounds batch sizes above 8 to multiples of ``--required-batch-size-multiple`` (8 by default): pass
``--required-batch-size-multiple 1`` to get the thesis's batch of 20 molecules.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from fairseq.data import FairseqDataset
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import FairseqTask, register_task

from ..data.conformers import (ELEMENTS, PAIR_FEATURES, ConformerDataError, ConformerSet, collate_conformers,
                               load_conformer_set, node_feature_dim)

logger = logging.getLogger(__name__)


class ConformerDataset(FairseqDataset):
    """Molecules of one split; items are (nodes, pairs, coords) float32 arrays."""

    def __init__(self, cs: ConformerSet):
        self.cs = cs
        self.sizes = cs.num_atoms.astype(np.int64)

    def __getitem__(self, index):
        nodes, pairs, coords = self.cs.graph(index)
        return {"id": index, "nodes": nodes, "pairs": pairs, "coords": coords}

    def __len__(self):
        return len(self.cs)

    @property
    def max_atoms(self) -> int:
        return int(self.sizes.max()) if len(self.sizes) else 0

    def num_tokens(self, index):
        return int(self.sizes[index])

    def size(self, index):
        return int(self.sizes[index])

    def ordered_indices(self):
        # similar sizes together keeps the N^2 pair padding small; fairseq shuffles the batches every epoch
        return np.argsort(self.sizes, kind="mergesort")

    def collater(self, samples):
        if not samples:
            return {}
        batch = collate_conformers([(s["nodes"], s["pairs"], s["coords"]) for s in samples])
        return {
            "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
            "nsentences": len(samples),
            "ntokens": int(batch["node_mask"].sum()),
            "net_input": batch,
        }


@dataclass
class ConformerConfig(FairseqDataclass):
    data: str = field(default="", metadata={"help": "data directory with train.sdf, valid.sdf, test.sdf"})
    element_set: ChoiceEnum(list(ELEMENTS)) = field(
        default="qm9", metadata={"help": "atom-type one-hot of the node features: qm9 (C N O F, 22 features) or "
                                         "cod (15 elements, 35 features), the reference code's layouts"})
    max_atoms: Optional[int] = field(
        default=None, metadata={"help": "refuse molecules with more heavy atoms (the count is reported); the "
                                        "thesis's n_max is 9 on QM9 and 50 on COD / CSD"})


@register_task("conformer", dataclass=ConformerConfig)
class ConformerTask(FairseqTask):
    cfg: ConformerConfig

    @classmethod
    def setup_task(cls, cfg: ConformerConfig, **kwargs):
        if not cfg.data or not os.path.isdir(cfg.data):
            raise ConformerDataError(f"conformer data directory not found: {cfg.data!r} (create it with "
                                     "scripts/prepare_conformers.py --qm9 --out DIR)")
        return cls(cfg)

    @property
    def node_dim(self) -> int:
        return node_feature_dim(str(self.cfg.element_set))

    @property
    def pair_dim(self) -> int:
        return PAIR_FEATURES

    def split_path(self, split: str) -> str:
        return os.path.join(self.cfg.data, f"{split}.sdf")

    def load_dataset(self, split, epoch=1, combine=False, **kwargs):
        path = self.split_path(split)
        cs = load_conformer_set(path, str(self.cfg.element_set))
        if len(cs) == 0:
            raise ConformerDataError(f"{path} has no molecule; re-run scripts/prepare_conformers.py")
        if self.cfg.max_atoms:
            over = int((cs.num_atoms > self.cfg.max_atoms).sum())
            if over:
                raise ConformerDataError(
                    f"{path}: {over} of {len(cs)} molecules have more than --max-atoms {self.cfg.max_atoms} heavy "
                    f"atoms (largest {int(cs.num_atoms.max())}); raise --max-atoms or prepare the data with "
                    f"scripts/prepare_conformers.py --max-atoms {self.cfg.max_atoms}")
        if cs.unknown_elements:
            logger.warning("%s: atoms of elements outside --element-set %s (all-zero element one-hot, as in the "
                           "reference code): %s", path, self.cfg.element_set, cs.unknown_elements)
        ds = ConformerDataset(cs)
        logger.info("%s: %d molecules, max heavy atoms %d", split, len(ds), ds.max_atoms)
        self.datasets[split] = ds
        return ds

    def max_positions(self):
        return None

    @property
    def source_dictionary(self):
        return None

    @property
    def target_dictionary(self):
        return None
