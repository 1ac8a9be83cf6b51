"""Coordinate-selection strategies of the generalized sequence-generation framework (thesis §4.3.2, Eq. 4.2).

A strategy defines the coordinate-selection distribution p(z_i^{t+1} = 1 | Y^{<=t}, Z^t, X) over the positions of
an intermediate sequence. Every hand-crafted strategy is a member of the log-linear family (Eq. 4.2)

    p(z_i = 1) ∝ exp{ (1/τ) Σ_k α_k φ_k(i) }

with the features

* φ_negent(i) = −H(y_i | y_<i, <mask>, y_>i, X)          (how peaked the conditional at i is)
* φ_logp(i)  = −log p(y_i = y_i^t | y_<i, <mask>, y_>i, X) (how incompatible the current symbol is)
* φ_pos(i)   = −log(|t − i| + ε)                          (preference for the "current" position t)

and the named strategies are weight settings of it (thesis §4.4):

===========  ========  ======  =====  ==========================================
name         α_negent  α_logp  α_pos  remark
===========  ========  ======  =====  ==========================================
uniform      —         —       —      τ → ∞: uniform over candidates, random order
left2right   0         0       1
least2most   0         1       0      Ghazvininejad et al. (2019)
easy-first   1         1       0      (α_logp = 0.9 for De→En in the thesis)
hard-first   −1        −1      0      signs of easy-first flipped
loglinear    free      free    free   ``--strategy-weights negent,logp,pos``, τ = ``--strategy-temperature``
learned      —         —       —      policy network (``modules/coordinate_policy.py``)
===========  ========  ======  =====  ==========================================

Conventions and the choices the thesis leaves open (documented in docs/masked_translation.md):

* Features of a masked position come from the step's model pass, where position i holds <mask>, so they use
  exactly p(y_i | y_<i, <mask>, y_>i, X). Features of a filled position are the ones computed when its symbol was
  written (a masked LM's output at an unmasked position is untrained); see ``generalized.py`` for revisions.
* The current symbol of a masked position is <mask>, which the model never predicts: p = 0, so φ_logp is the
  constant −log ε_p (``MASK_LOGP_FLOOR``): masks are the most incompatible symbols, and every strategy with
  α_logp > 0 fills masked positions before it revises filled ones. Ties among masked positions are broken by the
  confidence in the predicted symbol (most confident first, the order in which mask-predict commits tokens), via
  a 1e-3 multiple of log max_v p(v) that does not change the distribution measurably.
* The "current position" t of φ_pos is the leftmost masked position (in linear-time left-to-right decoding this
  is exactly the step index); when no position is masked any more (T = 2L, or constant-time revision steps) it is
  the step index modulo L, so a second left-to-right sweep revises the sequence.

Strategies only see tensors, never the model; every method takes the batch of hypotheses as a
:class:`StrategyInput`. Register new strategies with :func:`register_strategy`.
"""
import abc
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Type

import torch
import torch.nn.functional as F

MASK_LOGP_FLOOR = 1e-6  # ε_p: probability assigned to the current symbol <mask> when computing φ_logp
POSITION_EPS = 1e-2  # ε of φ_pos
TIE_BREAK = 1e-3

STRATEGY_REGISTRY: Dict[str, Type["CoordinateStrategy"]] = {}


def register_strategy(name: str) -> Callable:
    def wrap(cls):
        if name in STRATEGY_REGISTRY:
            raise ValueError(f"strategy {name!r} is already registered")
        cls.name = name
        STRATEGY_REGISTRY[name] = cls
        return cls

    return wrap


@dataclass
class StrategyInput:
    """What a strategy may look at for N hypotheses of padded length L (hidden size C).

    negent: (N, L) φ_negent(i) = −H(y_i | ·, X) of the conditional at i.
    current_logp: (N, L) log p(y_i = y_i^t | ·, X) of the current symbol (−φ_logp; see :func:`logp_feature` for
        masked positions).
    tokens: (N, L) current canvas Y^t (mask symbol at masked positions, pad beyond each hypothesis' length).
    masked: (N, L) True where the canvas holds <mask>.
    valid: (N, L) True at real positions (i < L_n).
    candidates: (N, L) True at positions the step may choose (a subset of ``valid``).
    step: (N,) 0-based step index t.
    hidden: (N, L, C) the model's output vectors (only the learned strategy reads them), or None.
    history: (N, k, C) vectors h_{a_j} of the last k chosen positions (oldest first), or None.
    history_count: (N,) how many entries of ``history`` are filled (the newest are at the end).

    The generator computes the features from the model pass of the step (at positions it fills) or keeps those
    computed when a symbol was written (at positions it revises).
    """

    negent: torch.Tensor
    current_logp: torch.Tensor
    tokens: torch.Tensor
    masked: torch.Tensor
    valid: torch.Tensor
    candidates: torch.Tensor
    step: torch.Tensor
    hidden: Optional[torch.Tensor] = None
    history: Optional[torch.Tensor] = None
    history_count: Optional[torch.Tensor] = None

    @classmethod
    def from_log_probs(cls, log_probs: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor,
                       valid: Optional[torch.Tensor] = None, candidates: Optional[torch.Tensor] = None,
                       step: int = 0, **extra) -> "StrategyInput":
        """Features from conditionals log_probs (N, L, V) for the canvas ``tokens`` (N, L)."""
        valid = torch.ones_like(masked) if valid is None else valid
        candidates = valid if candidates is None else candidates
        return cls(negent=negentropy_feature(log_probs), current_logp=-logp_feature(log_probs, tokens, masked),
                   tokens=tokens, masked=masked, valid=valid, candidates=candidates,
                   step=torch.full((tokens.size(0),), int(step), dtype=torch.long, device=tokens.device), **extra)


# ---------------------------------------------------------------------- features of Eq. (4.2)
def negentropy_feature(log_probs: torch.Tensor) -> torch.Tensor:
    """φ_negent(i) = Σ_v p(v) log p(v) = −H. (..., V) -> (...); −inf log-probs contribute 0."""
    # clamping −inf to the most negative finite value makes 0 · log 0 = 0 without a second logarithm (xlogy)
    finite = log_probs.clamp(min=torch.finfo(log_probs.dtype).min)
    return (log_probs.exp() * finite).sum(-1)


def masked_logp_feature(best_log_prob: torch.Tensor) -> torch.Tensor:
    """φ_logp at a masked position from log max_v p(v) alone (the current symbol <mask> has probability 0, so
    only the floor ε_p and the tie-break remain; see the module docstring). (...) -> (...)."""
    return -math.log(MASK_LOGP_FLOOR) + TIE_BREAK * best_log_prob.clamp(min=math.log(MASK_LOGP_FLOOR))


def logp_feature(log_probs: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """φ_logp(i) = −log p(y_i = y_i^t | ·). (N, L, V), (N, L), (N, L) -> (N, L).

    For a masked position the current symbol <mask> has probability 0 under the model; we use the floor ε_p
    (plus a tiny tie-break towards confident predictions), see the module docstring.
    """
    safe = tokens.clamp(0, log_probs.size(-1) - 1)
    current = log_probs.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    current = current.clamp(min=math.log(MASK_LOGP_FLOOR))
    return torch.where(masked, masked_logp_feature(log_probs.max(-1).values), -current)


def current_position(masked: torch.Tensor, valid: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """t of φ_pos per hypothesis: leftmost masked position, else step mod L. Shapes (N, L), (N, L), (N,) -> (N,)."""
    length = valid.sum(1).clamp(min=1)
    idx = torch.arange(masked.size(1), device=masked.device).expand_as(masked)
    big = masked.size(1)
    leftmost = idx.masked_fill(~(masked & valid), big).min(1).values
    return torch.where(leftmost < big, leftmost, step % length)


def position_feature(masked: torch.Tensor, valid: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """φ_pos(i) = −log(|t − i| + ε). (N, L) -> (N, L)."""
    t = current_position(masked, valid, step).unsqueeze(1)
    idx = torch.arange(masked.size(1), device=masked.device).unsqueeze(0)
    return -torch.log((idx - t).abs().float() + POSITION_EPS)


# ---------------------------------------------------------------------- strategies
class CoordinateStrategy(abc.ABC):
    """Base class. Subclasses implement :meth:`potentials`; the rest is shared.

    potentials(inp) -> (N, L) unnormalized log-potentials (1/τ) Σ α φ (anything at non-candidates).
    log_probs(inp) -> (N, L) log p(z_i = 1), a log-softmax over the candidate positions (−inf elsewhere); this is
        the coordinate term of the score of Eq. (4.5).
    selection_keys(inp) -> (N, L) the order in which positions are taken (higher first); the greedy choice
        is the argmax of the distribution, uniform overrides it with a random order.
    """

    name = "base"
    needs_hidden = False
    uses_negent = True  # whether potentials() read StrategyInput.negent
    history_size = 0

    @abc.abstractmethod
    def potentials(self, inp: StrategyInput) -> torch.Tensor:
        """(N, L) unnormalized log-potentials of the coordinate distribution."""

    def log_probs(self, inp: StrategyInput) -> torch.Tensor:
        pot = self.potentials(inp).float().masked_fill(~inp.candidates, float("-inf"))
        out = F.log_softmax(pot, dim=-1)
        # rows without candidates (finished hypotheses) get -inf everywhere instead of NaN. (Not nan_to_num: it
        # also turns -inf into the most negative finite float, which then enters beam scores as a number.)
        return out.masked_fill(~inp.candidates | out.isnan(), float("-inf"))

    def selection_keys(self, inp: StrategyInput, log_pz: torch.Tensor) -> torch.Tensor:
        return log_pz

    def select(self, inp: StrategyInput, k: int = 1) -> torch.Tensor:
        """Greedy choice of the top-k candidate positions. Returns (N, k) position indices."""
        keys = self.selection_keys(inp, self.log_probs(inp)).masked_fill(~inp.candidates, float("-inf"))
        return keys.topk(k, dim=-1).indices


class LogLinearStrategy(CoordinateStrategy):
    """Eq. (4.2) with weights (α_negent, α_logp, α_pos) and temperature τ."""

    default_weights = (0.0, 0.0, 0.0)

    def __init__(self, weights: Optional[Sequence[float]] = None, temperature: float = 1.0, **unused):
        weights = tuple(self.default_weights if weights is None else weights)
        if len(weights) != 3:
            raise ValueError(f"--strategy-weights takes 3 numbers: alpha_negent,alpha_logp,alpha_pos; got {weights}")
        if not temperature > 0:
            raise ValueError(f"--strategy-temperature (tau) must be > 0, got {temperature}")
        self.alpha_negent, self.alpha_logp, self.alpha_pos = (float(w) for w in weights)
        self.temperature = float(temperature)
        self.uses_negent = self.alpha_negent != 0.0

    def potentials(self, inp: StrategyInput) -> torch.Tensor:
        out = torch.zeros(inp.tokens.shape, device=inp.tokens.device)
        if self.alpha_negent:
            out = out + self.alpha_negent * inp.negent.float()
        if self.alpha_logp:
            out = out - self.alpha_logp * inp.current_logp.float()
        if self.alpha_pos:
            out = out + self.alpha_pos * position_feature(inp.masked, inp.valid, inp.step)
        return out / self.temperature


register_strategy("loglinear")(LogLinearStrategy)


def _named(name: str, weights):
    """A log-linear strategy with fixed default weights (still overridable by --strategy-weights)."""
    cls = type(name.replace("-", "_").title().replace("_", ""), (LogLinearStrategy,), {"default_weights": weights})
    cls.__doc__ = f"Log-linear strategy {name}: (α_negent, α_logp, α_pos) = {weights}."
    return register_strategy(name)(cls)


LeftToRight = _named("left2right", (0.0, 0.0, 1.0))
LeastToMost = _named("least2most", (0.0, 1.0, 0.0))
EasyFirst = _named("easy-first", (1.0, 1.0, 0.0))
HardFirst = _named("hard-first", (-1.0, -1.0, 0.0))


@register_strategy("uniform")
class UniformStrategy(CoordinateStrategy):
    """τ → ∞: every candidate equally likely; positions are taken in a random order (without replacement, because
    only masked positions are candidates while any is left). Seeded through ``seed``."""

    def __init__(self, seed: int = 1, **unused):
        self.generator = torch.Generator().manual_seed(int(seed))

    def potentials(self, inp: StrategyInput) -> torch.Tensor:
        return torch.zeros(inp.tokens.shape, device=inp.tokens.device)

    def selection_keys(self, inp: StrategyInput, log_pz: torch.Tensor) -> torch.Tensor:
        keys = torch.rand(inp.tokens.shape, generator=self.generator).to(inp.tokens.device)
        return keys.masked_fill(~inp.candidates, float("-inf"))


@register_strategy("learned")
class LearnedStrategy(CoordinateStrategy):
    """π_θ(a|s) = softmax_i f_θ(h_i, h̄) from a trained policy (``iterref-train-policy``); greedy at test time."""

    needs_hidden = True
    uses_negent = False

    def __init__(self, policy_path: Optional[str] = None, policy=None, **unused):
        if policy is None:
            from ..modules.coordinate_policy import load_policy

            if not policy_path:
                raise ValueError("--decoding-strategy learned needs --policy-path (a file written by "
                                 "iterref-train-policy)")
            policy = load_policy(policy_path)
        self.policy = policy.eval()
        self.history_size = policy.history_size

    def potentials(self, inp: StrategyInput) -> torch.Tensor:
        if inp.hidden is None:
            raise ValueError("the learned strategy needs the model's output vectors (hidden states)")
        with torch.no_grad():
            return self.policy.logits(inp.hidden.float(), inp.history, inp.history_count, inp.candidates)


def build_strategy(name: str, weights: Optional[Sequence[float]] = None, temperature: float = 1.0,
                   seed: int = 1, policy_path: Optional[str] = None, policy=None) -> CoordinateStrategy:
    """Instantiate a registered strategy by name; unknown names give one clear error."""
    if name not in STRATEGY_REGISTRY:
        raise ValueError(f"unknown decoding strategy {name!r}; choose one of {', '.join(sorted(STRATEGY_REGISTRY))}")
    cls = STRATEGY_REGISTRY[name]
    if name == "learned":
        return cls(policy_path=policy_path, policy=policy)
    if name == "uniform":
        return cls(seed=seed)
    return cls(weights=weights, temperature=temperature)


def parse_weights(text: Optional[str]):
    """'1,0.9,0' -> (1.0, 0.9, 0.0); None/'' -> None."""
    if text is None or str(text).strip() == "":
        return None
    try:
        weights = tuple(float(x) for x in str(text).split(","))
    except ValueError:
        raise ValueError(f"--strategy-weights must be three comma-separated numbers "
                         f"(alpha_negent,alpha_logp,alpha_pos), got {text!r}") from None
    if len(weights) != 3:
        raise ValueError(f"--strategy-weights must be three comma-separated numbers "
                         f"(alpha_negent,alpha_logp,alpha_pos), got {text!r}")
    return weights
