"""Loss of the iterative-refinement NAT: Eq. (3.4) of the thesis plus the length loss.

For each training pair the model runs ``itrain`` conditionals (``--train-steps``, default 4: one pass of
decoder 1 and three of decoder 2). The input of each refinement step is, with probability ``pDAE``
(``--dae-prob``, default 0.5), a corrupted reference Y~ ~ C(Y | Y*) (DAE term, corruption from the task's
``--corruption-prob``), otherwise the model's own previous output (LVM term; argmax, or a sample with
``--stochastic-approx``). The token negative log-likelihoods of all steps and the length loss are summed.

The DAE/LVM coin is drawn once per step for the whole batch (``--dae-choice batch``, the reference code) or per
sentence (``sentence``, fairseq's iterative NAT). The corruption strength of step l comes from the task
(``--corruption-schedule``: the reference code's layerwise beta = 0.63 / 0.37 / 0.10 at itrain 4, or constant).

Curriculum (``--refine-from-update N``, a deviation from the thesis, off by default): until update N only decoder
1 is trained (itrain = 1, one decoder pass per update); from update N on, all ``--train-steps`` conditionals.
Decoder 2 cannot refine a decoder-1 output that is still noise, and an itrain-1 update costs about a quarter of
an itrain-4 one, so the early updates go further. With ``--refiner-init decoder1`` (a further deviation) decoder 2
takes a copy of decoder 1's weights at the switch: the two stacks have the same shapes, and decoder 2's input
(embedding of a target-language sentence plus hidden states) resembles decoder 1's (embeddings of copied source
words), so it starts as a translator that reads its input rather than as an untrained stack. The copy happens in
the training step whose update number equals N, so a run resumed from a checkpoint after N does not copy again.

Reduction: per step, the mean NLL over target tokens; the loss is the sum of those means plus the mean length
NLL, and ``sample_size`` is 1 (the convention of fairseq's NAT losses). Validation runs the LVM chain only
(pDAE = 0, argmax), so the validation loss measures what decoding does.
"""
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from .logging_utils import log_means


@dataclass
class RefinementNATLossConfig(FairseqDataclass):
    train_steps: int = field(
        default=4, metadata={"help": "itrain: conditionals per training pair (1 pass of decoder 1 + itrain-1 of decoder 2)"}
    )
    dae_prob: float = field(
        default=0.5, metadata={"help": "pDAE: probability that a refinement step is fed a corrupted reference"}
    )
    stochastic_approx: bool = field(
        default=False,
        metadata={"help": "LVM term uses a sample of the previous output instead of its argmax (thesis Table 3.4)"},
    )
    lvm_input: str = field(
        default="previous",
        metadata={
            "help": "what the LVM term of step l is conditioned on: 'previous' = the output of step l-1 whatever "
            "its input (also after a DAE step; fairseq's iterative NAT does the same), 'chain' = the model's own "
            "iterate Y^{l-1} of Eq. 3.4 (where a DAE step replaced step l-1, Y^{l-1} is still computed, without "
            "gradient)",
            "choices": ["chain", "previous"],
        },
    )
    dae_choice: str = field(
        default="batch",
        metadata={"help": "DAE/LVM coin per refinement step: one for the whole batch ('batch', the reference code) "
                          "or one per sentence ('sentence', fairseq's iterative NAT)",
                  "choices": ["batch", "sentence"]},
    )
    refine_from_update: int = field(
        default=0,
        metadata={"help": "curriculum (deviation): train decoder 1 alone (itrain = 1) before this update, then "
                          "--train-steps conditionals; 0 = from the start (the thesis)"},
    )
    refiner_init: str = field(
        default="random",
        metadata={"help": "decoder 2's weights when the curriculum switches to --train-steps conditionals (at "
                          "--refine-from-update): 'random' = as initialized (the thesis), 'decoder1' = a copy of "
                          "decoder 1's (a deviation: decoder 2 starts as a translator of its input instead of an "
                          "untrained one)",
                  "choices": ["random", "decoder1"]},
    )
    glancing_ratio: float = field(
        default=0.0,
        metadata={"help": "glancing sampling for decoder 1 (beyond the paper; Qian et al. 2021): reveal round(ratio x "
                          "wrong predictions) reference tokens as decoder-1 input and train on the others; 0 = off"},
    )
    glancing_ratio_end: Optional[float] = field(
        default=None, metadata={"help": "glancing ratio reached after --glancing-anneal-updates (linear; default: "
                                        "--glancing-ratio throughout)"},
    )
    glancing_anneal_updates: int = field(
        default=0, metadata={"help": "updates over which the glancing ratio moves to --glancing-ratio-end"},
    )
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing epsilon (the thesis uses none)"})
    length_loss_factor: float = field(default=1.0, metadata={"help": "weight of the length-prediction loss"})


@register_criterion("refinement_nat_loss", dataclass=RefinementNATLossConfig)
class RefinementNATLoss(FairseqCriterion):
    def __init__(self, task, train_steps, dae_prob, stochastic_approx, lvm_input, dae_choice, refine_from_update,
                 label_smoothing, length_loss_factor, glancing_ratio=0.0, glancing_ratio_end=None,
                 glancing_anneal_updates=0, refiner_init="random"):
        super().__init__(task)
        if train_steps < 1:
            raise ValueError(f"--train-steps must be >= 1, got {train_steps}")
        if not 0.0 <= dae_prob <= 1.0:
            raise ValueError(f"--dae-prob must be in [0, 1], got {dae_prob}")
        self.train_steps = train_steps
        cfg = getattr(task, "cfg", None)
        if getattr(cfg, "corruption_schedule", None) == "layerwise" and getattr(cfg, "corruption_prob", 0.1) != 0.1:
            raise ValueError(
                f"--corruption-prob {cfg.corruption_prob} is the beta of --corruption-schedule constant; the default "
                "schedule (layerwise) sets beta per refinement step. Add --corruption-schedule constant to use it, "
                "or drop --corruption-prob"
            )
        self.dae_prob = dae_prob
        self.stochastic = stochastic_approx
        if lvm_input not in ("chain", "previous"):
            raise ValueError(f"--lvm-input must be 'chain' or 'previous', got {lvm_input!r}")
        self.lvm_input = lvm_input
        if dae_choice not in ("batch", "sentence"):
            raise ValueError(f"--dae-choice must be 'batch' or 'sentence', got {dae_choice!r}")
        self.dae_choice = dae_choice
        if refine_from_update < 0:
            raise ValueError(f"--refine-from-update must be >= 0, got {refine_from_update}")
        self.refine_from_update = refine_from_update
        if refiner_init not in ("random", "decoder1"):
            raise ValueError(f"--refiner-init must be 'random' or 'decoder1', got {refiner_init!r}")
        if refiner_init == "decoder1" and refine_from_update == 0:
            raise ValueError("--refiner-init decoder1 copies decoder 1 at the curriculum switch: it needs "
                             "--refine-from-update N > 0 (decoder 1 is untrained at update 0)")
        self.refiner_init = refiner_init
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {label_smoothing}")
        self.eps = label_smoothing
        self.length_loss_factor = length_loss_factor
        self.update_num = 0
        end = glancing_ratio if glancing_ratio_end is None else glancing_ratio_end
        for name, value in (("--glancing-ratio", glancing_ratio), ("--glancing-ratio-end", end)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if glancing_anneal_updates < 0:
            raise ValueError(f"--glancing-anneal-updates must be >= 0, got {glancing_anneal_updates}")
        self.glancing = (glancing_ratio, end, glancing_anneal_updates)

    def glance_ratio_now(self) -> float:
        """The glancing ratio of the current update (linear from --glancing-ratio to --glancing-ratio-end)."""
        start, end, span = self.glancing
        if span <= 0:
            return start
        return start + (end - start) * min(1.0, self.update_num / span)

    def set_update_num(self, update_num: int) -> None:
        """Called by the task before every training step (the curriculum reads it)."""
        self.update_num = update_num

    def steps_now(self) -> int:
        """itrain of the current update: 1 before ``--refine-from-update``, then ``--train-steps``."""
        return 1 if self.update_num < self.refine_from_update else self.train_steps

    def _corrupt(self, target: torch.Tensor, step: int) -> torch.Tensor:
        return self.task.corrupt(target, step=step, train_steps=self.train_steps)

    def forward(self, model, sample, reduce=True):
        training = model.training
        if training and self.refiner_init == "decoder1" and self.update_num == self.refine_from_update:
            model.copy_initial_decoder_to_refiner()
        out = model(
            **sample["net_input"],
            tgt_tokens=sample["target"],
            train_steps=self.steps_now() if training else self.train_steps,
            dae_prob=self.dae_prob if training else 0.0,
            stochastic=self.stochastic and training,
            corrupt=self._corrupt if training else None,
            lvm_input=self.lvm_input,
            dae_choice=self.dae_choice,
            label_smoothing=self.eps,
            glance_ratio=self.glance_ratio_now() if training else 0.0,
        )
        loss = 0.0
        nsentences = sample["target"].size(0)
        logging_output = {"nsentences": nsentences, "sample_size": 1, "count": 1}
        ntokens = 0
        dae_rows = 0
        for i, step in enumerate(out["steps"]):
            if step["loss"].numel():  # a glancing step may reveal every position of a tiny batch
                loss = loss + step["loss"].mean()
            ntokens = int(step["mask"].sum())
            dae_rows += step["dae_rows"]
            logging_output[f"nll_step{i}"] = step["nll"].mean().item() if step["nll"].numel() else 0.0
        length = out["length"]
        length_loss = F.cross_entropy(length["logits"].float(), length["target"])
        loss = loss + self.length_loss_factor * length_loss
        length_acc = (length["logits"].argmax(-1) == length["target"]).float().mean()
        logging_output.update(
            loss=loss.detach().item(),
            nll_loss=logging_output[f"nll_step{len(out['steps']) - 1}"],
            length_loss=length_loss.detach().item(),
            length_acc=length_acc.item(),
            dae_rows=dae_rows,
            refine_rows=(len(out["steps"]) - 1) * nsentences,
            ntokens=ntokens,
        )
        return loss, 1, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        # every logging output carries count = 1: log_means divides the sums by the summed count
        if not log_means(logging_outputs, ("loss", "nll_loss", "length_loss", "length_acc")):
            return
        rows = sum(log.get("refine_rows", 0) for log in logging_outputs)
        if rows:  # fraction of (sentence, refinement step) pairs that were DAE terms
            metrics.log_scalar("dae_frac", sum(log.get("dae_rows", 0) for log in logging_outputs) / rows, 1, round=3)
        log_means(logging_outputs, sorted({k for log in logging_outputs for k in log if k.startswith("nll_step")}))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
