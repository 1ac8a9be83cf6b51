"""Score / energy network for refinement in LaNMT's continuous latent space (Lee, Shu & Cho 2020).

The LaNMT model is trained first and then frozen. This network learns an update direction for its latents so that
one step z <- z + alpha * S(z; x) does what several rounds of delta inference would do, without a softmax:

* ``--score-param score``: S_psi(z; x) is the network's output (no backpropagation at test time: faster);
* ``--score-param energy``: a scalar E_psi(z; x) and S = -grad_z E by autograd (the talk writes the update as
  z <- z - alpha grad E: the same step).

Network: Linear(D, d)(z) + positional encoding -> pre-LN cross-encoder attending to the frozen prior (source)
states -> Linear(d, D) (score) or Linear(d, 1) summed over source positions (energy; the lanmt-ebm code applies its
linear layer to the mean over positions, which makes each position's gradient shrink with the source length).

Training objective (the talk's first-order objective with the proxy gradient; ``forward`` computes its terms,
``criterions/lanmt_score_loss.py`` reduces them): z_ini = mu_p + sigma_p * eps * u, u ~ U(0, 1) per sentence
(training; validation uses z_ini = mu_p, the lanmt-ebm code draws one u per batch);
Delta = z_fin - z_ini with z_fin = k rounds of delta inference from z_ini (``--delta-steps``, default 4); loss =
sum over source positions of ||S||^2 - 2 S.Delta (= ||S - Delta||^2 up to a term that does not depend on psi).
Later in training (``--self-step-from-update``), with probability ``--self-step-prob`` z_ini first takes one step
of the current network (no gradient), so that the network also learns to correct its own steps.

Which latent space: the lanmt-ebm code trains on a variant with one latent per TARGET position and a length fixed
once. LaNMT's latents sit on SOURCE positions, so the space is fixed by the source and the objective applies as is;
that is what is implemented here, with the length re-predicted by the frozen model after every step.

The LaNMT weights are not part of this network's state dict: fairseq-train loads them from ``--lanmt-path`` and
keeps them frozen in eval mode; the checkpoint stores a fingerprint of them, and decoding (``--score-path``)
refuses a LaNMT with another fingerprint.
"""
import os
from typing import Dict, Optional

import torch
import torch.nn as nn
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..generators.latent import delta_steps, energy_direction
from ..modules.latent_blocks import PreNormStack
from ..modules.sinusoidal_positions import SinusoidalPositions

LATENT_HOOKS = ("encode", "prior", "posterior_mean", "decode_latent", "predict_lengths")


FINGERPRINT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def parameter_fingerprint(model: nn.Module, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(3,) float64: number, sum and sum of squares of a model's parameters rounded to ``dtype`` (computed on the
    CPU in a fixed order, so the same weights give the same numbers on any device)."""
    params = [p.detach().cpu().to(dtype).double() for p in model.parameters()]
    return torch.tensor([float(sum(p.numel() for p in params)), float(sum(p.sum() for p in params)),
                         float(sum(p.pow(2).sum() for p in params))], dtype=torch.float64)


def parameter_fingerprints(model: nn.Module) -> torch.Tensor:
    """(3, 3): the fingerprint at every precision a model may be decoded in (fp32, fp16, bf16), so that a network
    trained against the fp32 model also accepts it after ``--fp16`` / ``--bf16`` halved it."""
    return torch.stack([parameter_fingerprint(model, dtype) for dtype in FINGERPRINT_DTYPES])


def load_latent_model(path: str, data: Optional[str] = None):
    """The LaNMT checkpoint at ``path`` (eval mode, frozen); a clear error when it is missing or not a latent model."""
    from fairseq import checkpoint_utils

    if not path or not os.path.isfile(path):
        raise ValueError(f"--lanmt-path: file not found: {path!r}; pass the LaNMT checkpoint written by "
                         "fairseq-train --arch lanmt_*")
    overrides = {"data": data} if data else {}
    models, _ = checkpoint_utils.load_model_ensemble([path], arg_overrides=overrides)
    model = models[0]
    missing = [h for h in LATENT_HOOKS if not hasattr(model, h)]
    if missing:
        raise ValueError(f"--lanmt-path {path} holds a {type(model).__name__}, not a latent-variable model (no "
                         f"{', '.join(missing)}); pass a checkpoint of fairseq-train --arch lanmt_*")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@register_model("lanmt_score")
class LatentScoreModel(BaseFairseqModel):
    def __init__(self, args, lanmt=None):
        super().__init__()
        self.args = args
        d = args.score_embed_dim
        self.param = args.score_param
        self.input = nn.Linear(args.latent_dim, d)
        self.positions = SinusoidalPositions(d)
        self.memory = nn.Linear(args.memory_dim, d) if args.memory_dim != d else nn.Identity()
        self.stack = PreNormStack(args.score_layers, d, args.score_ffn_embed_dim, args.score_attention_heads,
                                  args.dropout, cross=True)
        self.output = nn.Linear(d, args.latent_dim if self.param == "score" else 1)
        self.register_buffer("lanmt_fingerprint", torch.zeros(len(FINGERPRINT_DTYPES), 3, dtype=torch.float64))
        self._lanmt = ()  # a tuple hides the frozen model from parameters(), state_dict() and the optimizer
        if lanmt is not None:
            self.attach(lanmt, record=True)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def add_args(parser):
        parser.add_argument("--lanmt-path", metavar="CHECKPOINT",
                            help="the trained LaNMT checkpoint whose latent space this network refines (frozen)")
        parser.add_argument("--score-param", choices=["score", "energy"],
                            help="'score': the network outputs the update direction; 'energy': it outputs a scalar "
                                 "energy and the direction is its negative gradient (autograd at test time)")
        parser.add_argument("--score-embed-dim", type=int, metavar="D", help="width of the network")
        parser.add_argument("--score-ffn-embed-dim", type=int, metavar="N", help="feed-forward width")
        parser.add_argument("--score-attention-heads", type=int, metavar="N", help="attention heads")
        parser.add_argument("--score-layers", type=int, metavar="N", help="cross-encoder layers")
        parser.add_argument("--dropout", type=float, metavar="P", help="dropout probability")

    @classmethod
    def build_model(cls, args, task):
        lanmt_score_base(args)
        lanmt = None
        if getattr(args, "lanmt_path", None):
            lanmt = load_latent_model(args.lanmt_path, getattr(task.cfg, "data", None))
            args.latent_dim, args.memory_dim = lanmt.latent_dim, lanmt.dim
        elif not getattr(args, "latent_dim", None):
            raise ValueError("lanmt_score needs the LaNMT it refines: pass --lanmt-path CHECKPOINT")
        return cls(args, lanmt)

    def attach(self, lanmt, record: bool = False) -> None:
        """Use ``lanmt`` (frozen, eval mode). ``record`` stores its fingerprint (training); otherwise the fingerprint
        must match the one recorded at training time."""
        if record:
            self.lanmt_fingerprint.copy_(parameter_fingerprints(lanmt))
        else:
            dtype = next(lanmt.parameters()).dtype
            row = FINGERPRINT_DTYPES.index(dtype) if dtype in FINGERPRINT_DTYPES else 0
            if not torch.allclose(parameter_fingerprint(lanmt, FINGERPRINT_DTYPES[row]),
                                  self.lanmt_fingerprint[row].cpu(), rtol=1e-12, atol=0.0):
                raise ValueError("the score network was trained for another LaNMT model (parameter fingerprints "
                                 "differ); pass the --score-path trained with --lanmt-path set to this --path")
        if lanmt.latent_dim != self.args.latent_dim or lanmt.dim != self.args.memory_dim:
            raise ValueError(f"the score network expects latents of dim {self.args.latent_dim} and states of dim "
                             f"{self.args.memory_dim}; this LaNMT has {lanmt.latent_dim} and {lanmt.dim}")
        lanmt.eval()
        self._lanmt = (lanmt,)

    @property
    def lanmt(self):
        if not self._lanmt:
            raise ValueError("no LaNMT attached to the score network: train with --lanmt-path, decode with --path "
                             "LANMT --score-path SCORE")
        return self._lanmt[0]

    def train(self, mode: bool = True):
        super().train(mode)
        if self._lanmt:
            self._lanmt[0].eval()  # the frozen model never uses dropout
        return self

    def _apply(self, fn, *args, **kwargs):  # .to(device) / .half() also reach the hidden frozen model
        super()._apply(fn, *args, **kwargs)
        if self._lanmt:
            self._lanmt[0]._apply(fn, *args, **kwargs)
        return self

    def max_positions(self):
        return self.lanmt.max_positions() if self._lanmt else (1024, 1024)

    # ------------------------------------------------------------------ the network
    def _features(self, encoder_out: Dict, z: torch.Tensor) -> torch.Tensor:
        x = self.input(z) + self.positions(z.size(1), z.dtype).unsqueeze(0)
        mask = encoder_out["mask"]
        return self.stack(x, mask, self.memory(encoder_out["states"]), mask)

    def energy(self, encoder_out: Dict, z: torch.Tensor) -> torch.Tensor:
        """E_psi(z; x): (B, S, D) -> (B,), the sum of a per-position term over real source positions.

        Training differentiates grad_z E (double backward), which the fused attention kernels (CPU flash attention)
        do not implement: the energy's attention runs on the plain math kernel."""
        with sdpa_kernel([SDPBackend.MATH]):
            per_position = self.output(self._features(encoder_out, z)).squeeze(-1)
        return per_position.masked_fill(~encoder_out["mask"], 0.0).sum(1)

    def direction(self, encoder_out: Dict, z: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        """The update direction (B, S, D): S_psi(z; x), or -grad_z E_psi(z; x); 0 at padded positions."""
        if self.param == "energy":
            out = energy_direction(lambda v: self.energy(encoder_out, v), z, create_graph=create_graph)
        else:
            out = self.output(self._features(encoder_out, z))
        return out.masked_fill(~encoder_out["mask"].unsqueeze(2), 0.0)

    # ------------------------------------------------------------------ training
    def forward(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor, delta_steps_k: int = 4,
                self_step: bool = False, self_step_size: float = 0.8, **unused) -> Dict:
        """The terms of the objective: ``direction`` S (B, S, D) with gradient, ``target`` Delta (B, S, D), ``mask``
        (B, S) real source positions."""
        lanmt = self.lanmt
        with torch.no_grad():
            encoder_out = lanmt.encode(src_tokens, src_lengths)
            mu, sigma = lanmt.prior(encoder_out)
            z = mu
            if self.training:  # validation measures the objective at the prior mean, where decoding starts
                u = torch.rand(mu.size(0), 1, 1, device=mu.device, dtype=mu.dtype)
                z = mu + sigma * torch.randn_like(mu) * u
            if self_step:
                z = z + self_step_size * self.direction(encoder_out, z)
            target = delta_steps(lanmt, encoder_out, z, delta_steps_k) - z
        mask = encoder_out["mask"]
        return {"direction": self.direction(encoder_out, z, create_graph=self.training),
                "target": target.masked_fill(~mask.unsqueeze(2), 0.0), "mask": mask}


# ---------------------------------------------------------------------- architectures
@register_model_architecture("lanmt_score", "lanmt_score")
def lanmt_score_base(args):
    args.score_param = getattr(args, "score_param", None) or "score"
    args.score_embed_dim = getattr(args, "score_embed_dim", None) or 512
    args.score_ffn_embed_dim = getattr(args, "score_ffn_embed_dim", None) or 2048
    args.score_attention_heads = getattr(args, "score_attention_heads", None) or 8
    args.score_layers = getattr(args, "score_layers", None) or 6
    args.dropout = getattr(args, "dropout", None)
    args.dropout = 0.1 if args.dropout is None else args.dropout
    args.latent_dim = getattr(args, "latent_dim", None)
    args.memory_dim = getattr(args, "memory_dim", None)


@register_model_architecture("lanmt_score", "lanmt_score_wmt")
def lanmt_score_wmt(args):
    """The reference's score network for the WMT LaNMT: d 512, ffn 2048, 8 heads, 6 cross-encoder layers."""
    lanmt_score_base(args)


@register_model_architecture("lanmt_score", "lanmt_score_tiny")
def lanmt_score_tiny(args):
    """CPU-sized: d 128, ffn 512, 4 heads, 2 layers."""
    args.score_embed_dim = getattr(args, "score_embed_dim", None) or 128
    args.score_ffn_embed_dim = getattr(args, "score_ffn_embed_dim", None) or 512
    args.score_attention_heads = getattr(args, "score_attention_heads", None) or 4
    args.score_layers = getattr(args, "score_layers", None) or 2
    lanmt_score_base(args)
