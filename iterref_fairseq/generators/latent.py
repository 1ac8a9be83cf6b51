"""Inference in continuous latent space for LaNMT-style models, behind fairseq-generate / fairseq-interactive.

Hooks of the latent model (``models/lanmt.py`` is the reference implementation)::

    encode(src_tokens, src_lengths) -> encoder_out        reorder_encoder_out(encoder_out, order) -> encoder_out
    source_content_lengths(src_tokens) -> (B,)            prior(encoder_out) -> mu, sigma          # (B, S, D)
    predict_lengths(encoder_out, z) -> (B,)               decode_latent(encoder_out, z, lengths) -> RefinementState
    posterior_mean(encoder_out, tokens, padding_mask) -> (B, S, D)

and of the score / energy network (``models/lanmt_score.py``)::

    direction(encoder_out, z) -> (B, S, D)   the update direction (S(z; x), or -grad_z E(z; x) for an energy)

Decoding of one batch (``--latent-inference``):

1. encode; z_0 = the prior mean. Latent search (``--latent-search-samples N``, ``--latent-search-noise s``): N rows
   per sentence with z_0 = mu + s * sigma * eps, all decoded in one batch (N = 1, s = 0: the prior mean);
2. predict each row's length from z_0 and decode (argmax per position): decoder pass 1;
3. up to ``max_iter - 1`` refinement steps (``--iter-decode-max-iter``, the same count as for the refinement NAT:
   refinement steps including the first decoding):
   * ``delta``: z <- E_q(z | x, y_hat) (the E-step), then re-predict the length and decode (the M-step);
   * ``score`` / ``energy``: z <- z + alpha * direction(z) (``--latent-step-size`` alpha); the length is
     re-predicted from the new z. With ``--iter-decode-force-max-iter`` the latent takes its max_iter - 1 steps
     from the prior mean and is decoded ONCE at the end (the talk's setting: no softmax in the loop, 1 decoder
     pass; step 2 is skipped); otherwise every step is decoded so that a row can stop when unchanged;
   * ``prior``: no refinement (step 2 only).
   A row stops when its output (length and tokens) equals the previous one; stopped rows leave the batch;
4. with N > 1: per sentence the candidate with the highest score wins, the score being an autoregressive
   teacher's mean token log-probability (``--rescore-path``) or the model's own mean log-probability of its
   argmax tokens. Every candidate is decoded and scored at its own length: positions past it are padding (masked)
   in refinement and scoring;
5. consecutive repeated tokens are collapsed unless ``--keep-repeats`` (as for the refinement NAT).

Each hypothesis carries ``steps`` (decoder passes) and ``latent_steps`` (latent updates).
"""
import logging
from typing import Callable, Dict, List, Optional

import torch

from . import in_eval_mode
from .refinement import RefinementState, collapse_repeats

logger = logging.getLogger(__name__)

LATENT_INFERENCE = ("prior", "delta", "energy", "score")


def energy_direction(energy: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor,
                     create_graph: bool = False) -> torch.Tensor:
    """-grad_z sum(energy(z)) by autograd; energy maps (B, S, D) latents to (B,) energies.

    With ``create_graph`` the result can itself be differentiated (training the energy through its gradient)."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(z).sum(), z, create_graph=create_graph)
    return -grad


def delta_steps(model, encoder_out: Dict, z: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` rounds of delta inference from z (B, S, D): decode at the predicted length, then z <- E_q(z|x,y).
    Returns the final latent (the training target of the score network)."""
    for _ in range(steps):
        state = model.decode_latent(encoder_out, z, model.predict_lengths(encoder_out, z))
        z = model.posterior_mean(encoder_out, state.tokens, state.padding_mask)
    return z


def same_output(a: RefinementState, b: RefinementState, pad: int) -> torch.Tensor:
    """(B,) True where two outputs have the same length and tokens (their widths may differ)."""
    width = max(a.tokens.size(1), b.tokens.size(1))

    def widen(t):
        return torch.nn.functional.pad(t, (0, width - t.size(1)), value=pad)

    return widen(a.tokens).eq(widen(b.tokens)).all(1)


class LatentInferenceDecoder:
    """Latent-space refinement and latent search; see the module docstring.

    Args:
        tgt_dict: target dictionary.
        inference: ``prior``, ``delta``, ``energy`` or ``score``.
        max_iter: refinement steps including the first decoding (>= 1); ``prior`` uses 1.
        force_max_iter: run every step (score / energy: decode once at the end).
        step_size: alpha of the score / energy update (> 0).
        scorer: the score or energy network (``direction`` hook), needed by ``score`` and ``energy``.
        search_samples: N candidates per sentence (>= 1). search_noise: s, noise scale in units of the prior's sigma
            (used when N > 1).
        rescorer: an ``ARRescorer`` for the choice among candidates, or None (the model's own score).
        remove_repeats: collapse consecutive repeated tokens.
        retain_history: attach the output after every decoder pass.
        seed: seed of the latent-search noise (per batch).
    """

    def __init__(self, tgt_dict, inference: str = "delta", max_iter: int = 10, force_max_iter: bool = False,
                 step_size: float = 0.8, scorer=None, search_samples: int = 1, search_noise: float = 0.5,
                 rescorer=None, remove_repeats: bool = True, retain_history: bool = False, seed: int = 1):
        if inference not in LATENT_INFERENCE:
            raise ValueError(f"--latent-inference {inference!r} is unknown; choose one of {', '.join(LATENT_INFERENCE)}")
        if max_iter is None or int(max_iter) < 1:
            raise ValueError(f"--iter-decode-max-iter must be >= 1 (refinement steps including the first decoding), "
                             f"got {max_iter}")
        if not step_size > 0:
            raise ValueError(f"--latent-step-size must be > 0 (alpha of z <- z + alpha * S(z)), got {step_size}")
        if int(search_samples) < 1:
            raise ValueError(f"--latent-search-samples must be >= 1 (1 = no latent search), got {search_samples}")
        if search_noise < 0:
            raise ValueError(f"--latent-search-noise must be >= 0 (noise in units of the prior's sigma), got "
                             f"{search_noise}")
        if inference in ("score", "energy") and scorer is None:
            raise ValueError(f"--latent-inference {inference} needs the network trained by fairseq-train --arch "
                             "lanmt_score_*: pass --score-path CHECKPOINT")
        self.pad, self.eos = tgt_dict.pad(), tgt_dict.eos()
        self.inference = inference
        self.max_iter = 1 if inference == "prior" else int(max_iter)
        self.force_max_iter = force_max_iter
        self.step_size = float(step_size)
        self.scorer = scorer
        self.samples, self.noise = int(search_samples), float(search_noise)
        self.rescorer = rescorer
        self.remove_repeats = remove_repeats
        self.retain_history = retain_history
        self.seed = seed

    # ------------------------------------------------------------------ steps 1-3
    def _initial_latent(self, model, encoder_out: Dict, bsz: int):
        """z_0 for every row (B * N, S, D) and the encoder output with its rows repeated N times."""
        mu, sigma = model.prior(encoder_out)
        if self.samples > 1:
            order = torch.arange(bsz, device=mu.device).repeat_interleave(self.samples)
            encoder_out = model.reorder_encoder_out(encoder_out, order)
            mu, sigma = mu.index_select(0, order), sigma.index_select(0, order)
        if self.samples == 1 or self.noise == 0:  # the noise belongs to latent search
            return mu, encoder_out
        gen = torch.Generator(device=mu.device).manual_seed(self.seed)
        eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
        return mu + self.noise * sigma * eps, encoder_out

    def _update(self, model, encoder_out: Dict, z: torch.Tensor, state: Optional[RefinementState]) -> torch.Tensor:
        if self.inference == "delta":
            return model.posterior_mean(encoder_out, state.tokens, state.padding_mask)
        return z + self.step_size * self.scorer.direction(encoder_out, z)

    def _decode(self, model, sample: Dict):
        src_tokens, src_lengths = sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]
        bsz = src_tokens.size(0)
        encoder_out = model.encode(src_tokens, src_lengths)
        z, encoder_out = self._initial_latent(model, encoder_out, bsz)
        if self.inference != "delta" and self.force_max_iter:
            return self._decode_at_end(model, encoder_out, z)
        state = model.decode_latent(encoder_out, z, model.predict_lengths(encoder_out, z))
        rows = state.tokens.size(0)
        device = src_tokens.device
        out = _Outputs(state, self.pad)
        passes = torch.ones(rows, dtype=torch.long, device=device)
        latent_steps = torch.zeros(rows, dtype=torch.long, device=device)
        history = [out.snapshot()] if self.retain_history else None
        active = torch.arange(rows, device=device)
        for _ in range(self.max_iter - 1):
            z = self._update(model, encoder_out, z, state)
            latent_steps[active] += 1
            new = model.decode_latent(encoder_out, z, model.predict_lengths(encoder_out, z))
            passes[active] += 1
            out.store(active, new)
            if history is not None:
                history.append(out.snapshot())
            if self.force_max_iter:
                state = new
                continue
            converged = same_output(state, new, self.pad)
            state = new
            if bool(converged.all()):
                break
            if bool(converged.any()):
                keep = (~converged).nonzero(as_tuple=False).squeeze(1)
                active, z = active.index_select(0, keep), z.index_select(0, keep)
                state = state.select(keep)
                encoder_out = model.reorder_encoder_out(encoder_out, keep)
        return out, passes, latent_steps, history

    def _decode_at_end(self, model, encoder_out: Dict, z: torch.Tensor):
        """Score / energy with a fixed number of steps: max_iter - 1 latent updates, then one decoder pass."""
        for _ in range(self.max_iter - 1):
            z = self._update(model, encoder_out, z, None)
        out = _Outputs(model.decode_latent(encoder_out, z, model.predict_lengths(encoder_out, z)), self.pad)
        rows = out.tokens.size(0)
        passes = torch.ones(rows, dtype=torch.long, device=z.device)
        latent_steps = torch.full_like(passes, self.max_iter - 1)
        return out, passes, latent_steps, [out.snapshot()] if self.retain_history else None

    # ------------------------------------------------------------------ steps 4-5
    def _hypothesis(self, tokens: torch.Tensor, scores: torch.Tensor) -> Dict:
        """A fairseq hypothesis from one row (W,) of tokens and scores (pads dropped, EOS appended)."""
        keep = tokens.ne(self.pad)
        tokens, scores = tokens[keep], scores[keep].float()
        if self.remove_repeats:
            tokens, scores = collapse_repeats(tokens, scores)
        return {
            "tokens": torch.cat([tokens, tokens.new_full((1,), self.eos)]),
            "positional_scores": torch.cat([scores, scores.new_zeros(1)]),
            "score": float(scores.mean()) if scores.numel() else 0.0,
            "alignment": None, "attention": None,
        }

    def _rescore(self, hyps: List[Dict], src_tokens: torch.Tensor, src_lengths: torch.Tensor) -> None:
        """Replaces each candidate's score by the teacher's mean log-probability (all candidates in one batch)."""
        order = torch.arange(src_tokens.size(0), device=src_tokens.device).repeat_interleave(self.samples)
        scores = self.rescorer.score(src_tokens.index_select(0, order), src_lengths.index_select(0, order),
                                     [h["tokens"] for h in hyps])
        for h, s in zip(hyps, scores.tolist()):
            h["model_score"], h["score"] = h["score"], float(s)

    def generate(self, models, sample: Dict, prefix_tokens=None, constraints=None, **kwargs) -> List[List[Dict]]:
        if len(models) != 1:
            raise ValueError("latent inference decodes with one model; ensembles are not supported")
        if constraints is not None or prefix_tokens is not None:
            raise ValueError("latent inference does not support --prefix-size or --constraints")
        model = in_eval_mode(models[0])
        src_tokens, src_lengths = sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]
        with torch.no_grad():  # not inference_mode: the energy network differentiates through its input
            out, passes, latent_steps, history = self._decode(model, sample)
            hyps = [self._hypothesis(t, sc) for t, sc in zip(out.tokens, out.scores)]
            if self.rescorer is not None and self.samples > 1:
                self._rescore(hyps, src_tokens, src_lengths)
        empty = model.source_content_lengths(src_tokens).eq(0)
        ids = sample.get("id")
        results = []
        for i in range(src_tokens.size(0)):
            group = []
            for r in range(i * self.samples, (i + 1) * self.samples):
                h = dict(hyps[r], steps=int(passes[r]), latent_steps=int(latent_steps[r]))
                if history is not None:
                    h["history"] = [self._hypothesis(t[r], sc[r]) for t, sc in history[: int(passes[r])]]
                group.append(h)
            if bool(empty[i]):
                logger.warning("source sentence %d is empty: its translation is empty", i if ids is None else int(ids[i]))
                group = [dict(group[0], tokens=group[0]["tokens"].new_full((1,), self.eos),
                              positional_scores=group[0]["positional_scores"].new_zeros(1), score=0.0, steps=0)]
            group.sort(key=lambda h: -h["score"])
            results.append(group)
        return results


class _Outputs:
    """The latest output of every row, (rows, W) tokens and scores; W grows when a longer output arrives."""

    def __init__(self, state: RefinementState, pad: int):
        self.pad = pad
        self.tokens, self.scores = state.tokens.clone(), state.scores.clone()

    def store(self, rows: torch.Tensor, state: RefinementState) -> None:
        width = state.tokens.size(1)
        if width > self.tokens.size(1):
            extra = width - self.tokens.size(1)
            self.tokens = torch.nn.functional.pad(self.tokens, (0, extra), value=self.pad)
            self.scores = torch.nn.functional.pad(self.scores, (0, extra), value=0.0)
        self.tokens[rows] = self.pad
        self.scores[rows] = 0.0
        self.tokens[rows, :width] = state.tokens
        self.scores[rows, :width] = state.scores

    def snapshot(self):
        return self.tokens.clone(), self.scores.clone()
