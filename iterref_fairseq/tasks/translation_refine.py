"""Task ``translation_refine``: parallel text for refinement-based NAT models.

It reads the same binarized data as fairseq's ``translation`` task (raw or distilled targets), supplies the
corruption process C of Hill et al. for the DAE term of Eq. (3.4) (``--corruption-prob``, see
``data/corruption.py``) and builds the iterative-refinement generator for fairseq-generate/-interactive.

Decoding flags (task-level because fairseq's generation config is fixed):
``--stop-criterion {unchanged,jaccard}``, ``--jaccard-window``, ``--keep-repeats``, ``--oracle-length``.
fairseq's ``--iter-decode-max-iter`` (idec), ``--iter-decode-force-max-iter``, ``--iter-decode-with-beam``,
``--retain-iter-history`` and ``--print-step`` keep their meaning (see generators/refinement.py for the
one difference: idec counts the initial decoder pass).
"""
import logging
from dataclasses import dataclass, field

import torch
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..data.corruption import corrupt_tokens
from ..generators.refinement import STOP_CRITERIA, IterativeRefinementDecoder

logger = logging.getLogger(__name__)


@dataclass
class TranslationRefineConfig(TranslationConfig):
    corruption_prob: float = field(
        default=0.1,
        metadata={"help": "beta: per-token probability of the corruption process C (repeat/replace/swap) used by "
                          "the DAE term; the thesis does not state its value, 0.1 follows Hill et al. (2016)"},
    )
    stop_criterion: ChoiceEnum(list(STOP_CRITERIA)) = field(
        default="unchanged",
        metadata={"help": "adaptive stop: 'unchanged' = output equals the previous one; 'jaccard' = reference "
                          "code's multiset test over a window of outputs"},
    )
    jaccard_window: int = field(default=5, metadata={"help": "window of the 'jaccard' stop criterion"})
    keep_repeats: bool = field(
        default=False, metadata={"help": "keep consecutive repeated tokens (by default they are collapsed, §3.6)"}
    )
    oracle_length: bool = field(
        default=False, metadata={"help": "decode with the reference target length (thesis Table 3.5)"}
    )


@register_task("translation_refine", dataclass=TranslationRefineConfig)
class TranslationRefineTask(TranslationTask):
    cfg: TranslationRefineConfig

    def corrupt(self, target: torch.Tensor) -> torch.Tensor:
        """Y~ ~ C(Y | Y*) for a (B, T) right-padded batch of target tokens."""
        d = self.target_dictionary
        return corrupt_tokens(target, d.pad(), self.cfg.corruption_prob, d.nspecial, len(d))

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        if getattr(args, "iter_decode_with_external_reranker", False):
            raise ValueError("--iter-decode-with-external-reranker is not supported by translation_refine")
        max_positions = [m.max_decoder_positions() for m in models if hasattr(m, "max_decoder_positions")]
        return IterativeRefinementDecoder(
            self.target_dictionary,
            max_iter=getattr(args, "iter_decode_max_iter", 10),
            force_max_iter=getattr(args, "iter_decode_force_max_iter", False),
            length_beam=getattr(args, "iter_decode_with_beam", 1),
            stop_criterion=self.cfg.stop_criterion,
            jaccard_window=self.cfg.jaccard_window,
            remove_repeats=not self.cfg.keep_repeats,
            oracle_length=self.cfg.oracle_length,
            retain_history=getattr(args, "retain_iter_history", False),
            max_len=min(max_positions) if max_positions else 1024,
        )

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        src = sample["net_input"]["src_tokens"]
        unk = src.eq(self.source_dictionary.unk())
        if bool(unk.any()):
            ids = sample.get("id", torch.arange(src.size(0)))[unk.any(1)].tolist()
            logger.warning(
                "%d source tokens are not in the source dictionary and are read as <unk> (sentence ids %s); "
                "apply the same tokenization and BPE as the training data", int(unk.sum()), ids[:20],
            )
        return super().inference_step(generator, models, sample, prefix_tokens, constraints)
