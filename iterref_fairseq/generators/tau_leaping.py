"""tau-leaping sampler for insertion models (FlexMDM / LFlexMDM; the LFlexMDM paper, sampling algorithm).

The sampler is model-agnostic. A model implements::

    mask_index: int                                         # id of <mask>
    max_decoder_positions() -> int                          # L_max
    rates(prompt, tokens, padding_mask, t)
        -> (log K (B, L, V), lambda_in (B, L), lambda_um (B, L), remaining (B, L))

where ``lambda_in[:, j]`` is the insertion rate of the gap left of position j (the trailing EOS owns the last
gap), ``lambda_um[:, j]`` the unmasking rate of position j and ``remaining[:, j]`` the expected number of tokens
still to insert in the gap left of j (FlexMDM: the insertion multiplier b_in^theta itself; LFlexMDM: its
remaining-count head, since there the multiplier is the remaining tokens' sum of b, not their number). The
generated sequence starts as ``[EOS]`` (the empty sequence) or as a fixed initial sequence (``init_tokens``: given
tokens, possibly with masks), and the prompt (e.g. a star-graph query) conditions every step but is never edited.

One step from t to t + dt (``sampling_steps`` = N steps, dt = 1 / N, t_k = k / N), all events drawn from the rates
at x_t (tau-leaping):

1. unmasking: every masked position has Poisson(lambda_um dt) events; a position with >= 1 event is revealed
   with a token drawn from K (after temperature, top-k and top-p filtering). With ``confidence`` set, the
   *number* of reveals per row is the same but the revealed positions are the most confident masked ones
   (``top_prob``: max probability; ``prob_diff``: gap between the two most likely tokens; ``entropy``: lowest
   entropy of K);
2. insertion: each gap receives Poisson(lambda_in dt) new masks (several per gap allowed). When a row's
   insertions would make it longer than ``max_len`` content tokens, all of that row's insertions of the step are
   rejected (counted in ``rejected``; the reference code's rule, which favours no gap). In the last
   step every token still absent must arrive (the hazard integrates to infinity on [1 - dt, 1]), so each gap
   receives round(remaining) masks, its expected remaining count (deviation from plain tau-leaping, whose
   Poisson draw in that step has the right mean but the wrong count for most gaps that still expect a token;
   with learned schedules its mean, the integral of lambda_in over [1 - dt, 1), is not even finite);
3. after the last step, the remaining masks are filled by argmax.

Every output token carries the step at which it was inserted and revealed (0 = present from the start,
N + 1 = the final argmax step), which the order analysis (``iterref-analyze-star-order``) reads.
"""
import logging
from typing import Dict, List, Optional

import torch

from . import in_eval_mode

logger = logging.getLogger(__name__)

CONFIDENCE = ("none", "top_prob", "prob_diff", "entropy")


def filter_logprobs(logp: torch.Tensor, top_k: int = 0, top_p: float = 1.0, temperature: float = 1.0) -> torch.Tensor:
    """Temperature, top-k and nucleus (top-p) filtering of log-probabilities (..., V); renormalised."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logp = torch.log_softmax(logp / temperature, -1)
    if top_k > 0 and top_k < logp.size(-1):
        kth = logp.topk(top_k, -1).values[..., -1:]
        logp = logp.masked_fill(logp < kth, float("-inf"))
    if top_p < 1.0:
        sorted_lp, order = logp.sort(-1, descending=True)
        cum = sorted_lp.exp().cumsum(-1)
        drop_sorted = (cum - sorted_lp.exp()) >= top_p  # keep the smallest prefix with mass >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logp = logp.masked_fill(drop, float("-inf"))
    return torch.log_softmax(logp, -1)


def insert_masks(tokens: torch.Tensor, counts: torch.Tensor, pad: int, mask: int, *carry: torch.Tensor,
                 carry_fill: int = -1):
    """Inserts ``counts[:, j]`` masks left of position j. tokens, counts, carry: (B, L) -> (B, L').

    Old token j moves to j + (inclusive cumsum of counts)[j]. Example: tokens [A M EOS], counts [1 0 2] ->
    new positions [1 2 5] -> [M A M M M EOS]. ``carry`` tensors move with their tokens; new cells get carry_fill.
    """
    bsz, length = tokens.shape
    new_pos = torch.arange(length, device=tokens.device).unsqueeze(0) + counts.cumsum(1)
    lengths = tokens.ne(pad).sum(1) + counts.sum(1)
    width = int(lengths.max())
    full_width = length + int(counts.sum(1).max())
    out = tokens.new_full((bsz, full_width), pad).scatter(1, new_pos, tokens)
    filled = torch.zeros(bsz, full_width, dtype=torch.bool, device=tokens.device).scatter(
        1, new_pos, torch.ones_like(tokens, dtype=torch.bool))
    inside = torch.arange(full_width, device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)
    out = out.masked_fill(~filled & inside, mask)[:, :width]
    moved = [c.new_full((bsz, full_width), carry_fill).scatter(1, new_pos, c)[:, :width] for c in carry]
    return (out, *moved)


class TauLeapingSampler:
    """Generates with tau-leaping; see the module docstring.

    Args:
        tgt_dict: target dictionary (pad / eos).
        sampling_steps: N, number of tau-leaping steps (``--sampling-steps``).
        max_len: L_max, cap on generated content tokens (0 = the model's maximum).
        top_k / top_p / temperature: filtering of K (fairseq's ``--sampling-topk``, ``--sampling-topp``,
            ``--temperature``).
        confidence: position choice for unmasking, one of CONFIDENCE.
        seed: seeds a private torch.Generator (None: the global RNG, which fairseq-generate seeds with --seed).
    """

    def __init__(self, tgt_dict, sampling_steps: int = 64, max_len: int = 0, top_k: int = 0, top_p: float = 1.0,
                 temperature: float = 1.0, confidence: str = "none", seed: Optional[int] = None,
                 retain_history: bool = False):
        if sampling_steps is None or int(sampling_steps) < 1:
            raise ValueError(f"--sampling-steps must be >= 1, got {sampling_steps}")
        if confidence not in CONFIDENCE:
            raise ValueError(f"unknown confidence {confidence!r}; choose one of {', '.join(CONFIDENCE)}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"--sampling-topp must be in (0, 1], got {top_p}")
        self.pad, self.eos = tgt_dict.pad(), tgt_dict.eos()
        self.steps = int(sampling_steps)
        self.max_len = int(max_len or 0)
        self.top_k, self.top_p, self.temperature = max(int(top_k or 0), 0), float(top_p), float(temperature)
        self.confidence = confidence
        self.seed = seed
        self.retain_history = retain_history

    # ------------------------------------------------------------------ one sequence batch
    @torch.no_grad()
    def sample(self, model, prompt: torch.Tensor, init_tokens: Optional[torch.Tensor] = None) -> Dict:
        """Runs the sampler. prompt (B, S) token ids (pads allowed); init_tokens (B, L0) optional fixed start
        (content tokens and masks, right-padded, no EOS).

        Returns {tokens (B, L) content + EOS (no masks), insert_step (B, L), reveal_step (B, L), scores (B, L)
        log K of the chosen token (0 for given tokens), rejected (B,) refused insertions, history}.
        """
        gen = None
        if self.seed is not None:
            gen = torch.Generator(device=prompt.device).manual_seed(int(self.seed))
        mask = model.mask_index
        max_len = self.max_len or model.max_decoder_positions()
        max_len = min(max_len, model.max_decoder_positions())
        bsz, device = prompt.size(0), prompt.device
        if init_tokens is None:
            tokens = torch.full((bsz, 1), self.eos, dtype=torch.long, device=device)
        else:
            n0 = init_tokens.ne(self.pad).sum(1)
            if int(n0.max()) > max_len:
                raise ValueError(f"initial sequence of {int(n0.max())} tokens exceeds the maximum length {max_len}")
            tokens = torch.cat([init_tokens, init_tokens.new_full((bsz, 1), self.pad)], 1)
            tokens = tokens.scatter(1, n0.unsqueeze(1), self.eos)
        insert_step = torch.where(tokens.ne(self.pad), 0, -1)
        reveal_step = torch.where(tokens.ne(self.pad) & tokens.ne(mask), 0, -1)
        scores = torch.zeros(tokens.shape, device=device)
        rejected = torch.zeros(bsz, dtype=torch.long, device=device)
        history = [] if self.retain_history else None
        dt = 1.0 / self.steps
        for k in range(self.steps):
            t = torch.full((bsz,), k * dt, device=device)
            pad_mask = tokens.eq(self.pad)
            logp, lam_in, lam_um, remaining = model.rates(prompt, tokens, pad_mask, t)
            is_mask = tokens.eq(mask)
            # 1. unmasking: Poisson(lambda_um dt) >= 1 event
            if bool(is_mask.any()):
                fl = filter_logprobs(logp, self.top_k, self.top_p, self.temperature)
                drawn = torch.multinomial(fl.exp().view(-1, fl.size(-1)), 1, generator=gen).view(tokens.shape)
                drawn_lp = logp.gather(2, drawn.unsqueeze(2)).squeeze(2)
                events = torch.poisson(lam_um * dt * is_mask, generator=gen).gt(0) & is_mask
                if self.confidence != "none":
                    events = self._most_confident(logp, is_mask, events.sum(1))
                tokens = torch.where(events, drawn, tokens)
                scores = torch.where(events, drawn_lp, scores)
                reveal_step = torch.where(events, k + 1, reveal_step)
            # 2. insertion: Poisson(lambda_in dt) masks per gap, refused beyond max_len. The last interval
            # [1 - dt, 1] has an infinite integrated hazard (every token still absent arrives), so the last step
            # inserts the model's expected remaining count, rounded, instead of a Poisson draw with that mean --
            # which would get the count wrong about 60% of the time.
            if k == self.steps - 1:
                counts = torch.round(remaining * (~pad_mask)).long()
            else:
                counts = torch.poisson(lam_in * dt * (~pad_mask), generator=gen).long()
            # a row whose insertions would pass max_len gets none in this step (the reference's rule): accepting
            # them left-first up to the limit would favour the left gaps
            room = (max_len - (tokens.ne(self.pad).sum(1) - 1)).clamp(min=0)  # content tokens (EOS excluded)
            over = counts.sum(1) > room
            rejected += torch.where(over, counts.sum(1), torch.zeros_like(rejected))
            capped = counts.masked_fill(over.unsqueeze(1), 0)
            if bool(capped.any()):
                tokens, insert_step, reveal_step, scores = insert_masks(
                    tokens, capped, self.pad, mask, insert_step, reveal_step, scores)
                insert_step = torch.where(tokens.eq(mask) & insert_step.eq(-1), k + 1, insert_step)
                scores = scores.masked_fill(tokens.eq(mask) | tokens.eq(self.pad), 0.0)
            if history is not None:
                history.append(tokens.clone())
        # 3. final argmax step for the masks left
        is_mask = tokens.eq(mask)
        if bool(is_mask.any()):
            t = torch.full((bsz,), 1.0 - 0.5 * dt, device=device)
            logp = model.rates(prompt, tokens, tokens.eq(self.pad), t)[0]
            best_lp, best = logp.max(-1)
            tokens = torch.where(is_mask, best, tokens)
            scores = torch.where(is_mask, best_lp, scores)
            reveal_step = torch.where(is_mask, self.steps + 1, reveal_step)
            if history is not None:
                history.append(tokens.clone())
        if int(rejected.sum()):
            logger.info("max-length guard refused %d insertions (L_max = %d)", int(rejected.sum()), max_len)
        return {"tokens": tokens, "insert_step": insert_step, "reveal_step": reveal_step, "scores": scores,
                "rejected": rejected, "history": history}

    def _most_confident(self, logp: torch.Tensor, is_mask: torch.Tensor, n_reveal: torch.Tensor) -> torch.Tensor:
        """(B, L) reveal mask choosing, per row, the n_reveal masked positions with the highest confidence."""
        probs = logp.exp()
        if self.confidence == "top_prob":
            conf = probs.max(-1).values
        elif self.confidence == "prob_diff":
            top2 = probs.topk(2, -1).values
            conf = top2[..., 0] - top2[..., 1]
        else:  # entropy: low entropy = confident
            conf = (probs * logp.masked_fill(probs.eq(0), 0.0)).sum(-1)
        conf = conf.masked_fill(~is_mask, float("-inf"))
        rank = conf.argsort(1, descending=True).argsort(1)
        return (rank < n_reveal.unsqueeze(1)) & is_mask

    # ------------------------------------------------------------------ fairseq-generate entry point
    def generate(self, models, sample: Dict, prefix_tokens=None, constraints=None, **kwargs) -> List[List[Dict]]:
        if len(models) != 1:
            raise ValueError("tau-leaping decodes with one model; ensembles are not supported")
        if constraints is not None or prefix_tokens is not None:
            raise ValueError("tau-leaping does not support --prefix-size or --constraints")
        model = in_eval_mode(models[0])
        out = self.sample(model, sample["net_input"]["src_tokens"])
        hyps = []
        for i in range(out["tokens"].size(0)):
            toks = out["tokens"][i]
            keep = toks.ne(self.pad) & toks.ne(self.eos)
            content, sc = toks[keep], out["scores"][i][keep]
            hyp = {
                "tokens": torch.cat([content, toks.new_full((1,), self.eos)]),
                "positional_scores": torch.cat([sc, sc.new_zeros(1)]),
                "score": float(sc.mean()) if sc.numel() else 0.0,
                "alignment": None, "attention": None, "steps": self.steps + 1,
                "insert_steps": out["insert_step"][i][keep].tolist(),
                "reveal_steps": out["reveal_step"][i][keep].tolist(),
                "rejected": int(out["rejected"][i]),
            }
            if out["history"] is not None:
                hyp["history"] = [{"tokens": torch.cat([h[i][h[i].ne(self.pad) & h[i].ne(self.eos)],
                                                        toks.new_full((1,), self.eos)])} for h in out["history"]]
            hyps.append([hyp])
        return hyps
