"""Loss of FlexMDM / LFlexMDM (the FlexMDM / LFlexMDM paper, §3; docs/flexmdm.md).

Per noisy sample (x_t at time t, drawn by the model from the per-token schedules of x1):

    L_um = mean over masked i of [ -lambda_um^{phi,i} log K^theta(x1^i | x_t)
                                    + D(lambda_um^{phi,i}, lambda_um^{theta,i}) ]
    L_in = (1 / L_max) sum over gaps g of D( sum_{j dropped in g} lambda_in^{phi,j}, lambda_in^{theta,g} )
    D(n, g) = g - n + n log(n / g)                      (Bregman divergence of x log x; D(0, g) = g)

L_max is ``--insertion-norm`` (default: the longest sequence of the batch, content + EOS).

with lambda^phi = b^phi h_a(t), lambda^theta = b^theta h_a(t), h_a(t) = a t^{a-1} / (1 - t^a). With b_um fixed to
1 the generator's unmasking multiplier is fixed to 1 as well, so the unmasking Bregman term is 0. With a = b = 1
(FlexMDM, linear schedules alpha_t = beta_t = t): lambda^phi = 1 / (1 - t), the unmasking term is FlexMDM's
(1 / (1 - t)) CE and the insertion term is (1 / (1 - t)) D(n, g_theta) with n the number of tokens still to insert
(D is 1-homogeneous) -- :func:`flexmdm_linear_loss` states that reference form and the tests compare both.

Joint training without simulation: two noisy samples z1, z2 per sequence (same t). The generator loss is
(L1 + L2) / 2; the auxiliary network phi gets (i) pathwise gradients through the target rates inside L1, L2 and
(ii) the leave-one-out REINFORCE term 1/2 (L1 - L2) (log p_phi(z1 | x1) - log p_phi(z2 | x1)) with the closed-form
state probabilities of ``modules/kumaraswamy.state_log_probs``.

Regularisers of phi (defaults = the reference code's forms and weights, docs/flexmdm.md; 0.2.0's forms stay as
named options):

* schedule regulariser (``--schedule-reg-form``): per sequence, sum_k (mean_i F_i(t_k) - t_k)^2 over K = 100
  stratified random times per step, averaged over sequences -- keeps each sequence's *average* schedule near the
  linear one (``pooled``: the batch's average on 11 fixed times);
* tail penalty (``--tail-penalty-form``): per token relu(F_i(eps) - delta)^2 + relu(1 - F_i(1 - eps) - delta)^2,
  summed over a sequence's tokens (eps = delta = 0.01): no token should arrive before eps or still be absent at
  1 - eps with more than delta probability (``linear``: mean_i F_i(eps) + 1 - F_i(1 - eps));
* ``--kuma-kl-weight`` (1.0): per sequence mean_i KL(Kuma(a, b_i) || U(0, 1)); at b = 0.01 it is ~94, so it alone
  keeps b off its floor.

Why per-token tail terms at all. The average-CDF regulariser lets single tokens go to extremes as long as others
compensate. Measured on the 0.2.0 star graphs (tiny models, 2,500 -> 5,000 updates, no tail term, no KL): phi
pushed the two goal-arm tokens to the floor b = 0.01, where they are still absent at t = 0.999 with probability
0.93. Their loss terms then almost never occur (the REINFORCE term rewards exactly that: a lower loss), and at
sampling time they must all arrive in the last step -- the learned process has moved the hardest part of the
sequence outside the training range of t.

Remaining-count head (LFlexMDM only; see ``models/flexmdm.py``): (1 / L_max) sum_gaps D(n_gap, c^theta) with
n_gap the number of tokens still to insert, added to the generator loss but not to the per-sample losses of the
REINFORCE term.
"""
from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from ..data.insertion_noise import gap_sums
from ..models.flexmdm import T_SAMPLING
from ..modules import kumaraswamy as kuma
from .logging_utils import log_means


def bregman(n: torch.Tensor, g: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """D(n, g) = g - n + n log(n / g) elementwise, n >= 0, g > 0 (D(0, g) = g)."""
    g = g.clamp(min=eps)
    pos = n > 0
    n_safe = torch.where(pos, n, torch.ones_like(n))  # n log n -> 0 at n = 0 with a finite gradient
    return g - n + torch.where(pos, n * torch.log(n_safe / g), torch.zeros_like(n))


def count_divergence(noisy, predicted: torch.Tensor) -> torch.Tensor:
    """sum over the gaps of D(n_gap, predicted), n_gap = tokens still to insert there. predicted (B, Lt) -> (B,)."""
    d = bregman(noisy.gap_count.float(), predicted)
    return d.masked_fill(noisy.padding_mask, 0.0).sum(1)


def sample_loss(sample: Dict, x1: torch.Tensor, b_in_phi: torch.Tensor, b_um_phi: torch.Tensor, t: torch.Tensor,
                a: float, learn_unmask: bool, l_max: float) -> Dict[str, torch.Tensor]:
    """Per-row losses of one noisy sample. Shapes: x1, b_*_phi (B, L); sample tensors (B, Lt); t (B,).

    Returns {"um": (B,), "in": (B,), "nll": (B,) mean CE at masks (unweighted), "n_mask": (B,)}.
    """
    noisy = sample["noisy"]
    h = kuma.base_hazard(t, a)  # (B,)
    is_mask = noisy.is_mask
    target = x1.gather(1, noisy.x1_index)  # (B, Lt) clean token at every x_t position
    lprobs = F.log_softmax(sample["logits"], -1)
    nll = -lprobs.gather(2, target.unsqueeze(2)).squeeze(2).masked_fill(~is_mask, 0.0)
    lam_um_phi = b_um_phi.gather(1, noisy.x1_index) * h.unsqueeze(1)  # target unmask rate at each position
    um = lam_um_phi * nll
    if learn_unmask:
        um = um + bregman(lam_um_phi, sample["b_um_theta"] * h.unsqueeze(1))
    n_mask = is_mask.sum(1)
    um = um.masked_fill(~is_mask, 0.0).sum(1) / n_mask.clamp(min=1)
    target_in = gap_sums(b_in_phi, noisy) * h.unsqueeze(1)  # sum of dropped tokens' hazards per gap
    pred_in = sample["b_in_theta"] * h.unsqueeze(1)
    ins = bregman(target_in, pred_in).masked_fill(noisy.padding_mask, 0.0).sum(1) / l_max
    out = {"um": um, "in": ins, "nll": nll.sum(1) / n_mask.clamp(min=1), "n_mask": n_mask}
    if sample.get("count_theta") is not None:
        out["count"] = count_divergence(noisy, sample["count_theta"]) / l_max
    return out


def flexmdm_linear_loss(sample: Dict, x1: torch.Tensor, t: torch.Tensor, l_max: float) -> torch.Tensor:
    """FlexMDM's loss with linear schedules alpha_t = beta_t = t, written directly (the a = b = 1 reference).

    Per row: mean over masks of beta_dot / (1 - beta) CE + (1 / L_max) sum over gaps alpha_dot / (1 - alpha)
    D(n_gap, g_theta) with n_gap = number of tokens still to insert. Returns (B,).
    """
    noisy = sample["noisy"]
    w = 1.0 / (1.0 - t.clamp(max=1 - 1e-6))  # alpha_dot / (1 - alpha) = beta_dot / (1 - beta)
    target = x1.gather(1, noisy.x1_index)
    nll = -F.log_softmax(sample["logits"], -1).gather(2, target.unsqueeze(2)).squeeze(2)
    nll = nll.masked_fill(~noisy.is_mask, 0.0)
    um = w * nll.sum(1) / noisy.is_mask.sum(1).clamp(min=1)
    return um + w * count_divergence(noisy, sample["b_in_theta"]) / l_max


def state_log_prob(noisy, t: torch.Tensor, a: float, b_in: torch.Tensor, b_um: torch.Tensor,
                   content: torch.Tensor) -> torch.Tensor:
    """log p_phi(z | x1) = sum over content tokens of the log-probability of their state at t. Returns (B,)."""
    logp = kuma.state_log_probs(t.unsqueeze(1), a, b_in, b_um)  # (B, L, 3)
    state = noisy.state.clamp(min=0)
    picked = logp.gather(2, state.unsqueeze(2)).squeeze(2)
    return picked.masked_fill(~content, 0.0).sum(1)


def reinforce_term(losses, log_probs) -> torch.Tensor:
    """Leave-one-out REINFORCE for two samples: 1/2 (L1 - L2) (log p(z1) - log p(z2)), losses detached. (B,)."""
    (l1, l2), (p1, p2) = losses, log_probs
    return 0.5 * (l1 - l2).detach() * (p1 - p2)


SCHEDULE_REG_FORMS = ("per_sequence", "pooled")
TAIL_PENALTY_FORMS = ("squared_relu", "linear")
POOLED_GRID = (1e-2, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)  # the 0.2.0 form's fixed grid
GRID_EPS = 1e-4  # the reference code's time range [eps, 1 - eps] for its regulariser grid


def stratified_grid(k: int, generator: Optional[torch.Generator] = None, dtype=torch.float32,
                    device=None) -> torch.Tensor:
    """k points, one uniform draw in each of k equal cells of [eps, 1 - eps] (the reference's "antithetic" grid).

    Example, k = 4, eps -> 0: cells [0, .25), [.25, .5), [.5, .75), [.75, 1); u = (.5, .1, .9, .3) gives
    (.125, .275, .725, .825).
    """
    u = torch.rand(k, generator=generator, dtype=dtype, device=device)
    return GRID_EPS + (torch.arange(k, dtype=dtype, device=device) + u) * (1.0 - 2 * GRID_EPS) / k


def schedule_regularizer(a: float, b: torch.Tensor, mask: torch.Tensor, grid: torch.Tensor,
                         form: str = "per_sequence") -> torch.Tensor:
    """Keeps the average schedule near the linear one. ``b`` (B, L) with ``mask`` (B, L) marking the tokens; ``grid``
    (K,) times.

    * ``per_sequence`` (the reference's): mean over sequences s of sum_k (mean_{i in s} F_i(t_k) - t_k)^2;
    * ``pooled`` (0.2.0's): sum_k (mean over all tokens of the batch of F_i(t_k) - t_k)^2.
    """
    cdf = kuma.cdf(grid.view(1, 1, -1), a, b.unsqueeze(-1))  # (B, L, K)
    m = mask.unsqueeze(-1).to(cdf)
    if form == "per_sequence":
        mean = (cdf * m).sum(1) / m.sum(1).clamp(min=1)  # (B, K)
        return ((mean - grid) ** 2).sum(-1).mean()
    if form == "pooled":
        mean = (cdf * m).sum((0, 1)) / m.sum().clamp(min=1)
        return ((mean - grid) ** 2).sum()
    raise ValueError(f"--schedule-reg-form must be one of {', '.join(SCHEDULE_REG_FORMS)}, got {form!r}")


def tail_penalty(a: float, b: torch.Tensor, mask: torch.Tensor, eps: float, delta: float = 0.01,
                 form: str = "squared_relu") -> torch.Tensor:
    """Per-token mass of each schedule in the tails [0, eps) and (1 - eps, 1]; ``b``, ``mask`` (B, L).

    * ``squared_relu`` (the reference's): mean over sequences of sum_i relu(F_i(eps) - delta)^2
      + relu(1 - F_i(1 - eps) - delta)^2, zero while both tails hold at most delta (at a = 1, eps = delta = 0.01
      F(eps) <= delta needs b <= 1 and eps^b <= delta needs b >= 1: the minimum is b = 1, the linear schedule);
    * ``linear`` (0.2.0's): mean over tokens of F_i(eps) + 1 - F_i(1 - eps) (no delta; at a = 1, eps = 0.01 it is
      1 - 0.99^b + 0.01^b, minimal at b = log(log 0.01 / log 0.99) / log(0.99 / 0.01) ~ 1.33, so it pushes every
      insertion earlier).
    """
    ends = torch.tensor([eps, 1.0 - eps], dtype=b.dtype, device=b.device)
    cdf = kuma.cdf(ends.view(1, 1, 2), a, b.unsqueeze(-1))  # (B, L, 2)
    m = mask.to(cdf)
    if form == "squared_relu":
        per_token = F.relu(cdf[..., 0] - delta) ** 2 + F.relu(1.0 - cdf[..., 1] - delta) ** 2
        return (per_token * m).sum(1).mean()
    if form == "linear":
        per_token = cdf[..., 0] + 1.0 - cdf[..., 1]
        return (per_token * m).sum() / m.sum().clamp(min=1)
    raise ValueError(f"--tail-penalty-form must be one of {', '.join(TAIL_PENALTY_FORMS)}, got {form!r}")


def kuma_kl(a: float, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over sequences of mean_i KL(Kumaraswamy(a, b_i) || U(0, 1)) (the reference's reduction)."""
    m = mask.to(b)
    return ((kuma.kl_to_uniform(a, b) * m).sum(1) / m.sum(1).clamp(min=1)).mean()


@dataclass
class FlexMDMLossConfig(FairseqDataclass):
    schedule_reg_weight: float = field(
        default=1.0, metadata={"help": "weight of the schedule regulariser sum_k (mean_i F_i(t_k) - t_k)^2 (LFlexMDM)"})
    schedule_reg_form: ChoiceEnum(list(SCHEDULE_REG_FORMS)) = field(
        default="per_sequence", metadata={"help": "per_sequence: the reference's (per sequence, on "
                                                  "--schedule-reg-points stratified random times per step); "
                                                  "pooled: 0.2.0's (over the batch, 11 fixed times)"})
    schedule_reg_points: int = field(
        default=100, metadata={"help": "grid size K of the per_sequence schedule regulariser (reference: 100)"})
    tail_penalty_weight: float = field(
        default=1.0, metadata={"help": "weight of the per-token tail penalty (LFlexMDM; 0 = off)"})
    tail_penalty_form: ChoiceEnum(list(TAIL_PENALTY_FORMS)) = field(
        default="squared_relu", metadata={"help": "squared_relu: the reference's sum_i relu(F_i(eps) - delta)^2 + "
                                                  "relu(1 - F_i(1 - eps) - delta)^2; linear: 0.2.0's "
                                                  "mean_i F_i(eps) + 1 - F_i(1 - eps)"})
    tail_eps: float = field(default=0.01, metadata={"help": "eps of the tail penalty, in (0, 0.5)"})
    tail_delta: float = field(default=0.01, metadata={"help": "delta of the squared_relu tail penalty, in [0, 1)"})
    kuma_kl_weight: float = field(
        default=1.0, metadata={"help": "weight of mean_i KL(Kumaraswamy(a, b_i) || U(0, 1)) (LFlexMDM; the "
                                       "reference's default 1.0; 0 = off, 0.2.0's default)"})
    no_reinforce: bool = field(
        default=False, metadata={"help": "drop the REINFORCE term (phi then learns from pathwise gradients only)"})
    t_max: float = field(default=0.999, metadata={"help": "training times t ~ U(0, t_max); the rates diverge at 1"})
    t_sampling: ChoiceEnum(list(T_SAMPLING)) = field(
        default="stratified", metadata={"help": "times of a batch: stratified (low-discrepancy, lower variance) or "
                                                "iid; both are marginally U(0, t_max)"})
    insertion_norm: int = field(
        default=0, metadata={"help": "L_max of the 1/L_max factor of L_in; 0 = the longest sequence of the batch "
                                     "(content + EOS), which keeps L_um and L_in balanced when the model's "
                                     "--max-target-positions is much larger than the data"})


@register_criterion("flexmdm_loss", dataclass=FlexMDMLossConfig)
class FlexMDMLoss(FairseqCriterion):
    def __init__(self, task, schedule_reg_weight=1.0, kuma_kl_weight=1.0, no_reinforce=False, t_max=0.999,
                 insertion_norm=0, t_sampling="stratified", tail_penalty_weight=1.0, tail_eps=0.01,
                 schedule_reg_form="per_sequence", schedule_reg_points=100, tail_penalty_form="squared_relu",
                 tail_delta=0.01):
        super().__init__(task)
        if not 0.0 < tail_eps < 0.5:
            raise ValueError(f"--tail-eps must be in (0, 0.5), got {tail_eps}")
        if not 0.0 <= tail_delta < 1.0:
            raise ValueError(f"--tail-delta must be in [0, 1), got {tail_delta}")
        if str(schedule_reg_form) not in SCHEDULE_REG_FORMS:
            raise ValueError(f"--schedule-reg-form must be one of {', '.join(SCHEDULE_REG_FORMS)}, "
                             f"got {schedule_reg_form!r}")
        if str(tail_penalty_form) not in TAIL_PENALTY_FORMS:
            raise ValueError(f"--tail-penalty-form must be one of {', '.join(TAIL_PENALTY_FORMS)}, "
                             f"got {tail_penalty_form!r}")
        if schedule_reg_points < 1:
            raise ValueError(f"--schedule-reg-points must be >= 1, got {schedule_reg_points}")
        self.tail_w, self.tail_eps, self.tail_delta = float(tail_penalty_weight), float(tail_eps), float(tail_delta)
        self.reg_form, self.reg_points, self.tail_form = str(schedule_reg_form), int(schedule_reg_points), \
            str(tail_penalty_form)
        self.t_sampling = str(t_sampling)
        if insertion_norm < 0:
            raise ValueError(f"--insertion-norm must be >= 0, got {insertion_norm}")
        self.insertion_norm = insertion_norm
        if not 0.0 < t_max < 1.0:
            raise ValueError(f"--t-max must be in (0, 1), got {t_max}")
        self.reg_w, self.kl_w, self.reinforce, self.t_max = schedule_reg_weight, kuma_kl_weight, not no_reinforce, t_max
        self.register_buffer("grid", torch.tensor(POOLED_GRID))

    def regularizer_grid(self, like: torch.Tensor) -> torch.Tensor:
        """The grid of this step: fresh stratified times (per_sequence) or the fixed grid (pooled)."""
        if self.reg_form == "per_sequence":
            return stratified_grid(self.reg_points, dtype=like.dtype, device=like.device)
        return self.grid.to(like)

    def forward(self, model, sample, reduce=True):
        if "target" not in sample or sample["target"] is None:
            raise ValueError("flexmdm_loss needs targets (clean sequences) in the batch")
        spec = model(**sample["net_input"], tgt_tokens=sample["target"], num_samples=2, t_max=self.t_max,
                     t_sampling=self.t_sampling)
        a, x1, t = spec["a"], spec["x1"], spec["t"]
        b_in, b_um = spec["b_in_phi"], spec["b_um_phi"]
        l_max = float(self.insertion_norm or int(spec["content"].sum(1).max()) + 1)  # + EOS
        parts = [sample_loss(s, x1, b_in, b_um, t, a, spec["learn_unmask"], l_max) for s in spec["samples"]]
        row_losses = [p["um"] + p["in"] for p in parts]
        gen = 0.5 * (row_losses[0] + row_losses[1])
        loss = gen.mean()
        count_loss = None
        if "count" in parts[0]:  # generator-only term, outside the REINFORCE losses (see the module docstring)
            count_loss = 0.5 * (parts[0]["count"] + parts[1]["count"]).mean()
            loss = loss + count_loss
        reported = loss.detach()  # the REINFORCE surrogate has no meaningful value: it is logged apart
        logging_output = {"nsentences": x1.size(0), "sample_size": 1, "count": 1,
                          "ntokens": int(spec["content"].sum()),
                          "um_loss": float(sum(p["um"].detach().mean() for p in parts) / 2),
                          "in_loss": float(sum(p["in"].detach().mean() for p in parts) / 2),
                          "nll_loss": float(sum(p["nll"].detach().mean() for p in parts) / 2)}
        if count_loss is not None:
            logging_output["count_loss"] = float(count_loss.detach())
        if spec["learned_order"]:
            content = spec["content"]
            if self.reinforce:
                logps = [state_log_prob(s["noisy"], t, a, b_in, b_um, content) for s in spec["samples"]]
                surrogate = reinforce_term(row_losses, logps).mean()
                loss = loss + surrogate
                logging_output["reinforce"] = float(surrogate.detach())
            learned = [b_in, b_um] if spec["learn_unmask"] else [b_in]  # a fixed b_um = 1 has nothing to regularise
            grid = self.regularizer_grid(b_in)
            reg = sum(schedule_regularizer(a, b, content, grid, self.reg_form) for b in learned)
            loss = loss + self.reg_w * reg
            reported = reported + self.reg_w * reg.detach()
            if self.kl_w > 0:
                kl = sum(kuma_kl(a, b, content) for b in learned)
                loss = loss + self.kl_w * kl
                reported = reported + self.kl_w * kl.detach()
                logging_output["kuma_kl"] = float(kl.detach())
            if self.tail_w > 0:
                tail = sum(tail_penalty(a, b, content, self.tail_eps, self.tail_delta, self.tail_form)
                           for b in learned)
                loss = loss + self.tail_w * tail
                reported = reported + self.tail_w * tail.detach()
                logging_output["tail"] = float(tail.detach())
            logging_output["sched_reg"] = float(reg.detach())
            logging_output["b_in_mean"] = float(b_in.detach()[content].mean())
        logging_output["loss"] = float(reported)
        return loss, 1, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        log_means(logging_outputs, ("loss", "nll_loss", "um_loss", "in_loss", "count_loss", "sched_reg", "tail",
                                    "kuma_kl", "b_in_mean", "reinforce"),
                  present_only=True)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
