"""Loss of the iterative-refinement NAT: Eq. (3.4) of the thesis plus the length loss.

For each training pair the model runs ``itrain`` conditionals (``--train-steps``, default 4: one pass of
decoder 1 and three of decoder 2). The input of each refinement step is, with probability ``pDAE``
(``--dae-prob``, default 0.5), a corrupted reference Y~ ~ C(Y | Y*) (DAE term, corruption from the task's
``--corruption-prob``), otherwise the model's own previous output (LVM term; argmax, or a sample with
``--stochastic-approx``). The token negative log-likelihoods of all steps and the length loss are summed.

Reduction: per step, the mean NLL over target tokens; the loss is the sum of those means plus the mean length
NLL, and ``sample_size`` is 1 (the convention of fairseq's NAT losses). Validation runs the LVM chain only
(pDAE = 0, argmax), so the validation loss measures what decoding does.
"""
from dataclasses import dataclass, field

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
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing epsilon (the thesis uses none)"})
    length_loss_factor: float = field(default=1.0, metadata={"help": "weight of the length-prediction loss"})


@register_criterion("refinement_nat_loss", dataclass=RefinementNATLossConfig)
class RefinementNATLoss(FairseqCriterion):
    def __init__(self, task, train_steps, dae_prob, stochastic_approx, lvm_input, label_smoothing,
                 length_loss_factor):
        super().__init__(task)
        if train_steps < 1:
            raise ValueError(f"--train-steps must be >= 1, got {train_steps}")
        if not 0.0 <= dae_prob <= 1.0:
            raise ValueError(f"--dae-prob must be in [0, 1], got {dae_prob}")
        self.train_steps = train_steps
        self.dae_prob = dae_prob
        self.stochastic = stochastic_approx
        if lvm_input not in ("chain", "previous"):
            raise ValueError(f"--lvm-input must be 'chain' or 'previous', got {lvm_input!r}")
        self.lvm_input = lvm_input
        self.eps = label_smoothing
        self.length_loss_factor = length_loss_factor

    def _token_loss(self, logits, target, mask):
        lprobs = F.log_softmax(logits[mask].float(), dim=-1)
        nll = -lprobs.gather(1, target[mask].unsqueeze(1)).squeeze(1)
        if self.eps > 0:
            finite = torch.isfinite(lprobs)
            smooth = -lprobs.masked_fill(~finite, 0.0).sum(-1) / finite.sum(-1)
            loss = (1 - self.eps) * nll + self.eps * smooth
        else:
            loss = nll
        return loss.mean(), nll.mean()

    def forward(self, model, sample, reduce=True):
        training = model.training
        out = model(
            **sample["net_input"],
            tgt_tokens=sample["target"],
            train_steps=self.train_steps,
            dae_prob=self.dae_prob if training else 0.0,
            stochastic=self.stochastic and training,
            corrupt=self.task.corrupt if training else None,
            lvm_input=self.lvm_input,
        )
        loss = 0.0
        logging_output = {"nsentences": sample["target"].size(0), "sample_size": 1, "count": 1}
        ntokens = 0
        n_dae = 0
        for i, step in enumerate(out["steps"]):
            step_loss, step_nll = self._token_loss(step["logits"], step["target"], step["mask"])
            loss = loss + step_loss
            ntokens = int(step["mask"].sum())
            n_dae += step["input"] == "dae"
            logging_output[f"nll_step{i}"] = step_nll.detach().item()
        length = out["length"]
        length_loss = F.cross_entropy(length["logits"].float(), length["target"])
        loss = loss + self.length_loss_factor * length_loss
        length_acc = (length["logits"].argmax(-1) == length["target"]).float().mean()
        logging_output.update(
            loss=loss.detach().item(),
            nll_loss=logging_output[f"nll_step{len(out['steps']) - 1}"],
            length_loss=length_loss.detach().item(),
            length_acc=length_acc.item(),
            dae_steps=n_dae,
            refine_steps=len(out["steps"]) - 1,
            ntokens=ntokens,
        )
        return loss, 1, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        # every logging output carries count = 1: log_means divides the sums by the summed count
        if not log_means(logging_outputs, ("loss", "nll_loss", "length_loss", "length_acc")):
            return
        steps = sum(log.get("refine_steps", 0) for log in logging_outputs)
        if steps:
            metrics.log_scalar("dae_frac", sum(log.get("dae_steps", 0) for log in logging_outputs) / steps, 1, round=3)
        log_means(logging_outputs, sorted({k for log in logging_outputs for k in log if k.startswith("nll_step")}))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
