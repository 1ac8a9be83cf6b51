"""Masked translation model and its loss: masking of one side, mask symbol, languages, length head, learning."""
from argparse import Namespace
from types import SimpleNamespace

import pytest
import torch
from fairseq.data import Dictionary

from iterref_fairseq.criterions.masked_translation_loss import MaskedTranslationLoss
from iterref_fairseq.models.masked_translation import MASK_SYMBOL, MaskedTranslationModel


def make_dict(words=8):
    d = Dictionary()
    for i in range(words):
        d.add_symbol(f"w{i}")
    return d


def build(src_lang="de", tgt_lang="en", languages=None, src_dict=None, tgt_dict=None, seed=0):
    d = make_dict()
    task = SimpleNamespace(source_dictionary=src_dict or d, target_dictionary=tgt_dict or d,
                           cfg=SimpleNamespace(source_lang=src_lang, target_lang=tgt_lang))
    args = Namespace(encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_layers=1, encoder_attention_heads=2,
                     dropout=0.0, max_segment_positions=32, max_length_offset=4, mt_languages=languages)
    torch.manual_seed(seed)
    return MaskedTranslationModel.build_model(args, task), task


def batch(model, bsz=6, seed=0):
    """Left-padded sources and right-padded targets with EOS, as fairseq's collater makes them."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = model.dictionary.nspecial, model.mask_index
    src = torch.full((bsz, 7), model.pad)
    tgt = torch.full((bsz, 8), model.pad)
    for b in range(bsz):
        ls, lt = 2 + b % 5, 3 + (b * 3) % 5
        src[b, 7 - ls - 1: 6] = torch.randint(lo, hi, (ls,), generator=g)
        src[b, 6] = model.eos
        tgt[b, :lt] = src[b, 7 - ls - 1: 6].flip(0)[:lt] if lt <= ls else torch.randint(lo, hi, (lt,), generator=g)
        tgt[b, lt] = model.eos
    return src, src.ne(model.pad).sum(1), tgt


def test_dedicated_mask_symbol_is_added_once_and_never_predicted():
    model, task = build()
    d = task.target_dictionary
    assert d.index(MASK_SYMBOL) == model.mask_index != d.unk()
    n = len(d)
    MaskedTranslationModel.build_model(model.args, task)  # building again must not add a second symbol
    assert len(d) == n
    src, lengths, _ = batch(model)
    canvas = torch.full((src.size(0), 5), model.mask_index)
    lp, hidden = model.canvas_log_probs(src, canvas)
    assert lp.shape == (src.size(0), 5, len(d)) and hidden.shape == (src.size(0), 5, 16)
    for sym in (model.mask_index, model.pad, model.eos, model.bos):
        assert torch.isinf(lp[..., sym]).all()
    assert torch.allclose(lp.exp().sum(-1), torch.ones(src.size(0), 5), atol=1e-5)


def test_log_probs_at_selected_positions_equal_the_full_pass():
    model, _ = build()
    model.eval()
    src, _, _ = batch(model)
    canvas = torch.full((src.size(0), 6), model.mask_index)
    canvas[:, ::2] = model.dictionary.nspecial + 1
    where = canvas.eq(model.mask_index)
    full, hidden = model.canvas_log_probs(src, canvas)
    some, hidden_some = model.canvas_log_probs(src, canvas, where=where)
    assert some.shape == (int(where.sum()), full.size(-1))
    assert torch.allclose(some, full[where], atol=1e-6) and torch.allclose(hidden_some, hidden, atol=1e-6)


@pytest.mark.parametrize("directions", ["both", "forward"])
def test_training_masks_between_one_and_all_tokens_of_exactly_one_side(directions):
    model, _ = build()
    model.train()
    src, lengths, tgt = batch(model, bsz=40)
    out = model(src, lengths, tgt_tokens=tgt, directions=directions)
    side = out["target_side"]
    if directions == "forward":
        assert bool(side.all())
    else:
        assert 0 < int(side.sum()) < side.numel()  # both sides occur (40 coin flips)
    assert out["tokens"]["logits"].size(0) == out["tokens"]["target"].numel() >= 40
    target = out["tokens"]["target"]
    assert not bool(target.eq(model.mask_index).any()) and not bool(target.eq(model.eos).any())
    assert out["length"]["logits"].shape == (40, 9)
    # the length target is the offset of the predicted side from the given side
    src_len = model.content(src).ne(model.pad).sum(1)
    tgt_len = model.content(tgt).ne(model.pad).sum(1)
    offset = torch.where(side, tgt_len - src_len, src_len - tgt_len).clamp(-4, 4) + 4
    assert torch.equal(out["length"]["target"], offset)


def test_number_of_masks_is_uniform_between_one_and_length():
    model, _ = build()
    tokens = torch.randint(model.dictionary.nspecial, model.mask_index, (4000, 5))
    masks = model._random_mask(tokens, torch.ones(4000, dtype=torch.bool)).sum(1)
    counts = torch.bincount(masks, minlength=6)[1:].float() / 4000
    assert int(masks.min()) >= 1 and int(masks.max()) <= 5
    assert torch.allclose(counts, torch.full((5,), 0.2), atol=0.03)


def test_languages_are_stored_and_swapping_directions_swaps_language_ids():
    model, _ = build("de", "en")
    assert model.args.mt_languages == "de,en" and (model.src_lang_id, model.tgt_lang_id) == (0, 1)
    reverse, _ = build("en", "de", languages="de,en")
    assert (reverse.src_lang_id, reverse.tgt_lang_id) == (1, 0)
    with pytest.raises(ValueError, match="knows the languages"):
        build("fr", "en", languages="de,en")


def test_separate_dictionaries_are_rejected():
    other = make_dict(9)
    with pytest.raises(ValueError, match="--joined-dictionary"):
        build(src_dict=make_dict(), tgt_dict=other)


def test_predicted_lengths_are_sorted_candidates():
    model, _ = build()
    src, _, _ = batch(model)
    lengths, scores = model.predict_target_lengths(src, 3)
    assert lengths.shape == scores.shape == (src.size(0), 3)
    assert bool((scores[:, :-1] >= scores[:, 1:]).all()) and bool((lengths >= 1).all())
    assert all(len(set(row)) == 3 for row in lengths.tolist())


def test_loss_decreases_when_training_on_a_fixed_batch():
    model, task = build()
    model.train()
    crit = MaskedTranslationLoss(task, "forward", 0.0, 0.1)
    src, lengths, tgt = batch(model, bsz=16)
    sample = {"net_input": {"src_tokens": src, "src_lengths": lengths}, "target": tgt}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(1)
    losses = []
    for _ in range(60):
        loss, sample_size, log = crit(model, sample)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(log["loss"])
    assert sample_size == 1 and log["ntokens"] > 0
    assert sum(losses[-10:]) / 10 < 0.7 * sum(losses[:10]) / 10
