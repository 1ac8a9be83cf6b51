"""Loss of the masked translation model (thesis §4.4): cross-entropy of the masked tokens + length loss.

The model (``models/masked_translation.py``) masks a uniform 0–100% of the tokens of one side of each pair and
predicts them; ``--translation-directions both`` (default) picks the side at random per pair so that one model
translates in both directions, ``forward`` always masks the target (source -> target only).

Reduction: mean NLL over the masked tokens of the batch plus ``--length-loss-factor`` times the mean length NLL;
``sample_size`` is 1 (as in fairseq's NAT losses), so the reported loss is per masked token.
"""
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from .logging_utils import log_means


@dataclass
class MaskedTranslationLossConfig(FairseqDataclass):
    translation_directions: ChoiceEnum(["both", "forward"]) = field(
        default="both",
        metadata={"help": "both: mask either side (one model translates both ways); forward: mask the target only"},
    )
    label_smoothing: float = field(default=0.0, metadata={"help": "label smoothing epsilon"})
    length_loss_factor: float = field(default=0.1, metadata={"help": "weight of the length-prediction loss"})


@register_criterion("masked_translation_loss", dataclass=MaskedTranslationLossConfig)
class MaskedTranslationLoss(FairseqCriterion):
    def __init__(self, task, translation_directions, label_smoothing, length_loss_factor):
        super().__init__(task)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {label_smoothing}")
        self.directions = str(translation_directions)
        self.eps = label_smoothing
        self.length_loss_factor = length_loss_factor

    def forward(self, model, sample, reduce=True):
        out = model(**sample["net_input"], tgt_tokens=sample["target"], directions=self.directions)
        logits, target = out["tokens"]["logits"], out["tokens"]["target"]
        lprobs = F.log_softmax(logits.float(), dim=-1)
        nll = -lprobs.gather(1, target.unsqueeze(1)).squeeze(1)
        if self.eps > 0:
            finite = torch.isfinite(lprobs)
            smooth = -lprobs.masked_fill(~finite, 0.0).sum(-1) / finite.sum(-1)
            token_loss = ((1 - self.eps) * nll + self.eps * smooth).mean()
        else:
            token_loss = nll.mean()
        length = out["length"]
        length_loss = F.cross_entropy(length["logits"].float(), length["target"])
        loss = token_loss + self.length_loss_factor * length_loss
        acc = (lprobs.argmax(-1) == target).float().mean()
        length_acc = (length["logits"].argmax(-1) == length["target"]).float().mean()
        logging_output = {
            "loss": loss.detach().item(), "nll_loss": nll.mean().detach().item(),
            "length_loss": length_loss.detach().item(), "token_acc": acc.item(), "length_acc": length_acc.item(),
            "target_side_frac": out["target_side"].float().mean().item(),
            "ntokens": int(target.numel()), "nsentences": sample["target"].size(0), "sample_size": 1, "count": 1,
        }
        return loss, 1, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        log_means(logging_outputs, ("loss", "nll_loss", "length_loss", "token_acc", "length_acc", "target_side_frac"))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
