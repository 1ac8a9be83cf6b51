"""Masked translation model: the translation variant of BERT (Lample & Conneau 2019), thesis chapter 4.

One Transformer reads the concatenation [source ; target]. Each token's input is
token embedding + position embedding (positions restart at 0 in each segment) + language embedding, followed by
LayerNorm and dropout (XLM). The output projection is tied to the token embedding.

Training (``forward`` + ``criterions/masked_translation_loss.py``): for each sentence pair choose the side to
predict (target, or with ``--translation-directions both`` either side with probability 1/2, so that one model
translates in both directions), draw the number of masked tokens n uniformly from {1, …, length of that side}
("uniformly mask out 0–100%", Ghazvininejad et al. 2019), replace n random tokens of that side by the dedicated
<mask> symbol and predict them.

Length (component (c) of the generalized model): a head predicts (length of the side to generate − length of the
given side) as a class in [−M, M] from the mean-pooled output of a pass over the given side alone plus the
language embedding of the side to generate (the joint pass cannot be used: its number of masks reveals the
length). The pooled states are detached as in chapter 3, so the length loss does not shape the masked LM. At test
time the generator can instead take the K most frequent target lengths seen with the source length in the
training data (``--length-from train-stats``, Table 4.1).

Both segments use the joined dictionary plus a dedicated ``<mask>`` symbol that this model appends (it is never
<unk> and never predicted). The languages are stored in the checkpoint (``--mt-languages src,tgt``, filled from
the training task); swapping ``-s/-t`` at generation time translates in the other direction.

Decoding hooks (``generators/generalized.py``)::

    iterref_generator = "generalized"               # which generator translation_refine builds
    mask_index, pad, eos                            # symbols
    source_content_lengths(src_tokens) -> (B,)
    predict_target_lengths(src_tokens, k) -> lengths (B, k), log-probs (B, k)
    canvas_log_probs(src_tokens, canvas, where=None) -> log-probs (N, L, V) or (M, V) at ``where``, hidden (N, L, C)
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture

from ..hub import HubLoadable
from .dictionary_check import check_dictionary_sizes

MASK_SYMBOL = "<mask>"


def add_mask_symbol(dictionary) -> int:
    """Append the dedicated mask symbol (idempotent); returns its index."""
    return dictionary.add_symbol(MASK_SYMBOL)


def segment_positions(mask: torch.Tensor) -> torch.Tensor:
    """0-based positions counted over real tokens only (works for left and right padding). (B, T) bool -> (B, T)."""
    return (mask.long().cumsum(1) - 1).clamp(min=0)


@register_model("masked_translation")
class MaskedTranslationModel(HubLoadable, BaseFairseqModel):  # HubLoadable: fairseq-style from_pretrained
    iterref_generator = "generalized"

    def __init__(self, args, dictionary, src_lang_id: int, tgt_lang_id: int):
        super().__init__()
        self.args = args
        self.dictionary = dictionary
        self.pad, self.eos, self.bos, self.unk = dictionary.pad(), dictionary.eos(), dictionary.bos(), dictionary.unk()
        self.mask_index = dictionary.index(MASK_SYMBOL)
        self.src_lang_id, self.tgt_lang_id = src_lang_id, tgt_lang_id
        dim = args.encoder_embed_dim
        self.embed_tokens = nn.Embedding(len(dictionary), dim, padding_idx=self.pad)
        self.embed_positions = nn.Embedding(args.max_segment_positions, dim)
        self.embed_langs = nn.Embedding(2, dim)
        for emb in (self.embed_tokens, self.embed_positions, self.embed_langs):
            nn.init.normal_(emb.weight, mean=0.0, std=dim ** -0.5)
        nn.init.constant_(self.embed_tokens.weight[self.pad], 0.0)
        self.embed_norm = nn.LayerNorm(dim)
        layer = nn.TransformerEncoderLayer(
            dim, args.encoder_attention_heads, args.encoder_ffn_embed_dim, args.dropout, activation="gelu",
            batch_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, args.encoder_layers, enable_nested_tensor=False)
        self.out_bias = nn.Parameter(torch.zeros(len(dictionary)))
        self.max_offset = args.max_length_offset
        self.length_head = nn.Linear(dim, 2 * self.max_offset + 1)
        self.dropout = nn.Dropout(args.dropout)
        never = torch.zeros(len(dictionary), dtype=torch.bool)
        never[[self.pad, self.eos, self.bos, self.mask_index]] = True
        self.register_buffer("never_predicted", never, persistent=False)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def add_args(parser):
        parser.add_argument("--encoder-embed-dim", type=int, metavar="N", help="hidden size")
        parser.add_argument("--encoder-ffn-embed-dim", type=int, metavar="N", help="feed-forward size")
        parser.add_argument("--encoder-layers", type=int, metavar="N", help="Transformer layers")
        parser.add_argument("--encoder-attention-heads", type=int, metavar="N", help="attention heads")
        parser.add_argument("--dropout", type=float, metavar="D", help="dropout")
        parser.add_argument("--max-segment-positions", type=int, metavar="N",
                            help="maximum number of tokens in the source or the target segment")
        parser.add_argument("--max-length-offset", type=int, metavar="N",
                            help="length head classifies (target - source length) in [-N, N]")
        parser.add_argument("--mt-languages", type=str, metavar="SRC,TGT",
                            help="language of segment ids 0 and 1; filled from the training task and stored in the "
                                 "checkpoint")

    @classmethod
    def build_model(cls, args, task):
        masked_translation_base(args)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        if src_dict.symbols != tgt_dict.symbols:
            raise ValueError(
                "masked_translation reads source and target with one embedding table: binarize the data with "
                "fairseq-preprocess --joined-dictionary"
            )
        for d in {id(src_dict): src_dict, id(tgt_dict): tgt_dict}.values():
            add_mask_symbol(d)
        src_lang = getattr(task.cfg, "source_lang", None) or "src"
        tgt_lang = getattr(task.cfg, "target_lang", None) or "tgt"
        if not getattr(args, "mt_languages", None):
            args.mt_languages = f"{src_lang},{tgt_lang}"
        langs = args.mt_languages.split(",")
        if len(langs) != 2:
            raise ValueError(f"--mt-languages must be two comma-separated language codes, got {args.mt_languages!r}")
        missing = [lang for lang in (src_lang, tgt_lang) if lang not in langs]
        if missing or src_lang == tgt_lang:
            raise ValueError(
                f"this masked_translation model knows the languages {langs}; the task asks for "
                f"{src_lang}->{tgt_lang}. Use -s/-t with the model's languages."
            )
        return cls(args, src_dict, langs.index(src_lang), langs.index(tgt_lang))

    def max_positions(self):
        return (self.args.max_segment_positions + 1, self.args.max_segment_positions + 1)

    def max_decoder_positions(self):
        return self.args.max_segment_positions

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        check_dictionary_sizes(state_dict, {"embed_tokens.weight": len(self.dictionary)},
                               f" (including {MASK_SYMBOL})")
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    # ------------------------------------------------------------------ the Transformer over segments
    def content(self, tokens: torch.Tensor) -> torch.Tensor:
        """fairseq tokens (with EOS/BOS) -> segment tokens with EOS/BOS turned into pad. (B, T) -> (B, T)."""
        return tokens.masked_fill(tokens.eq(self.eos) | tokens.eq(self.bos), self.pad)

    def _embed(self, tokens: torch.Tensor, lang: int) -> torch.Tensor:
        real = tokens.ne(self.pad)
        pos = segment_positions(real).clamp(max=self.args.max_segment_positions - 1)
        x = self.embed_tokens(tokens) + self.embed_positions(pos) + self.embed_langs.weight[lang]
        return x

    def encode_segments(self, first: torch.Tensor, first_lang: int, second: Optional[torch.Tensor] = None,
                        second_lang: int = 1) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Run the Transformer over [first ; second] (segment tokens, pad = absent).

        Shapes: first (B, S), second (B, T) -> hidden of first (B, S, C), hidden of second (B, T, C) or None.
        """
        parts = [self._embed(first, first_lang)]
        pads = [first.eq(self.pad)]
        if second is not None:
            parts.append(self._embed(second, second_lang))
            pads.append(second.eq(self.pad))
        x = self.dropout(self.embed_norm(torch.cat(parts, 1)))
        pad_mask = torch.cat(pads, 1)
        # a row whose every token is padding would make attention NaN: let it attend to its first slot
        empty = pad_mask.all(1)
        if bool(empty.any()):
            pad_mask = pad_mask.clone()
            pad_mask[empty, 0] = False
        h = self.layers(x, src_key_padding_mask=pad_mask)
        if second is None:
            return h, None
        return h[:, : first.size(1)], h[:, first.size(1):]

    def output_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # -inf in the bias (V values) instead of a masked_fill over the whole (N, L, V) output
        bias = self.out_bias.masked_fill(self.never_predicted, float("-inf"))
        return F.linear(hidden, self.embed_tokens.weight, bias)

    def length_logits(self, given: torch.Tensor, given_lang: int, wanted_lang) -> torch.Tensor:
        """Logits over (wanted length − given length) ∈ [−M, M]. given (B, S) segment tokens -> (B, 2M+1).

        ``wanted_lang`` is an int or a (B,) tensor of language ids.
        """
        h, _ = self.encode_segments(given, given_lang)
        keep = given.ne(self.pad).unsqueeze(-1).type_as(h)
        pooled = ((h * keep).sum(1) / keep.sum(1).clamp(min=1.0)).detach()
        lang = self.embed_langs(torch.as_tensor(wanted_lang, device=given.device).expand(given.size(0)))
        return self.length_head(pooled + lang)

    # ------------------------------------------------------------------ training
    def _random_mask(self, tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Positions to mask in ``tokens`` (B, T) for the rows ``rows`` (B,) bool: n ~ U{1..len}, random positions."""
        real = tokens.ne(self.pad)
        length = real.sum(1)
        n = (torch.rand(length.shape, device=tokens.device) * length.float()).floor().long() + 1
        n = torch.minimum(n, length)
        keys = torch.rand(tokens.shape, device=tokens.device).masked_fill(~real, 2.0)
        rank = keys.argsort(1).argsort(1)  # rank of each position in a random order of the real positions
        return (rank < n.unsqueeze(1)) & real & rows.unsqueeze(1)

    def forward(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor,
                prev_output_tokens: Optional[torch.Tensor] = None, tgt_tokens: Optional[torch.Tensor] = None,
                directions: str = "both", **unused) -> Dict:
        """Masked-translation training pass; returns the loss spec read by ``masked_translation_loss``.

        Shapes: src_tokens (B, S), tgt_tokens (B, T) fairseq batches. Returns ``tokens``: {logits (M, V), target
        (M,)} at the M masked positions, ``length``: {logits (B, 2M+1), target (B,)}, ``target_side`` (B,) bool.
        """
        if tgt_tokens is None:
            raise ValueError("masked_translation.forward needs tgt_tokens (training targets)")
        if directions not in ("both", "forward"):
            raise ValueError(f"directions must be 'both' or 'forward', got {directions!r}")
        src, tgt = self.content(src_tokens), self.content(tgt_tokens)
        bsz = src.size(0)
        if directions == "both":
            target_side = torch.rand(bsz, device=src.device) < 0.5
        else:
            target_side = torch.ones(bsz, dtype=torch.bool, device=src.device)
        # a side without tokens cannot be predicted: use the other one
        target_side = torch.where(tgt.ne(self.pad).any(1), target_side, torch.zeros_like(target_side))
        target_side = torch.where(src.ne(self.pad).any(1), target_side, torch.ones_like(target_side))
        mask_src = self._random_mask(src, ~target_side)
        mask_tgt = self._random_mask(tgt, target_side)
        h_src, h_tgt = self.encode_segments(src.masked_fill(mask_src, self.mask_index), self.src_lang_id,
                                            tgt.masked_fill(mask_tgt, self.mask_index), self.tgt_lang_id)
        hidden = torch.cat([h_src[mask_src], h_tgt[mask_tgt]], 0)
        target = torch.cat([src[mask_src], tgt[mask_tgt]], 0)

        # length of the predicted side given the other side, per direction
        src_len, tgt_len = src.ne(self.pad).sum(1), tgt.ne(self.pad).sum(1)
        length_logits = torch.empty(bsz, 2 * self.max_offset + 1, device=src.device, dtype=h_src.dtype)
        length_target = torch.empty(bsz, dtype=torch.long, device=src.device)
        for side, given, given_lang, wanted_lang, given_len, wanted_len in (
            (target_side, src, self.src_lang_id, self.tgt_lang_id, src_len, tgt_len),
            (~target_side, tgt, self.tgt_lang_id, self.src_lang_id, tgt_len, src_len),
        ):
            if bool(side.any()):
                length_logits[side] = self.length_logits(given[side], given_lang, wanted_lang).to(h_src.dtype)
                offset = (wanted_len[side] - given_len[side]).clamp(-self.max_offset, self.max_offset)
                length_target[side] = offset + self.max_offset
        return {
            "tokens": {"logits": self.output_logits(hidden), "target": target},
            "length": {"logits": length_logits, "target": length_target},
            "target_side": target_side,
        }

    # ------------------------------------------------------------------ decoding hooks
    def source_content_lengths(self, src_tokens: torch.Tensor) -> torch.Tensor:
        return self.content(src_tokens).ne(self.pad).sum(1)

    def predict_target_lengths(self, src_tokens: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The k most likely target lengths (B, k) in [1, max] (distinct) and their log-probabilities (B, k)."""
        src = self.content(src_tokens)
        logp = F.log_softmax(self.length_logits(src, self.src_lang_id, self.tgt_lang_id).float(), dim=-1)
        offsets = torch.arange(-self.max_offset, self.max_offset + 1, device=src.device)
        candidates = src.ne(self.pad).sum(1, keepdim=True) + offsets  # (B, 2M+1)
        # lengths outside [1, max] are not candidates (clamping them would repeat the same length)
        bad = (candidates < 1) | (candidates > self.args.max_segment_positions)
        scores, idx = logp.masked_fill(bad, float("-inf")).topk(min(k, logp.size(-1)), dim=-1)
        return candidates.gather(1, idx).clamp(1, self.args.max_segment_positions), scores

    def canvas_log_probs(self, src_tokens: torch.Tensor, canvas: torch.Tensor,
                         positions: Optional[torch.Tensor] = None,
                         where: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """One pass over [source ; canvas]. src_tokens (N, S) fairseq tokens, canvas (N, L) target segment with
        <mask> symbols (pad beyond each row's length). Returns log p(y_i = v | canvas, X) (N, L, V) and the output
        vectors (N, L, C); with ``positions`` (N,) only row n's position positions[n]: (N, V) and (N, C); with
        ``where`` (N, L) bool the log-probabilities of the M selected positions only, in row-major order, (M, V),
        and all output vectors (N, L, C). The vocabulary projection and softmax cost as much as the Transformer on
        a tiny model, and a decoder only reads them where the canvas is masked."""
        _, h = self.encode_segments(self.content(src_tokens), self.src_lang_id, canvas, self.tgt_lang_id)
        if positions is not None:
            h = h[torch.arange(h.size(0), device=h.device), positions]
        selected = h if where is None else h[where]
        return F.log_softmax(self.output_logits(selected).float(), dim=-1), h


# ---------------------------------------------------------------------- architectures
@register_model_architecture("masked_translation", "masked_translation")
def masked_translation_base(args):
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 512)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 4 * args.encoder_embed_dim)
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 8)
    args.dropout = getattr(args, "dropout", 0.1)
    args.max_segment_positions = getattr(args, "max_segment_positions", 256) or 256
    args.max_length_offset = getattr(args, "max_length_offset", 20) or 20
    args.mt_languages = getattr(args, "mt_languages", None)
    # fairseq's dataset filters read these
    args.max_source_positions = getattr(args, "max_source_positions", args.max_segment_positions + 1)
    args.max_target_positions = getattr(args, "max_target_positions", args.max_segment_positions + 1)


def _sized(args, dim: int, ffn: int, layers: int, heads: int, **more) -> None:
    """Fills the size options the command line left unset (then masked_translation_base fills the rest)."""
    defaults = dict(encoder_embed_dim=dim, encoder_ffn_embed_dim=ffn, encoder_layers=layers,
                    encoder_attention_heads=heads, **more)
    for name, value in defaults.items():
        setattr(args, name, getattr(args, name, value))
    masked_translation_base(args)


@register_model_architecture("masked_translation", "masked_translation_tiny")
def masked_translation_tiny(args):
    """CPU-sized: d 128, ffn 512, 3 layers, 4 heads."""
    _sized(args, dim=128, ffn=512, layers=3, heads=4)


@register_model_architecture("masked_translation", "masked_translation_wmt")
def masked_translation_wmt(args):
    """Thesis §4.4 (XLM size): 1024 hidden, 6 layers, 8 heads, GELU, dropout 0.1 (ffn 4096 as in XLM)."""
    _sized(args, dim=1024, ffn=4096, layers=6, heads=8, dropout=0.1)
