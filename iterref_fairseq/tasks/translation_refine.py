"""Task ``translation_refine``: parallel text for refinement-based NAT models.

It reads the same binarized data as fairseq's ``translation`` task (raw or distilled targets), supplies the
corruption process C of Hill et al. for the DAE term of Eq. (3.4) (``--corruption-schedule``,
``--corruption-prob``, see ``data/corruption.py``) and builds the iterative-refinement generator for fairseq-generate/-interactive.

Decoding flags (task-level because fairseq's generation config is fixed):
``--stop-criterion {unchanged,jaccard}``, ``--jaccard-window``, ``--keep-repeats``, ``--oracle-length``.
fairseq's ``--iter-decode-max-iter`` (idec), ``--iter-decode-force-max-iter``, ``--iter-decode-with-beam``,
``--retain-iter-history`` and ``--print-step`` keep their meaning (see generators/refinement.py for the
one difference: idec counts the initial decoder pass).

Models that set ``iterref_generator = "generalized"`` (the masked translation model) are decoded by the
generalized generator of thesis chapter 4 (``generators/generalized.py``) with the flags
``--decoding-strategy``, ``--strategy-weights``, ``--strategy-temperature``, ``--decoding-budget``,
``--tokens-per-step``, ``--length-candidates``, ``--length-from``, ``--length-selection``, ``--position-beam``, ``--rescore-path``,
``--policy-path``, ``--decoding-seed`` and fairseq's ``--beam`` (K = K''), ``--retain-iter-history``,
``--print-step``; see docs/masked_translation.md.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from ..data.corruption import corrupt_tokens
from ..generators.latent import LATENT_INFERENCE
from ..generators.refinement import STOP_CRITERIA, IterativeRefinementDecoder
from ..generators.strategies import STRATEGY_REGISTRY

logger = logging.getLogger(__name__)


@dataclass
class TranslationRefineConfig(TranslationConfig):
    corruption_prob: float = field(
        default=0.1,
        metadata={"help": "beta of --corruption-schedule constant: per-token probability of the corruption process "
                          "C (repeat/replace/swap) used by the DAE term; the thesis does not state it, 0.1 is the "
                          "reference code's constant default"},
    )
    corruption_schedule: ChoiceEnum(["layerwise", "constant"]) = field(
        default="layerwise",
        metadata={"help": "beta per refinement step: 'layerwise' = the reference code's schedule, strong noise "
                          "early and weak late, linear from 0.9 (excluded) down to 0.1 over itrain-1 steps "
                          "(0.63 / 0.37 / 0.10 at itrain 4); 'constant' = --corruption-prob for every step"},
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
    # ---- generalized generation (masked translation model, thesis chapter 4)
    decoding_strategy: str = field(
        default="left2right",
        metadata={"help": "coordinate selection: " + ", ".join(sorted(STRATEGY_REGISTRY))},
    )
    strategy_weights: Optional[str] = field(
        default=None, metadata={"help": "alpha_negent,alpha_logp,alpha_pos of the log-linear strategy (Eq. 4.2)"}
    )
    strategy_temperature: float = field(default=1.0, metadata={"help": "tau of Eq. 4.2"})
    decoding_budget: str = field(
        default="L", metadata={"help": "T: L or 2L (linear time) or a number of steps (constant time)"}
    )
    tokens_per_step: ChoiceEnum(["one", "ceil", "anneal"]) = field(
        default="one", metadata={"help": "o_t: one position per step, ceil(L/T), or annealed L -> 1"}
    )
    length_candidates: int = field(default=1, metadata={"help": "number of length candidates per sentence"})
    length_from: ChoiceEnum(["model", "train-stats"]) = field(
        default="model",
        metadata={"help": "length candidates from the model's length head or the most frequent target lengths "
                          "for the source length in the training data (Table 4.1)"},
    )
    position_beam: int = field(default=1, metadata={"help": "K': positions tried per hypothesis and step"})
    rescore_path: Optional[str] = field(
        default=None, metadata={"help": "autoregressive fairseq checkpoint that picks among length candidates"}
    )
    length_selection: ChoiceEnum(["pll", "mean-logp"]) = field(
        default="pll",
        metadata={"help": "final choice among length candidates without --rescore-path: pseudo log-likelihood (the "
                          "thesis; one extra pass per target position) or the mean log-probability of the symbols "
                          "when they were written (mask-predict; no extra pass)"},
    )
    policy_path: Optional[str] = field(
        default=None, metadata={"help": "policy file for --decoding-strategy learned (iterref-train-policy)"}
    )
    decoding_seed: int = field(default=1, metadata={"help": "seed of the uniform strategy's random order and of "
                                                            "the latent-search noise"})
    # ---- inference in continuous latent space (LaNMT, generators/latent.py)
    latent_inference: ChoiceEnum(list(LATENT_INFERENCE)) = field(
        default="delta",
        metadata={"help": "LaNMT decoding: 'prior' = decode the prior mean once; 'delta' = delta inference (z <- "
                          "E_q(z|x,y_hat), decode, until unchanged); 'score' / 'energy' = z <- z + alpha S(z) with "
                          "the network of --score-path"},
    )
    latent_step_size: float = field(default=0.8, metadata={"help": "alpha of the score / energy update"})
    score_path: Optional[str] = field(
        default=None, metadata={"help": "score or energy network (fairseq-train --arch lanmt_score_*) for "
                                        "--latent-inference score|energy"})
    latent_search_samples: int = field(
        default=1, metadata={"help": "latent search: N latents per sentence decoded in one batch (1 = off); the "
                                     "best by --rescore-path's teacher, or by the model's own mean log-probability"})
    latent_search_noise: float = field(
        default=0.5, metadata={"help": "latent search: z = mu + s * sigma * eps (LaNMT: 0.5; lanmt-ebm: 1.0)"})


def layerwise_beta(step: int, train_steps: int, start: float = 0.9, end: float = 0.1) -> float:
    """The reference code's ``--layerwise_denoising_weight``: beta of refinement step ``step`` (1-based, decoder-2
    passes 1 .. train_steps - 1) falls linearly from ``start`` (excluded) to ``end`` in equal steps of
    (start - end) / (train_steps - 1). itrain 4: 0.633, 0.367, 0.100; itrain 2: 0.1."""
    if not 1 <= step < train_steps:
        raise ValueError(f"refinement step {step} outside 1 .. {train_steps - 1} (itrain = {train_steps})")
    gap = (start - end) / (train_steps - 1)
    return end + (train_steps - 1 - step) * gap


def _max_target_length(models, default: int) -> int:
    """The longest target every model can decode (``default`` when no model states one)."""
    limits = [m.max_decoder_positions() for m in models if hasattr(m, "max_decoder_positions")]
    return min(limits) if limits else default


@register_task("translation_refine", dataclass=TranslationRefineConfig)
class TranslationRefineTask(TranslationTask):
    cfg: TranslationRefineConfig

    def corruption_beta(self, step: Optional[int] = None, train_steps: Optional[int] = None) -> float:
        """beta of refinement step ``step`` (1 .. train_steps - 1) under ``--corruption-schedule``."""
        if self.cfg.corruption_schedule == "constant" or step is None or train_steps is None:
            return self.cfg.corruption_prob
        return layerwise_beta(step, train_steps)

    def corrupt(self, target: torch.Tensor, step: Optional[int] = None, train_steps: Optional[int] = None):
        """Y~ ~ C(Y | Y*) for a (B, T) right-padded batch of target tokens, with the beta of refinement step
        ``step`` out of ``train_steps`` (see ``corruption_beta``)."""
        d = self.target_dictionary
        return corrupt_tokens(target, d.pad(), self.corruption_beta(step, train_steps), d.nspecial, len(d))

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if hasattr(criterion, "set_update_num"):  # criteria with a schedule over updates (curriculum)
            criterion.set_update_num(update_num)
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        # models declare their generator (a hook, never a class-name test)
        kind = getattr(models[0], "iterref_generator", None) if models else None
        if kind == "generalized":
            return self.build_generalized_generator(models, args)
        if kind == "latent":
            return self.build_latent_generator(models, args)
        if getattr(args, "iter_decode_with_external_reranker", False):
            raise ValueError("--iter-decode-with-external-reranker is not supported by translation_refine")
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
            max_len=_max_target_length(models, 1024),
        )

    def _rescorer(self, args):
        """The autoregressive teacher of ``--rescore-path``, or None."""
        from ..generators.generalized import ARRescorer

        if not self.cfg.rescore_path:
            return None
        if not os.path.isfile(self.cfg.rescore_path):
            raise ValueError(f"--rescore-path: file not found: {self.cfg.rescore_path}")
        return ARRescorer.from_checkpoint(
            self.cfg.rescore_path, self.cfg.data.split(os.pathsep)[0], self.target_dictionary,
            use_cuda=torch.cuda.is_available() and not getattr(args, "cpu", False),
        )

    def load_score_network(self, path: str, latent_model, args):
        """The score / energy network at ``path``, checked against the latent model it will refine."""
        from fairseq import checkpoint_utils

        if not os.path.isfile(path):
            raise ValueError(f"--score-path: file not found: {path}")
        # the LaNMT comes from --path; the network's own --lanmt-path (a training-time file) is not read again
        models, _ = checkpoint_utils.load_model_ensemble(
            [path], arg_overrides={"data": self.cfg.data, "lanmt_path": ""})
        scorer = models[0]
        if not hasattr(scorer, "direction") or not hasattr(scorer, "attach"):
            raise ValueError(f"--score-path {path} holds a {type(scorer).__name__}, not a score / energy network; "
                             "pass a checkpoint of fairseq-train --arch lanmt_score_*")
        scorer.attach(latent_model)
        weight = next(latent_model.parameters())
        return scorer.to(device=weight.device, dtype=weight.dtype).eval()  # --fp16 halved the latent model

    def build_latent_generator(self, models, args):
        from ..generators.latent import LatentInferenceDecoder

        cfg = self.cfg
        inference = str(cfg.latent_inference)
        scorer = None
        if inference in ("score", "energy"):
            if not cfg.score_path:
                raise ValueError(f"--latent-inference {inference} needs --score-path CHECKPOINT (a network trained "
                                 "with fairseq-train --arch lanmt_score_* --lanmt-path THIS_MODEL)")
            scorer = self.load_score_network(cfg.score_path, models[0], args)
            if scorer.param != inference:
                raise ValueError(f"--latent-inference {inference} but --score-path {cfg.score_path} is a "
                                 f"{scorer.param} network (trained with --score-param {scorer.param})")
        return LatentInferenceDecoder(
            self.target_dictionary, inference=inference, max_iter=getattr(args, "iter_decode_max_iter", 10),
            force_max_iter=getattr(args, "iter_decode_force_max_iter", False), step_size=cfg.latent_step_size,
            scorer=scorer, search_samples=cfg.latent_search_samples, search_noise=cfg.latent_search_noise,
            rescorer=self._rescorer(args) if cfg.latent_search_samples > 1 else None,
            remove_repeats=not cfg.keep_repeats, retain_history=getattr(args, "retain_iter_history", False),
            seed=cfg.decoding_seed,
        )

    def build_generalized_generator(self, models, args):
        from ..generators.generalized import GeneralizedDecoder, LengthStatistics
        from ..generators.strategies import build_strategy, parse_weights

        cfg = self.cfg
        strategy = build_strategy(cfg.decoding_strategy, parse_weights(cfg.strategy_weights),
                                  cfg.strategy_temperature, cfg.decoding_seed, cfg.policy_path)
        stats = None
        if cfg.length_from == "train-stats":
            if "train" not in self.datasets:
                try:
                    self.load_dataset("train")
                except FileNotFoundError as err:
                    raise ValueError(f"--length-from train-stats needs the training split in {cfg.data}: {err}") \
                        from None
            train = self.datasets["train"]
            # sizes count the EOS symbol
            stats = LengthStatistics(np.asarray(train.src_sizes) - 1, np.asarray(train.tgt_sizes) - 1)
        rescorer = self._rescorer(args)
        return GeneralizedDecoder(
            self.target_dictionary, strategy, budget=cfg.decoding_budget, tokens_per_step=str(cfg.tokens_per_step),
            beam=getattr(args, "beam", 1), position_beam=cfg.position_beam,
            length_candidates=cfg.length_candidates, length_stats=stats, oracle_length=cfg.oracle_length,
            rescorer=rescorer, length_selection=str(cfg.length_selection),
            retain_history=getattr(args, "retain_iter_history", False),
            max_len=_max_target_length(models, 256),
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
