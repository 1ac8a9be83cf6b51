from . import refinement_nat_loss  # noqa: F401
from . import flexmdm_loss  # noqa: F401
from . import masked_graph_loss  # noqa: F401
from . import masked_translation_loss  # noqa: F401
from . import cvgae_loss  # noqa: F401
from . import lanmt_loss  # noqa: F401
from . import lanmt_score_loss  # noqa: F401
