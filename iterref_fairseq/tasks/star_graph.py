"""Task ``star_graph``: prompt-conditioned insertion generation (FlexMDM / LFlexMDM) and AR baselines.

Data: ``iterref-make-star-graphs --difficulty D --seed S --out DIR`` writes
``{train,valid,test}.{src,tgt}`` (prompt / path) and binarizes them with a fixed joined dictionary. The task reads
them like fairseq's ``translation`` task (``-s src -t tgt``) and adds ``<mask>`` to the dictionary.

Generation: models that expose the insertion hooks (``rates``, ``mask_index``) are decoded by the tau-leaping
sampler (``generators/tau_leaping.py``); any other model (e.g. fairseq's ``transformer`` trained as the AR
baseline on the same data) by fairseq's own generator. ``--scoring exact_match`` makes fairseq-generate print the
exact-match accuracy (percentage of hypotheses equal to the reference path) and a JSON summary line.

Decoding flags: ``--sampling-steps N`` (tau-leaping steps), ``--confidence {none,top_prob,prob_diff,entropy}``,
``--max-insert-length`` (L_max guard; 0 = model maximum), ``--sampler-seed``; fairseq's ``--sampling-topk``,
``--sampling-topp``, ``--temperature`` and ``--retain-iter-history`` keep their meaning.
"""
import json
import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..generators.tau_leaping import CONFIDENCE, TauLeapingSampler
from ..models.flexmdm import MASK_SYMBOL

logger = logging.getLogger(__name__)


@dataclass
class InsertionGenerationConfig(TranslationConfig):
    sampling_steps: int = field(default=64, metadata={"help": "number of tau-leaping steps (paper: T / dt)"})
    confidence: ChoiceEnum(list(CONFIDENCE)) = field(
        default="none", metadata={"help": "which masked positions are revealed at each step (none = random)"})
    max_insert_length: int = field(
        default=0, metadata={"help": "L_max guard on generated content tokens (0 = the model's maximum)"})
    sampler_seed: Optional[int] = field(
        default=None, metadata={"help": "seed of the sampler's private RNG (default: fairseq's --seed RNG)"})


@register_task("star_graph", dataclass=InsertionGenerationConfig)
class StarGraphTask(TranslationTask):
    cfg: InsertionGenerationConfig

    @classmethod
    def load_dictionary(cls, filename):
        d = super().load_dictionary(filename)
        d.add_symbol(MASK_SYMBOL)  # never in the data; needed by insertion models
        return d

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        if not all(hasattr(m, "rates") and hasattr(m, "mask_index") for m in models):
            return super().build_generator(models, args, seq_gen_cls, extra_gen_cls_kwargs, **kwargs)
        return TauLeapingSampler(
            self.target_dictionary,
            sampling_steps=self.cfg.sampling_steps,
            max_len=self.cfg.max_insert_length,
            top_k=getattr(args, "sampling_topk", -1),
            top_p=getattr(args, "sampling_topp", -1.0) if getattr(args, "sampling_topp", -1.0) > 0 else 1.0,
            temperature=getattr(args, "temperature", 1.0),
            confidence=self.cfg.confidence,
            seed=self.cfg.sampler_seed,
            retain_history=getattr(args, "retain_iter_history", False),
        )


@dataclass
class ExactMatchConfig(FairseqDataclass):
    pass


@register_scorer("exact_match", dataclass=ExactMatchConfig)
class ExactMatchScorer(BaseScorer):
    """Percentage of hypotheses equal to their reference (whitespace-normalised)."""

    def add_string(self, ref: str, pred: str) -> None:
        self.ref.append(" ".join(ref.split()))
        self.pred.append(" ".join(pred.split()))

    def score(self) -> float:
        return 100.0 * sum(r == p for r, p in zip(self.ref, self.pred)) / max(len(self.ref), 1)

    def result_string(self) -> str:
        hits = sum(r == p for r, p in zip(self.ref, self.pred))
        summary = json.dumps({"exact_match": round(self.score(), 2), "correct": hits, "total": len(self.ref)})
        return f"exact_match = {self.score():.2f} ({hits}/{len(self.ref)})\nJSON {summary}"
