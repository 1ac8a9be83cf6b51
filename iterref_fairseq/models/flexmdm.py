"""FlexMDM and LFlexMDM: variable-length masked diffusion by insertion, with learnable order dynamics (the LFlexMDM paper).

Generator theta (``FlexMDMModel``): one bidirectional Transformer with adaLN time conditioning
(``modules/adaln_transformer.py``) over ``[prompt ; x_t]``. The prompt (fairseq source, e.g. the star-graph edge
list; only EOS for unconditional generation) is a fixed prefix that is encoded jointly and never generated.
For every x_t position j it outputs

* K^theta(. | x_t)[j]: a token distribution (used at ``<mask>`` positions; logits tied to the embeddings),
* b_in^theta[j] > 0: the insertion multiplier of the gap left of token j (the trailing EOS owns the last gap),
* b_um^theta[j] > 0: the unmasking multiplier (only used when the unmasking order is learned),
* c^theta[j] >= 0 (LFlexMDM only): the expected number of tokens still to insert in the gap left of token j,

(softplus heads). The generator's rates are lambda_in^theta = b_in^theta h_a(t) and
lambda_um^theta = b_um^theta h_a(t) with h_a(t) = a t^{a-1} / (1 - t^a) (``modules/kumaraswamy.py``); with
a = 1 and fixed multipliers this is FlexMDM's alpha_dot / (1 - alpha) g_theta with linear schedules.

Remaining-count head (deviation, LFlexMDM only). With b = 1 for every token the insertion multiplier of a gap *is*
the expected number of tokens still to insert there (b_in^theta = g_theta), which the sampler's last step needs:
every token still absent must arrive in [1 - dt, 1]. With learned b the multiplier is the *sum of the remaining
tokens' b* instead, which says nothing about their number (two tokens with b = 0.01 give 0.02). LFlexMDM therefore
gets one more softplus output c^theta, trained with the Bregman divergence D(n_gap, c^theta) to the true remaining
count (``criterions/flexmdm_loss.py``), and used only by the last sampling step. It is a generator-only term: it is
not part of the losses the REINFORCE estimator sees, so it does not change what phi learns.

Auxiliary network phi (only with ``--learned-order``, i.e. LFlexMDM): reads the clean x1 (with the prompt) and
outputs per-token Kumaraswamy b_in^phi (and b_um^phi with ``--learn-unmask-order``; by default b_um = 1, the
paper's best setting). ``--aux-backbone separate`` (default) builds a second, smaller Transformer;
``shared`` reuses the generator's backbone at t = 1 with its own heads. The heads are initialised so that
b = 1 at the start: LFlexMDM starts from FlexMDM.

``forward`` draws two noisy samples per sequence (for the leave-one-out REINFORCE term) and returns the loss spec
reduced by ``criterions/flexmdm_loss.py``. Decoding hooks for ``generators/tau_leaping.py``: ``mask_index``,
``insertion_schedule_a``, ``rates``, ``max_decoder_positions``.
"""
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture

from ..data.insertion_noise import compact, content_mask, token_states
from ..hub import HubLoadable
from .dictionary_check import check_dictionary_sizes
from ..modules import kumaraswamy as kuma
from ..modules.adaln_transformer import AdaLNStack, TimeEmbedding

MASK_SYMBOL = "<mask>"
_SOFTPLUS_INV_ONE = math.log(math.e - 1.0)  # softplus(x) = 1  <=>  x = log(e - 1)


class _Encoder(nn.Module):
    """Token + position + segment embeddings of [prompt ; x] -> adaLN Transformer -> states of the x part."""

    def __init__(self, vocab: int, pad: int, dim: int, layers: int, heads: int, ffn: int, dropout: float,
                 max_prompt: int, max_target: int, embed: Optional[nn.Embedding] = None, conditioned: bool = True):
        super().__init__()
        self.embed = embed if embed is not None else nn.Embedding(vocab, dim, padding_idx=pad)
        if embed is None:
            nn.init.normal_(self.embed.weight, std=dim ** -0.5)
        self.pos_prompt = nn.Embedding(max_prompt + 2, dim)
        self.pos_x = nn.Embedding(max_target + 2, dim)
        self.segment = nn.Embedding(2, dim)
        # Positions and segments start at the tokens' scale (all are multiplied by sqrt(dim) below). Star-graph
        # traversal is mostly positional (the source is the token after '|', x_t position 0 holds it late in the
        # process); with the usual std 0.02 the position signal starts ~50x weaker than the token signal and a
        # tiny model took >800 updates to copy the source token (39% accuracy), measured on easy star graphs.
        for emb in (self.pos_prompt, self.pos_x, self.segment):
            nn.init.normal_(emb.weight, std=dim ** -0.5)
        self.stack = AdaLNStack(layers, dim, heads, ffn, dropout, conditioned)
        self.pad = pad
        self.scale = math.sqrt(dim)
        self.max_prompt, self.max_target = max_prompt, max_target

    def forward(self, prompt: torch.Tensor, x: torch.Tensor, x_pad: torch.Tensor,
                c: Optional[torch.Tensor]) -> torch.Tensor:
        """prompt (B, S) (any padding side), x (B, L), x_pad (B, L) True at pads, c (B, C) (None when built
        unconditioned) -> (B, L, C)."""
        p_pad = prompt.eq(self.pad)
        if prompt.size(1) > self.max_prompt + 1 or x.size(1) > self.max_target + 1:
            raise ValueError(
                f"input longer than the model's maximum (prompt {prompt.size(1)} > {self.max_prompt + 1} or sequence "
                f"{x.size(1)} > {self.max_target + 1}); raise --max-source-positions / --max-target-positions when "
                "training or filter long inputs (--skip-invalid-size-inputs-valid-test)"
            )
        p_pos = ((~p_pad).long().cumsum(1) - 1).clamp(min=0)
        x_pos = torch.arange(x.size(1), device=x.device).unsqueeze(0).expand_as(x)
        hp = self.scale * (self.embed(prompt) + self.pos_prompt(p_pos) + self.segment.weight[0])
        hx = self.scale * (self.embed(x) + self.pos_x(x_pos) + self.segment.weight[1])
        h = self.stack(torch.cat([hp, hx], 1), c, torch.cat([p_pad, x_pad], 1))
        return h[:, prompt.size(1):]


T_SAMPLING = ("stratified", "iid")


def sample_training_times(bsz: int, t_max: float, how: str, device=None) -> torch.Tensor:
    """(bsz,) training times, each marginally U(0, t_max).

    ``iid``: independent draws. ``stratified`` (low-discrepancy, as in MDLM's training code): one shared offset
    u ~ U(0, 1) and t_i = t_max (u + i) / bsz in random order, so a batch covers [0, t_max) evenly. The loss stays
    unbiased (every t_i is uniform) but its variance drops: the weight 1 / (1 - t) of the unmasking and insertion
    terms is heavy-tailed near t = 1, and i.i.d. batches over- or under-sample that tail from step to step.
    """
    if how == "iid":
        return torch.rand(bsz, device=device) * t_max
    if how != "stratified":
        raise ValueError(f"unknown t sampling {how!r}; choose one of {', '.join(T_SAMPLING)}")
    u = torch.rand(1, device=device)
    t = (u + torch.arange(bsz, device=device)) / bsz
    return t[torch.randperm(bsz, device=device)] * t_max


def _rate_head(dim: int, n: int) -> nn.Linear:
    head = nn.Linear(dim, n)
    nn.init.normal_(head.weight, std=1e-3)
    nn.init.constant_(head.bias, _SOFTPLUS_INV_ONE)  # softplus(bias) = 1: start at the linear schedule
    return head


@register_model("flexmdm")
class FlexMDMModel(HubLoadable, BaseFairseqModel):  # HubLoadable: fairseq-style from_pretrained
    def __init__(self, args, src_dict, tgt_dict):
        super().__init__()
        if src_dict is not tgt_dict and src_dict.symbols != tgt_dict.symbols:
            raise ValueError("flexmdm encodes prompt and sequence with one embedding table: binarize with "
                             "fairseq-preprocess --joined-dictionary")
        if MASK_SYMBOL not in tgt_dict.indices:
            raise ValueError(f"the target dictionary has no {MASK_SYMBOL} symbol; use --task star_graph or "
                             "--task molecule_strings, which add it")
        self.args = args
        self.dictionary = tgt_dict
        self.pad, self.eos, self.bos = tgt_dict.pad(), tgt_dict.eos(), tgt_dict.bos()
        self.mask_index = tgt_dict.index(MASK_SYMBOL)
        self.a = float(args.kuma_a)
        if self.a <= 0:
            raise ValueError(f"--kuma-a must be > 0, got {self.a}")
        self.learned_order = bool(args.learned_order)
        self.learn_unmask = bool(args.learn_unmask_order) and self.learned_order
        dim = args.decoder_embed_dim
        self.time = TimeEmbedding(dim)
        self.net = _Encoder(len(tgt_dict), self.pad, dim, args.decoder_layers, args.decoder_attention_heads,
                            args.decoder_ffn_embed_dim, args.dropout, args.max_source_positions,
                            args.max_target_positions)
        self.rate_head = _rate_head(dim, 2)  # generator multipliers [b_in^theta, b_um^theta]
        self.out_bias = nn.Parameter(torch.zeros(len(tgt_dict)))
        special = torch.zeros(len(tgt_dict), dtype=torch.bool)
        special[[self.pad, self.eos, self.bos, tgt_dict.unk(), self.mask_index]] = True
        self.register_buffer("special_symbols", special, persistent=False)
        self.aux = None
        if self.learned_order:
            if args.aux_backbone == "separate":
                aux_dim = args.aux_embed_dim
                # phi reads the clean sequence only (no time): its adaLN modulations are learned constants
                self.aux = _Encoder(len(tgt_dict), self.pad, aux_dim, args.aux_layers, args.aux_attention_heads,
                                    4 * aux_dim, args.dropout, args.max_source_positions,
                                    args.max_target_positions, conditioned=False)
            elif args.aux_backbone == "shared":
                aux_dim = dim
            else:
                raise ValueError(f"--aux-backbone must be 'separate' or 'shared', got {args.aux_backbone!r}")
            self.aux_head = _rate_head(aux_dim, 2)
        # remaining-count head (a deviation, see the module docstring); --no-count-head = the paper's sampler, whose
        # last step inserts round(b_in^theta) masks per gap
        self.count_head = _rate_head(dim, 1) if self.learned_order and not args.no_count_head else None

    # ------------------------------------------------------------------ construction
    @staticmethod
    def add_args(parser):
        parser.add_argument("--decoder-embed-dim", type=int, metavar="N", help="model dimension")
        parser.add_argument("--decoder-ffn-embed-dim", type=int, metavar="N", help="feed-forward dimension")
        parser.add_argument("--decoder-layers", type=int, metavar="N", help="Transformer blocks of the generator")
        parser.add_argument("--decoder-attention-heads", type=int, metavar="N", help="attention heads")
        parser.add_argument("--dropout", type=float, metavar="D", help="dropout")
        parser.add_argument("--max-source-positions", type=int, metavar="N", help="longest prompt")
        parser.add_argument("--max-target-positions", type=int, metavar="N",
                            help="L_max: longest generated sequence (also normalises the insertion loss)")
        parser.add_argument("--kuma-a", type=float, metavar="A",
                            help="shared Kumaraswamy shape a of all schedules (1 = linear hazard family)")
        parser.add_argument("--learned-order", action="store_true", default=None,
                            help="LFlexMDM: learn per-token insertion schedules b_in with an auxiliary network")
        parser.add_argument("--learn-unmask-order", action="store_true", default=None,
                            help="also learn per-token unmasking schedules b_um (default: b_um fixed to 1)")
        parser.add_argument("--aux-backbone", choices=["separate", "shared"],
                            help="auxiliary network: its own Transformer (default) or the generator's backbone")
        parser.add_argument("--aux-layers", type=int, metavar="N", help="layers of a separate auxiliary network")
        parser.add_argument("--aux-embed-dim", type=int, metavar="N", help="width of a separate auxiliary network")
        parser.add_argument("--aux-attention-heads", type=int, metavar="N", help="heads of the auxiliary network")
        parser.add_argument("--no-count-head", action="store_true", default=None,
                            help="LFlexMDM without the remaining-count head (an ablation: the last sampling step then "
                                 "inserts round(b_in^theta) masks per gap, as in the paper's sampler)")

    @classmethod
    def build_model(cls, args, task):
        flexmdm_base(args)
        return cls(args, task.source_dictionary, task.target_dictionary)

    def max_positions(self):
        return (self.args.max_source_positions, self.args.max_target_positions)

    def max_decoder_positions(self) -> int:
        return self.args.max_target_positions

    @staticmethod
    def upgrade_aux_modulation(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Checkpoints saved before the auxiliary network's adaLN became unconditioned fed it c = aux_c = 0: their
        modulation was silu(0) @ W + bias = bias exactly (W and aux_c start at zero and got no gradient), so the
        bias becomes ``ada_const`` and W and aux_c are dropped; the network computes the same function."""
        if "aux_c" not in state_dict:
            return state_dict
        out = {}
        for key, value in state_dict.items():
            if key == "aux_c" or (key.startswith("aux.") and key.endswith(".ada.weight")):
                continue
            if key.startswith("aux.") and key.endswith(".ada.bias"):
                key = key[: -len("ada.bias")] + "ada_const"
            out[key] = value
        return out

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        state_dict = self.upgrade_aux_modulation(state_dict)
        if self.count_head is not None and "count_head.weight" not in state_dict:
            raise ValueError(
                "this LFlexMDM checkpoint predates the remaining-count head (count_head.*) that the sampler's last "
                "step reads; retrain it with the current code (a FlexMDM checkpoint is unaffected)"
            )
        check_dictionary_sizes(state_dict, {"net.embed.weight": len(self.dictionary)})
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    # ------------------------------------------------------------------ networks
    def generator_outputs(self, prompt: torch.Tensor, x: torch.Tensor, x_pad: torch.Tensor, t: torch.Tensor):
        """theta on x_t. prompt (B, S), x (B, L), x_pad (B, L), t (B,).

        Returns logits (B, L, V) (special symbols at -inf), b_in^theta (B, L), b_um^theta (B, L) and the expected
        number of tokens still to insert per gap (B, L): c^theta for LFlexMDM, b_in^theta for FlexMDM (where the
        multiplier is that count, all b being 1).
        """
        h = self.net(prompt, x, x_pad, self.time(t))
        logits = F.linear(h, self.net.embed.weight, self.out_bias).float()
        logits = logits.masked_fill(self.special_symbols, float("-inf"))
        mult = F.softplus(self.rate_head(h).float())
        remaining = mult[..., 0] if self.count_head is None else F.softplus(self.count_head(h).float()).squeeze(-1)
        return logits, mult[..., 0], mult[..., 1], remaining

    def aux_multipliers(self, prompt: torch.Tensor, x1: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """phi on the clean x1 (B, L) -> (b_in^phi, b_um^phi), each (B, L); ones where the order is not learned."""
        ones = torch.ones(x1.shape, device=x1.device)
        if not self.learned_order:
            return ones, ones
        x_pad = x1.eq(self.pad)
        if self.aux is not None:
            h = self.aux(prompt, x1, x_pad, None)
        else:
            h = self.net(prompt, x1, x_pad, self.time(torch.ones(x1.size(0), device=x1.device)))
        b = (F.softplus(self.aux_head(h).float()) + 1e-2).clamp(max=50.0)
        return b[..., 0], (b[..., 1] if self.learn_unmask else ones)

    # ------------------------------------------------------------------ training
    def forward(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor = None, prev_output_tokens=None,
                tgt_tokens: Optional[torch.Tensor] = None, num_samples: int = 2, t_max: float = 0.999,
                t_sampling: str = "stratified", **unused) -> Dict:
        """Loss spec for x1 = ``tgt_tokens`` (B, L) (content + EOS, right-padded).

        Draws one time t ~ U(0, t_max) per sequence (``t_sampling``: see :func:`sample_training_times`), shared by
        its ``num_samples`` noisy samples (two for the
        leave-one-out REINFORCE estimator; sharing t makes the two losses comparable, so the baseline removes
        the variance due to t). Returns a dict with ``t`` (B,), ``b_in_phi`` / ``b_um_phi`` (B, L),
        ``x1`` (B, L), ``content`` (B, L), and ``samples``: a list of {noisy, logits (B, Lt, V), b_in_theta
        (B, Lt), b_um_theta (B, Lt), count_theta (B, Lt) (None without the remaining-count head)}.
        """
        if tgt_tokens is None:
            raise ValueError("flexmdm.forward needs tgt_tokens (the clean sequences x1)")
        x1 = tgt_tokens
        if x1.size(1) > self.args.max_target_positions + 1:
            raise ValueError(f"target of length {x1.size(1)} exceeds --max-target-positions "
                             f"{self.args.max_target_positions}; raise it or filter long examples")
        bsz = x1.size(0)
        content = content_mask(x1, self.pad, self.eos, self.bos)
        b_in_phi, b_um_phi = self.aux_multipliers(src_tokens, x1)
        t = sample_training_times(bsz, t_max, t_sampling, x1.device)
        noisy_list = []
        with torch.no_grad():  # the discrete states get REINFORCE gradients, not pathwise ones
            for _ in range(num_samples):
                t_in, t_um = kuma.sample_times(self.a, b_in_phi.detach(), b_um_phi.detach())
                state = token_states(t, t_in, t_um, content)
                noisy_list.append(compact(x1, state, self.pad, self.eos, self.mask_index, t))
        # run theta once on all samples (rows k*B .. (k+1)*B-1 are sample k)
        width = max(n.tokens.size(1) for n in noisy_list)
        tokens = torch.cat([F.pad(n.tokens, (0, width - n.tokens.size(1)), value=self.pad) for n in noisy_list])
        logits, b_in_theta, b_um_theta, remaining = self.generator_outputs(
            src_tokens.repeat(num_samples, 1), tokens, tokens.eq(self.pad), t.repeat(num_samples))
        samples = []
        for k, n in enumerate(noisy_list):
            rows, lt = slice(k * bsz, (k + 1) * bsz), n.tokens.size(1)
            samples.append({"noisy": n, "logits": logits[rows, :lt], "b_in_theta": b_in_theta[rows, :lt],
                            "b_um_theta": b_um_theta[rows, :lt],
                            "count_theta": remaining[rows, :lt] if self.count_head is not None else None})
        return {"t": t, "x1": x1, "content": content, "b_in_phi": b_in_phi, "b_um_phi": b_um_phi,
                "samples": samples, "a": self.a, "learned_order": self.learned_order,
                "learn_unmask": self.learn_unmask, "l_max": float(self.args.max_target_positions)}

    # ------------------------------------------------------------------ decoding hooks
    def insertion_schedule_a(self) -> float:
        return self.a

    @torch.no_grad()
    def rates(self, prompt: torch.Tensor, tokens: torch.Tensor, padding_mask: torch.Tensor, t: torch.Tensor):
        """Generator CTMC rates at x_t = tokens (B, L) (pads True in padding_mask), time t (B,).

        Returns log K^theta (B, L, V), lambda_in^theta (B, L) per gap (left of each position),
        lambda_um^theta (B, L) per position (meaningful at masks), and the expected number of tokens still to
        insert per gap (B, L) (read by the sampler's last step).
        """
        logits, b_in, b_um, remaining = self.generator_outputs(prompt, tokens, padding_mask, t)
        h = kuma.base_hazard(t, self.a).unsqueeze(1)
        um_mult = b_um if self.learn_unmask else torch.ones_like(b_um)
        return F.log_softmax(logits, -1), (b_in * h).masked_fill(padding_mask, 0.0), \
            (um_mult * h).masked_fill(padding_mask, 0.0), remaining.masked_fill(padding_mask, 0.0)


# ---------------------------------------------------------------------- architectures
@register_model_architecture("flexmdm", "flexmdm")
def flexmdm_base(args):
    """Paper-sized (DiT-B / GPT-2-small width as in the MDLM/FlexMDM code): d 768, 12 layers, 12 heads."""
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", None) or 768
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", None) or 4 * args.decoder_embed_dim
    args.decoder_layers = getattr(args, "decoder_layers", None) or 12
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", None) or 12
    args.dropout = getattr(args, "dropout", None)
    args.dropout = 0.1 if args.dropout is None else args.dropout
    args.max_source_positions = getattr(args, "max_source_positions", None) or 1024
    args.max_target_positions = getattr(args, "max_target_positions", None) or 1024
    args.kuma_a = getattr(args, "kuma_a", None) or 1.0
    args.learned_order = bool(getattr(args, "learned_order", False))
    args.learn_unmask_order = bool(getattr(args, "learn_unmask_order", False))
    args.no_count_head = bool(getattr(args, "no_count_head", False))
    args.aux_backbone = getattr(args, "aux_backbone", None) or "separate"
    args.aux_layers = getattr(args, "aux_layers", None) or max(1, args.decoder_layers // 2)
    args.aux_embed_dim = getattr(args, "aux_embed_dim", None) or args.decoder_embed_dim
    args.aux_attention_heads = getattr(args, "aux_attention_heads", None) or args.decoder_attention_heads


@register_model_architecture("flexmdm", "lflexmdm")
def lflexmdm_base(args):
    """LFlexMDM, paper-sized: flexmdm + learned insertion order (b_um fixed to 1, separate auxiliary network)."""
    args.learned_order = True
    flexmdm_base(args)


@register_model_architecture("flexmdm", "flexmdm_tiny")
def flexmdm_tiny(args):
    """CPU-sized: d 128, ffn 512, 3 layers, 4 heads, L_max 64; trains on easy star graphs in minutes."""
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", None) or 128
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", None) or 512
    args.decoder_layers = getattr(args, "decoder_layers", None) or 3
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", None) or 4
    args.dropout = 0.0 if getattr(args, "dropout", None) is None else args.dropout
    args.max_source_positions = getattr(args, "max_source_positions", None) or 256
    args.max_target_positions = getattr(args, "max_target_positions", None) or 64
    args.aux_layers = getattr(args, "aux_layers", None) or 1
    flexmdm_base(args)


@register_model_architecture("flexmdm", "lflexmdm_tiny")
def lflexmdm_tiny(args):
    """CPU-sized LFlexMDM (one-layer separate auxiliary network)."""
    args.learned_order = True
    flexmdm_tiny(args)
