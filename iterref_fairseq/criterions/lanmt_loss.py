"""Loss of LaNMT (Shu et al. 2020): label-smoothed cross-entropy + free-bits KL + length loss, per sentence.

    loss(x, y) = sum_t CE_eps(y_t | x, z, L_y)  +  sum_i max(KL(q(z_i|x,y) || p(z_i|x)), b)  +  CE(L_y | z, x)

with z ~ q(z|x,y) (one reparameterized sample), i over source positions (each KL summed over the latent
dimensions) and b the free-bits budget (``--kl-budget``, default 1). The budget schedule of the reference code
(``--kl-budget-schedule anneal``, the default): b for the first half of ``--kl-budget-updates`` updates (default:
``--max-update``), then linearly down to 0 at the end. ``constant`` keeps b throughout. Below the budget the KL term
is the constant b and gives no gradient: the posterior may carry b nats per position for free.

The reference's second stage, one epoch with b = 0 at a constant learning rate of 1e-4, is a second fairseq-train
run: ``--finetune-from-model STAGE1/checkpoint_last.pt --kl-budget 0 --kl-budget-schedule constant --lr 1e-4
--lr-scheduler fixed`` (docs/lanmt.md).

Reduction: sums over the batch with ``sample_size`` = number of sentences (the reference divides every term by the
batch size). Logged: ``loss``, ``nll_loss`` (per target token), ``kl`` (per source position, without the budget),
``kl_budget``, ``length_loss``, ``length_acc``.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import II


@dataclass
class LaNMTLossConfig(FairseqDataclass):
    label_smoothing: float = field(default=0.1, metadata={"help": "label smoothing epsilon (reference: 0.1)"})
    kl_budget: float = field(
        default=1.0, metadata={"help": "free-bits budget b: per source position the KL term is max(KL, b) (nats)"})
    kl_budget_schedule: ChoiceEnum(["anneal", "constant"]) = field(
        default="anneal",
        metadata={"help": "'anneal' = b for the first half of --kl-budget-updates, then linearly to 0 (the "
                          "reference); 'constant' = b throughout (use with --kl-budget 0 for the fine-tuning stage)"})
    kl_budget_updates: int = field(
        default=0, metadata={"help": "length of the annealing schedule in updates (0 = --max-update)"})
    kl_weight: float = field(default=1.0, metadata={"help": "weight of the KL term (reference: 1)"})
    length_loss_factor: float = field(default=1.0, metadata={"help": "weight of the length loss"})
    max_update: int = II("optimization.max_update")


def kl_budget_at(update: int, budget: float, total: int, schedule: str) -> float:
    """b at ``update``: constant, or b until total / 2 then linearly to 0 at ``total`` (0 after it)."""
    if schedule == "constant":
        return budget
    half = total / 2.0
    if update <= half:
        return budget
    return budget * max(0.0, 1.0 - (update - half) / half)


def free_bits(kl: torch.Tensor, mask: torch.Tensor, budget: float) -> torch.Tensor:
    """sum over real positions of max(KL_i, b), per sentence. kl, mask: (B, S) -> (B,)."""
    return torch.clamp(kl, min=budget).masked_fill(~mask, 0.0).sum(1)


@register_criterion("lanmt_loss", dataclass=LaNMTLossConfig)
class LaNMTLoss(FairseqCriterion):
    def __init__(self, task, label_smoothing, kl_budget, kl_budget_schedule, kl_budget_updates, kl_weight,
                 length_loss_factor, max_update=0):
        super().__init__(task)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {label_smoothing}")
        if kl_budget < 0:
            raise ValueError(f"--kl-budget must be >= 0, got {kl_budget}")
        total = kl_budget_updates or max_update or 0
        if str(kl_budget_schedule) == "anneal" and kl_budget > 0 and total <= 0:
            raise ValueError("--kl-budget-schedule anneal needs the length of training: set --max-update or "
                             "--kl-budget-updates (or use --kl-budget-schedule constant)")
        self.eps = label_smoothing
        self.budget, self.schedule, self.total = kl_budget, str(kl_budget_schedule), total
        self.kl_weight, self.length_loss_factor = kl_weight, length_loss_factor
        self.update_num = 0

    def set_update_num(self, update_num: int) -> None:
        """Called by the task before every training step (the budget schedule reads it)."""
        self.update_num = update_num

    def budget_now(self) -> float:
        return kl_budget_at(self.update_num, self.budget, self.total, self.schedule)

    def forward(self, model, sample, reduce=True):
        out = model(**sample["net_input"], tgt_tokens=sample["target"], label_smoothing=self.eps)
        budget = self.budget_now()
        tokens = out["tokens"]
        token_loss = tokens["loss"].sum()
        kl_term = free_bits(out["kl"], out["src_mask"], budget).sum()
        length = out["length"]
        length_loss = F.cross_entropy(length["logits"].float(), length["target"], reduction="sum")
        loss = token_loss + self.kl_weight * kl_term + self.length_loss_factor * length_loss
        nsentences = sample["target"].size(0)
        ntokens = int(tokens["mask"].sum())
        positions = int(out["src_mask"].sum())
        logging_output = {
            "loss": loss.detach().item(), "nll_sum": tokens["nll"].sum().item(), "ntokens": ntokens,
            "kl_sum": out["kl"].detach().sum().item(), "positions": positions,
            "length_loss_sum": length_loss.detach().item(),
            "length_correct": int((length["logits"].argmax(-1) == length["target"]).sum()),
            "nsentences": nsentences, "sample_size": nsentences, "kl_budget": budget, "count": 1,
        }
        return loss, nsentences, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sentences = total("sample_size")
        if not sentences:
            return
        metrics.log_scalar("loss", total("loss") / sentences, sentences, round=3)
        metrics.log_scalar("nll_loss", total("nll_sum") / max(total("ntokens"), 1), total("ntokens"), round=3)
        metrics.log_scalar("kl", total("kl_sum") / max(total("positions"), 1), total("positions"), round=3)
        metrics.log_scalar("length_loss", total("length_loss_sum") / sentences, sentences, round=3)
        metrics.log_scalar("length_acc", total("length_correct") / sentences, sentences, round=3)
        metrics.log_scalar("kl_budget", total("kl_budget") / max(total("count"), 1), 1, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
