"""Iterative-refinement non-autoregressive translator of Lee, Mansimov & Cho (2018), thesis chapter 3.

Three Transformer blocks (thesis Fig. 3.2):

* ``encoder``: fairseq's Transformer encoder (we ask it for the states of every layer);
* ``decoder_initial`` ("Decoder 1") models p(Y^0 | X). Its input is the source embeddings copied to the target
  length, y^0_t <- x_{t'} with t' = (T'/T) t (see :func:`copy_source_positions`);
* ``decoder_refine`` ("Decoder 2") is shared by all refinement steps and models p(Y^l | Y^{l-1}, X). Its input is
  the embedding of the previous prediction (the embedding matrix is tied to the output projection) plus the final
  hidden states of the previous step (reference code: ``--next_dec_input both``).

Decoders use positional attention; their attention sublayers are residual blocks and their feed-forward sublayer
a highway block, as in the reference code (``--decoder-connections``, ``modules/nat_decoder.py``). The target
length is predicted by classifying (T - T') from the summed encoder layers with a stopped gradient
(``modules/length_predictor.py``).

Training (Eq. 3.4) is run by ``forward``: one pass of decoder 1 on the copied source, then ``train_steps - 1``
passes of decoder 2, each fed either with the model's previous output (LVM term: argmax, or a sample with
``stochastic=True``) or, with probability ``dae_prob``, with a corrupted reference (DAE term; one coin per batch or
per sentence). The previous output's *tokens* carry no gradient (an argmax or a sample). Its *hidden states* do by
default (``--refine-hidden-grad flow``): the thesis does not say, and the reference code adds them to decoder 2's
input without stopping the gradient, so the loss of step l also trains the steps before it. ``--refine-hidden-grad
detach`` conditions every term of Eq. (3.4) on a fixed previous step instead (an ablation). Each step's output
projection, loss and next-step tokens come from one chunked pass that keeps no (N, V) logits
(``modules/projected_cross_entropy.py``); the cross-attention keys/values and positional-attention weights of a
decoder are computed once per batch and shared by its passes. The loss spec is reduced by
``criterions/refinement_nat_loss.py``.

Decoding hooks for ``generators/refinement.py``: ``encode``, ``reorder_encoder_out``,
``source_content_lengths``, ``predict_target_lengths``, ``initialize_refinement``, ``refine``.
"""
import math
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.utils.checkpoint
import torch.nn.functional as F
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.transformer import Embedding, TransformerEncoder, TransformerModel
from fairseq.models.transformer import base_architecture as transformer_base_architecture

from ..generators.refinement import RefinementState
from ..hub import HubLoadable
from ..modules.length_predictor import LengthOffsetPredictor
from ..modules.nat_decoder import CONNECTIONS, DecoderContext, NATDecoderStack
from ..modules.sinusoidal_positions import SinusoidalPositions
from ..modules.projected_cross_entropy import projected_cross_entropy
from .dictionary_check import check_dictionary_sizes


def copy_source_positions(src_content_lengths: torch.Tensor, tgt_mask: torch.Tensor) -> torch.Tensor:
    """Index of the source token copied to each target position for decoder 1.

    The thesis maps target position t (1-based) to source position t' = (T'/T) t. We evaluate the map at token
    centres, t' = floor((t + 1/2) T'/T) with 0-based t, so that it is monotone, covers the source uniformly and
    never leaves [0, T'-1]. Example: T' = 2, T = 4 -> [0, 0, 1, 1]; T' = 4, T = 2 -> [1, 3]; T' = T -> identity.

    Args:
        src_content_lengths: (B,) number of real source tokens T' (no pad/EOS), >= 0.
        tgt_mask: (B, T) True at real target positions (the first T_b positions of each row).
    Returns:
        (B, T) long tensor of source content indices (0 at padded target positions).
    """
    tgt_lengths = tgt_mask.sum(1).clamp(min=1).unsqueeze(1).float()
    src_len = src_content_lengths.clamp(min=1).unsqueeze(1).float()
    t = torch.arange(tgt_mask.size(1), device=tgt_mask.device).unsqueeze(0).float()
    idx = torch.floor((t + 0.5) * src_len / tgt_lengths).long()
    idx = torch.minimum(idx, src_len.long() - 1)
    return idx.masked_fill(~tgt_mask, 0)


@register_model("refinement_nat")
class RefinementNATModel(HubLoadable, BaseFairseqModel):  # HubLoadable: fairseq-style from_pretrained
    def __init__(self, args, src_dict, tgt_dict, encoder, embed_tgt):
        super().__init__()
        self.args = args
        self.src_dict, self.tgt_dict = src_dict, tgt_dict
        self.pad, self.eos, self.bos = tgt_dict.pad(), tgt_dict.eos(), tgt_dict.bos()
        self.src_pad, self.src_eos = src_dict.pad(), src_dict.eos()
        self.encoder = encoder
        self.embed_tgt = embed_tgt
        dim = args.decoder_embed_dim
        self.embed_scale = 1.0 if args.no_scale_embedding else math.sqrt(dim)
        self.dropout = args.dropout
        self.positions = SinusoidalPositions(dim)

        def stack():
            return NATDecoderStack(
                args.decoder_layers, dim, args.decoder_ffn_embed_dim, args.decoder_attention_heads,
                args.dropout, args.attention_dropout, not args.no_positional_attention, args.decoder_connections,
                args.highway_gate_bias,
            )

        self.decoder_initial = stack()
        self.decoder_refine = stack()
        self.length_predictor = LengthOffsetPredictor(args.encoder_embed_dim, args.max_length_offset)
        # pad / bos / eos are never predicted inside a target sequence: a -inf output bias
        bias = torch.zeros(len(tgt_dict))
        bias[[self.pad, self.eos, self.bos]] = float("-inf")
        self.register_buffer("output_bias", bias, persistent=False)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def add_args(parser):
        TransformerModel.add_args(parser)
        parser.add_argument("--decoder-connections", choices=CONNECTIONS,
                            help="how each decoder sublayer joins the residual stream: 'highway-ffn' = residual "
                                 "around the attention sublayers and highway around the feed-forward one (the "
                                 "reference code's --ffw_block highway; default), 'highway' = highway everywhere "
                                 "(models of 0.2; ablation), 'residual' = residual everywhere (ablation)")
        parser.add_argument("--decoder-residual", action="store_const", const=True, default=None,
                            help="deprecated: use --decoder-connections residual")
        parser.add_argument("--refine-input", choices=["both", "embedding", "hidden"],
                            help="decoder-2 input: embedding of the previous output plus its final hidden states "
                                 "(both, the thesis's choice and the default), or only one of the two (ablation)")
        parser.add_argument("--highway-gate-bias", type=float, metavar="B",
                            help="initial bias of the highway transform gates (default 0; a negative value makes "
                                 "each highway sublayer start by carrying its input, see modules/highway.py)")
        parser.add_argument("--no-positional-attention", action="store_true",
                            help="remove the positional-attention sublayer from the decoders (ablation)")
        parser.add_argument("--refine-hidden-grad", choices=["flow", "detach"],
                            help="how the previous step's hidden states enter decoder 2 during training: 'flow' "
                                 "lets the gradient of step l reach steps < l (the reference code, default), "
                                 "'detach' stops it (each term of Eq. 3.4 conditioned on a fixed input; ablation)")
        parser.add_argument("--separate-encoder-embeddings", action="store_true",
                            help="give the encoder its own input embedding; the decoders' input embedding stays "
                                 "tied to the output projection (the reference code's default; here an option)")
        parser.add_argument("--cross-attention-layers", choices=["last", "matching"],
                            help="encoder states each decoder layer attends to: 'last' = the encoder output "
                                 "(default), 'matching' = decoder layer l attends to encoder layer l (the "
                                 "reference code; with unequal depths, layer ceil(l * enc/dec))")
        parser.add_argument("--max-length-offset", type=int, metavar="N",
                            help="length predictor classifies target-source length in [-N, N] (reference: 20)")

    @classmethod
    def build_model(cls, args, task):
        refinement_nat_base(args)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        if args.encoder_embed_dim != args.decoder_embed_dim:
            raise ValueError(
                "refinement_nat copies source embeddings into decoder 1, so --encoder-embed-dim "
                f"({args.encoder_embed_dim}) must equal --decoder-embed-dim ({args.decoder_embed_dim})"
            )
        embed_src = Embedding(len(src_dict), args.encoder_embed_dim, src_dict.pad())
        if src_dict == tgt_dict and not args.separate_encoder_embeddings:
            embed_tgt = embed_src  # joined dictionary: one matrix for encoder, decoders and output
        elif getattr(args, "share_all_embeddings", False):
            raise ValueError(
                "--share-all-embeddings requires a joined dictionary (binarize with fairseq-preprocess "
                "--joined-dictionary) and no --separate-encoder-embeddings"
            )
        else:
            embed_tgt = Embedding(len(tgt_dict), args.decoder_embed_dim, tgt_dict.pad())
        encoder = TransformerEncoder(args, src_dict, embed_src)
        return cls(args, src_dict, tgt_dict, encoder, embed_tgt)

    def max_positions(self):
        return (self.args.max_source_positions, self.args.max_target_positions)

    def max_decoder_positions(self):
        return self.args.max_target_positions

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        check_dictionary_sizes(state_dict, {"encoder.embed_tokens.weight": len(self.src_dict),
                                            "embed_tgt.weight": len(self.tgt_dict)})
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    # ------------------------------------------------------------------ building blocks
    def encode(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor) -> Dict:
        return self.encoder(src_tokens, src_lengths=src_lengths, return_all_hiddens=True)

    def reorder_encoder_out(self, encoder_out: Dict, new_order: torch.Tensor) -> Dict:
        """A new encoder-output dict with rows ``new_order``.

        fairseq's own version edits the state list in place, which would corrupt the full-batch encoder output
        the generator keeps. The per-layer ``encoder_states`` are read by the length predictor (before any
        reordering) and, with ``--cross-attention-layers matching``, by the decoders; otherwise they are dropped
        instead of copied.
        """
        time_major = ("encoder_out", "encoder_states")  # (T, B, C) tensors
        keep_states = self.args.cross_attention_layers == "matching"
        return {
            key: [] if key == "encoder_states" and not keep_states else
            [t if t is None else t.index_select(1 if key in time_major else 0, new_order) for t in value]
            for key, value in encoder_out.items()
        }

    def _encoder_memories(self, encoder_out: Dict) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """One (B, S, C) memory per decoder layer (``--cross-attention-layers``) and the (B, S) source pad mask."""
        masks = encoder_out["encoder_padding_mask"]
        mask = masks[0] if len(masks) > 0 else None
        n = self.args.decoder_layers
        if self.args.cross_attention_layers == "matching":
            states = encoder_out["encoder_states"]  # embedding output, then one entry per encoder layer
            n_enc = len(states) - 1
            if n_enc < 1:
                raise ValueError("--cross-attention-layers matching needs the per-layer encoder states "
                                 "(encode with return_all_hiddens=True)")
            memories = [states[math.ceil((layer + 1) * n_enc / n)].transpose(0, 1) for layer in range(n)]
        else:
            memories = [encoder_out["encoder_out"][0].transpose(0, 1)] * n
        return memories, mask

    def decoder_context(self, stack: NATDecoderStack, encoder_out: Dict, tgt_mask: torch.Tensor) -> DecoderContext:
        """What every pass of ``stack`` over this batch shares (cross-attention keys/values, positional weights)."""
        memories, mem_mask = self._encoder_memories(encoder_out)
        pos = self.positions(tgt_mask.size(1), memories[0].dtype)
        return stack.context(pos, ~tgt_mask, memories, mem_mask)

    def _source_content_mask(self, src_tokens: torch.Tensor) -> torch.Tensor:
        return src_tokens.ne(self.src_pad) & src_tokens.ne(self.src_eos)

    def source_content_lengths(self, src_tokens: torch.Tensor) -> torch.Tensor:
        return self._source_content_mask(src_tokens).sum(1)

    def length_logits(self, encoder_out: Dict, src_tokens: torch.Tensor) -> torch.Tensor:
        return self.length_predictor(encoder_out["encoder_states"], src_tokens.eq(self.src_pad))

    def predict_target_lengths(self, encoder_out: Dict, src_tokens: torch.Tensor, k: int):
        logits = self.length_logits(encoder_out, src_tokens)
        return self.length_predictor.topk_lengths(
            logits, self.source_content_lengths(src_tokens), k, self.args.max_target_positions
        )

    def _with_positions(self, x: torch.Tensor) -> torch.Tensor:
        pos = self.positions(x.size(1), x.dtype)
        return F.dropout(x + pos.unsqueeze(0), self.dropout, self.training)

    def _output(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.embed_tgt.weight, self.output_bias.to(hidden.dtype))

    def initial_hidden(self, context: DecoderContext, src_tokens: torch.Tensor, tgt_mask: torch.Tensor,
                       glanced: Optional[torch.Tensor] = None, target: Optional[torch.Tensor] = None):
        """Decoder 1 on the copied source embeddings. tgt_mask (B, T) True at real target positions -> (B, T, C).
        Glancing (training only): at positions ``glanced`` (B, T) the input is the embedding of ``target``."""
        content = self._source_content_mask(src_tokens)
        # content positions first, in their original order (works for left- and right-padded sources)
        order = torch.sort((~content).int(), dim=1, stable=True).indices
        src_idx = copy_source_positions(content.sum(1), tgt_mask)
        copied = src_tokens.gather(1, order.gather(1, src_idx))
        x = self.embed_scale * self.encoder.embed_tokens(copied)
        if glanced is not None:
            x = torch.where(glanced.unsqueeze(2), self.embed_scale * self.embed_tgt(target), x)
        return self._run_stack(self.decoder_initial, self._with_positions(x), context)

    @staticmethod
    def glance_positions(predicted: torch.Tensor, target: torch.Tensor, tgt_mask: torch.Tensor,
                         ratio: float) -> torch.Tensor:
        """Glancing sampling (Qian et al., 2021): per sentence, round(ratio x number of wrong predictions) real
        target positions drawn uniformly without replacement. predicted, target, tgt_mask: (B, T). -> (B, T) bool.

        Example: 4 real positions of which 3 are wrong, ratio 0.5 -> 2 positions revealed, wherever they are."""
        wrong = (predicted.ne(target) & tgt_mask).sum(1)
        count = torch.round(ratio * wrong.float()).long()  # (B,)
        keys = torch.rand(target.shape, device=target.device).masked_fill(~tgt_mask, 2.0)
        rank = keys.argsort(dim=1).argsort(dim=1)  # rank of each position among its row's random keys
        return rank < count.unsqueeze(1)

    def _refine_input(self, prev_tokens: torch.Tensor, prev_hidden: torch.Tensor) -> torch.Tensor:
        """Decoder-2 input from the previous step (``--refine-input``; reference code ``--next_dec_input``)."""
        mode = self.args.refine_input
        if mode == "hidden":
            return prev_hidden
        x = self.embed_scale * self.embed_tgt(prev_tokens)
        return x + prev_hidden if mode == "both" else x

    @torch.no_grad()
    def copy_initial_decoder_to_refiner(self) -> None:
        """Decoder 2 takes decoder 1's weights (``--refiner-init decoder1``, at the curriculum switch)."""
        refiner = dict(self.decoder_refine.named_parameters())
        for name, p in self.decoder_initial.named_parameters():
            refiner[name].copy_(p)

    def refine_hidden(self, context: DecoderContext, prev_tokens: torch.Tensor, prev_hidden: torch.Tensor):
        """Decoder 2: input = embedding of the previous output + previous final hidden states. -> (B, T, C)."""
        return self._run_stack(self.decoder_refine, self._with_positions(self._refine_input(prev_tokens, prev_hidden)),
                               context)

    def _run_stack(self, stack: NATDecoderStack, x: torch.Tensor, context: DecoderContext) -> torch.Tensor:
        """One decoder pass. With fairseq's ``--checkpoint-activations`` (training only) the pass keeps only its
        input and output for the backward pass and recomputes its inside there: an update at itrain 4 keeps the
        activations of one decoder pass at a time instead of four, for one more forward of each pass (measured
        in docs/refinement_nat.md, "the cost of one training update"). Dropout masks are the same in the
        recomputation (the RNG state is restored), so losses and gradients equal the plain pass's."""
        if self.training and getattr(self.args, "checkpoint_activations", False) and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(stack, x, context, use_reentrant=False)
        return stack(x, context)

    # ------------------------------------------------------------------ training (Eq. 3.4)
    def forward(
        self,
        src_tokens: torch.Tensor,
        src_lengths: torch.Tensor,
        prev_output_tokens: Optional[torch.Tensor] = None,
        tgt_tokens: Optional[torch.Tensor] = None,
        train_steps: int = 4,
        dae_prob: float = 0.5,
        stochastic: bool = False,
        corrupt: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None,
        lvm_input: str = "previous",
        dae_choice: str = "batch",
        label_smoothing: float = 0.0,
        predict_last: bool = False,
        glance_ratio: float = 0.0,
        **unused,
    ) -> Dict:
        """Runs the ``train_steps`` conditionals of Eq. (3.4) and returns the loss spec.

        tgt_tokens: (B, T) fairseq targets (content + EOS, right-padded). ``corrupt(target, step)`` draws the DAE
        input of refinement step ``step`` (1-based). ``dae_choice``: one DAE/LVM coin per step for the whole batch
        ("batch", the reference code) or per sentence ("sentence", fairseq's iterative NAT).

        Returns a dict with ``steps``: one dict per step with ``loss`` (N,) training loss of each real target token
        (label-smoothed when ``label_smoothing`` > 0), ``nll`` (N,) its NLL (no gradient), ``mask`` (B, T) real
        target positions (N = mask.sum()), ``tokens`` (B, T) the step's predictions (argmax or sample; None on
        the last step unless ``predict_last``), ``input`` "copy" | "lvm" | "dae" | "mixed" and ``dae_rows``
        (number of sentences fed a corrupted reference); and ``length``: {logits (B, 2M+1), target (B,)}.
        The vocabulary logits themselves are never kept (``modules/projected_cross_entropy.py``).

        ``glance_ratio`` > 0 (an option beyond the paper, ``--glancing-ratio``): decoder 1 first runs without
        gradient; ``glance_positions`` reveals reference tokens as its input in a second pass, whose loss covers the
        other positions only (step 0's ``mask``; ``input`` "glance"). The refinement chain starts from the first,
        unglanced pass, the output decoding sees, so no gradient reaches decoder 1 from the later steps.
        """
        if tgt_tokens is None:
            raise ValueError("refinement_nat.forward needs tgt_tokens (training targets)")
        if train_steps < 1:
            raise ValueError(f"train_steps (itrain) must be >= 1, got {train_steps}")
        if lvm_input not in ("chain", "previous"):
            raise ValueError(f"lvm_input must be 'chain' or 'previous', got {lvm_input!r}")
        if dae_choice not in ("batch", "sentence"):
            raise ValueError(f"dae_choice must be 'batch' or 'sentence', got {dae_choice!r}")
        target = tgt_tokens.masked_fill(tgt_tokens.eq(self.eos), self.pad)
        tgt_mask = target.ne(self.pad)
        encoder_out = self.encode(src_tokens, src_lengths)
        length_logits = self.length_logits(encoder_out, src_tokens)
        length_target = self.length_predictor.offset_targets(tgt_mask.sum(1), self.source_content_lengths(src_tokens))
        token_mode = "sample" if stochastic else "argmax"

        def score(hidden, kind, dae_rows, last, mask=tgt_mask):
            mode = token_mode if (not last or predict_last) else None
            loss, nll, predicted = projected_cross_entropy(
                hidden[mask], self.embed_tgt.weight, self.output_bias, target[mask], label_smoothing, mode
            )
            tokens = None if predicted is None else target.masked_scatter(mask, predicted)
            return {"loss": loss, "nll": nll, "mask": mask, "tokens": tokens, "input": kind, "dae_rows": dae_rows}

        initial_context = self.decoder_context(self.decoder_initial, encoder_out, tgt_mask)
        if glance_ratio > 0:
            with torch.no_grad():
                plain = self.initial_hidden(initial_context, src_tokens, tgt_mask)
                argmax = self._predict(plain, tgt_mask, False)  # the wrong count is the argmax's (GLAT)
                plain_tokens = self._predict(plain, tgt_mask, True) if stochastic else argmax
                glanced = self.glance_positions(argmax, target, tgt_mask, glance_ratio)
            hidden = self.initial_hidden(initial_context, src_tokens, tgt_mask, glanced, target)
            steps = [score(hidden, "glance", 0, True, tgt_mask & ~glanced)]
            chain_tokens, chain_hidden = plain_tokens, plain
        else:
            hidden = self.initial_hidden(initial_context, src_tokens, tgt_mask)
            steps = [score(hidden, "copy", 0, train_steps == 1)]
            # the model's own chain Y^0, Y^1, ...: the LVM term of step l is conditioned on Y^{l-1}
            chain_tokens, chain_hidden = steps[0]["tokens"], self._carry_hidden(hidden)
        context = self.decoder_context(self.decoder_refine, encoder_out, tgt_mask) if train_steps > 1 else None
        for step in range(1, train_steps):
            last = step == train_steps - 1
            dae = self._dae_rows(target.size(0), dae_prob, corrupt, dae_choice, target.device)
            n_dae = int(dae.sum())
            inputs = chain_tokens
            if n_dae:
                noisy = corrupt(target, step).masked_fill(~tgt_mask, self.pad)
                inputs = noisy if n_dae == dae.numel() else torch.where(dae.unsqueeze(1), noisy, chain_tokens)
            kind = "lvm" if n_dae == 0 else ("dae" if n_dae == dae.numel() else "mixed")
            hidden = self.refine_hidden(context, inputs, chain_hidden)
            steps.append(score(hidden, kind, n_dae, last))
            if last:
                break
            new_tokens, new_hidden = steps[-1]["tokens"], self._carry_hidden(hidden)
            if n_dae and lvm_input == "chain":  # DAE rows: advance the model's own chain past Y^{l-1}, no gradient
                with torch.no_grad():
                    own_hidden = self.refine_hidden(context, chain_tokens, chain_hidden)
                    own_tokens = self._predict(own_hidden, tgt_mask, stochastic)
                rows = dae.unsqueeze(1)
                new_tokens = torch.where(rows, own_tokens, new_tokens)
                new_hidden = torch.where(rows.unsqueeze(2), own_hidden, new_hidden)
            chain_tokens, chain_hidden = new_tokens, new_hidden
        return {"steps": steps, "length": {"logits": length_logits, "target": length_target}}

    @staticmethod
    def _dae_rows(bsz: int, dae_prob: float, corrupt, dae_choice: str, device) -> torch.Tensor:
        """(B,) bool: the sentences whose refinement step is a DAE term (one coin per batch or per sentence)."""
        if corrupt is None or dae_prob <= 0:
            return torch.zeros(bsz, dtype=torch.bool, device=device)
        if dae_choice == "batch":
            return torch.full((bsz,), float(torch.rand(())) < dae_prob, dtype=torch.bool, device=device)
        return torch.rand(bsz, device=device) < dae_prob

    def _carry_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The hidden states (B, T, C) handed to the next decoder-2 step (``--refine-hidden-grad``)."""
        return hidden if self.args.refine_hidden_grad == "flow" else hidden.detach()

    def _predict(self, hidden: torch.Tensor, tgt_mask: torch.Tensor, stochastic: bool) -> torch.Tensor:
        """Tokens (B, T) from hidden states: argmax, or a sample (stochastic approximation); pads off tgt_mask."""
        logits = self._output(hidden).float()
        if stochastic:
            probs = F.softmax(logits, dim=-1)
            tokens = torch.multinomial(probs.view(-1, probs.size(-1)), 1).view(logits.shape[:-1])
        else:
            tokens = logits.argmax(-1)
        return tokens.masked_fill(~tgt_mask, self.pad)

    # ------------------------------------------------------------------ decoding hooks
    def _state(self, hidden: torch.Tensor, tgt_mask: torch.Tensor, context: DecoderContext) -> RefinementState:
        # log-softmax then max: one pass fewer over the (B, T, V) logits than max + logsumexp (35% less time for
        # this step at batch 1 on the Bible model's 6k vocabulary), for a second (B, T, V) tensor while it runs
        # (about 60 MB at 64 sentences x 40 tokens)
        scores, tokens = self._output(hidden).float().log_softmax(-1).max(-1)
        pad_mask = ~tgt_mask
        return RefinementState(
            tokens=tokens.masked_fill(pad_mask, self.pad),
            scores=scores.masked_fill(pad_mask, 0.0),
            padding_mask=pad_mask,
            hidden=hidden,
            context=context,
        )

    def initialize_refinement(self, encoder_out: Dict, src_tokens: torch.Tensor, tgt_lengths: torch.Tensor):
        """Decoder-1 pass for rows of target lengths ``tgt_lengths`` (B,). The state carries decoder 2's context
        (cross-attention keys/values, positional weights), computed here once for all refinement passes."""
        max_len = int(tgt_lengths.max())
        tgt_mask = torch.arange(max_len, device=src_tokens.device).unsqueeze(0) < tgt_lengths.unsqueeze(1)
        hidden = self.initial_hidden(self.decoder_context(self.decoder_initial, encoder_out, tgt_mask), src_tokens,
                                     tgt_mask)
        return self._state(hidden, tgt_mask, self.decoder_context(self.decoder_refine, encoder_out, tgt_mask))

    def refine(self, encoder_out: Dict, state: RefinementState) -> RefinementState:
        tgt_mask = ~state.padding_mask
        context = state.context
        if context is None:
            context = self.decoder_context(self.decoder_refine, encoder_out, tgt_mask)
        return self._state(self.refine_hidden(context, state.tokens, state.hidden), tgt_mask, context)


# ---------------------------------------------------------------------- architectures
def _legacy_connections(args) -> str:
    """``--decoder-connections`` of a run that did not set it. Checkpoints of 0.2 store ``decoder_residual``
    (False = highway on every sublayer, their only highway form); ``--decoder-residual`` is its deprecated alias.
    A new run without either gets the reference code's highway-ffn."""
    legacy = getattr(args, "decoder_residual", None)
    if legacy is None:
        return "highway-ffn"
    return "residual" if legacy else "highway"


@register_model_architecture("refinement_nat", "refinement_nat")
def refinement_nat_base(args):
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 512)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 512)
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 8)
    args.decoder_embed_dim = getattr(args, "decoder_embed_dim", args.encoder_embed_dim)
    args.decoder_ffn_embed_dim = getattr(args, "decoder_ffn_embed_dim", args.encoder_ffn_embed_dim)
    args.decoder_layers = getattr(args, "decoder_layers", args.encoder_layers)
    args.decoder_attention_heads = getattr(args, "decoder_attention_heads", args.encoder_attention_heads)
    args.dropout = getattr(args, "dropout", 0.1)
    args.attention_dropout = getattr(args, "attention_dropout", 0.0)
    args.decoder_connections = getattr(args, "decoder_connections", None) or _legacy_connections(args)
    args.no_positional_attention = getattr(args, "no_positional_attention", False)
    args.refine_input = getattr(args, "refine_input", None) or "both"
    args.highway_gate_bias = getattr(args, "highway_gate_bias", None) or 0.0
    args.refine_hidden_grad = getattr(args, "refine_hidden_grad", None) or "flow"
    args.separate_encoder_embeddings = getattr(args, "separate_encoder_embeddings", False)
    args.cross_attention_layers = getattr(args, "cross_attention_layers", None) or "last"
    args.max_length_offset = getattr(args, "max_length_offset", 20) or 20
    args.max_source_positions = getattr(args, "max_source_positions", 1024)
    args.max_target_positions = getattr(args, "max_target_positions", 1024)
    transformer_base_architecture(args)


@register_model_architecture("refinement_nat", "refinement_nat_tiny")
def refinement_nat_tiny(args):
    """CPU-sized (d 128, ffn 512, 2 encoder layers, 2 layers per decoder, 4 heads): trains in minutes on 2 cores."""
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 128)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 512)
    args.encoder_layers = getattr(args, "encoder_layers", 2)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    args.decoder_layers = getattr(args, "decoder_layers", 2)
    refinement_nat_base(args)


@register_model_architecture("refinement_nat", "refinement_nat_iwslt16")
def refinement_nat_iwslt16(args):
    """Thesis §3.6, IWSLT'16 small model: d_model 278, d_hidden 507, 5 layers, 2 heads, dropout 0.1."""
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 278)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 507)
    args.encoder_layers = getattr(args, "encoder_layers", 5)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 2)
    refinement_nat_base(args)


@register_model_architecture("refinement_nat", "refinement_nat_wmt")
def refinement_nat_wmt(args):
    """Thesis §3.6, WMT base model: d_model 512, d_hidden 512, 6 layers, 8 heads, dropout 0.1."""
    refinement_nat_base(args)
