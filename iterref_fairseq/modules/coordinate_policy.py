"""Learned coordinate selection (thesis §4.3.2 and §4.4): policy and value networks.

π_θ(a_t | s_t) = softmax(f_θ(h_1, h̄), …, f_θ(h_L, h̄)) over the candidate positions, where h_i is the masked
LM's output vector at position i and h̄ = (1/k) Σ_{j=1..k} (emb_θ(j) + h^j_{a_j}) summarizes the last k chosen
positions (h^j_{a_j}: the output vector at the position chosen j steps ago, taken when it was chosen; emb_θ(j) a
learned embedding of the recency slot j). f_θ is a 2-layer MLP over [h_i ; h̄] (thesis: hidden 1024). With k = 0
(or before anything was chosen) h̄ = 0.

The value function V_θ(s) = MLP((1/L) Σ_i [h_i ; h̄]) (one hidden layer) gives the PPO baseline.
"""
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.nn as nn


class CoordinatePolicy(nn.Module):
    def __init__(self, input_dim: int, hidden_dim: int = 1024, history_size: int = 0, value_hidden: int = 256):
        super().__init__()
        self.input_dim, self.hidden_dim = input_dim, hidden_dim
        self.history_size, self.value_hidden = history_size, value_hidden
        self.slot_embed = nn.Embedding(max(history_size, 1), input_dim)
        nn.init.normal_(self.slot_embed.weight, std=0.02)
        self.f = nn.Sequential(nn.Linear(2 * input_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))
        self.value = nn.Sequential(nn.Linear(2 * input_dim, value_hidden), nn.Tanh(), nn.Linear(value_hidden, 1))

    def config(self) -> Dict:
        return {"input_dim": self.input_dim, "hidden_dim": self.hidden_dim, "history_size": self.history_size,
                "value_hidden": self.value_hidden}

    def summary(self, hidden: torch.Tensor, history: Optional[torch.Tensor],
                history_count: Optional[torch.Tensor]) -> torch.Tensor:
        """h̄: (N, C). history (N, k, C) oldest first, history_count (N,) filled entries (the newest ones)."""
        n, _, c = hidden.shape
        if self.history_size == 0 or history is None or history_count is None:
            return hidden.new_zeros(n, c)
        k = history.size(1)
        slots = torch.arange(k, device=hidden.device)
        filled = slots.unsqueeze(0) >= (k - history_count).unsqueeze(1)  # (N, k)
        recency = (k - 1 - slots).clamp(max=self.history_size - 1)  # 0 = newest
        vec = (history + self.slot_embed(recency).unsqueeze(0)) * filled.unsqueeze(-1).type_as(history)
        return vec.sum(1) / history_count.clamp(min=1).unsqueeze(1).type_as(history)

    def logits(self, hidden: torch.Tensor, history: Optional[torch.Tensor], history_count: Optional[torch.Tensor],
               candidates: torch.Tensor) -> torch.Tensor:
        """(N, L, C) -> (N, L) f_θ(h_i, h̄), −inf at non-candidates."""
        hbar = self.summary(hidden, history, history_count)
        x = torch.cat([hidden, hbar.unsqueeze(1).expand_as(hidden)], dim=-1)
        return self.f(x).squeeze(-1).masked_fill(~candidates, float("-inf"))

    def values(self, hidden: torch.Tensor, history: Optional[torch.Tensor], history_count: Optional[torch.Tensor],
               valid: torch.Tensor) -> torch.Tensor:
        """V_θ(s): (N, L, C) -> (N,), mean over the real positions ``valid`` (N, L)."""
        hbar = self.summary(hidden, history, history_count)
        keep = valid.unsqueeze(-1).type_as(hidden)
        mean_h = (hidden * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.value(torch.cat([mean_h, hbar], dim=-1)).squeeze(-1)


def save_policy(policy: CoordinatePolicy, path, extra: Optional[Dict] = None) -> None:
    torch.save({"config": policy.config(), "state_dict": policy.state_dict(), "extra": extra or {}}, str(path))


def load_policy(path) -> CoordinatePolicy:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"policy file not found: {path}; train one with iterref-train-policy "
                                "(see docs/masked_translation.md)")
    try:
        blob = torch.load(str(path), map_location="cpu", weights_only=True)
        policy = CoordinatePolicy(**blob["config"])
        policy.load_state_dict(blob["state_dict"])
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same message
        raise ValueError(f"cannot read policy file {path} ({err}); it must be written by iterref-train-policy") \
            from None
    return policy
