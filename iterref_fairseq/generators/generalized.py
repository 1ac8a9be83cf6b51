"""Generalized sequence generation from a masked translation model (thesis §4.2–4.4, Eq. 4.1 and 4.5).

A generation is G = ((Y^1, Z^1), …, (Y^T, Z^T)) with length L, coordinates Z^t (which positions change at step t)
and symbols Y^t. We decode optimistically (Eq. 4.5):

    argmax_{L, Y^{1..T}, Z^{1..T}}  log p(L|X)
        + Σ_t Σ_i [ log p(z_i^{t+1} | Y^{≤t}, Z^t, X) + z_i^{t+1} log p(y_i^{t+1} | Y^{≤t}, X) ]

by *length-conditioned beam search* (§4.3.3): for each length candidate keep K hypotheses; expand each with the
top-K′ positions of the coordinate-selection distribution (``strategies.py``) and each position with the top-K″
symbols; keep the K best of the K·K′·K″ candidates by cumulative score. K = K″ = ``--beam``, K′ =
``--position-beam``; K = K′ = K″ = 1 is greedy decoding.

Step structure. Every step costs exactly one model pass, so T = the number of passes:

* fill steps (some position still holds <mask>): one pass over the canvas gives the masked conditionals; the
  strategy chooses o positions among the masked ones and the symbols are written there;
* revision steps (nothing masked any more: T = 2L, or constant-time decoding after the canvas is full): the
  strategy chooses o_t filled positions from the features stored when they were written (their log-probability
  and entropy at that time), they are masked again, and the pass predicts them (this is mask-predict's
  re-masking; reading the model's output at an unmasked position would be meaningless because a masked LM is
  only trained at masked positions).

Budgets (``--decoding-budget``, ``--tokens-per-step``):

* linear time: T = L or 2L, o_t = 1 (``one``);
* constant time: T = n, o_t = ⌈L/T⌉ (``ceil``) or annealed linearly from L (t = 1) to 1 (t = T) (``anneal``,
  mask-predict);
* so that every position is filled at the end, a fill step writes at least ⌈masked / steps left⌉ positions.

Length candidates (``--length-candidates`` K_L): from the model's length head, or the K_L most frequent target
lengths seen with this source length in the training data (``--length-from train-stats``, Table 4.1). For each
sentence the final translation is the candidate with the highest mean pseudo log-likelihood (Wang & Cho 2019:
(1/L) Σ_i log p(y_i | Y_{\\i}, X), one extra batched pass with each position masked in turn, not counted in T),
or the highest mean log-probability under an autoregressive fairseq model (``--rescore-path``).
``--length-selection mean-logp`` instead keeps the candidate whose symbols had the highest mean log-probability
when they were written (mask-predict's choice, Ghazvininejad et al. 2019): a deviation from the thesis for
hardware where the L extra passes of the pseudo log-likelihood cost L times the latency (a CPU), not one batched
pass (a GPU). With a single candidate there is nothing to choose and no extra pass is made; the hypothesis'
``score`` is then its mean write-time log-probability.
K′ applies to fill steps that write one position; revision positions are chosen greedily.
"""
import logging
import math
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import in_eval_mode
from .strategies import CoordinateStrategy, StrategyInput, masked_logp_feature, negentropy_feature

logger = logging.getLogger(__name__)

TOKENS_PER_STEP = ("one", "ceil", "anneal")
LENGTH_SELECTION = ("pll", "mean-logp")


def parse_budget(text) -> Tuple[str, int]:
    """'L' -> ('linear', 1); '2L' -> ('linear', 2); '10' -> ('constant', 10). Anything else is an error."""
    s = str(text).strip().upper()
    if s in ("L", "1L"):
        return "linear", 1
    if s == "2L":
        return "linear", 2
    try:
        n = int(s)
    except ValueError:
        n = None
    if n is None or n < 1:
        raise ValueError(f"--decoding-budget must be L, 2L or a positive number of steps T, got {text!r}")
    return "constant", n


def num_steps(budget: Tuple[str, int], length: int) -> int:
    """T for a target of length L."""
    kind, n = budget
    return max(1, n * length) if kind == "linear" else n


def scheduled_tokens(mode: str, step: int, length: int, total: int) -> int:
    """o_t for 0-based step t: 1, ⌈L/T⌉, or linear annealing L -> 1 (o_0 = L, o_{T-1} = 1)."""
    if mode == "one":
        return 1
    if mode == "ceil":
        return max(1, math.ceil(length / total))
    if mode == "anneal":
        if total <= 1:
            return length
        return max(1, int(round(length + (1 - length) * step / (total - 1))))
    raise ValueError(f"--tokens-per-step must be one of {', '.join(TOKENS_PER_STEP)}, got {mode!r}")


class LengthStatistics:
    """Target lengths observed for each source length in the training data (Table 4.1 of the thesis)."""

    def __init__(self, src_lengths: Sequence[int], tgt_lengths: Sequence[int]):
        self.table: Dict[int, Counter] = defaultdict(Counter)
        for s, t in zip(np.asarray(src_lengths).tolist(), np.asarray(tgt_lengths).tolist()):
            self.table[int(s)][int(t)] += 1
        if not self.table:
            raise ValueError("no training pairs to estimate target-length statistics from")
        self.known = np.array(sorted(self.table))

    def topk(self, src_len: int, k: int) -> Tuple[List[int], List[float]]:
        """The k most frequent target lengths for ``src_len`` (nearest seen source length if unseen), with
        log-frequencies; filled up with neighbours of the mode (log-prob of half a count) if fewer were seen."""
        near = int(self.known[np.abs(self.known - src_len).argmin()])
        counts = self.table[near]
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], abs(kv[0] - src_len), kv[0]))[:k]
        lengths = [t for t, _ in ranked]
        scores = [math.log(c / total) for _, c in ranked]
        mode, delta = lengths[0], 1
        while len(lengths) < k:
            for cand in (mode + delta, mode - delta):
                if cand >= 1 and cand not in lengths and len(lengths) < k:
                    lengths.append(cand)
                    scores.append(math.log(0.5 / total))
            delta += 1
        return lengths, scores


class ARRescorer:
    """Scores candidate translations with an autoregressive fairseq model (mean token log-probability)."""

    def __init__(self, model, ar_dict, tgt_dict, name: str = "the rescoring model", task=None):
        """model: a loaded fairseq encoder-decoder (eval mode, on its device); ar_dict: its target dictionary;
        task: the fairseq task it was loaded with (kept for callers that also decode with the model)."""
        if ar_dict.symbols != tgt_dict.symbols[: len(ar_dict)]:
            raise ValueError(f"dictionary mismatch: {name} was trained with another target dictionary than the "
                             "model whose outputs it rescores")
        self.model = model
        self.task = task
        self.dictionary = ar_dict
        self.pad, self.eos = ar_dict.pad(), ar_dict.eos()

    @classmethod
    def from_checkpoint(cls, path: str, data: str, tgt_dict, use_cuda: bool = False) -> "ARRescorer":
        from fairseq import checkpoint_utils

        models, _, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides={"data": data})
        model = models[0].eval()
        if use_cuda:
            model.cuda()
        return cls(model, task.target_dictionary, tgt_dict, name=f"the rescoring model {path}", task=task)

    @torch.no_grad()
    def score(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor, hyps: List[torch.Tensor],
              max_rows: int = 256) -> torch.Tensor:
        """src_tokens (n, S) rows aligned with ``hyps`` (content + EOS each) -> (n,) mean log-probabilities.

        Rows go through the model ``max_rows`` at a time: latent search rescores N candidates per sentence, and the
        (rows, T, V) log-probabilities of a whole batch would not fit in memory."""
        target = torch.nn.utils.rnn.pad_sequence([h.to(src_tokens.device) for h in hyps], batch_first=True,
                                                 padding_value=self.pad)
        # teacher forcing input: EOS, then the hypothesis shifted right (its final EOS dropped)
        prev = torch.cat([target.new_full((target.size(0), 1), self.eos),
                          target[:, :-1].masked_fill(target[:, 1:].eq(self.pad), self.pad)], dim=1)
        scores = []
        for a in range(0, target.size(0), max_rows):
            rows = slice(a, a + max_rows)
            out = self.model(src_tokens[rows], src_lengths[rows], prev[rows])
            lprobs = self.model.get_normalized_probs(out, log_probs=True)
            t = target[rows]
            tok = lprobs.gather(-1, t.unsqueeze(-1)).squeeze(-1).masked_fill(t.eq(self.pad), 0.0)
            scores.append(tok.sum(1) / t.ne(self.pad).sum(1).clamp(min=1))
        return torch.cat(scores)


class GeneralizedDecoder:
    """Length-conditioned beam search with a coordinate-selection strategy; see the module docstring.

    Args:
        tgt_dict: target dictionary (must contain the model's mask symbol).
        strategy: a :class:`CoordinateStrategy` (``strategies.build_strategy``).
        budget: ``L``, ``2L`` or an int T.
        tokens_per_step: ``one``, ``ceil`` or ``anneal``.
        beam: K = K″. position_beam: K′. length_candidates: number of length candidates.
        length_stats: a :class:`LengthStatistics` to take lengths from the training data instead of the model.
        oracle_length: decode with the reference length.
        rescorer: an :class:`ARRescorer` for the final choice, or None (``length_selection``).
        length_selection: ``pll`` (the thesis) or ``mean-logp`` (mask-predict's choice, no extra passes).
        retain_history: attach the canvas after every step (``E-`` lines of fairseq-generate).
        max_len: upper bound for lengths. pll_batch: rows per pass when computing pseudo log-likelihoods.
    """

    def __init__(self, tgt_dict, strategy: CoordinateStrategy, budget="L", tokens_per_step: str = "one",
                 beam: int = 1, position_beam: int = 1, length_candidates: int = 1,
                 length_stats: Optional[LengthStatistics] = None, oracle_length: bool = False,
                 rescorer: Optional[ARRescorer] = None, length_selection: str = "pll",
                 retain_history: bool = False, max_len: int = 256, pll_batch: int = 512):
        self.budget = parse_budget(budget)
        if tokens_per_step not in TOKENS_PER_STEP:
            raise ValueError(f"--tokens-per-step must be one of {', '.join(TOKENS_PER_STEP)}, got {tokens_per_step!r}")
        for name, value in (("--beam", beam), ("--position-beam", position_beam),
                            ("--length-candidates", length_candidates)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if length_selection not in LENGTH_SELECTION:
            raise ValueError(f"--length-selection must be one of {', '.join(LENGTH_SELECTION)}, got {length_selection!r}")
        self.length_selection = length_selection
        self.tgt_dict = tgt_dict
        self.pad, self.eos = tgt_dict.pad(), tgt_dict.eos()
        self.strategy = strategy
        self.tokens_per_step = tokens_per_step
        self.beam, self.position_beam = int(beam), int(position_beam)
        self.length_candidates = int(length_candidates)
        self.length_stats = length_stats
        self.oracle_length = oracle_length
        self.rescorer = rescorer
        self.retain_history = retain_history
        self.max_len = max_len
        self.pll_batch = pll_batch
        self.passes = 0  # decoder passes of the last generate() call (beam hypotheses of one step batched)

    # ------------------------------------------------------------------ lengths
    def _lengths(self, model, src_tokens: torch.Tensor, sample: Optional[Dict]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, K_L) candidate lengths and their log-probabilities log p(L|X)."""
        if self.oracle_length:
            target = sample.get("target") if sample is not None else None
            if target is None:
                raise ValueError("--oracle-length needs reference targets; drop it for fairseq-interactive")
            ref = model.content(target).ne(self.pad).sum(1).clamp(min=1, max=self.max_len)
            return ref.unsqueeze(1), torch.zeros(ref.size(0), 1)
        if self.length_stats is not None:
            lengths, scores = zip(*(self.length_stats.topk(int(s), self.length_candidates)
                                    for s in model.source_content_lengths(src_tokens).tolist()))
            return (torch.tensor(lengths, device=src_tokens.device).clamp(1, self.max_len),
                    torch.tensor(scores, device=src_tokens.device))
        lengths, scores = model.predict_target_lengths(src_tokens, self.length_candidates)
        return lengths.clamp(1, self.max_len), scores

    # ------------------------------------------------------------------ main entry
    @torch.no_grad()
    def generate(self, models, sample: Dict, prefix_tokens=None, constraints=None, **kwargs) -> List[List[Dict]]:
        if len(models) != 1:
            raise ValueError("generalized decoding uses one model; ensembles are not supported")
        if constraints is not None or prefix_tokens is not None:
            raise ValueError("generalized decoding does not support --prefix-size or --constraints")
        model = in_eval_mode(models[0])
        src_tokens = sample["net_input"]["src_tokens"]
        bsz = src_tokens.size(0)
        lengths, length_logp = self._lengths(model, src_tokens, sample)
        k_len = lengths.size(1)
        rows = self.search(model, src_tokens.repeat_interleave(k_len, 0), lengths.reshape(-1))
        # final choice among the length candidates of each sentence; the pseudo log-likelihood costs one pass per
        # target position, so it is only computed when it makes the choice
        src_rows = src_tokens.repeat_interleave(k_len, 0)
        tok_scores = rows["token_logp"].masked_fill(~rows["valid"], 0.0)
        select = tok_scores.sum(1) / rows["valid"].sum(1).clamp(min=1)  # mean-logp
        pll = None
        if self.rescorer is not None:
            hyps = [self._final_tokens(rows["tokens"][r], rows["valid"][r]) for r in range(rows["tokens"].size(0))]
            src_lengths = sample["net_input"]["src_lengths"].repeat_interleave(k_len, 0)
            select = self.rescorer.score(src_rows, src_lengths, hyps).to(select)
        elif self.length_selection == "pll" and k_len > 1:
            pll, tok_scores = self.pseudo_log_likelihood(model, src_rows, rows["tokens"], rows["valid"])
            select = pll
        empty = model.source_content_lengths(src_tokens).eq(0)
        out = []
        for i in range(bsz):
            hyps = []
            for r in range(i * k_len, (i + 1) * k_len):
                valid = rows["valid"][r]
                tokens = self._final_tokens(rows["tokens"][r], valid)
                hyp = {
                    "tokens": tokens,
                    "positional_scores": torch.cat([tok_scores[r][valid], tok_scores.new_zeros(1)]),
                    "score": float(select[r]),
                    "pseudo_log_likelihood": None if pll is None else float(pll[r]),
                    "path_score": float(rows["score"][r] + length_logp.reshape(-1)[r]),
                    "length": int(valid.sum()),
                    "steps": int(rows["steps"][r]),
                    "order": rows["order"][r],
                    "energy": rows["energy"][r],
                    "alignment": None,
                    "attention": None,
                }
                if self.retain_history:
                    # canvases after every step; <mask> is printed where nothing was written yet
                    hyp["history"] = [{"tokens": self._final_tokens(c, valid)} for c in rows["history"][r]]
                hyps.append(hyp)
            if bool(empty[i]):
                logger.warning("source sentence %d is empty: its translation is empty",
                               int(sample["id"][i]) if "id" in sample else i)
                e = src_tokens.new_full((1,), self.eos)
                hyps = [dict(h, tokens=e, positional_scores=torch.zeros(1), score=0.0, history=[]) for h in hyps[:1]]
            hyps.sort(key=lambda h: -h["score"])
            out.append(hyps)
        return out

    def _final_tokens(self, canvas: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(L,) canvas -> its real positions followed by EOS (fairseq's hypothesis format)."""
        tokens = canvas[valid]
        return torch.cat([tokens, tokens.new_full((1,), self.eos)])

    # ------------------------------------------------------------------ length-conditioned beam search
    def search(self, model, src_rows: torch.Tensor, lengths: torch.Tensor) -> Dict:
        """Beam search for R rows (one per sentence x length candidate).

        src_rows (R, S) fairseq source tokens, lengths (R,). Returns per row the best hypothesis: ``tokens``
        (R, Lmax) canvas, ``valid`` (R, Lmax), ``score`` (R,) cumulative score of Eq. (4.5) without log p(L|X),
        ``steps`` (R,) passes, ``token_logp`` (R, Lmax) log-probability of each symbol when it was last written,
        ``order`` (per row, list over steps of the positions written), ``energy`` (per
        row, list over steps), ``history`` (per row, list of canvases) when ``retain_history``.
        """
        device = src_rows.device
        n_rows, K = lengths.numel(), self.beam
        lmax = int(lengths.max())
        mask_idx = model.mask_index
        N = n_rows * K
        hyp_len = lengths.repeat_interleave(K)
        valid = torch.arange(lmax, device=device).unsqueeze(0) < hyp_len.unsqueeze(1)
        canvas = torch.full((N, lmax), self.pad, dtype=torch.long, device=device).masked_fill(valid, mask_idx)
        score = torch.full((N,), float("-inf"), device=device)
        score[::K] = 0.0  # only the first beam slot is a real hypothesis at the start
        stored_negent = torch.zeros(N, lmax, device=device)
        stored_logp = torch.zeros(N, lmax, device=device)
        needs_hidden = self.strategy.needs_hidden
        k_hist = self.strategy.history_size
        stored_hidden = hist = hist_count = None
        total = torch.tensor([num_steps(self.budget, int(L)) for L in lengths.tolist()], device=device)
        t_max = int(total.max())
        written = torch.zeros(N, t_max, lmax, dtype=torch.bool, device=device)
        energy = torch.zeros(N, t_max, device=device)
        history = torch.zeros(N, t_max, lmax, dtype=torch.long, device=device) if self.retain_history else None
        src_hyp = src_rows.repeat_interleave(K, 0)
        self.passes = 0

        for t in range(t_max):
            active_rows = (total > t).nonzero(as_tuple=False).squeeze(1)
            h = (active_rows.unsqueeze(1) * K + torch.arange(K, device=device)).reshape(-1)
            a, n = active_rows.numel(), h.numel()
            c, v, s = canvas[h], valid[h], score[h]
            L_h = hyp_len[h]
            T_h = total[active_rows].repeat_interleave(K)
            step = torch.full((n,), t, dtype=torch.long, device=device)
            o_sched = torch.tensor([scheduled_tokens(self.tokens_per_step, t, int(L), int(T))
                                    for L, T in zip(L_h.tolist(), T_h.tolist())], device=device)
            hist_h = None if hist is None else hist[h]
            hist_c = None if hist_count is None else hist_count[h]
            masked = c.eq(mask_idx) & v

            # (a) revision: nothing masked -> re-mask o_t positions chosen from the stored features
            revise = ~masked.any(1)
            if bool(revise.any()):
                inp = StrategyInput(
                    negent=stored_negent[h], current_logp=stored_logp[h], tokens=c,
                    masked=torch.zeros_like(masked), valid=v, candidates=v & revise.unsqueeze(1), step=step,
                    hidden=None if stored_hidden is None else stored_hidden[h], history=hist_h,
                    history_count=hist_c)
                lpz = self.strategy.log_probs(inp)
                keys = self.strategy.selection_keys(inp, lpz).masked_fill(~inp.candidates, float("-inf"))
                rank = keys.argsort(1, descending=True).argsort(1)
                chosen = (rank < o_sched.clamp(max=L_h).unsqueeze(1)) & inp.candidates
                s = s + torch.where(chosen, lpz, torch.zeros_like(lpz)).sum(1)
                c = c.masked_fill(chosen, mask_idx)
                masked = c.eq(mask_idx) & v

            # (b) one pass of the model
            # log-probabilities only at the masked positions: nothing else is read (see the module docstring)
            lp_m, hid = model.canvas_log_probs(src_hyp[h], c, where=masked)  # (M, V), (n, L, C)
            self.passes += 1
            if needs_hidden and stored_hidden is None:
                stored_hidden = torch.zeros(N, lmax, hid.size(-1), device=device)
                if k_hist > 0:
                    hist = torch.zeros(N, k_hist, hid.size(-1), device=device)
                    hist_count = torch.zeros(N, dtype=torch.long, device=device)
                    hist_h, hist_c = hist[h], hist_count[h]
            # top-K'' symbols and the features of Eq. (4.2), scattered back to (n, L); the entropy is only
            # computed for strategies that read it
            k2 = min(self.beam, lp_m.size(-1))
            top_m_v, top_m_i = lp_m.topk(k2, dim=-1)
            top_v = lp_m.new_full((n, lmax, k2), float("-inf"))
            top_i = torch.zeros(n, lmax, k2, dtype=torch.long, device=device)
            top_v[masked], top_i[masked] = top_m_v, top_m_i
            negent = torch.zeros(n, lmax, dtype=lp_m.dtype, device=device)
            if self.strategy.uses_negent:
                negent[masked] = negentropy_feature(lp_m)
            cur_logp = torch.zeros_like(negent)
            cur_logp[masked] = -masked_logp_feature(top_m_v[:, 0])

            # (c) choose the positions to write among the masked ones
            n_masked = masked.sum(1)
            steps_left = (T_h - t).clamp(min=1)
            o_fill = torch.maximum(o_sched, (n_masked + steps_left - 1) // steps_left)
            o_write = torch.where(revise, n_masked, torch.minimum(o_fill, n_masked))
            inp = StrategyInput(negent=negent, current_logp=cur_logp, tokens=c, masked=masked, valid=v,
                                candidates=masked & ~revise.unsqueeze(1), step=step, hidden=hid,
                                history=hist_h, history_count=hist_c)
            lpz = self.strategy.log_probs(inp)
            keys = self.strategy.selection_keys(inp, lpz).masked_fill(~inp.candidates, float("-inf"))
            order = keys.argsort(1, descending=True)
            rank = order.argsort(1)
            A = self.position_beam if bool((o_write[~revise] <= 1).all()) else 1
            sets = torch.zeros(n, A, lmax, dtype=torch.bool, device=device)
            alt_ok = torch.zeros(n, A, dtype=torch.bool, device=device)
            for alt in range(A):
                if alt == 0:
                    sets[:, 0] = (rank < o_write.unsqueeze(1)) & inp.candidates
                    alt_ok[:, 0] = True
                else:  # the alt-th best single position
                    sets[:, alt] = (rank == alt) & inp.candidates
                    alt_ok[:, alt] = (n_masked > alt) & ~revise
            sets[revise, 0] = masked[revise]
            z_score = torch.where(sets, lpz.unsqueeze(1), torch.zeros_like(lpz).unsqueeze(1)).sum(-1)  # (n, A)
            z_score = z_score.masked_fill(~alt_ok, float("-inf"))
            # a revising row writes exactly the positions it re-masked in (a); their coordinate term was scored
            # there, and this step's distribution has no candidates for it (all -inf), so it adds nothing here
            z_score[revise, 0] = 0.0

            # top-K'' joint symbol assignments of each position set (exact: positions are independent)
            partial = torch.full((n * A, k2), float("-inf"), device=device)
            partial[:, 0] = 0.0
            choice = torch.zeros(n * A, k2, lmax, dtype=torch.long, device=device)
            flat_sets = sets.reshape(n * A, lmax)
            neutral = torch.full((k2,), float("-inf"), device=device)
            neutral[0] = 0.0
            for j in range(lmax):
                in_set = flat_sets[:, j]
                if not bool(in_set.any()):
                    continue
                vals = torch.where(in_set.unsqueeze(1), top_v[:, j].repeat_interleave(A, 0), neutral)
                cand = (partial.unsqueeze(2) + vals.unsqueeze(1)).reshape(n * A, k2 * k2)
                partial, idx = cand.topk(k2, dim=-1)
                choice = choice.gather(1, (idx // k2).unsqueeze(2).expand(-1, -1, lmax)).clone()
                choice[:, :, j] = torch.where(in_set.unsqueeze(1), idx % k2, choice[:, :, j])
            total_score = (s.unsqueeze(1) + z_score).unsqueeze(2) + partial.view(n, A, k2)  # (n, A, k2)
            total_score = total_score.masked_fill(total_score.isnan(), float("-inf"))  # keeps -inf as -inf

            # keep the K best per row
            per_row = total_score.view(a, K * A * k2)
            best, flat = per_row.topk(K, dim=-1)
            src_k = flat // (A * k2)
            alt = (flat // k2) % A
            kk = flat % k2
            parent = (torch.arange(a, device=device).unsqueeze(1) * K + src_k).reshape(-1)  # index into h-subset
            alt, kk = alt.reshape(-1), kk.reshape(-1)
            pset = sets[parent, alt]  # (n, L)
            pchoice = choice.view(n, A, k2, lmax)[parent, alt, kk]  # (n, L)
            new_tok = top_i[parent].gather(2, pchoice.unsqueeze(2)).squeeze(2)
            new_c = torch.where(pset, new_tok, c[parent])
            new_logp = top_v[parent].gather(2, pchoice.unsqueeze(2)).squeeze(2)

            # write back (rows not active keep their state)
            canvas[h] = new_c
            score[h] = best.reshape(-1)
            stored_negent[h] = torch.where(pset, negent[parent], stored_negent[h][parent])
            stored_logp[h] = torch.where(pset, new_logp, stored_logp[h][parent])
            if stored_hidden is not None:
                stored_hidden[h] = torch.where(pset.unsqueeze(2), hid[parent], stored_hidden[h][parent])
            if hist is not None:
                # h̄ history: the output vector at the written position(s) (mean if several)
                w = pset.unsqueeze(2).type_as(hid)
                vec = (hid[parent] * w).sum(1) / w.sum(1).clamp(min=1)
                hist[h] = torch.cat([hist[h][parent][:, 1:], vec.unsqueeze(1)], 1)
                hist_count[h] = (hist_count[h][parent] + 1).clamp(max=k_hist)
            written[h] = written[h][parent]
            written[h, t] = pset
            energy[h] = energy[h][parent]
            # energy of the intermediate sequence (Fig. 4.2/4.3): -(1/L) sum over filled positions of the
            # log-probability each symbol had when it was written (the symbol term of Eq. 4.5 for this canvas)
            filled = new_c.ne(mask_idx) & v
            energy[h, t] = -torch.where(filled, stored_logp[h], torch.zeros_like(stored_logp[h])).sum(1) \
                / L_h.clamp(min=1)
            if history is not None:
                history[h] = history[h][parent]
                history[h, t] = new_c

        # best hypothesis of each row
        best_slot = score.view(n_rows, K).argmax(1)
        pick = torch.arange(n_rows, device=device) * K + best_slot
        out = {"tokens": canvas[pick], "valid": valid[pick], "score": score[pick], "steps": total.clone(),
               "token_logp": stored_logp[pick]}
        steps_list = total.tolist()
        out["order"] = [[written[p, t].nonzero(as_tuple=False).squeeze(1).tolist() for t in range(T)]
                        for p, T in zip(pick.tolist(), steps_list)]
        out["energy"] = [energy[p, :T].tolist() for p, T in zip(pick.tolist(), steps_list)]
        if history is not None:
            out["history"] = [[history[p, t] for t in range(T)] for p, T in zip(pick.tolist(), steps_list)]
        return out

    # ------------------------------------------------------------------ final scoring
    @torch.no_grad()
    def pseudo_log_likelihood(self, model, src_rows: torch.Tensor, canvas: torch.Tensor, valid: torch.Tensor):
        """PLL per position: log p(y_i | Y_{\\i}, X) with position i masked. (R, L) -> mean (R,), per token (R, L)."""
        R, L = canvas.shape
        pairs = valid.nonzero(as_tuple=False)  # (P, 2): row, position
        per_tok = torch.zeros(R, L, device=canvas.device)
        for start in range(0, pairs.size(0), self.pll_batch):
            chunk = pairs[start: start + self.pll_batch]
            rows, pos = chunk[:, 0], chunk[:, 1]
            masked = canvas[rows].clone()
            masked[torch.arange(rows.numel()), pos] = model.mask_index
            lp, _ = model.canvas_log_probs(src_rows[rows], masked, positions=pos)  # (P, V) at the masked slot
            tok = canvas[rows, pos]
            per_tok[rows, pos] = lp.gather(1, tok.unsqueeze(1)).squeeze(1)
        per_tok = per_tok.clamp(min=-1e4)
        mean = per_tok.sum(1) / valid.sum(1).clamp(min=1)
        return mean, per_tok
