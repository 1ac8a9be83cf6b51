"""Reduction helpers shared by the criterions' ``reduce_metrics`` (no criterion is registered here).

The criterions that use these helpers put ``count = 1`` into every logging output. fairseq sums logging outputs
across workers and gradient-accumulation steps, so a summed value divided by the summed count is the mean over
the outputs.
"""
from typing import Dict, Iterable, List

from fairseq import metrics


def log_means(logging_outputs: List[Dict], keys: Iterable[str], present_only: bool = False,
              round: int = 3) -> int:
    """Logs ``sum(log[key]) / sum(log["count"])`` (missing values count as 0) for each key, in order.

    With ``present_only`` a key that no logging output carries is not logged. Returns the summed count; when it
    is 0 nothing is logged.
    """
    n = sum(log.get("count", 0) for log in logging_outputs)
    if n == 0:
        return 0
    for key in keys:
        if present_only and not any(key in log for log in logging_outputs):
            continue
        metrics.log_scalar(key, sum(log.get(key, 0.0) for log in logging_outputs) / n, 1, round=round)
    return n
