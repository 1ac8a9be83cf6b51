"""One check shared by the models' ``load_state_dict``: a checkpoint's embedding tables must have as many rows as
the dictionaries of the run that loads it (a different data directory otherwise fails later with a shape error
that does not say what to fix)."""
from typing import Dict, Mapping

import torch


def check_dictionary_sizes(state_dict: Mapping[str, torch.Tensor], expected: Dict[str, int], note: str = "") -> None:
    """``expected`` maps parameter names to dictionary sizes; raises ValueError on the first mismatch. ``note`` is
    appended to the size of the run's dictionary (e.g. which extra symbols it includes)."""
    for name, size in expected.items():
        if name in state_dict and state_dict[name].size(0) != size:
            raise ValueError(
                f"dictionary mismatch: the checkpoint's {name} has {state_dict[name].size(0)} symbols but the "
                f"dictionary given to this run has {size}{note}. Pass the data directory (dict.*.txt) the model "
                "was trained with."
            )
