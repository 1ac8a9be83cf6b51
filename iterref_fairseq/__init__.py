"""iterref-fairseq: generation by iterative refinement as a fairseq ``--user-dir`` plugin.

Importing this package (``--user-dir iterref_fairseq`` or ``import iterref_fairseq``) applies the compatibility
shims in :mod:`iterref_fairseq.compat` and registers every task, model, architecture and criterion.
``iterref_fairseq.from_pretrained(model_dir, ...)`` loads a checkpoint as a hub interface (:mod:`iterref_fairseq.hub`).
"""
from . import compat  # noqa: F401  (must come first)

compat.apply()

from . import criterions, models, tasks  # noqa: E402,F401
from .hub import from_pretrained  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
