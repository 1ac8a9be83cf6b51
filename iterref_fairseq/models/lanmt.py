"""LaNMT: latent-variable non-autoregressive translation with continuous latents (Shu, Lee, Nakayama & Cho 2020).

One 8-dimensional diagonal Gaussian latent per SOURCE position:

* prior p(z|x): the source encoder (pre-LN Transformer; its states are also the decoder's memory), then
  Linear(d, 2D) -> mu, sigma = softplus(.) per position;
* posterior q(z|x,y): a self-attention encoder over y, then a cross-encoder whose queries are the source embeddings
  and whose memory is the y states -> one Gaussian per source position (training samples it, refinement uses its
  mean);
* length: Linear(d, 2M+1) on the mean over source positions of Linear(D, d)(z) + prior states; class = target
  length - source length + M (M = 50 as the reference code, ``--max-length-offset``);
* decoder p(y|x,z,L_y): Linear(D, d)(z), length transform to L_y slots (``modules/latent_blocks.LengthTransform``),
  then h / sqrt(2) + 1/2 positional encoding + 1/2 length embedding, a non-causal cross-encoder with the extra skip
  connection attending to the prior states, and an output projection; argmax per position.

Named deviation, off by default (``--decoder-source-copy``): h = Linear(D, d)(z) + sqrt(d) E[x], i.e. the length
transform also carries the scaled source token embeddings to the target slots, the soft copy that the refinement
NAT's decoder 1 reads. LaNMT's decoder sees the source only through cross-attention; on the CPU budgets of
docs/lanmt.md its outputs repeat the most frequent token in every middle slot (see there for the measurement).

``forward`` computes the training terms (``criterions/lanmt_loss.py`` adds the free-bits KL and the length loss).
Decoding hooks for ``generators/latent.py`` (the generator never names this class):

    encode(src_tokens, src_lengths) -> encoder_out            reorder_encoder_out(encoder_out, order)
    source_content_lengths(src_tokens) -> (B,)                prior(encoder_out) -> (mu, sigma), (B, S, D) each
    predict_lengths(encoder_out, z) -> (B,)                   decode_latent(encoder_out, z, lengths) -> state
    posterior_mean(encoder_out, tokens, padding_mask) -> (B, S, D)

``encoder_out`` is a dict of batch-first tensors: ``tokens`` (B, S) the source right-padded (fairseq pads sources on
the left; latents and the length transform index content positions from 0), ``mask`` (B, S) True at real positions
(content and EOS), ``embedded`` (B, S, d) scaled source embeddings + positions (the posterior's queries),
``states`` (B, S, d) prior encoder states.
"""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.transformer import Embedding

from ..generators.refinement import RefinementState
from ..hub import HubLoadable
from ..modules.gaussian import kl_diagonal_gaussians
from ..modules.latent_blocks import LengthTransform, PreNormStack
from ..modules.length_predictor import LengthOffsetPredictor
from ..modules.projected_cross_entropy import projected_cross_entropy
from ..modules.sinusoidal_positions import SinusoidalPositions
from .dictionary_check import check_dictionary_sizes

SOURCE_COPY_KEY = "decoder_source_copy_flag"  # state-dict entry recording --decoder-source-copy
SIGMA_FLOOR = 1e-6  # softplus may underflow to 0; the KL and the samples need sigma > 0


def right_align(tokens: torch.Tensor, pad: int) -> torch.Tensor:
    """(B, S) tokens with their non-pad symbols moved to the front, order kept (left- or right-padded input)."""
    order = torch.sort(tokens.eq(pad).int(), dim=1, stable=True).indices
    return tokens.gather(1, order)


@register_model("lanmt")
class LatentNATModel(HubLoadable, BaseFairseqModel):
    iterref_generator = "latent"  # translation_refine builds generators/latent.py for this model

    def __init__(self, args, src_dict, tgt_dict, embed_src, embed_tgt):
        super().__init__()
        self.args = args
        self.src_dict, self.tgt_dict = src_dict, tgt_dict
        self.pad, self.eos, self.bos = tgt_dict.pad(), tgt_dict.eos(), tgt_dict.bos()
        self.src_pad, self.src_eos = src_dict.pad(), src_dict.eos()
        d, ffn, heads, drop = args.encoder_embed_dim, args.encoder_ffn_embed_dim, args.encoder_attention_heads, \
            args.dropout
        self.dim, self.latent_dim = d, args.latent_dim
        self.dropout = drop
        self.embed_scale = math.sqrt(d)
        self.embed_src, self.embed_tgt = embed_src, embed_tgt
        self.positions = SinusoidalPositions(d)
        self.prior_encoder = PreNormStack(args.prior_layers, d, ffn, heads, drop, cross=False)
        self.prior_head = nn.Linear(d, 2 * args.latent_dim)
        self.posterior_target_encoder = PreNormStack(args.posterior_layers, d, ffn, heads, drop, cross=False)
        self.posterior_encoder = PreNormStack(args.posterior_layers, d, ffn, heads, drop, cross=True)
        self.posterior_head = nn.Linear(d, 2 * args.latent_dim)
        self.latent_to_hidden = nn.Linear(args.latent_dim, d)
        self.length_predictor = LengthOffsetPredictor(d, args.max_length_offset)
        self.length_transform = LengthTransform()
        self.length_embed = nn.Embedding(args.max_target_positions + 1, d)
        self.decoder = PreNormStack(args.decoder_layers, d, ffn, heads, drop, cross=True, skip=True)
        self.output_projection = nn.Linear(d, len(tgt_dict))
        if args.share_decoder_input_output_embed:
            self.output_projection.weight = embed_tgt.weight
        # pad / bos / eos are never predicted inside a target sequence: a -inf output bias
        mask = torch.zeros(len(tgt_dict))
        mask[[self.pad, self.eos, self.bos]] = float("-inf")
        self.register_buffer("output_mask", mask, persistent=False)
        # saved with the weights: the deviation adds no parameter, so only this tells a checkpoint's decoder input
        self.decoder_source_copy = bool(getattr(args, "decoder_source_copy", False))
        self.register_buffer(SOURCE_COPY_KEY, torch.tensor(int(self.decoder_source_copy)))
        for p in self.parameters():  # the reference initializes every matrix Xavier-uniform
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if args.latent_head_init == "zero":  # prior and posterior start equal (mu 0, sigma softplus(0)): KL 0
            for head in (self.prior_head, self.posterior_head):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def add_args(parser):
        parser.add_argument("--encoder-embed-dim", type=int, metavar="D", help="model width d (all blocks)")
        parser.add_argument("--encoder-ffn-embed-dim", type=int, metavar="N", help="feed-forward width")
        parser.add_argument("--encoder-attention-heads", type=int, metavar="N", help="attention heads")
        parser.add_argument("--prior-layers", type=int, metavar="N", help="layers of the source encoder / prior")
        parser.add_argument("--posterior-layers", type=int, metavar="N",
                            help="layers of each of the posterior's two stacks (target encoder, cross-encoder)")
        parser.add_argument("--decoder-layers", type=int, metavar="N", help="layers of the decoder p(y|x,z)")
        parser.add_argument("--latent-dim", type=int, metavar="D", help="dimension of each latent vector (8)")
        parser.add_argument("--max-length-offset", type=int, metavar="M",
                            help="length classes are target - source length in [-M, M] (reference: 50)")
        parser.add_argument("--latent-head-init", choices=["zero", "xavier"],
                            help="initial weights of the prior and posterior heads: 'zero' (default; both start at "
                                 "mu 0, sigma 0.69, KL 0) or 'xavier' (the reference: KL ~46 nats per position at "
                                 "the first update, whose gradient inflates sigma; see docs/lanmt.md)")
        parser.add_argument("--dropout", type=float, metavar="P", help="dropout probability")
        parser.add_argument("--decoder-source-copy", action="store_true",
                            help="named deviation: the decoder input also carries the source token embeddings, "
                                 "moved to the target slots by the length transform (a soft copy, as the "
                                 "refinement NAT's decoder 1); LaNMT's decoder reads the source only through "
                                 "cross-attention. Off by default; see docs/lanmt.md")
        parser.add_argument("--share-decoder-input-output-embed", action="store_true",
                            help="tie the output projection to the target embedding (the reference keeps them "
                                 "apart)")
        parser.add_argument("--share-all-embeddings", action="store_true",
                            help="one embedding matrix for source and target (needs a joined dictionary)")
        parser.add_argument("--max-source-positions", type=int, metavar="N", help="longest source")
        parser.add_argument("--max-target-positions", type=int, metavar="N", help="longest target")

    @classmethod
    def build_model(cls, args, task):
        lanmt_base(args)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        embed_src = Embedding(len(src_dict), args.encoder_embed_dim, src_dict.pad())
        if args.share_all_embeddings:
            if src_dict != tgt_dict:
                raise ValueError("--share-all-embeddings requires a joined dictionary (binarize with "
                                 "fairseq-preprocess --joined-dictionary)")
            embed_tgt = embed_src
        else:
            embed_tgt = Embedding(len(tgt_dict), args.encoder_embed_dim, tgt_dict.pad())
        return cls(args, src_dict, tgt_dict, embed_src, embed_tgt)

    def max_positions(self):
        return (self.args.max_source_positions, self.args.max_target_positions)

    def max_decoder_positions(self):
        return self.args.max_target_positions

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        check_dictionary_sizes(state_dict, {"embed_src.weight": len(self.src_dict),
                                            "embed_tgt.weight": len(self.tgt_dict)})
        if SOURCE_COPY_KEY not in state_dict:  # written before the flag was recorded: the model's arguments decide
            state_dict = {**state_dict, SOURCE_COPY_KEY: getattr(self, SOURCE_COPY_KEY).clone()}
        saved = bool(state_dict[SOURCE_COPY_KEY].item())
        if saved != self.decoder_source_copy:
            raise ValueError(
                f"the checkpoint's LaNMT was trained {'with' if saved else 'without'} --decoder-source-copy and this "
                f"run builds one {'with' if self.decoder_source_copy else 'without'} it: the decoder would read "
                f"another input. {'Add' if saved else 'Remove'} --decoder-source-copy (e.g. when fine-tuning with "
                "--finetune-from-model).")
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    # ------------------------------------------------------------------ blocks
    def _embed(self, embedding: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        pos = self.positions(tokens.size(1), embedding.weight.dtype)
        return F.dropout(self.embed_scale * embedding(tokens) + pos, self.dropout, self.training)

    def source_content_lengths(self, src_tokens: torch.Tensor) -> torch.Tensor:
        return (src_tokens.ne(self.src_pad) & src_tokens.ne(self.src_eos)).sum(1)

    def encode(self, src_tokens: torch.Tensor, src_lengths: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        tokens = right_align(src_tokens, self.src_pad)
        mask = tokens.ne(self.src_pad)
        embedded = self._embed(self.embed_src, tokens)
        return {"tokens": tokens, "mask": mask, "embedded": embedded,
                "states": self.prior_encoder(embedded, mask)}

    @staticmethod
    def reorder_encoder_out(encoder_out: Dict[str, torch.Tensor], new_order: torch.Tensor) -> Dict:
        return {k: v.index_select(0, new_order) for k, v in encoder_out.items()}

    def _gaussian(self, head: nn.Linear, states: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mu, raw = head(states).chunk(2, dim=-1)
        return mu, F.softplus(raw).clamp(min=SIGMA_FLOOR)

    def prior(self, encoder_out: Dict) -> Tuple[torch.Tensor, torch.Tensor]:
        """p(z|x): mean and standard deviation, (B, S, D) each."""
        return self._gaussian(self.prior_head, encoder_out["states"])

    def posterior(self, encoder_out: Dict, target: torch.Tensor, tgt_mask: torch.Tensor):
        """q(z|x,y) for right-padded content targets (B, T) with mask (B, T): mean and std, (B, S, D) each."""
        y_states = self.posterior_target_encoder(self._embed(self.embed_tgt, target), tgt_mask)
        states = self.posterior_encoder(encoder_out["embedded"], encoder_out["mask"], y_states, tgt_mask)
        return self._gaussian(self.posterior_head, states)

    def posterior_mean(self, encoder_out: Dict, tokens: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
        """E_q(z|x,y)[z] for a decoded output (the E-step of delta inference). tokens, padding_mask (B, T)."""
        return self.posterior(encoder_out, tokens.masked_fill(padding_mask, self.pad), ~padding_mask)[0]

    def length_logits(self, encoder_out: Dict, z: torch.Tensor) -> torch.Tensor:
        """(B, 2M+1) offset logits from the mean over source positions of Linear(z) + prior states."""
        keep = encoder_out["mask"].unsqueeze(2).to(z.dtype)
        summed = ((self.latent_to_hidden(z) + encoder_out["states"]) * keep).sum(1)
        return self.length_predictor.classify(summed / keep.sum(1).clamp(min=1.0))

    def predict_lengths(self, encoder_out: Dict, z: torch.Tensor) -> torch.Tensor:
        """(B,) most likely target lengths for latents z (B, S, D), in [1, max_target_positions]."""
        lengths, _ = self.length_predictor.topk_lengths(
            self.length_logits(encoder_out, z), self.source_content_lengths(encoder_out["tokens"]), 1,
            self.args.max_target_positions)
        return lengths[:, 0]

    def decoder_states(self, encoder_out: Dict, z: torch.Tensor, tgt_lengths: torch.Tensor):
        """p(y|x,z,L_y) up to the output projection: (B, T, d) states and the (B, T) target mask."""
        h = self.latent_to_hidden(z)
        if self.decoder_source_copy:  # named deviation (module docstring): z and the source words side by side
            h = h + self.embed_scale * self.embed_src(encoder_out["tokens"])
        h, tgt_mask = self.length_transform(h, encoder_out["mask"], tgt_lengths)
        pos = self.positions(h.size(1), h.dtype).unsqueeze(0)
        length = self.length_embed(tgt_lengths.clamp(max=self.args.max_target_positions)).unsqueeze(1)
        x = h / math.sqrt(2.0) + 0.5 * pos + 0.5 * length  # no dropout here, as the reference
        return self.decoder(x, tgt_mask, encoder_out["states"], encoder_out["mask"]), tgt_mask

    def _output_bias(self) -> torch.Tensor:
        return self.output_projection.bias + self.output_mask

    def decode_latent(self, encoder_out: Dict, z: torch.Tensor, tgt_lengths: torch.Tensor) -> RefinementState:
        """Argmax decoding of latents z (B, S, D) at lengths (B,): tokens, their log-probabilities, padding mask."""
        states, tgt_mask = self.decoder_states(encoder_out, z, tgt_lengths)
        logits = F.linear(states, self.output_projection.weight, self._output_bias()).float()
        best, tokens = logits.max(-1)
        scores = best - torch.logsumexp(logits, dim=-1)
        pad_mask = ~tgt_mask
        return RefinementState(tokens.masked_fill(pad_mask, self.pad), scores.masked_fill(pad_mask, 0.0), pad_mask)

    # ------------------------------------------------------------------ training
    def forward(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor, prev_output_tokens=None,
                tgt_tokens: Optional[torch.Tensor] = None, label_smoothing: float = 0.0, **unused) -> Dict:
        """The terms of the LaNMT objective for a batch; ``criterions/lanmt_loss.py`` reduces them.

        tgt_tokens: (B, T) fairseq targets (content + EOS, right-padded). Returns ``tokens``: {loss (N,) per real
        target token (label-smoothed), nll (N,), mask (B, T)}; ``kl`` (B, S) KL(q || p) per source position summed
        over the latent dimensions, with ``src_mask`` (B, S); ``length``: {logits (B, 2M+1), target (B,)}.
        """
        if tgt_tokens is None:
            raise ValueError("lanmt.forward needs tgt_tokens (training targets)")
        target = right_align(tgt_tokens.masked_fill(tgt_tokens.eq(self.eos), self.pad), self.pad)
        target = target[:, : max(int(target.ne(self.pad).sum(1).max()), 1)]  # drop the EOS column
        tgt_mask = target.ne(self.pad)
        encoder_out = self.encode(src_tokens, src_lengths)
        mu_p, sigma_p = self.prior(encoder_out)
        mu_q, sigma_q = self.posterior(encoder_out, target, tgt_mask)
        z = mu_q + sigma_q * torch.randn_like(mu_q)  # reparameterized sample of q
        kl = kl_gaussians(mu_q, sigma_q, mu_p, sigma_p).masked_fill(~encoder_out["mask"], 0.0)
        lengths = tgt_mask.sum(1)
        length_logits = self.length_logits(encoder_out, z)
        length_target = self.length_predictor.offset_targets(lengths, self.source_content_lengths(src_tokens))
        states, mask = self.decoder_states(encoder_out, z, lengths.clamp(min=1))
        mask = mask[:, : target.size(1)] & tgt_mask
        loss, nll, _ = projected_cross_entropy(states[mask], self.output_projection.weight, self._output_bias(),
                                               target[mask], label_smoothing, None)
        return {"tokens": {"loss": loss, "nll": nll, "mask": mask}, "kl": kl, "src_mask": encoder_out["mask"],
                "length": {"logits": length_logits, "target": length_target}}


def kl_gaussians(mu_q: torch.Tensor, sigma_q: torch.Tensor, mu_p: torch.Tensor, sigma_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) summed over the last dimension, from standard deviations."""
    return kl_diagonal_gaussians(mu_q, 2.0 * torch.log(sigma_q), mu_p, 2.0 * torch.log(sigma_p))


# ---------------------------------------------------------------------- architectures
@register_model_architecture("lanmt", "lanmt")
def lanmt_base(args):
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", None) or 512
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", None) or 2048
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", None) or 8
    args.prior_layers = getattr(args, "prior_layers", None) or 6
    args.posterior_layers = getattr(args, "posterior_layers", None) or 6
    args.decoder_layers = getattr(args, "decoder_layers", None) or 6
    args.latent_dim = getattr(args, "latent_dim", None) or 8
    args.latent_head_init = getattr(args, "latent_head_init", None) or "zero"
    args.max_length_offset = getattr(args, "max_length_offset", None) or 50
    args.dropout = getattr(args, "dropout", None)
    args.dropout = 0.1 if args.dropout is None else args.dropout
    args.decoder_source_copy = getattr(args, "decoder_source_copy", False)
    args.share_decoder_input_output_embed = getattr(args, "share_decoder_input_output_embed", False)
    args.share_all_embeddings = getattr(args, "share_all_embeddings", False)
    args.max_source_positions = getattr(args, "max_source_positions", None) or 1024
    args.max_target_positions = getattr(args, "max_target_positions", None) or 1024


@register_model_architecture("lanmt", "lanmt_wmt")
def lanmt_wmt(args):
    """The paper's WMT model: d 512, ffn 2048, 8 heads, 6-layer prior / posterior / decoder, latent dim 8."""
    lanmt_base(args)


@register_model_architecture("lanmt", "lanmt_tiny")
def lanmt_tiny(args):
    """CPU-sized: d 128, ffn 512, 4 heads, 2 layers per stack, latent dim 8."""
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", None) or 128
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", None) or 512
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", None) or 4
    args.prior_layers = getattr(args, "prior_layers", None) or 2
    args.posterior_layers = getattr(args, "posterior_layers", None) or 2
    args.decoder_layers = getattr(args, "decoder_layers", None) or 2
    lanmt_base(args)
