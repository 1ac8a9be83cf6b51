"""iterref-fairseq: generation by iterative refinement as a fairseq ``--user-dir`` plugin.

Importing this package (``--user-dir iterref_fairseq`` or ``import iterref_fairseq``) applies the compatibility
shims in :mod:`iterref_fairseq.compat` and registers every task, model, architecture and criterion.
"""
from . import compat  # noqa: F401  (must come first)

compat.apply()

from . import criterions, models, tasks  # noqa: E402,F401

__version__ = "0.1.0"
