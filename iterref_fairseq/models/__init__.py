from . import refinement_nat  # noqa: F401
from . import flexmdm  # noqa: F401
from . import masked_graph  # noqa: F401
from . import masked_translation  # noqa: F401
from . import cvgae  # noqa: F401
from . import lanmt  # noqa: F401
from . import lanmt_score  # noqa: F401
