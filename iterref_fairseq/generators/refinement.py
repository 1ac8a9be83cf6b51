"""Adaptive iterative refinement (thesis §3.3.4) behind fairseq-generate / fairseq-interactive.

The generator knows nothing about a particular model class. A model used with it implements these hooks
(``RefinementNATModel`` is the reference implementation)::

    encode(src_tokens, src_lengths) -> encoder_out
    reorder_encoder_out(encoder_out, new_order) -> encoder_out
    source_content_lengths(src_tokens) -> (B,) number of real source tokens (no pad, no EOS)
    predict_target_lengths(encoder_out, src_tokens, k) -> (lengths (B, k), log-probs (B, k))
    initialize_refinement(encoder_out, src_tokens, tgt_lengths) -> RefinementState   # decoder 1, idec = 1
    refine(encoder_out, state) -> RefinementState                                       # decoder 2, one step

Decoding of one batch:

1. predict the K most likely target lengths (K = ``--iter-decode-with-beam``, 1 by default) or take the
   reference length (``oracle_length``); every (sentence, length) pair becomes one row;
2. one pass of the initial decoder (this is refinement step 1, ``idec = 1``);
3. up to ``max_iter - 1`` passes of the refinement decoder. A row stops as soon as its stopping criterion
   holds (unless ``force_max_iter``); stopped rows are never recomputed, the others go on (only the active
   rows are fed to the model);
4. for each sentence, the length candidate with the highest mean token log-probability wins;
5. consecutive repeated tokens are collapsed (thesis §3.6, on by default for MT).

Stopping criteria (``stop_criterion``):

* ``unchanged``: the output equals the previous step's output (thesis: "until the outputs of consecutive
  iterations are the same");
* ``jaccard``: the reference code's test: among the last ``jaccard_window`` outputs, the oldest and one of
  the later ones are equal as multisets of tokens (multiset Jaccard index 1). This also stops rows that
  oscillate between permutations of the same tokens.

Step counting: ``--iter-decode-max-iter N`` is the paper's idec, the total number of decoder passes (the
initial decoder counts as one). fairseq's own generator runs N + 1 passes for the same flag; we follow the
paper so that ``--iter-decode-max-iter 1`` is "idec = 1" of Table 3.1 and 0 is rejected.
"""
import logging
from typing import Any, Dict, List, NamedTuple, Optional

import torch

from . import in_eval_mode

logger = logging.getLogger(__name__)

STOP_CRITERIA = ("unchanged", "jaccard")


class RefinementState(NamedTuple):
    """The output of one decoder pass for a batch of rows (never modified in place).

    tokens: (B, T) predicted tokens, ``pad`` at padded positions.
    scores: (B, T) log-probability of each predicted token (0 at pads).
    padding_mask: (B, T) True at padded positions.
    hidden: (B, T, C) final decoder states fed to the next refinement step, or None.
    context: what the model computed once for all refinement passes over these rows (e.g. cross-attention keys
        and values), any object with ``select(index)``, or None. The generator only selects its rows.
    """

    tokens: torch.Tensor
    scores: torch.Tensor
    padding_mask: torch.Tensor
    hidden: Optional[torch.Tensor] = None
    context: Optional[Any] = None

    def select(self, index: torch.Tensor) -> "RefinementState":
        def rows(x):
            if x is None:
                return None
            return x.index_select(0, index) if isinstance(x, torch.Tensor) else x.select(index)

        return RefinementState(*(rows(x) for x in self))


def collapse_repeats(tokens: torch.Tensor, scores: Optional[torch.Tensor] = None):
    """Collapse runs of a repeated token into one token. 1-D tensors; returns (tokens, scores)."""
    if tokens.numel() == 0:
        return tokens, scores
    keep = torch.ones_like(tokens, dtype=torch.bool)
    keep[1:] = tokens[1:].ne(tokens[:-1])
    return tokens[keep], (None if scores is None else scores[keep])


def same_multiset(a: torch.Tensor, b: torch.Tensor, pad: int) -> torch.Tensor:
    """Row-wise multiset equality of two (B, T) token tensors (pads ignored). Returns (B,) bool."""
    big = torch.iinfo(a.dtype).max
    sa = a.masked_fill(a.eq(pad), big).sort(dim=1).values
    sb = b.masked_fill(b.eq(pad), big).sort(dim=1).values
    return sa.eq(sb).all(dim=1)


class IterativeRefinementDecoder:
    """Decodes with adaptive iterative refinement; see the module docstring for the algorithm and flags.

    Args:
        tgt_dict: target dictionary (pad/eos indices).
        max_iter: idec cap, total decoder passes (>= 1).
        force_max_iter: always run ``max_iter`` passes (fixed idec).
        length_beam: number of length candidates decoded in parallel.
        stop_criterion: ``unchanged`` or ``jaccard``.
        jaccard_window: window size of the ``jaccard`` criterion (reference code: 5).
        remove_repeats: collapse consecutive repeated tokens in the output.
        oracle_length: decode with the reference target length (thesis Table 3.5).
        retain_history: attach the output of every pass to the hypothesis.
        max_len: upper bound for predicted lengths.
    """

    def __init__(
        self,
        tgt_dict,
        max_iter: int = 10,
        force_max_iter: bool = False,
        length_beam: int = 1,
        stop_criterion: str = "unchanged",
        jaccard_window: int = 5,
        remove_repeats: bool = True,
        oracle_length: bool = False,
        retain_history: bool = False,
        max_len: int = 1024,
    ):
        if max_iter is None or int(max_iter) < 1:
            raise ValueError(
                f"--iter-decode-max-iter must be >= 1 (it is the number of decoder passes, the paper's idec; "
                f"1 = initial decoder only), got {max_iter}"
            )
        if stop_criterion not in STOP_CRITERIA:
            raise ValueError(f"unknown stop criterion {stop_criterion!r}; choose one of {', '.join(STOP_CRITERIA)}")
        if length_beam < 1:
            raise ValueError(f"--iter-decode-with-beam must be >= 1, got {length_beam}")
        if jaccard_window < 2:
            raise ValueError(f"--jaccard-window must be >= 2, got {jaccard_window}")
        self.pad = tgt_dict.pad()
        self.eos = tgt_dict.eos()
        self.max_iter = int(max_iter)
        self.force_max_iter = force_max_iter
        self.length_beam = length_beam
        self.stop_criterion = stop_criterion
        self.jaccard_window = jaccard_window
        self.remove_repeats = remove_repeats
        self.oracle_length = oracle_length
        self.retain_history = retain_history
        self.max_len = max_len

    # ------------------------------------------------------------------ lengths
    def _target_lengths(self, model, encoder_out, src_tokens, sample) -> torch.Tensor:
        """(B, K) target lengths, best first."""
        if self.oracle_length:
            target = sample.get("target") if sample is not None else None
            if target is None:
                raise ValueError(
                    "--oracle-length needs reference targets; they are not available here (e.g. "
                    "fairseq-interactive). Drop --oracle-length."
                )
            ref = (target.ne(self.pad) & target.ne(self.eos)).sum(1).clamp(min=1)
            return ref.unsqueeze(1)
        lengths, _ = model.predict_target_lengths(encoder_out, src_tokens, self.length_beam)
        return lengths.clamp(1, self.max_len)

    # ------------------------------------------------------------------ stopping
    def _converged(self, window: List[torch.Tensor], new_tokens: torch.Tensor) -> torch.Tensor:
        """window: previous outputs of the active rows (oldest first); new_tokens (A, T). Returns (A,) bool."""
        if self.stop_criterion == "unchanged":
            return new_tokens.eq(window[-1]).all(dim=1)
        outputs = (window + [new_tokens])[-self.jaccard_window:]
        oldest = outputs[0]
        hit = torch.zeros(new_tokens.size(0), dtype=torch.bool, device=new_tokens.device)
        for later in outputs[1:]:
            hit |= same_multiset(oldest, later, self.pad)
        return hit

    # ------------------------------------------------------------------ main loop
    def generate(self, models, sample: Dict, prefix_tokens=None, constraints=None, **kwargs):
        with torch.inference_mode():
            final, steps, snapshots, k, empty = self._decode(models, sample, prefix_tokens, constraints)
        # inference tensors cannot be modified later (fairseq-generate scales the scores in place): plain copies
        final = RefinementState(*(t.clone() for t in final[:3]))
        snapshots = None if snapshots is None else [RefinementState(*(t.clone() for t in s[:3])) for s in snapshots]
        steps, empty = steps.clone(), empty.clone()
        ids = sample.get("id")
        return [
            self._finalize_sentence(i, k, final, steps, snapshots, bool(empty[i]), i if ids is None else int(ids[i]))
            for i in range(empty.size(0))
        ]

    def _decode(self, models, sample: Dict, prefix_tokens=None, constraints=None):
        """Steps 1-3 of the module docstring. Returns the final state of every row, passes per row, the state
        after every pass (``retain_history``) or None, K and the (B,) empty-source mask."""
        if len(models) != 1:
            raise ValueError("iterative refinement decodes with one model; ensembles are not supported")
        if constraints is not None or prefix_tokens is not None:
            raise ValueError("iterative refinement does not support --prefix-size or --constraints")
        model = in_eval_mode(models[0])
        src_tokens = sample["net_input"]["src_tokens"]
        src_lengths = sample["net_input"]["src_lengths"]
        bsz = src_tokens.size(0)
        empty = model.source_content_lengths(src_tokens).eq(0)

        encoder_out = model.encode(src_tokens, src_lengths)
        lengths = self._target_lengths(model, encoder_out, src_tokens, sample)  # (B, K)
        k = lengths.size(1)
        row_order = torch.arange(bsz, device=src_tokens.device).repeat_interleave(k)
        if k > 1:
            encoder_out = model.reorder_encoder_out(encoder_out, row_order)
        src_rows = src_tokens.index_select(0, row_order)
        state = model.initialize_refinement(encoder_out, src_rows, lengths.reshape(-1))
        rows = state.tokens.size(0)
        # the final output of every row; the active rows' last state travels separately and shrinks when rows stop
        out_tokens, out_scores, out_padding = state.tokens.clone(), state.scores.clone(), state.padding_mask
        steps = torch.ones(rows, dtype=torch.long, device=src_tokens.device)
        history = [(state.tokens, state.scores)] if self.retain_history else None
        active = torch.arange(rows, device=src_tokens.device)
        window = [state.tokens]  # recent outputs of the active rows, oldest first

        for _ in range(self.max_iter - 1):
            state = model.refine(encoder_out, state)
            out_tokens[active] = state.tokens
            out_scores[active] = state.scores
            steps[active] += 1
            if history is not None:
                history.append((out_tokens.clone(), out_scores.clone()))
            if self.force_max_iter:
                continue
            needed = window[-1:] if self.stop_criterion == "unchanged" else window
            converged = self._converged(needed, state.tokens)
            window = (window + [state.tokens])[-self.jaccard_window:]
            if bool(converged.all()):
                break
            if bool(converged.any()):  # converged rows leave the batch; nothing is copied on other passes
                keep = (~converged).nonzero(as_tuple=False).squeeze(1)
                active = active.index_select(0, keep)
                state = state.select(keep)
                encoder_out = model.reorder_encoder_out(encoder_out, keep)
                window = [w.index_select(0, keep) for w in window]

        final = RefinementState(out_tokens, out_scores, out_padding)
        snapshots = None
        if history is not None:
            snapshots = [RefinementState(t, sc, out_padding) for t, sc in history]
        return final, steps, snapshots, k, empty

    # ------------------------------------------------------------------ output
    def _hypothesis(self, tokens: torch.Tensor, scores: torch.Tensor, mask: torch.Tensor) -> Dict:
        tokens, scores = tokens[~mask], scores[~mask].float()
        if self.remove_repeats:
            tokens, scores = collapse_repeats(tokens, scores)
        eos = tokens.new_full((1,), self.eos)
        positional = torch.cat([scores, scores.new_zeros(1)])
        return {
            "tokens": torch.cat([tokens, eos]),
            "positional_scores": positional,
            "score": float(scores.mean()) if scores.numel() else 0.0,
            "alignment": None,
            "attention": None,
        }

    def _finalize_sentence(self, i, k, state, steps, history, is_empty, sentence_id) -> List[Dict]:
        if is_empty:
            logger.warning("source sentence %d is empty: its translation is empty", sentence_id)
            eos = state.tokens.new_full((1,), self.eos)
            return [{"tokens": eos, "positional_scores": eos.new_zeros(1).float(), "score": 0.0,
                     "alignment": None, "attention": None, "steps": 0, "history": [] if history else None}]
        hyps = []
        for r in range(i * k, (i + 1) * k):
            hyp = self._hypothesis(state.tokens[r], state.scores[r], state.padding_mask[r])
            hyp["steps"] = int(steps[r])
            if history is not None:
                hyp["history"] = [
                    self._hypothesis(h.tokens[r], h.scores[r], h.padding_mask[r]) for h in history[: int(steps[r])]
                ]
            hyps.append(hyp)
        hyps.sort(key=lambda h: -h["score"])
        return hyps
