"""Task ``molecule_strings``: unconditional molecule generation (SMILES / SAFE) with insertion models.

Data from ``scripts/prepare_molecule_strings.py`` (constant prompt ``MOL``, atom-level tokens); training and
decoding as in ``star_graph`` (``<mask>`` added to the dictionary, tau-leaping for insertion models, fairseq's
generator for AR models). Sample and score molecules with ``iterref-generate-molecule-strings`` (validity,
uniqueness, diversity, quality; ``metrics/molecule_strings.py``).
"""
from dataclasses import dataclass, field

from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task

from .star_graph import InsertionGenerationConfig, StarGraphTask


@dataclass
class MoleculeStringsConfig(InsertionGenerationConfig):
    molecule_format: ChoiceEnum(["smiles", "safe"]) = field(
        default="smiles", metadata={"help": "string format of the targets (for decoding generated molecules)"})


@register_task("molecule_strings", dataclass=MoleculeStringsConfig)
class MoleculeStringsTask(StarGraphTask):
    cfg: MoleculeStringsConfig
