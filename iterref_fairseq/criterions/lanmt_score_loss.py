"""Loss of the score / energy network of LaNMT (``models/lanmt_score.py``): the first-order objective with the
proxy gradient from delta inference,

    loss = sum over sentences and source positions of  ||S(z_ini)||^2 - 2 S(z_ini) . Delta,   Delta = z_fin - z_ini

(= ||S - Delta||^2 - ||Delta||^2: minimized by S = Delta). ``sample_size`` = sentences. Logged per source position:
``loss``, ``mse`` = ||S - Delta||^2, ``target_norm`` = ||Delta||^2 (the mse of S = 0), ``cosine`` between S and
Delta (mean over positions with Delta != 0).
"""
from dataclasses import dataclass, field

import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from omegaconf import II


@dataclass
class LaNMTScoreLossConfig(FairseqDataclass):
    delta_steps: int = field(default=4, metadata={"help": "k: rounds of delta inference that give the target z_fin"})
    self_step_prob: float = field(
        default=0.5, metadata={"help": "probability that z_ini first takes one step of the current network"})
    self_step_from_update: int = field(
        default=-1, metadata={"help": "update from which self-steps are taken (-1 = half of --max-update; 0 = from "
                                      "the start)"})
    self_step_size: float = field(default=0.8, metadata={"help": "alpha of that self-step"})
    max_update: int = II("optimization.max_update")


def score_objective(direction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum over real positions of ||S||^2 - 2 S.Delta. direction, target (B, S, D); mask (B, S) -> scalar."""
    per_position = direction.pow(2).sum(-1) - 2.0 * (direction * target).sum(-1)
    return per_position.masked_fill(~mask, 0.0).sum()


@register_criterion("lanmt_score_loss", dataclass=LaNMTScoreLossConfig)
class LaNMTScoreLoss(FairseqCriterion):
    def __init__(self, task, delta_steps, self_step_prob, self_step_from_update, self_step_size, max_update=0):
        super().__init__(task)
        if delta_steps < 1:
            raise ValueError(f"--delta-steps must be >= 1, got {delta_steps}")
        if not 0.0 <= self_step_prob <= 1.0:
            raise ValueError(f"--self-step-prob must be in [0, 1], got {self_step_prob}")
        self.k = delta_steps
        self.self_step_prob, self.self_step_size = self_step_prob, self_step_size
        if self_step_from_update < 0:
            self_step_from_update = max_update // 2 if max_update else None  # None: never
        self.self_step_from = self_step_from_update
        self.update_num = 0

    def set_update_num(self, update_num: int) -> None:
        self.update_num = update_num

    def forward(self, model, sample, reduce=True):
        self_step = (model.training and self.self_step_from is not None and self.update_num >= self.self_step_from
                     and float(torch.rand(())) < self.self_step_prob)
        out = model(**sample["net_input"], delta_steps_k=self.k, self_step=self_step,
                    self_step_size=self.self_step_size)
        s, delta, mask = out["direction"], out["target"], out["mask"]
        loss = score_objective(s, delta, mask)
        with torch.no_grad():
            moved = delta.pow(2).sum(-1).gt(0) & mask
            cosine = torch.nn.functional.cosine_similarity(s, delta, dim=-1)[moved]
            logging_output = {
                "loss": loss.detach().item(),
                "mse_sum": (s - delta).pow(2).sum(-1)[mask].sum().item(),
                "target_sum": delta.pow(2).sum(-1)[mask].sum().item(),
                "cosine_sum": cosine.sum().item(), "moved": int(moved.sum()),
                "positions": int(mask.sum()), "nsentences": s.size(0), "sample_size": s.size(0),
                "ntokens": int(mask.sum()), "self_steps": int(self_step), "count": 1,
            }
        return loss, s.size(0), logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        positions = total("positions")
        if not positions:
            return
        metrics.log_scalar("loss", total("loss") / positions, positions, round=4)
        metrics.log_scalar("mse", total("mse_sum") / positions, positions, round=4)
        metrics.log_scalar("target_norm", total("target_sum") / positions, positions, round=4)
        metrics.log_scalar("cosine", total("cosine_sum") / max(total("moved"), 1), total("moved"), round=3)
        metrics.log_scalar("self_step_frac", total("self_steps") / max(total("count"), 1), 1, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
