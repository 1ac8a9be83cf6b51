"""``iterref-train-policy``: learn a coordinate-selection policy for a masked translation model with PPO.

Thesis §4.4 ("Learned decoding strategies"): the masked LM is frozen; an episode decodes one sentence in linear
time (T = L, here with the reference length), positions are *sampled* from the policy π_θ and symbols chosen
greedily; the reward of a step is the decrease of the edit distance to the reference,
r_t = d_edit(Y^{≤t}, Y) − d_edit(Y^{≤t+1}, Y) (a <mask> never matches). Each iteration samples a batch of episodes
(generation batch), appends their time steps to a FIFO buffer, and runs PPO epochs (clipped surrogate objective of
Schulman et al. 2017, learned value baseline, advantages A_t = G_t − V(s_t) with discounted returns G_t, γ) on
mini-batches (update batch) drawn from the buffer.

Example (see examples/masked_translation/README.md)::

    iterref-train-policy work/bible/bin --path work/mt/checkpoint_last.pt --out work/mt/policy.pt \\
        --iterations 200 --generation-batch 16 --buffer-size 1000 --update-batch 32 --gamma 0.9 --history 0

then ``fairseq-generate ... --decoding-strategy learned --policy-path work/mt/policy.pt``.
The run ends with a JSON summary line (``{"summary": ...}``) and writes it next to the policy (``.json``).
"""
import argparse
import json
import logging
import os
import platform
import random
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Protocol

import torch
import torch.nn.functional as F

from ..modules.coordinate_policy import CoordinatePolicy, save_policy
from .common import (CLIError, add_argument, add_data_argument, add_device_arguments, add_max_examples_argument,
                     check_out_dir, check_positive, console_main, load_checkpoint, new_parser, provenance, resolve_data,
                     resolve_device)

PROG = "iterref-train-policy"

logger = logging.getLogger("iterref.train_policy")


# ---------------------------------------------------------------------- environments
class Environment(Protocol):
    """Episodic coordinate selection for a batch of n sequences.

    reset() -> observation dict: hidden (n, L, C), candidates (n, L), valid (n, L)
    step(actions (n,)) -> (observation, rewards (n,), done (n,) bool); rows already done must be ignored.
    """

    def reset(self) -> Dict[str, torch.Tensor]: ...

    def step(self, actions: torch.Tensor): ...


def edit_distance(a: List[int], b: List[int]) -> int:
    """Levenshtein distance between two token lists."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


class MaskedLMEnvironment:
    """Linear-time decoding of reference-length canvases with a frozen masked translation model."""

    def __init__(self, model, pairs: List[Dict[str, torch.Tensor]], batch_size: int, seed: int = 1):
        self.model, self.pairs, self.batch_size = model.eval(), pairs, batch_size
        self.rng = random.Random(seed)
        for p in model.parameters():
            p.requires_grad_(False)

    def _observe(self):
        with torch.no_grad():
            lp, hid = self.model.canvas_log_probs(self.src, self.canvas)
        self.lp = lp
        masked = self.canvas.eq(self.model.mask_index) & self.valid
        return {"hidden": hid.float(), "candidates": masked, "valid": self.valid}

    def reset(self):
        from fairseq.data import data_utils

        batch = [self.pairs[self.rng.randrange(len(self.pairs))] for _ in range(self.batch_size)]
        pad, eos = self.model.pad, self.model.eos
        dev = next(self.model.parameters()).device
        self.src = data_utils.collate_tokens([b["source"] for b in batch], pad, eos).to(dev)
        self.refs = [self.model.content(b["target"]).masked_select(self.model.content(b["target"]).ne(pad)).tolist()
                     for b in batch]
        lengths = torch.tensor([max(1, len(r)) for r in self.refs], device=dev)
        width = int(lengths.max())
        self.valid = torch.arange(width, device=dev).unsqueeze(0) < lengths.unsqueeze(1)
        self.canvas = torch.full((len(batch), width), pad, device=dev).masked_fill(self.valid, self.model.mask_index)
        self.dist = [edit_distance(self._hyp(i), r) for i, r in enumerate(self.refs)]
        return self._observe()

    def _hyp(self, i: int) -> List[int]:
        return self.canvas[i][self.valid[i]].tolist()

    def step(self, actions: torch.Tensor):
        rows = torch.arange(actions.numel(), device=actions.device)
        active = (self.canvas.eq(self.model.mask_index) & self.valid).any(1)
        symbols = self.lp[rows, actions].argmax(-1)  # symbols greedy
        self.canvas[rows[active], actions[active]] = symbols[active]
        rewards = torch.zeros(actions.numel())
        for i in rows[active].tolist():
            d = edit_distance(self._hyp(i), self.refs[i])
            rewards[i] = float(self.dist[i] - d)  # r_t = d_edit(Y^t) - d_edit(Y^{t+1})
            self.dist[i] = d
        obs = self._observe()
        done = ~obs["candidates"].any(1)
        return obs, rewards, done.cpu()

    def final_distances(self) -> List[int]:
        return list(self.dist)


# ---------------------------------------------------------------------- PPO
@dataclass
class PPOConfig:
    gamma: float = 0.9
    clip: float = 0.2
    lr: float = 1e-4
    ppo_epochs: int = 4
    buffer_size: int = 1000
    update_batch: int = 32
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 1.0


class PPOTrainer:
    """Collects episodes with the current policy into a FIFO buffer and runs clipped-surrogate PPO updates."""

    def __init__(self, policy: CoordinatePolicy, cfg: PPOConfig, seed: int = 1):
        self.policy, self.cfg = policy, cfg
        self.opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
        self.buffer: deque = deque(maxlen=cfg.buffer_size)  # FIFO of time steps
        self.gen = torch.Generator().manual_seed(seed)

    def _history_update(self, hist, count, hidden, actions, active):
        if hist is None:
            return hist, count
        rows = torch.arange(actions.numel())
        vec = hidden[rows, actions]
        new_hist = torch.cat([hist[:, 1:], vec.unsqueeze(1)], 1)
        hist = torch.where(active.view(-1, 1, 1), new_hist, hist)
        count = torch.where(active, (count + 1).clamp(max=hist.size(1)), count)
        return hist, count

    @torch.no_grad()
    def collect(self, env) -> Dict[str, float]:
        """Runs one batch of episodes; returns the mean undiscounted return."""
        obs = env.reset()
        n = obs["hidden"].size(0)
        k = self.policy.history_size
        hist = torch.zeros(n, k, obs["hidden"].size(-1)) if k > 0 else None
        count = torch.zeros(n, dtype=torch.long) if k > 0 else None
        steps: List[Dict] = []
        done = ~obs["candidates"].any(1).cpu()
        while not bool(done.all()):
            hidden, cand, valid = obs["hidden"].cpu(), obs["candidates"].cpu(), obs["valid"].cpu()
            logits = self.policy.logits(hidden, hist, count, cand)
            probs = F.softmax(logits.masked_fill(~cand, float("-inf")), -1).nan_to_num(0.0)
            probs = torch.where(done.unsqueeze(1), torch.ones_like(probs) / probs.size(1), probs)
            actions = torch.multinomial(probs, 1, generator=self.gen).squeeze(1)
            logp = torch.log(probs.gather(1, actions.unsqueeze(1)).squeeze(1).clamp(min=1e-12))
            active = ~done
            new_obs, rewards, new_done = env.step(actions.to(obs["hidden"].device))
            steps.append({"hidden": hidden, "cand": cand, "valid": valid, "hist": hist, "count": count,
                          "action": actions, "logp": logp, "reward": rewards * active, "active": active})
            hist, count = self._history_update(hist, count, hidden, actions, active)
            obs, done = new_obs, new_done | done
        # discounted returns G_t, per episode
        ret = torch.zeros(n)
        returns = []
        for st in reversed(steps):
            ret = st["reward"] + self.cfg.gamma * ret * st["active"]
            returns.append(ret.clone())
        returns.reverse()
        for st, g in zip(steps, returns):
            for i in st["active"].nonzero().flatten().tolist():
                self.buffer.append({
                    "hidden": st["hidden"][i], "cand": st["cand"][i], "valid": st["valid"][i],
                    "hist": None if st["hist"] is None else st["hist"][i],
                    "count": None if st["count"] is None else st["count"][i],
                    "action": st["action"][i], "logp": st["logp"][i], "ret": g[i],
                })
        total = sum(st["reward"] for st in steps) if steps else torch.zeros(n)
        return {"return": float(total.mean()), "steps": len(steps)}

    def _batch(self, items: List[Dict]) -> Dict[str, torch.Tensor]:
        width = max(it["hidden"].size(0) for it in items)

        def pad(x, value=0):
            return F.pad(x, (0, 0, 0, width - x.size(0)) if x.dim() == 2 else (0, width - x.size(0)), value=value)

        out = {
            "hidden": torch.stack([pad(it["hidden"]) for it in items]),
            "cand": torch.stack([pad(it["cand"], False) for it in items]),
            "valid": torch.stack([pad(it["valid"], False) for it in items]),
            "action": torch.stack([it["action"] for it in items]),
            "logp": torch.stack([it["logp"] for it in items]),
            "ret": torch.stack([it["ret"] for it in items]),
        }
        if items[0]["hist"] is not None:
            out["hist"] = torch.stack([it["hist"] for it in items])
            out["count"] = torch.stack([it["count"] for it in items])
        return out

    def update(self) -> Dict[str, float]:
        """PPO epochs over mini-batches sampled from the buffer (clipped surrogate + value loss)."""
        cfg = self.cfg
        if not self.buffer:
            return {}
        n_batches = max(1, len(self.buffer) // cfg.update_batch)
        stats = {"policy_loss": 0.0, "value_loss": 0.0}
        items = list(self.buffer)
        for _ in range(cfg.ppo_epochs):
            for _ in range(n_batches):
                idx = torch.randint(len(items), (min(cfg.update_batch, len(items)),), generator=self.gen)
                b = self._batch([items[i] for i in idx.tolist()])
                hist, count = b.get("hist"), b.get("count")
                logits = self.policy.logits(b["hidden"], hist, count, b["cand"])
                logp_all = F.log_softmax(logits, -1)
                logp = logp_all.gather(1, b["action"].unsqueeze(1)).squeeze(1)
                value = self.policy.values(b["hidden"], hist, count, b["valid"])
                adv = (b["ret"] - value).detach()
                if adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                ratio = torch.exp(logp - b["logp"])
                surrogate = torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv)
                policy_loss = -surrogate.mean()
                value_loss = F.mse_loss(value, b["ret"])
                probs = logp_all.exp()
                entropy = -(probs * logp_all.masked_fill(~b["cand"], 0.0)).sum(-1).mean()
                loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
                self.opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
                self.opt.step()
                stats["policy_loss"] += float(policy_loss.detach()) / (n_batches * cfg.ppo_epochs)
                stats["value_loss"] += float(value_loss.detach()) / (n_batches * cfg.ppo_epochs)
        return stats

    def train(self, env, iterations: int, log_every: int = 10) -> List[float]:
        """Alternates collection and update; returns the mean return of every iteration."""
        history = []
        for it in range(iterations):
            res = self.collect(env)
            stats = self.update()
            history.append(res["return"])
            if log_every and (it + 1) % log_every == 0:
                recent = history[-log_every:]
                logger.info("iteration %d | return %.3f | policy_loss %.4f | value_loss %.4f | buffer %d",
                            it + 1, sum(recent) / len(recent), stats.get("policy_loss", 0.0),
                            stats.get("value_loss", 0.0), len(self.buffer))
        return history


# ---------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "binarized data directory (fairseq-preprocess output) the model was trained on")
    p.add_argument("--path", required=True, metavar="CHECKPOINT", help="masked_translation checkpoint (kept frozen)")
    p.add_argument("--out", required=True, help="where to write the policy (.pt); its summary goes beside it (.json)")
    p.add_argument("--source-lang", "-s", default=None, help="source language (default: the checkpoint's)")
    p.add_argument("--target-lang", "-t", default=None, help="target language (default: the checkpoint's)")
    add_argument(p, "--train-subset", default="train", metavar="SPLIT", deprecated=("--subset",),
                 help="split of DATA whose pairs are decoded during training (default train)")
    add_max_examples_argument(p, 20000, "use the first N pairs of the split (default 20000)",
                              deprecated=("--max-pairs",), batch_flag="--generation-batch")
    p.add_argument("--iterations", type=int, default=200, help="PPO iterations (collect + update)")
    p.add_argument("--generation-batch", type=int, default=16, help="episodes (sentences) per iteration")
    p.add_argument("--buffer-size", type=int, default=1000, help="FIFO buffer size in time steps")
    p.add_argument("--update-batch", type=int, default=32, help="time steps per PPO mini-batch")
    p.add_argument("--ppo-epochs", type=int, default=4, help="PPO epochs over the buffer per iteration")
    p.add_argument("--gamma", type=float, default=0.9, help="discount (thesis: 0.9)")
    p.add_argument("--clip", type=float, default=0.2, help="PPO clipping epsilon")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate of the policy")
    p.add_argument("--history", type=int, default=0, help="k: last chosen positions summarized in h-bar")
    p.add_argument("--hidden-dim", type=int, default=1024, help="hidden size of the 2-layer MLP f_theta")
    p.add_argument("--seed", type=int, default=1, help="random seed (episodes, sampling, initialization)")
    add_device_arguments(p)
    p.add_argument("--log-every", type=int, default=10, help="log the mean return every N iterations (0 = never)")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        stream=sys.stderr)
    resolve_data(args, fix="pass the fairseq-preprocess output directory as DATA")
    check_positive(iterations=args.iterations, generation_batch=args.generation_batch,
                   update_batch=args.update_batch, buffer_size=args.buffer_size, max_examples=args.max_examples,
                   ppo_epochs=args.ppo_epochs)
    check_out_dir(args.out)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    overrides = {}
    if args.source_lang:
        overrides.update(source_lang=args.source_lang, target_lang=args.target_lang)
    models, _, task = load_checkpoint(args.path, args.data, "pass --path CHECKPOINT of a masked_translation model",
                                      overrides=overrides)
    model = models[0]
    if getattr(model, "iterref_generator", None) != "generalized" or not hasattr(model, "canvas_log_probs"):
        raise CLIError(f"{args.path} is not a masked_translation checkpoint (--path needs a model trained with "
                       "--arch masked_translation*)")
    device = resolve_device(args)
    use_cuda = device.type == "cuda"
    model.to(device)
    try:
        task.load_dataset(args.train_subset)
    except FileNotFoundError as err:
        raise CLIError(f"--train-subset {args.train_subset}: {err} (choose a split of DATA)") from None
    ds = task.datasets[args.train_subset]
    n = min(len(ds), args.max_examples)
    pairs = [{"source": ds[i]["source"], "target": ds[i]["target"]} for i in range(n)]
    env = MaskedLMEnvironment(model, pairs, args.generation_batch, seed=args.seed)
    policy = CoordinatePolicy(model.args.encoder_embed_dim, args.hidden_dim, args.history)
    cfg = PPOConfig(gamma=args.gamma, clip=args.clip, lr=args.lr, ppo_epochs=args.ppo_epochs,
                    buffer_size=args.buffer_size, update_batch=args.update_batch)
    trainer = PPOTrainer(policy, cfg, seed=args.seed)
    start = time.time()
    returns = trainer.train(env, args.iterations, args.log_every)
    first = returns[: max(1, len(returns) // 10)]
    last = returns[-max(1, len(returns) // 10):]
    summary = {
        "policy": args.out, "checkpoint": args.path, "pairs": n, "iterations": args.iterations,
        "config": asdict(cfg), "history": args.history, "hidden_dim": args.hidden_dim, "seed": args.seed,
        "return_first_10pct": sum(first) / len(first), "return_last_10pct": sum(last) / len(last),
        "seconds": round(time.time() - start, 1), "torch": str(torch.__version__), "python": platform.python_version(),
        "hardware": "cuda" if use_cuda else platform.processor() or platform.machine(),
        "provenance": provenance(args),
    }
    save_policy(policy, args.out, extra=summary)
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump(summary, f, indent=2)
    print(f"policy written to {args.out}: mean return {summary['return_first_10pct']:.3f} (first 10% of "
          f"iterations) -> {summary['return_last_10pct']:.3f} (last 10%)")
    print(json.dumps({"summary": summary}))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
